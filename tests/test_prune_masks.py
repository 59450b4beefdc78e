"""Sparsity masks: exact ratios, the 2:4 pattern, folding into truly zero weights, the GMP
schedule, and masked weights staying masked while training (embedded example, real
programs; the numerics against numpy)."""
from __future__ import annotations

import numpy as np
import pytest

from actc.dsl.compiler import compile_source
from actc.dsl.pipeline import PipelineContext, run_pipeline
from actc.errors import ActcError
from actc.io.model import load_model
from actc.prune.masks import gmp_ratio, gmp_schedule, is_two_four, magnitude_masks, two_four_mask


def run(src: str, example_dir, **ctx_args):
    prog, files = load_model(example_dir)
    c = compile_source(src, "<test>", program=prog)
    ctx = PipelineContext(program=prog, source=files, original=prog.clone(), **ctx_args)
    return ctx, run_pipeline(c, ctx)


WEIGHTS = ["conv2d_0.w_0", "conv2d_1.w_0", "conv2d_2.w_0", "conv2d_3.w_0", "linear_0.w_0",
           "linear_1.w_0"]


def test_ratio_masks_are_exact():
    rng = np.random.RandomState(0)
    ws = [rng.randn(16, 16, 1, 1), rng.randn(64, 10), rng.randn(7, 3)]
    for m, w in zip(magnitude_masks(ws, "ratio", 0.75, 0, True), ws):
        assert int((m == 0).sum()) == round(0.75 * w.size)
        assert np.abs(w[m == 0]).max() <= np.abs(w[m == 1]).min()  # the smallest went
    masks = magnitude_masks(ws, "ratio", 0.5, 0, False)
    assert sum(int((m == 0).sum()) for m in masks) == round(0.5 * sum(w.size for w in ws))
    m = magnitude_masks([np.array([0.5, -0.001, 0.02, -0.3])], "threshold", 0, 0.01, False)[0]
    assert m.tolist() == [1, 0, 1, 1]


def test_two_four_mask_keeps_the_two_largest_of_every_four():
    rng = np.random.RandomState(1)
    w = rng.randn(8, 12, 3, 3).astype(np.float32)  # conv: K = input channels, axis 1
    m = two_four_mask(w, 1)
    assert is_two_four(w * m, 1) and not is_two_four(w, 1)
    groups = np.moveaxis(w, 1, -1).reshape(-1, 3, 4)
    mg = np.moveaxis(m, 1, -1).reshape(-1, 3, 4)
    kept = np.sort(np.abs(groups) * mg, axis=-1)[..., 2:]
    np.testing.assert_array_equal(kept, np.sort(np.abs(groups), axis=-1)[..., 2:])
    assert float(m.mean()) == 0.5


def test_gmp_schedule_is_cubic_with_act_defaults():
    sched = gmp_schedule({"stable_iterations": 10, "pruning_iterations": 100,
                          "tunning_iterations": 50, "pruning_steps": 4, "initial_ratio": 0.15},
                         total_iters=160)
    assert gmp_ratio(9, 0.75, sched) == 0.0
    assert gmp_ratio(10, 0.75, sched) == pytest.approx(0.15)
    assert gmp_ratio(10 + 25, 0.75, sched) == pytest.approx(0.15 + 0.6 * (1 - 0.75 ** 3))
    assert gmp_ratio(10 + 99, 0.75, sched) == pytest.approx(0.15 + 0.6 * (1 - 0.25 ** 3))
    assert gmp_ratio(110, 0.75, sched) == 0.75
    d = gmp_schedule({}, total_iters=4000)  # ACT: 0.45 * total each, 100 steps when long
    assert (d["pruning"], d["tunning"], d["steps"], d["initial"]) == (1800, 1800, 100, 0.15)
    assert gmp_schedule({}, total_iters=40)["pruning"] == 30


def test_sparsify_inserts_masks_and_fold_removes_them(example_dir):
    original = load_model(example_dir)[0]
    ctx, results = run("recipe m() { sparsify(ops: op.has_weight, ratio: 0.6, "
                       "local_sparsity: true) }", example_dir)
    p = ctx.program
    muls = [op for op in p.ops() if op.has_attr("actc_mask")]
    assert len(muls) == 6 and results[0].ops_added == 6
    for op in muls:  # consumers read W * M
        w, out = op.input("X")[0], op.output("Out")[0]
        assert [c.type for c, _, _ in p.consumers(w)] == ["elementwise_mul"]
        assert p.consumers(out)
    assert "masks zero conv2d_0.w_0 59.72%" in " ".join(ctx.notes)  # round(0.6 * 144) = 86
    c = compile_source("recipe m() { fold_masks() }", "<t>", program=p)
    run_pipeline(c, ctx)
    assert [op.type for op in p.ops()] == [op.type for op in original.ops()]
    for n in WEIGHTS:
        w = np.asarray(p.params[n].array)
        assert int((w == 0).sum()) == round(0.6 * w.size)
        nz = w != 0
        np.testing.assert_array_equal(w[nz], np.asarray(original.params[n].array)[nz])
    assert not any(n.endswith("@mask") for n in p.params)


def test_masked_training_keeps_the_zeros_and_gmp_reaches_the_target(example_dir, tmp_path):
    pytest.importorskip("paddle")
    src = """recipe m() {
        sparsify(ops: op.has_weight, ratio: 0.7, local_sparsity: false, strategy: gmp,
                 gmp: {stable_iterations: 4, pruning_iterations: 12, tunning_iterations: 8,
                       pruning_steps: 3, initial_ratio: 0.2})
        distill()
        task_loss()
        train(train_iter: 24, learning_rate: 0.01, optimizer: {type: Momentum, momentum: 0.9},
              weight_decay: 0.001, eval_iter: 8)
    }"""
    ctx, _ = run(src, example_dir, out_dir=str(tmp_path / "o"))
    notes = " ".join(ctx.notes)
    assert "GMP on 6 weights to 0.70 (overall): stable 4, pruning 12 in 3 steps from 0.20" in notes
    p = ctx.program
    masks = {op.input("X")[0]: np.asarray(p.params[op.input("Y")[0]].array)
             for op in p.ops() if op.has_attr("actc_mask")}
    total = sum(m.size for m in masks.values())
    assert sum(int((m == 0).sum()) for m in masks.values()) == round(0.7 * total)
    c = compile_source("recipe m() { fold_masks() }", "<t>", program=p)
    run_pipeline(c, ctx)
    zeros = sum(int((np.asarray(p.params[n].array) == 0).sum()) for n in WEIGHTS)
    assert zeros == round(0.7 * total)
    assert "weights now zero:" in " ".join(ctx.notes) and "overall 70.00%" in " ".join(ctx.notes)


def test_asp_prune_writes_the_2_4_pattern(example_dir, capsys, tmp_path):
    from actc.cli.main import main

    ctx, _ = run("recipe m() { asp_prune() fold_masks() }", example_dir)
    p = ctx.program
    notes = " ".join(ctx.notes)
    assert "skipped conv2d_0.w_0 (conv2d, input dimension 1 is not a multiple of 4)" in notes
    assert is_two_four(np.asarray(p.params["conv2d_3.w_0"].array), 1)
    assert is_two_four(np.asarray(p.params["linear_0.w_0"].array), 0)
    from actc.io.model import save_model
    save_model(p, tmp_path / "asp")
    assert main(["dump", str(tmp_path / "asp"), "--sparsity"]) == 0
    out = capsys.readouterr().out
    assert "conv2d_3.w_0  32x16x3x3  50.00%  yes" in out
    assert "conv2d_0.w_0  16x1x3x3    0.00%   no" in out
    assert "2:4 holds for 4 of them" in out


@pytest.mark.parametrize("src, needle", [
    ("sparsify(ops: op.type == relu)", "the selected ops have no weight of rank >= 2"),
    ("sparsify(mode: threshold, strategy: gmp)", "strategy gmp needs mode ratio"),
    ("sparsify(strategy: gmp, gmp: {pruning_iteration: 3})",
     "unknown gmp key 'pruning_iteration' (did you mean 'pruning_iterations'?)"),
    ("sparsify(ratio: 1.5)", "ratio"),
])
def test_bad_sparsify(example_dir, src, needle):
    with pytest.raises(ActcError) as e:
        run(f"recipe m() {{ {src} }}", example_dir)
    assert needle in str(e.value), str(e.value)


SPARSE_QAT = """
recipe main(keep: bool = true) {
    sparsify(ops: op.has_weight, ratio: 0.5, local_sparsity: true)
    fold_masks()
    quantize(ops: op.type in {conv2d, depthwise_conv2d, mul, matmul_v2}, format: fake)
    calibrate()
    task_loss()
    train(epochs: 1, sparse_model: keep)
    convert()
}
"""


@pytest.mark.parametrize("keep", [True, False])
def test_sparse_model_keeps_the_zeros_of_a_sparse_model(tmp_path, capsys, keep):
    """ACT TrainConfig.sparse_model: QAT of a 50%-sparse model stays exactly 50% sparse."""
    pytest.importorskip("paddle")
    from actc.cli.main import main
    from actc.io.model import load_model

    recipe = tmp_path / "r.actc"
    recipe.write_text(SPARSE_QAT)
    out = tmp_path / "out"
    assert main(["compile", "example", "--recipe", str(recipe), "-o", str(out), "--no-eval",
                 "--set", f"keep={'true' if keep else 'false'}"]) == 0
    err = capsys.readouterr().err
    program, _ = load_model(out)
    zeros = [float((np.asarray(program.params[n].array) == 0).mean())
             for n in program.persistable_names() if n.endswith(".w_0") and
             np.asarray(program.params[n].array).ndim >= 2]
    assert len(zeros) == 6
    if keep:
        assert "6 weights keep their zeros" in err
        assert all(z >= 0.5 for z in zeros), zeros
    else:
        assert not all(z >= 0.5 for z in zeros), zeros  # training refills them otherwise
