"""DSL passes on real exported programs (resnet18, mobilenet_v2): op counts, sharing, skips,
W4A8, fake format, bypass removal, verifier, byte-identical empty recipe, and that a
quantized program still runs in Paddle."""
import collections
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import corpus as _corpus
from conftest import paddle_available
from actc.dsl.compiler import compile_source
from actc.dsl.pipeline import Options, PipelineContext, run_pipeline
from actc.io.model import load_model, save_model
from actc.io.params import Tensor
from actc.ir.verify import verify
from actc.quant.quantizers import find_quantizers

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def models():
    if not paddle_available():
        pytest.skip("paddlepaddle is not installed: cannot export the test models")
    return _corpus.export_corpus(_corpus.default_cache_dir(), names=["resnet18", "mobilenet_v2"])


def run(model_dir, src, **kw):
    program, files = load_model(model_dir)
    compiled = compile_source(src, "t.actc", program=program, **kw)
    ctx = PipelineContext(program, files)
    results = run_pipeline(compiled, ctx, Options())
    assert verify(program) == []
    return program, results


def counts(program):
    return collections.Counter(op.type for op in program.ops(block=None))


def quantized_tensors(program, types=("conv2d", "depthwise_conv2d", "mul", "matmul_v2")):
    """Distinct float inputs of the quantizable slots of the ops of ``types`` (before)."""
    from actc.dsl.primitives import quant_input_reasons
    return {n for op in program.ops(types) for n, why in quant_input_reasons(program, op)
            if why is None}


def test_quantize_resnet18_one_qdq_per_tensor(models):
    before, _ = load_model(models["resnet18"])
    expected = quantized_tensors(before)
    program, (res,) = run(models["resnet18"], "recipe main() { quantize() }")
    c = counts(program)
    assert c["quantize_linear"] == c["dequantize_linear"] == len(expected) == 39
    qs = find_quantizers(program)
    assert {q.tensor for q in qs} == expected
    weights = [q for q in qs if q.is_weight]
    assert len(weights) == 21
    for q in qs:
        scale = program.var(q.scale)
        if q.is_weight:
            w = program.var(q.tensor)
            assert q.axis == (1 if q.tensor.startswith("linear") else 0)
            assert list(scale.shape) == [w.shape[q.axis]]
        else:
            assert q.axis == -1 and list(scale.shape) == [1]
        assert program.var(q.zero_point).dtype == "int32" and q.bits == 8
    # sharing: the stem output of each residual block feeds two convs through one QDQ
    shared = [q for q in qs if len(program.consumers(q.output)) > 1]
    assert shared
    assert res.ops_added == 78 and res.matched == 21


def test_w4a8_and_skips(models):
    program, _ = run(models["resnet18"], '''recipe main() {
        skip_ops(ops: op.output in ["conv2d_5.tmp_0"] or op.type == matmul_v2)
        quantize(weight_bits: 4, activation_bits: 8)
    }''')
    skipped = [op for op in program.ops() if op.attr("skip_quant")]
    assert sorted(op.type for op in skipped) == ["conv2d", "matmul_v2"]
    for op in skipped:
        assert not any(n.endswith(".dequantized") for n in op.input_names)
    qs = find_quantizers(program)
    assert {q.bits for q in qs if q.is_weight} == {4}
    assert {q.bits for q in qs if not q.is_weight} == {8}
    assert sum(q.is_weight for q in qs) == 19


def test_name_scope_skip_via_set_attr(models):
    # exported models have op_namescope "/": give two convs a skip scope first
    program, _ = run(models["mobilenet_v2"], '''recipe main() {
        set_attr(ops: op.output in ["conv2d_0.tmp_0", "conv2d_1.tmp_0"], name: "op_namescope",
                 value: "/skip_quant_block/")
        skip_ops(ops: op.name_scope contains "skip_quant")
        quantize(ops: op.type in {conv2d, depthwise_conv2d})
    }''')
    skipped = [op for op in program.ops() if op.attr("skip_quant")]
    assert len(skipped) == 2
    convs = program.ops(("conv2d", "depthwise_conv2d"))
    assert len(find_quantizers(program)) == len(
        {n for op in convs if not op.attr("skip_quant") for n in op.input_names
         if n.endswith(".dequantized")})


def test_fake_format(models):
    program, _ = run(models["mobilenet_v2"], '''recipe main() {
        quantize(format: fake, weight_quantize_type: channel_wise_abs_max)
    }''')
    c = counts(program)
    n_w = c["fake_channel_wise_quantize_dequantize_abs_max"]
    n_a = c["fake_quantize_dequantize_moving_average_abs_max"]
    assert n_w == c["conv2d"] + c["depthwise_conv2d"] + c["matmul_v2"] + c["mul"]
    assert n_a > 0 and c["quantize_linear"] == 0
    qs = find_quantizers(program)
    assert all(q.format == "fake" for q in qs) and len(qs) == n_w + n_a


def test_quantize_twice_is_idempotent(models):
    program, results = run(models["resnet18"], "recipe main() { quantize() quantize() }")
    assert counts(program)["quantize_linear"] == 39 and not results[1].ops_added


def test_remove_op_bypass_and_rename(models):
    program, (rm, rn) = run(models["resnet18"], '''recipe main() {
        remove_op(ops: op.type == flatten_contiguous_range)
        rename_var(from: "conv2d_0.tmp_0", to: "stem_out")
    }''')
    assert counts(program)["flatten_contiguous_range"] == 0 and rm.ops_removed == 1
    assert rm.rewired == 1
    assert program.var("stem_out") is not None and program.var("conv2d_0.tmp_0") is None


def test_empty_recipe_is_byte_identical(models, tmp_path):
    src = Path(models["resnet18"])
    for text in ("", "recipe main() {}\n"):
        recipe = tmp_path / "r.actc"
        recipe.write_text(text)
        out = tmp_path / f"out{len(text)}"
        proc = subprocess.run([sys.executable, "-m", "actc", "compile", str(src), "--recipe",
                               str(recipe), "-o", str(out)], capture_output=True, text=True,
                              cwd=REPO)
        assert proc.returncode == 0, proc.stderr
        for f in ("model.pdmodel", "model.pdiparams"):
            assert (out / f).read_bytes() == (src / f).read_bytes()


def test_check_dry_run(models, tmp_path):
    recipe = tmp_path / "r.actc"
    recipe.write_text('recipe main() {\n skip_ops(ops: op.output in ["conv2d_5.tmp_0"])\n'
                      ' quantize()\n calibrate()\n}\n')
    proc = subprocess.run([sys.executable, "-m", "actc", "check", str(recipe), "--model",
                           str(models["resnet18"])], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert "quantize would rewrite 20 of" in proc.stdout
    assert "skipped (skip_quant)" in proc.stdout
    assert "calibrate: runtime stage (not run by check)" in proc.stdout


@pytest.mark.paddle
def test_quantized_program_runs_in_paddle(models, tmp_path):
    import paddle

    paddle.enable_static()
    exe = paddle.static.Executor(paddle.CPUPlace())
    x = np.random.RandomState(0).rand(2, 3, 64, 64).astype("float32")

    def infer(model_dir, fetch_extra=()):
        scope = paddle.static.Scope()
        with paddle.static.scope_guard(scope):
            prog, feeds, fetches = paddle.static.load_inference_model(
                str(Path(model_dir) / "model"), exe)
            extra = [prog.global_block().var(n) for n in fetch_extra]
            return exe.run(prog, feed={feeds[0]: x}, fetch_list=list(fetches) + extra)

    program, _ = run(models["resnet18"], "recipe main() { quantize() }")
    qs = find_quantizers(program)
    acts = [q.tensor for q in qs if not q.is_weight]
    ref, *act_vals = infer(models["resnet18"], acts)
    # fill scales: abs-max per channel for weights, observed abs-max for activations
    amax = dict(zip(acts, (float(np.abs(a).max()) for a in act_vals)))
    for q in qs:
        if q.is_weight:
            w = program.params[q.tensor].array
            axes = tuple(i for i in range(w.ndim) if i != q.axis)
            s = np.abs(w).max(axis=axes).astype("float32")
        else:
            s = np.array([amax[q.tensor]], dtype="float32")
        program.params[q.scale] = Tensor.from_array(s)
    out = tmp_path / "q"
    save_model(program, out)
    (got,) = infer(out)
    cos = float((ref * got).sum() / np.linalg.norm(ref) / np.linalg.norm(got))
    assert np.isfinite(got).all() and cos > 0.99
