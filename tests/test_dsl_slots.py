"""`set OP.output.SLOT = [...]` / `set OP.input.SLOT = [...]`: whole slots of an op set from a
rule (what restore_xshape needs), with the slot checked against Paddle's op definitions."""
from pathlib import Path

import pytest

from actc.dsl.compiler import compile_source
from actc.dsl.pipeline import PipelineContext, run_pipeline
from actc.errors import ActcError
from actc.io.model import load_model
from actc.ir.verify import verify

FIXTURE = Path(__file__).parent / "fixtures" / "tfm_encoder"  # transpose2 without XShape


def run(src):
    program, files = load_model(FIXTURE)
    results = run_pipeline(compile_source(src, "r.actc", program=program),
                           PipelineContext(program, files))
    return program, results


def rule(body, where="o.type == transpose2"):
    return ("pass p() {\n  rule r {\n    match o: op where " + where + "\n" + body +
            "  }\n}\nrecipe main() { p() }\n")


def test_set_output_slot_adds_the_slot():
    program, (res,) = run(rule(
        '    let v = new var(name: o.output.Out[0] + "@x", shape: [0] + o.input.X[0].shape)\n'
        "    set o.output.XShape = [v]\n"))
    ops = program.ops("transpose2")
    assert res.matched == res.rewired == res.vars_added == len(ops) == 8
    for op in ops:
        (name,) = op.output("XShape")
        assert name == op.output("Out")[0] + "@x"
        assert list(program.var(name).shape) == [0] + list(program.var(op.input("X")[0]).shape)
        assert [p for p, _, _ in program.producers(name)] == [op]  # the graph knows the writer
    assert verify(program) == []


def test_a_single_name_and_an_unchanged_slot():
    program, (res,) = run(rule('    set o.output.Out = o.output.Out[0]\n'))
    assert res.matched == 8 and res.rewired == 0  # same names: nothing to do


def test_set_input_slot_rewires():
    # every transpose2 reads the first reshape2's output instead (a nonsense model, valid IR)
    program, _ = load_model(FIXTURE)
    first = program.ops("reshape2")[0].output("Out")[0]
    program, (res,) = run(rule(f'    set o.input["X"] = ["{first}"]\n'))
    assert res.matched == 8 and res.rewired == 7  # the first transpose2 already reads it
    assert all(op.input("X") == [first] for op in program.ops("transpose2"))
    assert sum(1 for op, _, _ in program.consumers(first) if op.type == "transpose2") == 8


@pytest.mark.parametrize("body,message", [
    ('    set o.output.XShap = o.output.Out\n',
     "transpose2 has no output slot 'XShap' (its outputs: Out, XShape) (did you mean "
     "'XShape'?)"),
    ('    set o.input.Y = o.input.X\n',
     "transpose2 has no input slot 'Y' (its inputs: X)"),
    ('    set o.output.XShape = [o.input.X[0], o.input.X[0]]\n',
     "transpose2.output.XShape holds one var, got 2"),
    ('    set o.output.XShape = ["nowhere"]\n',
     "set transpose2.output.XShape: no var 'nowhere' (declare it with `let x = new var(...)` "
     "first)"),
    ('    set o.output.XShape = o.input.X\n',
     "is already written by"),
    ('    set o.output.XShape = 3\n',
     "transpose2.output.XShape takes var names (a string or a list of them), got 3"),
    ('    set o.output[1] = ["x"]\n',
     "an output slot is named by a string, got 1"),
    ('    set o.input.X[0].output.Out = []\n',
     "set .output.SLOT needs an op, got string"),
])
def test_slot_errors(body, message):
    with pytest.raises(ActcError) as info:
        run(rule(body))
    assert "in pass 'p': " in str(info.value) and message in str(info.value)


def test_unset_of_a_slot_is_refused_when_the_pass_loads():
    with pytest.raises(ActcError) as info:
        compile_source(rule("    unset o.output.XShape\n"), "r.actc")
    assert str(info.value) == ("r.actc:4:20: error: unset takes an op attribute; to empty an "
                               "op's slot write `set o.output.SLOT = []`")


def test_an_unassignable_target_names_the_slot_forms():
    with pytest.raises(ActcError, match=r"an op's slot \(x.output.SLOT, x.input.SLOT\)"):
        compile_source(rule("    set o.type = 1\n"), "r.actc")
