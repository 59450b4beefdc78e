"""``recon_level: region_wise`` (issue 12): regions from [input, output] pairs or the program's
blocks, joint AdaRound over each region in dygraph, and what it buys at W4A4."""
from __future__ import annotations

import re

import numpy as np
import pytest

from actc.errors import ActcError
from actc.io.model import load_model
from actc.quant.quantizers import find_quantizers
from actc.quant.regions import auto_regions, region_between, regions_from_pairs

pytest.importorskip("paddle")

from actc.cli.main import main  # noqa: E402

SNR = re.compile(r"SNR (-?[0-9.]+) dB vs float")
TOP1 = re.compile(r"float (\d+\.\d+)% -> compressed (\d+\.\d+)%")
QUANTIZE_ONLY = """recipe main() {
    quantize(ops: op.type in {conv2d, depthwise_conv2d, mul, matmul_v2}, weight_bits: 4,
             activation_bits: 4, weight_quantize_type: channel_wise_abs_max,
             activation_quantize_type: range_abs_max, format: onnx)
}
"""


@pytest.fixture(scope="module")
def quantized(tmp_path_factory):
    """The example after the quantize pass only (QDQ ops, no scales yet)."""
    tmp = tmp_path_factory.mktemp("region")
    recipe = tmp / "q.actc"
    recipe.write_text(QUANTIZE_ONLY)
    out = tmp / "q"
    assert main(["compile", "example", "--recipe", str(recipe), "-o", str(out), "--no-eval",
                 "--quiet"]) == 0
    program, _ = load_model(out)
    return program, find_quantizers(program)


def test_automatic_regions_are_the_blocks(quantized):
    program, qs = quantized
    regions = auto_regions(program, qs)
    # the residual stage (stem, depthwise, pointwise + add, next conv) and the classifier
    assert [(r.inputs, r.output) for r in regions] == [
        (["image"], "flatten_0.tmp_0"), (["flatten_0.tmp_0"], "linear_1.tmp_1")]
    weights = [q.tensor for r in regions for q in r.weights]
    assert sorted(weights) == sorted(q.tensor for q in qs if q.is_weight)   # each exactly once
    assert "elementwise_add" in {op.type for op in regions[0].ops}


def test_a_region_reads_the_other_branch_of_a_residual_as_an_input(quantized):
    program, qs = quantized
    r = region_between(program, qs, "relu_1.tmp_0", "tmp_0")
    assert r.inputs == ["relu_1.tmp_0", "relu_0.tmp_0"]
    assert [q.tensor for q in r.weights] == ["conv2d_2.w_0"]
    assert [op.type for op in r.ops if op.type not in ("quantize_linear", "dequantize_linear")] \
        == ["conv2d", "batch_norm", "elementwise_add"]


@pytest.mark.parametrize("pairs,message", [
    ([["image", "pool2d_0.tmp"]], "'pool2d_0.tmp' is not in the program (did you mean "
                                  "'pool2d_0.tmp_0'?)"),
    ([["pool2d_0.tmp_0", "image"]], "no op lies between 'pool2d_0.tmp_0' and 'image'"),
    ([["image"]], "regions[0] must be [input var, output var]"),
])
def test_bad_regions(quantized, pairs, message):
    program, qs = quantized
    with pytest.raises(ActcError) as e:
        regions_from_pairs(program, qs, pairs)
    assert message in str(e.value)


def _compile(capsys, model, out, *flags):
    code = main(["compile", str(model), "--recipe", "ptq", "-o", str(out), *map(str, flags)])
    text = capsys.readouterr()
    assert code == 0, text.err
    both = text.out + text.err
    return float(SNR.search(both).group(1)), TOP1.search(both), text.err


W4A4 = ["--set", "weight_bits=4", "--set", "activation_bits=4", "--set", "weight_algo=mse"]


def test_region_wise_beats_round_to_nearest_and_layer_wise_on_the_example(capsys, tmp_path):
    plain, _, _ = _compile(capsys, "example", tmp_path / "plain", *W4A4)
    layer, _, _ = _compile(capsys, "example", tmp_path / "layer", *W4A4,
                           "--set", "recon_level=layer_wise")
    region, _, err = _compile(capsys, "example", tmp_path / "region", *W4A4,
                              "--set", "recon_level=region_wise")
    assert "2 regions chosen automatically" in err
    assert region >= plain + 2.0, (plain, layer, region)       # measured +3.4 dB
    assert region >= layer - 0.3, (plain, layer, region)        # measured +0.15 dB
    # the written int8 weights are exactly the learned codes (convert re-quantizes them)
    program, _ = load_model(tmp_path / "region")
    ints = [n for n, t in program.params.items() if np.asarray(t.array).dtype == np.int8]
    assert len(ints) == 6


def test_given_regions(capsys, tmp_path):
    snr, _, err = _compile(capsys, "example", tmp_path / "given", *W4A4,
                           "--set", "recon_level=region_wise", "--set", "epochs=5", "--set",
                           'regions=[["image", "pool2d_0.tmp_0"], '
                           '["pool2d_0.tmp_0", "linear_1.tmp_1"]]')
    assert "2 regions given" in err and snr > 12.5


def test_an_op_region_reconstruction_cannot_run_is_named(capsys, tmp_path, monkeypatch):
    from actc.runtime import interp

    monkeypatch.delitem(interp.OPS, "pool2d")
    code = main(["compile", "example", "--recipe", "ptq", "-o", str(tmp_path / "x"), *W4A4,
                 "--set", "recon_level=region_wise"])
    err = capsys.readouterr().err
    assert code == 2 and "block 1 contains pool2d (-> pool2d_0.tmp_0)" in err, err
    assert not (tmp_path / "x").exists()


def test_region_wise_w4a4_on_mobilenet_v2(capsys, tmp_path, mbv2_digits):
    # The tests' model trains 6 epochs and is harder to quantize than the benchmark's
    # (40 epochs, where region_wise W4A4 is within 1.7-1.9 points of fp32: README).
    data = ["--data", mbv2_digits / "train.npz", "--eval-data", mbv2_digits / "test.npz",
            "--set", "batch_nums=16"]
    plain_snr, plain, _ = _compile(capsys, mbv2_digits, tmp_path / "p", *W4A4, *data)
    snr, region, err = _compile(capsys, mbv2_digits, tmp_path / "m", *W4A4, *data,
                                "--set", "recon_level=region_wise", "--set", "epochs=3")
    assert "9 regions chosen automatically" in err
    assert snr >= plain_snr + 2.0, (plain_snr, snr)                     # measured +3.4 dB
    assert float(region.group(2)) >= float(plain.group(2)) + 2.0, err    # measured +3.6
