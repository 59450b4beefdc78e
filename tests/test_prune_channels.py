"""Channel pruning: dependency groups on real programs exported by Paddle, the slicing pass,
and the pruned model computing exactly what the unpruned model computes with the removed
channels masked out (Paddle runs both)."""
from __future__ import annotations

import numpy as np
import pytest

from actc.dsl.compiler import compile_source
from actc.dsl.pipeline import PipelineContext, run_pipeline
from actc.errors import ActcError
from actc.io.model import load_model
from actc.prune.groups import channel_groups


def prune(program, files, src):
    c = compile_source(src, "<test>", program=program)
    ctx = PipelineContext(program=program, source=files, original=program.clone())
    run_pipeline(c, ctx)
    return ctx


def test_groups_of_the_example(example_dir):
    program, _ = load_model(example_dir)
    groups = {g.root_param: g for g in channel_groups(program)}
    assert list(groups) == ["conv2d_0.w_0", "conv2d_3.w_0", "linear_0.w_0", "linear_1.w_0"]
    residual = groups["conv2d_0.w_0"]
    # both branches of the residual add, the depthwise conv between them, four batch norms'
    # parameters, and the consumer conv's input channels
    assert [m.name for m in residual.params("out")] == ["conv2d_0.w_0", "conv2d_2.w_0"]
    assert [m.name for m in residual.params("dw")] == ["conv2d_1.w_0"]
    assert [m.name for m in residual.params("in")] == ["conv2d_2.w_0", "conv2d_3.w_0"]
    assert len(residual.params("bn_scale")) == 3
    flat = groups["conv2d_3.w_0"]  # flatten: channel c is rows 4c .. 4c+3 of linear_0.w_0
    (rows,) = flat.params("in")
    assert rows.name == "linear_0.w_0" and rows.map[5].tolist() == [20, 21, 22, 23]
    assert groups["linear_1.w_0"].problem == "reaches the model output 'linear_1.tmp_1'"


def test_pruning_slices_weights_shapes_and_attrs(example_dir):
    program, files = load_model(example_dir)
    ctx = prune(program, files, "recipe m() { prune_channels(ops: op.type in {conv2d, "
                                "matmul_v2}, ratio: 0.5) }")
    p = ctx.program
    shapes = {n: list(np.asarray(t.array).shape) for n, t in p.params.items()}
    assert shapes["conv2d_0.w_0"] == [8, 1, 3, 3] and shapes["conv2d_1.w_0"] == [8, 1, 3, 3]
    assert shapes["conv2d_2.w_0"] == [8, 8, 1, 1] and shapes["conv2d_3.w_0"] == [16, 8, 3, 3]
    assert shapes["linear_0.w_0"] == [64, 32] and shapes["linear_1.w_0"] == [32, 10]
    assert shapes["batch_norm2d_3.w_0"] == [16] and shapes["linear_0.b_0"] == [32]
    dw = next(op for op in p.ops() if op.type == "depthwise_conv2d")
    assert dw.attr("groups") == 8
    assert list(p.var("flatten_0.tmp_0").shape) == [-1, 64]
    notes = " ".join(ctx.notes)
    assert "skipped linear_1.w_0 (matmul_v2, 10 channels): cannot prune: reaches the model " \
           "output" in notes
    assert "57512 bytes of weights, 0.235 MFLOPs -> 15720 bytes of weights, 0.068 MFLOPs" in notes


def masked_copy(program, edits):
    """The unpruned model with the consumers' input slices of removed channels zeroed."""
    masked = program.clone()
    for name, axis, idx in edits["masked"]:
        a = np.array(masked.params[name].array)
        np.moveaxis(a, axis, 0)[idx] = 0
        masked.set_param(name, a)
    return masked


@pytest.mark.parametrize("model, prunable", [
    ("resnet18", 12), ("mobilenet_v2", 25), ("mobilenet_v3_small", 27), ("densenet121", 120),
    ("shufflenet_v2_x0_25", 21),
])
def test_pruned_equals_masked_on_corpus_models(corpus, model, prunable):
    from actc.dsl.evaluate import Evaluator
    from actc.dsl.primitives import channel_prune_plan
    from actc.dsl.values import Selector
    from actc.dsl.parser import parse_expr
    from actc.runtime.executor import Runner

    program, files = load_model(corpus[model])
    assert sum(1 for g in channel_groups(program) if not g.problem) == prunable
    sel = Selector(parse_expr("op.type in {conv2d, matmul_v2}"), {}, "", "")
    edits = channel_prune_plan(Evaluator(program), sel, 0.25, "l1_norm", 1, False)
    masked = masked_copy(program, edits)
    ctx = prune(program, files, "recipe m() { prune_channels(ops: op.type in {conv2d, "
                                "matmul_v2}, ratio: 0.25) }")
    name = program.feed_names()[0]
    shape = [2] + [d for d in program.var(name).shape[1:]]
    x = np.random.RandomState(0).rand(*shape).astype(np.float32)
    (want,) = Runner(masked).run({name: x})
    (got,) = Runner(ctx.program).run({name: x})
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4 * float(np.abs(want).max()))
    before = sum(t.array.size for t in masked.params.values())
    after = sum(t.array.size for t in ctx.program.params.values())
    assert after < 0.8 * before


@pytest.mark.parametrize("ratio, needle", [
    ('{"linear_1.w_0": 0.5}', "cannot prune 'linear_1.w_0': reaches the model output"),
    ('{"conv2d_9.w_0": 0.5}', "'conv2d_9.w_0' is not the weight of a conv or linear layer"),
    ("[0.5, 0.25]", "'ratio' expects float or mapping, got list"),
    ("1.5", "ratio must be in [0, 1)"),
])
def test_bad_pruning_requests(example_dir, ratio, needle):
    program, files = load_model(example_dir)
    with pytest.raises(ActcError) as e:
        prune(program, files, f"recipe m() {{ prune_channels(ops: op.type in {{conv2d, "
                              f"matmul_v2}}, ratio: {ratio}) }}")
    assert needle in str(e.value), str(e.value)


def test_round_to_and_criteria(example_dir):
    from actc.prune.channels import prune_count

    assert prune_count(32, 0.3, 8) == 8 and prune_count(32, 0.3, 1) == 10
    assert prune_count(16, 0.99, 1) == 15 and prune_count(6, 0.5, 8) == 0
    for criterion in ("bn_scale", "geometry_median"):
        program, files = load_model(example_dir)
        ctx = prune(program, files, f"recipe m() {{ prune_channels(ratio: 0.25, "
                                    f"criterion: {criterion}, round_to: 4) }}")
        assert list(np.asarray(ctx.program.params["conv2d_3.w_0"].array).shape) == [24, 12, 3, 3]


def test_dump_lists_the_prune_groups(capsys):
    from actc.cli.main import main

    assert main(["dump", "example", "--prune-groups"]) == 0
    out = capsys.readouterr().out
    assert "conv2d_0.w_0 (conv2d, 16 channels): prunes conv2d_0.w_0, conv2d_2.w_0, " \
           "conv2d_1.w_0; inputs of conv2d_2.w_0, conv2d_3.w_0" in out
    assert "linear_1.w_0 (matmul_v2, 10 channels): not prunable: reaches the model output" in out
    assert out.rstrip().endswith("total: 4 groups, 3 prunable")


@pytest.mark.parametrize("how, floor", [(("--recipe", "prune_channels"), 97.5),
                                        (("--config", "act_channel_prune"), 96.5)])
def test_prune_and_fine_tune_on_the_example(tmp_path, capsys, example_dir, how, floor):
    pytest.importorskip("paddle")
    import re

    from actc.cli.main import main
    from actc.dsl.resources import data_dir

    arg = how[1] if how[0] == "--recipe" else str(data_dir("actc.configs") / f"{how[1]}.yaml")
    out = tmp_path / "pruned"
    assert main(["compile", "example", how[0], arg, "-o", str(out)]) == 0
    cap = capsys.readouterr()
    acc = float(re.search(r"compressed (\d+\.\d+)%", cap.out).group(1))
    assert acc >= floor  # fp32 98.61; measured 98.33 (50% of every group) and 97.50 (25%)
    size = lambda p: sum(t.array.size for t in p.params.values())  # noqa: E731
    assert size(load_model(out)[0]) < 0.75 * size(load_model(example_dir)[0])


def test_split_and_concat_groups_on_a_model_paddle_exports(tmp_path):
    """conv -> split -> two convs -> concat -> conv: offsets map channels both ways."""
    pytest.importorskip("paddle")
    export_net(tmp_path / "net", """
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2D(3, 12, 3, padding=1)
        self.a = nn.Conv2D(4, 6, 3, padding=1)
        self.b = nn.Conv2D(8, 10, 1)
        self.head = nn.Conv2D(16, 5, 1)
    def forward(self, x):
        y = paddle.nn.functional.relu(self.stem(x))
        p, q = paddle.split(y, [4, 8], axis=1)
        z = paddle.concat([self.a(p), self.b(q)], axis=1)
        return self.head(paddle.nn.functional.relu(z))
    """)
    from actc.dsl.evaluate import Evaluator
    from actc.dsl.parser import parse_expr
    from actc.dsl.primitives import channel_prune_plan
    from actc.dsl.values import Selector
    from actc.runtime.executor import Runner

    program, files = load_model(tmp_path / "net")
    groups = {g.root_param: g for g in channel_groups(program)}
    stem = next(g for name, g in groups.items() if g.size == 12)
    assert stem.problem is None and len(stem.params("in")) == 2  # both convs after the split
    sel = Selector(parse_expr("op.type == conv2d"), {}, "", "")
    edits = channel_prune_plan(Evaluator(program), sel, 0.5, "l1_norm", 1, False)
    masked = masked_copy(program, edits)
    ctx = prune(program, files, "recipe m() { prune_channels(ops: op.type == conv2d, "
                                "ratio: 0.5) }")
    split = next(op for op in ctx.program.ops() if op.type == "split")
    assert sum(split.attr("sections")) == 6
    x = np.random.RandomState(0).rand(2, 3, 8, 8).astype(np.float32)
    (want,) = Runner(masked).run({"x": x})
    (got,) = Runner(ctx.program).run({"x": x})
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_a_named_weight_matching_nothing_is_an_error(example_dir):
    """ACT prune_params_name lowers to op.input in [...]: every name must be a weight the step
    prunes, even when other names match (ACT ignores the rest silently)."""
    program, files = load_model(example_dir)
    with pytest.raises(ActcError, match=r"prune_channels: 'conv2d_0.w_1' .* is not in the "
                                        r"model \(did you mean 'conv2d_0.w_0'\?\)"):
        prune(program, files, 'recipe m() { prune_channels(ops: op.input in ["conv2d_0.w_0", '
                              '"conv2d_0.w_1"], ratio: 0.5) }')
    program, files = load_model(example_dir)
    with pytest.raises(ActcError, match=r"asp_prune: 'linear_0.w_1' .* \(did you mean "
                                        r"'linear_0.w_0'\?\)"):
        prune(program, files, 'recipe m() { asp_prune(ops: op.input in ["conv2d_3.w_0", '
                              '"linear_0.w_1"]) }')
    program, files = load_model(example_dir)
    with pytest.raises(ActcError,
                       match="'batch_norm2d_0.w_0' .* is a weight, but not one this step"):
        prune(program, files, 'recipe m() { sparsify(ops: op.input in ["conv2d_3.w_0", '
                              '"batch_norm2d_0.w_0"], ratio: 0.5) }')
    # a group that cannot be pruned, named by the user, is an error (not a skipped note)
    program, files = load_model(example_dir)
    with pytest.raises(ActcError, match="cannot prune 'linear_1.w_0': reaches the model output"):
        prune(program, files, 'recipe m() { prune_channels(ops: op.input in ["linear_0.w_0", '
                              '"linear_1.w_0"], ratio: 0.5) }')
    # names that are all prunable (a depthwise conv's weight goes with its group) still work
    program, files = load_model(example_dir)
    ctx = prune(program, files, 'recipe m() { prune_channels(ops: op.input in ["conv2d_0.w_0", '
                                '"conv2d_1.w_0"], ratio: 0.5) }')
    assert any("16 -> 8 channels" in n for n in ctx.notes)


def test_act_prune_params_name_typo_is_an_error(tmp_path, capsys):
    pytest.importorskip("paddle")
    from actc.cli.main import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text("ChannelPrune:\n  pruned_ratio: 0.5\n  prune_params_name: [conv2d_0.w_0, "
                   "conv2d_3.w_O]\n  criterion: l1_norm\n")
    code = main(["compile", "example", "--config", str(cfg), "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "'conv2d_3.w_O'" in err and "did you mean 'conv2d_3.w_0'" in err, err


def test_channel_shuffle_groups_are_pruned(corpus, tmp_path):
    """ShuffleNetV2's channel shuffle (reshape2 [N, 2, C/2, H, W], transpose2, reshape2
    back): channel j of both shuffled halves goes together, so every branch conv of a stage
    joins one group. Pruned at 0.5 it equals the masked model in Paddle and in Paddle
    Inference, and only the model output is left unprunable (was 20 of 38 groups)."""
    from actc.dsl.evaluate import Evaluator
    from actc.dsl.parser import parse_expr
    from actc.dsl.primitives import channel_prune_plan
    from actc.dsl.values import Selector
    from actc.io.model import save_model
    from actc.runtime.executor import Runner
    from actc.runtime.paddle_env import import_paddle

    program, files = load_model(corpus["shufflenet_v2_x0_25"])
    groups = channel_groups(program)
    assert [g.root_param for g in groups if g.problem] == ["linear_0.w_0"]
    shuffled = [g for g in groups if any(m.name.startswith("reshape2_") for m in g.members)]
    assert len(shuffled) == 3  # one per stage
    stage1 = next(g for g in shuffled if g.root_param == "conv2d_2.w_0")
    assert [m.name for m in stage1.params("out")][:5] == [
        "conv2d_2.w_0", "conv2d_5.w_0", "conv2d_8.w_0", "conv2d_11.w_0", "conv2d_14.w_0"]
    names = [g.root_param for g in shuffled]
    src = (f"recipe m() {{ prune_channels(ops: op.input in {json_list(names)}, "
           "ratio: 0.5) }")
    sel = Selector(parse_expr(f"op.input in {json_list(names)}"), {}, "", "")
    edits = channel_prune_plan(Evaluator(program), sel, 0.5, "l1_norm", 1, False)
    masked = masked_copy(program, edits)
    ctx = prune(program, files, src)
    p = ctx.program
    # stage 1: 12 -> 7 root channels (the 6th would over-prune a conv the shuffle ties in)
    assert any(n.startswith("prune_channels: conv2d_2.w_0, conv2d_5.w_0") and
               "12 -> 7 channels (5 of the 6 asked" in n for n in ctx.notes)
    width = p.var("concat_0.tmp_0").shape[1]
    assert width == 14  # both halves lose the same channels j
    r1 = next(op for op in p.ops("reshape2") if op.output("Out")[0] == "reshape2_0.tmp_0")
    assert list(r1.attr("shape")) == [-1, 2, 7, 28, 28]
    assert np.asarray(p.params["conv2d_42.w_0"].array).shape[0] == 24  # stage 3: 48 -> 24
    x = np.random.RandomState(0).rand(2, 3, 224, 224).astype(np.float32)
    (want,) = Runner(masked).run({"x": x} if "x" in program.feed_names() else
                                 {program.feed_names()[0]: x})
    feed = {p.feed_names()[0]: x}
    (got,) = Runner(p).run(feed)
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4 * float(np.abs(want).max()))
    out = tmp_path / "pruned"
    save_model(p, out)
    paddle = import_paddle()
    config = paddle.inference.Config(str(out / "model.pdmodel"), str(out / "model.pdiparams"))
    config.disable_glog_info()
    predictor = paddle.inference.create_predictor(config)
    h = predictor.get_input_handle(p.feed_names()[0])
    h.reshape(x.shape)
    h.copy_from_cpu(x)
    predictor.run()
    inferred = predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()
    np.testing.assert_allclose(inferred, want, rtol=1e-3, atol=1e-4 * float(np.abs(want).max()))


def export_net(out, layer_body: str, shape=(3, 8, 8)) -> None:
    """Export `class Net(nn.Layer)` with this body (methods at 4 spaces) with Paddle's
    jit.save in the legacy format, in a subprocess (dy2static reads the source: a file)."""
    import os
    import subprocess
    import sys
    import textwrap

    body = textwrap.indent(textwrap.dedent(layer_body).strip("\n"), "    ")
    script = (f"import os\nos.environ['FLAGS_enable_pir_api'] = '0'\n"
              f"import paddle, paddle.nn as nn\npaddle.seed(0)\nclass Net(nn.Layer):\n"
              f"{body}\nnet = Net()\nnet.eval()\n"
              f"paddle.jit.save(net, r'{out / 'model'}', input_spec=[paddle.static.InputSpec("
              f"[None, {', '.join(map(str, shape))}], 'float32', 'x')])\n")
    path = out.parent / f"export_{out.name}.py"
    path.write_text(script)
    subprocess.run([sys.executable, str(path)], check=True, capture_output=True,
                   env=dict(os.environ, FLAGS_enable_pir_api="0"))


def json_list(names):
    import json
    return json.dumps(list(names))


def test_channel_shuffle_op(tmp_path):
    """paddle.nn.functional.channel_shuffle exports a channel_shuffle op: the two convs whose
    outputs it shuffles join one group and lose the same channels; pruned == masked."""
    pytest.importorskip("paddle")
    export_net(tmp_path / "net", """
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2D(3, 6, 3, padding=1)
        self.b = nn.Conv2D(3, 6, 1)
        self.head = nn.Conv2D(12, 5, 1)
    def forward(self, x):
        z = paddle.concat([self.a(x), self.b(x)], axis=1)
        z = paddle.nn.functional.channel_shuffle(paddle.nn.functional.relu(z), 2)
        return self.head(z)
    """)
    from actc.dsl.evaluate import Evaluator
    from actc.dsl.parser import parse_expr
    from actc.dsl.primitives import channel_prune_plan
    from actc.dsl.values import Selector
    from actc.runtime.executor import Runner

    program, files = load_model(tmp_path / "net")
    assert [op.type for op in program.ops("channel_shuffle")] == ["channel_shuffle"]
    (g,) = [g for g in channel_groups(program) if g.root_param == "conv2d_0.w_0"]
    assert g.problem is None and [m.name for m in g.params("out")] == ["conv2d_0.w_0",
                                                                        "conv2d_1.w_0"]
    sel = Selector(parse_expr("op.type == conv2d"), {}, "", "")
    edits = channel_prune_plan(Evaluator(program), sel, 0.5, "l1_norm", 1, False)
    masked = masked_copy(program, edits)
    ctx = prune(program, files, "recipe m() { prune_channels(ops: op.type == conv2d, "
                                "ratio: 0.5) }")
    shapes = {n: np.asarray(t.array).shape for n, t in ctx.program.params.items()}
    assert shapes["conv2d_0.w_0"][0] == shapes["conv2d_1.w_0"][0] == 3
    assert shapes["conv2d_2.w_0"][1] == 6
    x = np.random.RandomState(0).rand(2, 3, 8, 8).astype(np.float32)
    (want,) = Runner(masked).run({"x": x})
    (got,) = Runner(ctx.program).run({"x": x})
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
