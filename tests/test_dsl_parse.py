"""The grammar and the registry: positions, every shipped .actc file, lowered ACT configs."""
from pathlib import Path

import pytest

from actc.dsl import ast as A
from actc.dsl.compiler import compile_source
from actc.dsl.parser import parse
from actc.dsl.registry import default_registry
from actc.dsl.values import EnumName, Range, Selector

REPO = Path(__file__).resolve().parents[1]

DOC_RECIPE = '''
import "quant"                      # a stdlib file

recipe ptq(weight_bits: int = 8, activation_bits: int = 8, algo: enum = hist) {
    skip_ops(ops: op.name_scope contains "skip_quant" or op.output in ["conv2d_52.tmp_0"])
    quantize(ops: op.type in {conv2d, depthwise_conv2d, mul, matmul_v2},
             weight_bits: weight_bits, activation_bits: activation_bits,
             weight_quantize_type: channel_wise_abs_max, format: onnx,)
    calibrate(algo: algo, hist_percent: 0.999, batch_size: 32, batch_nums: 10); convert()
    search(hist_percent: 0.98 .. 0.999, batch_num: 10 .. 30, ptq_algo: [KL, hist])
    train(optimizer: {type: SGD}, learning_rate: {type: PiecewiseDecay, boundaries: [4500],
                                                  values: [0.005, 0.0005]})
}
'''


def test_doc_recipe_binds():
    c = compile_source(DOC_RECIPE, "doc.actc", overrides={"weight_bits": "4"})
    names = [s.name for s in c.steps]
    assert names == ["skip_ops", "quantize", "calibrate", "convert", "search", "train"]
    q = c.steps[1].args
    assert q["weight_bits"] == 4 and q["activation_bits"] == 8
    assert isinstance(q["ops"], Selector) and q["format"] == "onnx"
    assert isinstance(q["format"], EnumName)
    assert c.steps[2].args["algo"] == "hist" and c.steps[2].args["batch_nums"] == 10
    assert c.steps[4].args["hist_percent"] == Range(0.98, 0.999)
    assert c.steps[5].args["learning_rate"]["boundaries"] == [4500]
    assert c.steps[3].args == {"format": None}


def test_positions():
    mod = parse(DOC_RECIPE, "doc.actc")
    step = mod.recipes[0].steps[1]
    assert (step.pos.line, step.pos.col) == (6, 5)
    assert step.args[0].text == "op.type in {conv2d, depthwise_conv2d, mul, matmul_v2}"
    assert isinstance(step.args[0].value, A.Compare)


def test_empty_file_and_passes_only():
    assert compile_source("", "e.actc").steps == []
    assert compile_source("# nothing\n", "e.actc").recipe is None


def test_registry_has_catalogue():
    reg = default_registry()
    for name in ("skip_ops", "quantize", "set_attr", "remove_op", "rename_var", "distill",
                 "task_loss", "strip_distill", "fake_to_onnx", "pact", "strip_pact", "sparsify",
                 "asp_prune", "fold_masks", "prune_channels", "prune_transformer"):
        assert reg.get(name).kind == "pass"
    for name in ("calibrate", "search", "train", "convert"):
        assert reg.get(name).kind == "stage"
    q = reg.get("quantize")
    assert q.param("weight_bits").lo == 1 and q.param("weight_bits").hi == 8
    assert q.param("format").choices == ("onnx", "fake")


@pytest.mark.parametrize("path", sorted(REPO.glob("configs/*.actc")), ids=lambda p: p.name)
def test_shipped_recipes_compile(path):
    assert compile_source(path.read_text(), str(path)).steps


def test_stdlib_files_parse_and_register():
    reg = default_registry()
    for path in sorted(REPO.glob("passes/*.actc")):
        mod = parse(path.read_text(), str(path))
        for d in mod.passes + mod.stages:
            assert reg.get(d.name) is not None


@pytest.mark.parametrize("path", sorted(REPO.glob("configs/*.yaml")), ids=lambda p: p.name)
def test_lowered_act_configs_compile(path):
    try:
        from actc.act.load import load_config
        from actc.act.lower import lower
    except ImportError:
        pytest.skip("YAML front end not available")
    text = lower(load_config(path)).text
    assert compile_source(text, str(path)).steps


def test_user_pass_import(tmp_path):
    (tmp_path / "mine.actc").write_text(
        'pass drop(ops: selector) "d" {\n rule r {\n  match o: op where ops\n'
        '  remove o bypass\n }\n}\n')
    (tmp_path / "r.actc").write_text('import "mine.actc"\nrecipe main() { drop(ops: '
                                     'op.type == dropout) }\n')
    from actc.dsl.compiler import compile_file
    c = compile_file(tmp_path / "r.actc")
    assert c.steps[0].spec.kind == "pass" and c.steps[0].name == "drop"
