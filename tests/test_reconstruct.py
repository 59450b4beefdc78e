"""Layer-wise reconstruction (calibrate recon_level: layer_wise, actc.runtime.reconstruct) on
the digits example, in process: the learned codes survive the QDQ program and convert
exactly, W4A4 accuracy/SNR improve over round-to-nearest, and it runs in seconds.

Measured with paddlepaddle 3.3.1 CPU, W4A4 (mse activations, mse weights, 10 x 32 calibration
samples) on the 360 test samples (fp32 98.61%): round-to-nearest 96.94% / SNR 11.0 dB; with
reconstruction (epochs 20, 10 batches, simulate_activation_quant) 97.78% / 15.0 dB. The test
runs a shorter schedule (epochs 10, 5 batches) to stay fast; its numbers are in the asserts.
"""
from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("paddle")

from actc.dsl.compiler import compile_source  # noqa: E402
from actc.dsl.pipeline import Options, PipelineContext, run_pipeline  # noqa: E402
from actc.io.model import load_model  # noqa: E402
from actc.quant.ptq import freeze_onnx  # noqa: E402
from actc.quant.quantizers import find_quantizers  # noqa: E402
from actc.quant.reference import qmax, quantize  # noqa: E402
from actc.runtime.evaluate import fidelity  # noqa: E402
from actc.runtime.executor import Runner  # noqa: E402

pytestmark = pytest.mark.paddle

RECIPE = """
recipe main(bits: int = 4, abits: int = 4, recon: bool = true) {{
    quantize(ops: op.type in {{conv2d, depthwise_conv2d, mul, matmul_v2}},
             weight_bits: bits, activation_bits: abits,
             weight_quantize_type: channel_wise_abs_max,
             activation_quantize_type: range_abs_max, format: onnx)
    calibrate(algo: mse, weight_algo: mse, batch_size: 32, batch_nums: 10{recon})
    {convert}
}}
"""
RECON = (", recon_level: layer_wise, epochs: 10, recon_batches: 5, "
         "simulate_activation_quant: true")


def run_recipe(example_dir, *, recon: bool | str, convert: bool):
    program, files = load_model(example_dir)
    recon = RECON if recon is True else (recon or "")
    text = RECIPE.format(recon=recon,
                         convert="convert()" if convert else "")
    compiled = compile_source(text, "<test recipe>", program=program)
    ctx = PipelineContext(program=program, source=files, data=None, device="cpu",
                          out_dir=None, params=compiled.params)
    start = time.perf_counter()
    run_pipeline(compiled, ctx, Options())
    return ctx, time.perf_counter() - start


@pytest.fixture(scope="module")
def float_logits(example_dir, test_set):
    program, _ = load_model(example_dir)
    return Runner(program, "cpu").run({"image": test_set[0]})[0]


@pytest.fixture(scope="module")
def reconstructed(example_dir):
    """W4A4 with reconstruction, before convert (the QDQ program), and its run time."""
    return run_recipe(example_dir, recon=True, convert=False)


@pytest.fixture(scope="module")
def nearest(example_dir):
    return run_recipe(example_dir, recon=False, convert=False)[0]


def logits_of(program, x):
    return Runner(program, "cpu").run({"image": x})[0]


def test_codes_exact_through_convert(reconstructed, nearest, test_set):
    ctx, _ = reconstructed
    program = ctx.program
    weights = [q for q in find_quantizers(program) if q.is_weight]
    assert len(weights) == 6
    # what the QDQ program's quantize_linear ops compute from the stored weights
    fetched = Runner(program, "cpu").run({"image": test_set[0][:2]},
                                         [q.quant_op.output("Y")[0] for q in weights])
    frozen = program.clone()
    assert freeze_onnx(frozen, find_quantizers(frozen)) == 6
    changed = 0
    for q, codes in zip(weights, fetched):
        w = np.asarray(program.params[q.tensor].array)
        scale = np.asarray(program.params[q.scale].array)
        qm = qmax(q.bits)
        assert w.dtype == np.float32
        # the stored float weight is exactly the dequantized chosen code
        shape = [1] * w.ndim
        shape[q.axis] = -1
        assert np.array_equal(w, (codes * scale.reshape(shape) / np.float32(qm))
                              .astype(np.float32))
        assert codes.min() >= -qm - 1 and codes.max() <= qm
        # convert stores exactly those codes as int8
        deq = next(op for op in frozen.ops("dequantize_linear")
                   if op.output("Y")[0] == q.output)
        stored = np.asarray(frozen.params[deq.input("X")[0]].array)
        assert stored.dtype == np.int8
        assert np.array_equal(stored.astype(np.float32), codes)
        # and reconstruction changed some roundings against round-to-nearest
        w0 = np.asarray(nearest.program.params[q.tensor].array)
        s0 = np.asarray(nearest.program.params[q.scale].array)
        np.testing.assert_array_equal(s0, scale)      # scales are untouched
        changed += int((quantize(w0, s0, q.bits, q.axis) != codes).sum())
    assert changed > 0
    # the frozen int8 model computes what the QDQ program computes
    x = test_set[0]
    np.testing.assert_allclose(logits_of(frozen, x), logits_of(program, x), rtol=1e-4,
                               atol=1e-4)


def test_w4a4_improves(reconstructed, nearest, test_set, float_logits):
    ctx, _ = reconstructed
    x, y = test_set
    frozen = ctx.program.clone()
    freeze_onnx(frozen, find_quantizers(frozen))
    rec = logits_of(frozen, x)
    base = logits_of(nearest.program, x)
    acc_rec = float((rec.argmax(1) == y).mean())
    acc_base = float((base.argmax(1) == y).mean())
    snr_rec = fidelity("out", float_logits, rec).snr_db
    snr_base = fidelity("out", float_logits, base).snr_db
    # measured (this schedule): 96.94% / 11.0 dB -> about 97.5-98% / 14.5-15 dB
    print(f"W4A4 nearest {acc_base:.2%} / {snr_base:.1f} dB, "
          f"reconstructed {acc_rec:.2%} / {snr_rec:.1f} dB")
    assert acc_rec >= 0.972, (acc_base, acc_rec)
    assert acc_rec >= acc_base
    assert snr_rec >= snr_base + 2.5, (snr_base, snr_rec)
    assert any("reconstruction (layer_wise)" in n for n in ctx.notes)


def test_runtime(reconstructed):
    _, seconds = reconstructed
    assert seconds < 30.0


def test_bias_correction_after_reconstruction_corrects_toward_float(example_dir, monkeypatch):
    """Reconstruction writes rounded weights over the float ones; bias correction must still
    measure the shift against the true float model (issue: its reference carried 4-bit
    weights, which cost 4.5 points at W4A4 on a MobileNetV2-style model)."""
    import actc.runtime.bias_correction as bc

    seen = {}
    real = bc.reference_program

    def capture(program, float_weights):
        ref = real(program, float_weights)
        seen["ref"] = ref
        seen["quantized"] = program
        return ref

    monkeypatch.setattr(bc, "reference_program", capture)
    ctx, _ = run_recipe(example_dir, convert=False, recon=RECON + ", bias_correction: true")
    source, _ = load_model(example_dir)
    weights = [q.tensor for q in find_quantizers(seen["quantized"]) if q.is_weight]
    assert weights
    for name in weights:
        original = np.asarray(source.params[name].array)
        assert np.array_equal(np.asarray(seen["ref"].params[name].array), original), name
    # ...while the quantized program keeps the reconstructed (rounded) weights
    assert any(not np.array_equal(np.asarray(seen["quantized"].params[n].array),
                                  np.asarray(source.params[n].array)) for n in weights)
    assert any("bias correction" in n for n in ctx.notes)
