"""Every class of recipe error: exact message, position, and the caret line under it."""
import subprocess
import sys
from pathlib import Path

import pytest

from actc.dsl.compiler import compile_source
from actc.errors import ActcError

REPO = Path(__file__).resolve().parents[1]


def err(src, **kw):
    with pytest.raises(ActcError) as info:
        compile_source(src, "r.actc", **kw)
    e = info.value
    return str(e), e.detail


def one(step):
    return "recipe main() {\n    " + step + "\n}\n"


CASES = [
    (one("quantize(weight_bits 4)"),
     "r.actc:2:26: error: syntax error: unexpected '4'; expected ':'", 25),
    ("recipe main() {\n    quantize(weight_bits: 4)\n",
     "r.actc:2:29: error: syntax error: unexpected end of file; expected ';', '}', a name", 28),
    (one('skip_ops(ops: op.name_scope contains "abc)'),
     "r.actc:2:42: error: syntax error: unterminated string (strings end on the same line)", 41),
    (one("quantise(weight_bits: 4)"),
     "r.actc:2:5: error: unknown step 'quantise' (did you mean 'quantize'?) (see `actc passes`)",
     4),
    (one("quantize(weight_bit: 4)"),
     "r.actc:2:14: error: quantize has no parameter 'weight_bit' (did you mean 'weight_bits'?)",
     13),
    (one('quantize(weight_bits: "4")'),
     "r.actc:2:27: error: 'weight_bits' expects int in 1..8, got string \"4\"", 26),
    (one("quantize(weight_bits: 9)"),
     "r.actc:2:27: error: 'weight_bits' must be in 1..8, got 9", 26),
    (one("calibrate(algo: histt)"),
     "r.actc:2:21: error: 'algo': histt is not one of auto, KL, hist, avg, mse, emd, abs_max, "
     "min_max, ptf (did you mean 'hist'?)", 20),
    (one("quantize(ops: op.type in {conv2d, conv2dd})"),
     "r.actc:2:39: error: unknown op type 'conv2dd' (did you mean 'conv2d'?)", 38),
    (one('skip_ops(ops: op.namescope contains "x")'),
     "r.actc:2:22: error: unknown field 'op.namescope' (did you mean 'name_scope'?); op fields: "
     "type, name_scope, input, output, attr, has_weight, is_conv1x1, uid, block, inputs, "
     "outputs", 21),
    (one("skip_ops()"), "r.actc:2:5: error: skip_ops needs 'ops' (selector)", 4),
    (one("quantize(weight_bits: 4, weight_bits: 8)"),
     "r.actc:2:30: error: parameter 'weight_bits' is given twice", 29),
    ("recipe main(wb: int = 8) {\n    quantize(format: wb)\n}\n",
     "r.actc:2:22: error: 'format' expects enum(onnx, fake), got int 8", 21),
    ('import "quantt"\nrecipe main() {}\n',
     "r.actc:1:8: error: no stdlib pass file 'quantt' (did you mean 'quant'?); stdlib: "
     "distill, edit, pact, prune, quant, stages", 7),
    ("pass p(ops: selector) {\n  rule r {\n    match o: op where ops\n"
     "    set o.attr.x = quant_input(o)\n  }\n}\n",
     "r.actc:4:20: error: unknown function 'quant_input' (did you mean 'quant_inputs'?)", 19),
    ("pass p(ops: selector) {\n  rule r {\n    match o: op where ops\n"
     "    set o.attr.x = undefined_thing\n  }\n}\n",
     "r.actc:4:20: error: unknown name 'undefined_thing'", 19),
    ("pass quantize(ops: selector) {\n}\n",
     "r.actc:1:6: error: step 'quantize' is defined twice (first defined in "
     "<stdlib>/quant.actc:7)", 5),
]


@pytest.mark.parametrize("src,message,caret", CASES, ids=[c[1].split("error: ")[1][:30]
                                                          for c in CASES])
def test_error_message(src, message, caret):
    msg, detail = err(src)
    assert msg == message
    line = int(message.split(":")[1])
    src_line, caret_line = detail.splitlines()
    assert src_line == "    " + src.splitlines()[line - 1]
    assert caret_line == "    " + " " * caret + "^"


def test_two_recipes_need_a_name():
    msg, _ = err("recipe a() {}\nrecipe b() {}\n")
    assert msg == ("r.actc: error: the file defines 2 recipes (a, b) and none is called "
                   "'main'; choose one with --recipe-name")
    assert compile_source("recipe a() {}\nrecipe b() {}\n", recipe_name="b").recipe == "b"


def test_set_overrides():
    src = "recipe main(wb: int = 8) {\n    quantize(weight_bits: wb)\n}\n"
    assert compile_source(src, overrides={"wb": "4"}).steps[0].args["weight_bits"] == 4
    assert err(src, overrides={"wbb": "4"})[0] == \
        "r.actc: error: --set wbb: recipe 'main' has no parameter 'wbb' (did you mean 'wb'?)"
    assert err(src, overrides={"wb": '"x"'})[0] == \
        "error: --set wb=\"x\": 'wb' expects int, got string \"x\""
    assert err(src, overrides={"wb": "9"})[0] == \
        "r.actc:2:27: error: 'weight_bits' must be in 1..8, got 9"


def test_cli_error_exit_code_and_nothing_written(tmp_path, example_dir):
    recipe = tmp_path / "r.actc"
    recipe.write_text(one("quantize(weight_bits: 9)"))
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "actc", "compile", str(example_dir),
                           "--recipe", str(recipe), "-o", str(out)],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [
        f"{recipe}:2:27: error: 'weight_bits' must be in 1..8, got 9",
        "        quantize(weight_bits: 9)", "                              ^"]
    assert not out.exists()
