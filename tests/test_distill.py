"""Distillation wiring and the DSL features it needs (match program, insert at end, merge,
set NAME): what the passes put into the IR, checked on the embedded example (a real program
exported by Paddle). No Paddle needed: nothing here runs the model."""
from __future__ import annotations

import pytest

from actc.dsl.compiler import compile_source
from actc.dsl.pipeline import PipelineContext, run_pipeline
from actc.errors import ActcError
from actc.io.model import load_model


def run(src: str, example_dir, teacher=None):
    prog, files = load_model(example_dir)
    c = compile_source(src, "<test>", program=prog)
    ctx = PipelineContext(program=prog, source=files, original=teacher or prog.clone())
    return ctx, run_pipeline(c, ctx)


def loss_ops(program):
    return [op for op in program.ops() if op.has_attr("actc_loss")]


def teacher_ops(program):
    return [op for op in program.ops() if op.has_attr("actc_teacher")]


def test_default_node_is_last_weighted_layer_output(example_dir):
    ctx, _ = run("recipe m() { distill() }", example_dir)
    p = ctx.program
    (loss,) = loss_ops(p)
    assert loss.output("Out") == ["distill_loss"] and loss.attr("actc_loss") == "distill"
    sub = next(op for op in p.ops() if op.type == "elementwise_sub")
    # the last matmul_v2's bias add, paired with its teacher twin
    assert sub.input("X") == ["linear_1.tmp_1"] and sub.input("Y") == ["teacher_linear_1.tmp_1"]
    # the whole teacher up to that node, every op marked, feed shared (merge_feed)
    t = teacher_ops(p)
    assert len(t) == 21 and all(op.attr("skip_quant") for op in t)  # the 21 non-feed/fetch ops
    assert t[0].input("Input") == ["image"]
    assert all(p.var(n).desc.stop_gradient for op in t for n in op.input_names
               if p.is_weight(n))


def test_only_needed_teacher_ops_are_merged(example_dir):
    ctx, _ = run('recipe m() { distill(nodes: ["relu_1.tmp_0"]) }', example_dir)
    t = teacher_ops(ctx.program)
    assert [op.type for op in t] == ["conv2d", "batch_norm", "relu", "depthwise_conv2d",
                                     "batch_norm", "relu"]
    assert t[-1].output("Out") == ["teacher_relu_1.tmp_0"]


@pytest.mark.parametrize("nodes", [
    '["relu_3.tmp_0", "linear_1.tmp_1"]',                                   # self-distillation
    '["teacher_relu_3.tmp_0", "relu_3.tmp_0", "teacher_linear_1.tmp_1", "linear_1.tmp_1"]',
    '[["teacher_relu_3.tmp_0", "relu_3.tmp_0"], ["teacher_linear_1.tmp_1", "linear_1.tmp_1"]]',
])
def test_three_node_spellings_give_the_same_pairs(example_dir, nodes):
    ctx, _ = run(f"recipe m() {{ distill(nodes: {nodes}, loss: [l2, soft_label], "
                 "alpha: [1.0, 0.5]) }", example_dir)
    p = ctx.program
    subs = [op for op in p.ops() if op.type == "elementwise_sub"]
    assert [(op.input("X")[0], op.input("Y")[0]) for op in subs] == \
        [("relu_3.tmp_0", "teacher_relu_3.tmp_0")]  # l2 on the first pair only
    assert sum(op.type == "log_softmax" for op in p.ops()) == 1  # soft_label on the second
    scales = [op.attr("scale") for op in p.ops()
              if op.type == "scale" and "@distill_term" in op.output("Out")[0]]
    assert scales == [1.0, 0.5]
    assert len(loss_ops(p)) == 1


def test_quantize_after_distill_leaves_the_teacher_alone(example_dir):
    ctx, _ = run("recipe m() { distill() quantize(format: fake) }", example_dir)
    p = ctx.program
    quantized = {op.input("X")[0] for op in p.ops() if op.type.startswith("fake_")}
    assert quantized and not any(n.startswith("teacher_") for n in quantized)


def test_strip_restores_the_input_program_byte_for_byte(example_dir):
    original = load_model(example_dir)[0].to_bytes()
    ctx, results = run("recipe m() { distill(loss: soft_label) task_loss() strip_distill() }",
                       example_dir)
    assert ctx.program.to_bytes() == original
    # 21 teacher ops, 10 soft_label loss ops, the label feed + 3 task-loss ops
    assert results[-1].ops_removed == 21 + 10 + 4


def test_task_loss_adds_a_label_feed(example_dir):
    ctx, _ = run("recipe m() { task_loss(weight: 0.5) }", example_dir)
    p = ctx.program
    feed = [op for op in p.ops("feed") if op.has_attr("actc_label")]
    assert len(feed) == 1 and feed[0].output("Out") == ["label"]
    (loss,) = loss_ops(p)
    assert loss.attr("scale") == 0.5 and loss.attr("actc_loss") == "task"
    ce = next(op for op in p.ops() if op.type == "softmax_with_cross_entropy")
    assert ce.input("Logits") == ["linear_1.tmp_1"] and ce.input("Label") == ["label"]


@pytest.mark.parametrize("src, needles", [
    ('distill(nodes: ["relu_3.tmp"])', ["is neither student var names", "relu_3.tmp_0"]),
    ('distill(nodes: [["teacher_relu_3.tmp_0", "relu_3.tmp_O"]])',
     ["student model has no var 'relu_3.tmp_O'", "did you mean", "relu_3.tmp_0"]),
    ('distill(nodes: [["teacher_relu_2.tmp_0", "relu_3.tmp_0"]])',
     ["teacher 'teacher_relu_2.tmp_0' is [-1, 16, 8, 8]", "student 'relu_3.tmp_0' is",
      "same shape"]),
    ('distill(nodes: ["relu_3.tmp_0", "linear_1.tmp_1"], loss: [l2])',
     ["loss has 1 entries but there are 2 node pairs"]),
    ('distill(nodes: [["a", "b", "c"]])', ["must be [teacher, student]"]),
    ('task_loss(output: "logits")', ["no var 'logits'"]),
    ('distill(nodes: ["relu_1.tmp_0"], loss: fsp)', ["fsp needs node pairs two by two",
                                                     "pair 1 has no fsp partner"]),
    ('distill(nodes: ["relu_1.tmp_0", "linear_1.tmp_1"], loss: fsp)',
     ["fsp needs two 4-D feature maps of the same spatial size", "linear_1.tmp_1' [-1, 10]"]),
])
def test_bad_distill_arguments(example_dir, src, needles):
    with pytest.raises(ActcError) as e:
        run(f"recipe m() {{ {src} }}", example_dir)
    for n in needles:
        assert n in str(e.value), str(e.value)


def test_teacher_with_other_feeds_is_refused(example_dir):
    teacher = load_model(example_dir)[0]
    teacher.rename_var("image", "pixels")
    with pytest.raises(ActcError, match="teacher reads feed 'pixels', which the student does "
                                        "not have"):
        run("recipe m() { distill() }", example_dir, teacher=teacher)
    # without merge_feed the teacher gets its own feed
    ctx, _ = run("recipe m() { distill(merge_feed: false) }", example_dir, teacher=teacher)
    feeds = [op for op in ctx.program.ops("feed") if op.has_attr("actc_teacher")]
    assert [op.output("Out")[0] for op in feeds] == ["teacher_pixels"]


def test_set_rebinds_across_loops_and_branches(example_dir):
    src = '''
pass count_convs() "count conv ops with a loop" {
    rule count {
        match p: program
        let n = 0
        for o in consumers("image") {
            if o.type == conv2d { set n = n + 1 }
        }
        note "convs reading image: " + str(n)
    }
}
recipe m() { count_convs() }'''
    ctx, results = run(src, example_dir)
    assert "count_convs: convs reading image: 1" in ctx.notes


def test_set_of_an_unbound_name_is_an_error(example_dir):
    src = 'pass p() { rule r { match q: program\n set m = 1 } }\nrecipe m() { p() }'
    with pytest.raises(ActcError, match=r"2:6: error: set m: no such name to rebind"):
        run(src, example_dir)


def test_insert_at_end_goes_before_fetch(example_dir):
    src = '''
pass tail() { rule r {
    match p: program
    let y = new var(name: "y", like: "linear_1.tmp_1", persistable: false)
    insert relu at end inputs {X: "linear_1.tmp_1"} outputs {Out: y}
} }
recipe m() { tail() }'''
    ctx, _ = run(src, example_dir)
    ops = ctx.program.blocks[0].ops
    assert ops[-1].type == "fetch" and ops[-2].type == "relu" and ops[-2].output("Out") == ["y"]


def test_check_dry_runs_distillation_recipes(capsys):
    from actc.cli.main import main

    assert main(["check", "qat", "--model", "example"]) == 0
    out = capsys.readouterr().out
    assert "distill: matched 2, ops + 26" in out and "train: runtime stage" in out
