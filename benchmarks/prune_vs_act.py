"""Pruning + distillation, side by side: PaddleSlim 2.6 ACT (AutoCompression) vs actc, same model and data.

Three kinds of pruning, each trained with l2 distillation from the unpruned model (no labels):

    cp50 / cp25  ChannelPrune, pruned_ratio 0.5 / 0.25, criterion l1_norm, prune_params_name = every
                 conv2d weight with groups 1 (``--cp-params``: ``all`` (default), ``prunable`` = only the
                 group roots ``actc dump MODEL --prune-groups --format json`` lists as prunable, ``null``
                 = no prune_params_name: both tools then pick every conv2d with groups 1 themselves);
    unstr75      UnstructurePrune, GMP to ratio 0.75, prune_params_type conv1x1_only, local_sparsity true,
                 gmp_config scaled to the run: stable 0, pruning = tuning = 0.45 * iters, pruning_steps
                 ``--gmp-steps`` (10), initial_ratio 0.15;
    asp          ASPPrune (2:4), prune_params_name = every conv2d weight with groups 1;
    tp25 / tp50  TransformerPrune, pruned_ratio 0.25 / 0.5 (heads and FFN neurons of every
                 encoder layer), for the transformer models below.

Models (``--model``): ``digits`` (the embedded example), ``mbv2_digits`` (built on demand,
benchmarks/digits_models.py), ``tfm_encoder`` (tests/fixtures/tfm_encoder: 2-layer
nn.TransformerEncoder on a synthetic token-count task, feed ``tokens``, 1000 training / 400
test sequences, fp32 100 %) and ``tfm_digits`` (the same encoder on a real task, the digits
images read as sequences of 8 pixel rows, feed ``image`` [N, 8, 8], the mbv2_digits split;
built on demand into WORK/tfm_digits by ``tools/make_transformer_fixture.py --task digits``
with ``--pd26-python`` (default /tmp/pd26/bin/python: paddlepaddle 2.6.2 + scikit-learn, as
3.3.1 cannot export nn.TransformerEncoder)). The transformers' train.npz carries labels: ACT's
TransformerPrune needs them for its gradient ranking, so its eval_dataloader gets the training
split with labels (batches of --batch-size, in order); actc gets the same file as ``--data``.

Install (PaddleSlim is NOT an actc dependency; keep it in its own venv, as for qat_vs_act.py):

    python3 -m venv /work/bench-venv
    /work/bench-venv/bin/pip install paddlepaddle==3.3.1 "paddleslim==2.6.0" six requests \
        decorator tqdm pyyaml scikit-learn
    # actc runs from the repo's venv (.venv, `pip install -e ".[paddle,test]"`); this script calls
    # it as `<actc-python> -m actc compile MODEL --config X.yaml -o OUT --data TRAIN.npz
    # --eval-data TEST.npz` and never imports it.

Run (CPU, OMP_NUM_THREADS=1; a digits cell takes ~5-10 s, an mbv2_digits cell ~1-1.5 min on 2 cores;
the whole digits sweep ~4 min, the mbv2_digits sweep ~17 min). What benchmarks/results/prune_vs_act.md
was measured with:

    B=/work/bench-venv/bin/python; R=/tmp/actc_bench/prune_results; mkdir -p $R
    $B benchmarks/prune_vs_act.py --model digits --iters 600 \
        --tools act_raw act act_bn act_all actc --out-json $R/digits.json
    $B benchmarks/prune_vs_act.py --model digits --iters 600 --methods cp50 cp25 \
        --cp-exclude conv2d_3.w_0 --tools act act_bn actc --out-json $R/digits_cp_noflatten.json
    $B benchmarks/prune_vs_act.py --model mbv2_digits --iters 600 \
        --tools act_raw act act_bn act_all actc --out-json $R/mbv2.json   # builds the model if needed
    $B benchmarks/prune_vs_act.py --model mbv2_digits --iters 600 --seed 1 \
        --tools act_bn act_all actc --no-latency --out-json $R/mbv2_seed1.json      # a repeat
    $B benchmarks/prune_vs_act.py --model mbv2_digits --iters 600 --methods cp50 cp25 \
        --tools act_nodrop --out-json $R/mbv2_nodrop.json
    $B benchmarks/prune_vs_act.py --latency-only $R/mbv2.json     # re-time the kept models only
    $B benchmarks/prune_vs_act.py --model digits --methods asp --tools actc   # one cell
    # TransformerPrune (lr 1e-3: 5e-3 diverges on these transformers; ~15 s a cell):
    /tmp/pd26/bin/python tools/make_transformer_fixture.py --task digits --out /tmp/actc_bench/tfm_digits
    for m in tfm_digits tfm_encoder; do
      $B benchmarks/prune_vs_act.py --model $m --methods tp25 tp50 --iters 600 --lr 0.001 \
          --lat-rounds 15 --tools act_raw act act_mean act_tpdrop actc actc_grad --out-json $R/$m.json
      $B benchmarks/prune_vs_act.py --latency-only $R/$m.json --lat-rounds 30 --lat-runs 200 --lat-xshape
      $B benchmarks/prune_vs_act.py --model $m --methods tp25 tp50 --iters 600 --lr 0.001 --seed 1 \
          --tools act_mean actc actc_grad --no-latency --out-json $R/${m}_seed1.json
      $B benchmarks/prune_vs_act.py --model $m --methods tp25 tp50 --iters 600 --lr 0.001 --seed 1 \
          --tools act_tpdrop --no-latency --out-json $R/${m}_seed1_tpdrop.json
      $B benchmarks/prune_vs_act.py --model $m --methods tp25 tp50 --iters 1 --lr 1e-12 \
          --tools act_mean actc actc_grad --no-latency --out-json $R/${m}_noft.json  # no fine-tuning
      $B benchmarks/prune_vs_act.py --model $m --methods tp25 tp50 --iters 1 --lr 1e-12 \
          --tools act_tpdrop --no-latency --out-json $R/${m}_noft_tpdrop.json
    done

Measured results: benchmarks/results/prune_vs_act.md. Every run leaves its config.yaml, log and
written model in WORK/prune_runs/<tool>_<model>_<method>_*/ (WORK = --work, default /tmp/actc_bench).

What both tools get (shared helpers from qat_vs_act.py): the same float model, the same
unlabelled training images (digits: ``calib.npz``, 500 images; mbv2_digits: ``train.npz``, 1437),
one ACT YAML written by this script (``Global.batch_size`` (actc reads it; ACT ignores it and
gets batches of ``--batch-size`` from its dataloader), the prune section, ``Distillation`` {l2,
alpha 1, default node = output of the last weighted layer}, ``TrainConfig`` {train_iter, constant
lr, Momentum 0.9, weight decay, eval_iter = train_iter}). ACT gets no eval_callback and actc
evaluates only once, at the end, so both write their final weights.

ACT variants (``--tools``; each gets a private copy of the model):
    act_raw  the model as Paddle 3.x exports it;
    act      fixes 1+2 of qat_vs_act.py: rename the ``tmp_N`` vars that collide with the names of
             ACT's loss ops, give ``dropout`` its ``Mask`` output (and reshape2/squeeze2 ``XShape``);
    act_bn   + fix 3: batch_norm ``use_global_stats=False`` (ACT only flips is_test, so otherwise
             BN trains on frozen running statistics);
    act_all  + fixes 5 and 6 (skipped for ChannelPrune when act_bn runs, where it is act_bn):
             5 (UnstructurePrune): call the pruner's ``update_params()`` after training. ACT 2.6 ends ``_start_train``
             with ``if 'unstructure' in self._strategy ...: self._pruner.update_params()``, but
             ``self._strategy`` is a list (``['unstructure_prune_dis']``), so the test is False;
             without an eval callback nothing else applies the masks, and the optimizer step that
             follows the in-program ``elementwise_mul(param, mask)`` leaves the masked weights
             non-zero: ACT's GMP writes a dense model (0 % zeros);
             6 (ASPPrune): keep ACT's exclusions. ACT calls ``asp.set_excluded_layers`` on the
             Program build_prune_program gets, Paddle keys exclusions by Program object, and the
             decorated optimizer and ``prune_model`` run on another Program with an empty list,
             so ACT 2:4-prunes every conv2d/linear weight Paddle's ASP recognises by name,
             prune_params_name or not (on digits: linear_0/linear_1 too).
    act_nodrop  act_bn + fix 7 (ChannelPrune only): remove the (upscale_in_train, so identity
             at inference) dropout ops from ACT's copy. ACT's channel pruner skips every var
             without consumers ("Leaves"), and fix 2's dropout Mask is one, so the group of the
             conv in front of pool -> flatten -> dropout (mbv2_digits: conv2d_24.w_0) is dropped
             with only a warning; without the op ACT prunes it (and trains without dropout).
    act_mean  act_bn + fix 8 (the transformers): also rename the non-persistable ``mean_N.tmp_M``
             vars. ACT's l2 distillation loss is ``paddle.mean(square_error_cost(...))``; the
             parsed program's name generator restarts, so its output is ``mean_0.tmp_0``, the
             name of the model's own mean pooling: two ops write it, the classifier's
             matmul_v2_grad reads a scalar as its X, and ACT's first training iteration dies
             in MatmulGradKernel with SIGSEGV (``act`` = fixes 1+2 only: "worker exited -11").
    act_tpdrop  act_mean + fix 9 (TransformerPrune): rank heads and neurons with dropout in
             inference mode. TransformerPruner._program_add_mask builds its gradient program
             with recover_inference_program, which sets is_test=False on every op, so ACT's
             head-mask and FFN gradients go through random dropout (placed between softmax and
             the head mask); training is unchanged.
    (qat_vs_act.py's fix 4, qmin/qmax on quantize ops, has nothing to act on without QuantAware.)
actc always gets the model as exported. ``actc_grad`` (TransformerPrune only): actc with
``prune_transformer(..., criterion: gradient)`` (ACT's ranking, |d cross-entropy / d mask|
over 32 batches of the --data labels) instead of its default ``auto`` = distill_loss; the YAML
has no key for it, so the script lowers the config and edits that one step. ``actc_recipe`` (ASPPrune only; run automatically when
``actc`` fails that way) works around an actc lowering bug, fixed in actc 957d5f5: a one-argument
step whose one-line form exceeds 100 characters was wrapped without its closing parenthesis, so ``actc compile --config``
of an ASPPrune with many prune_params_name entries stopped with "syntax error: unexpected '('";
it lowers the config with one name, puts the full list back and runs ``actc compile --recipe``.

ChannelPrune on the embedded digits model: ACT's flatten_contiguous_range worker prunes the rows
of the linear layer after the flatten by the channel count, not channels x H x W, so pruning
conv2d_3.w_0 (which feeds the flatten) crashes ACT's first iteration in matmul_v2's shape check;
``--cp-exclude conv2d_3.w_0`` gives both tools the list without it.

What is measured for every written model (``--out-json`` keeps everything):
    top-1        ``qat_vs_act.evaluate``: ``paddle.static.load_inference_model`` in a fresh scope,
                 360 held-out digits;
    params       bytes of the written ``.pdiparams`` and the number of weight values in it;
    sparsity     zero fraction over every conv/linear weight (Filter of conv2d/depthwise_conv2d,
                 persistable Y of matmul_v2/mul), and over the weights the method targets
                 (1x1 convs for unstr75, the named conv weights with input channels % 4 == 0 for
                 asp); for asp also the share of those that satisfy 2:4 along the input dimension;
    latency      Paddle Inference on CPU: ``paddle.inference.Config`` + ``enable_mkldnn()``,
                 ``set_cpu_math_library_num_threads(1)``, OMP_NUM_THREADS=1; batch 1 and 8, median
                 of ``--lat-runs`` (50) runs after ``--lat-warmup`` (20), copy-in + run + copy-out.
                 All models of one invocation (and the fp32 model) are timed in one fresh process,
                 interleaved over ``--lat-rounds`` (9) rounds in a new random order each round; the
                 reported number is the smallest per-round median (the least disturbed round on a
                 shared machine; the median over rounds is kept in the JSON too), "x fp32" = fp32 latency / model latency. The same predictor's
                 top-1 on the test split is recorded as a check (``acc_infer``).
"""
from __future__ import annotations

import os

os.environ["FLAGS_enable_pir_api"] = "0"     # legacy .pdmodel programs; before paddle is imported
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("GLOG_minloglevel", "2")

import argparse  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import qat_vs_act as Q  # noqa: E402  (shared: models, evaluate, ACT model fixes, ACT worker)

METHODS = ["cp50", "cp25", "unstr75", "asp", "tp25", "tp50"]
TP_METHODS = ("tp25", "tp50")
ACT_VARIANTS = {
    "act_raw": {"fixes": False, "bn": False},
    "act": {"fixes": True, "bn": False},
    "act_bn": {"fixes": True, "bn": True},
    "act_all": {"fixes": True, "bn": True, "gmp_export": True, "asp_exclude": True},
    "act_nodrop": {"fixes": True, "bn": True, "no_dropout": True},
    "act_mean": {"fixes": True, "bn": True, "rename": "tmp_mean"},
    "act_tpdrop": {"fixes": True, "bn": True, "rename": "tmp_mean", "tp_eval_dropout": True},
}
TOOLS = list(ACT_VARIANTS) + ["actc", "actc_recipe", "actc_grad"]
MODELS = ["digits", "mbv2_digits", "tfm_encoder", "tfm_digits"]
DEFAULT_PD26_PYTHON = Path("/tmp/pd26/bin/python")
CONV_TYPES = ("conv2d", "depthwise_conv2d", "conv2d_transpose")
LINEAR_TYPES = ("matmul_v2", "mul", "matmul")
DEFAULT_WORK = Q.DEFAULT_WORK


# ------------------------------------------------------------------ models
def get_case(name: str, work: Path, pd26_python: str | None = None) -> dict:
    """qat_vs_act's cases plus the two transformers (feed ``tokens`` / ``image``, labels in both splits)."""
    if name == "tfm_encoder":
        d = ROOT / "tests" / "fixtures" / "tfm_encoder"
        return {"name": name, "model": d, "train": d / "train.npz", "test": d / "test.npz",
                "feed": "tokens"}
    if name == "tfm_digits":
        d = Path(work) / "tfm_digits"
        if not (d / "model.pdmodel").exists():
            # Paddle 3.3.1 cannot export nn.TransformerEncoder in the legacy format; 2.6.2 can
            py = Path(pd26_python or DEFAULT_PD26_PYTHON)
            if not py.exists():
                raise SystemExit(f"{d} is missing and {py} (a paddlepaddle 2.6.2 + scikit-learn venv) "
                                 "is not there to build it; see tools/make_transformer_fixture.py")
            subprocess.run([str(py), str(ROOT / "tools" / "make_transformer_fixture.py"), "--task",
                            "digits", "--out", str(d)], check=True, env=Q._child_env(), cwd=str(ROOT))
        return {"name": name, "model": d, "train": d / "train.npz", "test": d / "test.npz",
                "feed": "image"}
    return Q.get_case(name, work)


# ------------------------------------------------------------------ program inspection (protobuf)
def _load_desc(model_dir: Path):
    pb = Q._pb()
    model_file, _ = Q._program_file(Path(model_dir))
    prog = pb.ProgramDesc()
    prog.ParseFromString((Path(model_dir) / model_file).read_bytes())
    return prog


def _attr_int(op, name, default=None):
    for a in op.attrs:
        if a.name == name:
            return a.i
    return default


def weight_ops(model_dir: Path) -> list[dict]:
    """conv/linear ops with a persistable weight: {'type', 'weight', 'groups'} in program order."""
    prog = _load_desc(model_dir)
    persist = {v.name for b in prog.blocks for v in b.vars if v.persistable}
    out = []
    for op in prog.blocks[0].ops:
        ins = {s.parameter: list(s.arguments) for s in op.inputs}
        if op.type in CONV_TYPES and ins.get("Filter"):
            w = ins["Filter"][0]
        elif op.type in LINEAR_TYPES and ins.get("Y") and ins["Y"][0] in persist:
            w = ins["Y"][0]
        else:
            continue
        out.append({"type": op.type, "weight": w, "groups": _attr_int(op, "groups", 1)})
    return out


def conv_groups1_weights(model_dir: Path) -> list[str]:
    return [o["weight"] for o in weight_ops(model_dir) if o["type"] == "conv2d" and o["groups"] == 1]


def load_params(model_dir: Path) -> dict[str, np.ndarray]:
    import paddle

    paddle.enable_static()
    model_file, params_file = Q._program_file(Path(model_dir))
    exe = paddle.static.Executor(paddle.CPUPlace())
    scope = paddle.static.Scope()
    with paddle.static.scope_guard(scope):
        prog, _, _ = paddle.static.load_inference_model(
            str(model_dir), exe, model_filename=model_file, params_filename=params_file)
        names = [v.name for v in prog.list_vars() if v.persistable and v.name not in ("feed", "fetch")]
        out = {}
        for n in names:
            var = scope.find_var(n)
            if var is None:
                continue
            try:
                out[n] = np.array(var.get_tensor())
            except Exception:  # noqa: BLE001 - non-tensor persistables
                pass
    return out


def holds_2to4(w: np.ndarray) -> bool:
    """2:4 along the input dimension (conv [out, in, kh, kw]: in; linear [in, out]: in)."""
    if w.ndim == 4:
        m = np.transpose(w, (0, 2, 3, 1)).reshape(-1, w.shape[1])
    elif w.ndim == 2:
        m = w.T
    else:
        return False
    if m.shape[1] % 4:
        return False
    g = (m.reshape(m.shape[0], -1, 4) != 0).sum(-1)
    return bool((g <= 2).all())


def model_stats(model_dir: Path, method: str | None, targets: list[str]) -> dict:
    """Params bytes, weight counts and sparsity of a written model."""
    _, params_file = Q._program_file(Path(model_dir))
    params = load_params(model_dir)
    wops = weight_ops(model_dir)
    wnames = list(dict.fromkeys(o["weight"] for o in wops))
    tot = sum(params[n].size for n in wnames if n in params)
    zer = sum(int((params[n] == 0).sum()) for n in wnames if n in params)
    res = {"params_bytes": (Path(model_dir) / params_file).stat().st_size,
           "n_param_values": int(sum(a.size for a in params.values())),
           "n_persistables": len(params),
           "weight_values": int(tot), "weight_zeros": int(zer),
           "sparsity": zer / tot if tot else 0.0,
           "per_weight": {n: {"shape": list(params[n].shape),
                              "zero": float((params[n] == 0).mean())} for n in wnames if n in params}}
    # what the method targets
    if method == "unstr75":
        tgt = [n for n in wnames if n in params and params[n].ndim == 4
               and params[n].shape[2:] == (1, 1)
               and next(o for o in wops if o["weight"] == n)["type"] != "depthwise_conv2d"]
    elif method == "asp":
        tgt = [n for n in targets if n in params and params[n].ndim == 4 and params[n].shape[1] % 4 == 0]
        res["asp_2to4_holds"] = sum(holds_2to4(params[n]) for n in tgt)
        res["asp_targets"] = len(tgt)
    else:
        tgt = []
    if tgt:
        t_tot = sum(params[n].size for n in tgt)
        res["target_sparsity"] = sum(int((params[n] == 0).sum()) for n in tgt) / t_tot
        res["target_values"] = int(t_tot)
    extra = sorted(n for n in params if n not in wnames and "mask" in n.lower())
    if extra:
        res["mask_persistables"] = extra[:10]
    return res


def remove_dropout(model_dir: Path) -> int:
    """Fix 7 (act_nodrop): drop upscale_in_train dropout ops (identity at inference) from ACT's copy.

    Fix 2 gives dropout a Mask output so ACT's training program builds, but ACT's channel pruner
    treats every var without consumers ("Leaves") as a skip var; the Mask is one, so the group of
    the conv feeding pool -> flatten -> dropout (mbv2_digits: conv2d_24.w_0) is dropped with only
    "WARNING: ('Variable dropout_0.tmp_0.mask was skipped.',)". Without the op ACT can prune it;
    ACT then also trains without dropout (actc trains with it).
    """
    prog = _load_desc(model_dir)
    model_file, _ = Q._program_file(Path(model_dir))
    n = 0
    for block in prog.blocks:
        keep = []
        for op in block.ops:
            impl = next((a.s for a in op.attrs if a.name == "dropout_implementation"), "")
            if op.type == "dropout" and impl == "upscale_in_train":
                x = next(s.arguments[0] for s in op.inputs if s.parameter == "X")
                out = next(s.arguments[0] for s in op.outputs if s.parameter == "Out")
                for other in block.ops:
                    for slot in other.inputs:
                        for i, a in enumerate(slot.arguments):
                            if a == out:
                                slot.arguments[i] = x
                n += 1
                continue
            keep.append(op)
        if n:
            ops = [type(keep[0])() for _ in keep] if keep else []
            for dst, src in zip(ops, keep):
                dst.CopyFrom(src)
            del block.ops[:]
            block.ops.extend(ops)
    (Path(model_dir) / model_file).write_bytes(prog.SerializeToString())
    return n


def add_transpose_xshape(src: Path, dst: Path) -> int:
    """Copy of a model whose transpose2 ops get their XShape output back (--lat-xshape).

    Inference export drops it; ACT's recover_inference_program restores it for training and
    its written models keep it. Paddle Inference's matmul_transpose_reshape_onednn_fuse_pass needs
    it: without it the attention's transpose2 + reshape2 after the context matmul stay separate
    ops (tfm_encoder: 35 ops after IR optimisation instead of 31).
    """
    pb = Q._pb()
    dst.mkdir(parents=True, exist_ok=True)
    model_file, params_file = Q._program_file(Path(src))
    shutil.copyfile(Path(src) / params_file, dst / "model.pdiparams")
    prog = pb.ProgramDesc()
    prog.ParseFromString((Path(src) / model_file).read_bytes())
    n = 0
    for block in prog.blocks:
        for op in block.ops:
            if op.type == "transpose2" and not any(
                    sl.parameter == "XShape" and sl.arguments for sl in op.outputs):
                x = next(sl.arguments[0] for sl in op.inputs if sl.parameter == "X")
                Q._add_output_var(block, op, "XShape", x, "xshape", None, pb, (0,))
                n += 1
    (dst / "model.pdmodel").write_bytes(prog.SerializeToString())
    return n


# ------------------------------------------------------------------ the shared config
def make_config(method: str, args, iters: int, cp_params: list[str] | None,
                asp_params: list[str]) -> dict:
    cfg: dict = {"Global": {"batch_size": args.batch_size}}    # actc reads it; ACT ignores it
    if method in ("cp50", "cp25"):
        cfg["ChannelPrune"] = {"pruned_ratio": 0.5 if method == "cp50" else 0.25,
                               "prune_params_name": cp_params, "criterion": "l1_norm"}
    elif method == "unstr75":
        p = max(1, int(round(0.45 * iters)))
        steps = args.gmp_steps
        while steps > 1 and p / steps <= 10:    # ACT asserts pruning_iterations / steps > 10
            steps -= 1
        cfg["UnstructurePrune"] = {
            "prune_strategy": "gmp", "prune_mode": "ratio", "ratio": 0.75, "threshold": 0.001,
            "gmp_config": {"stable_iterations": 0, "pruning_iterations": p,
                           "tunning_iterations": p, "resume_iteration": -1,
                           "pruning_steps": steps, "initial_ratio": 0.15},
            "prune_params_type": "conv1x1_only", "local_sparsity": True}
    elif method == "asp":
        cfg["ASPPrune"] = {"prune_params_name": list(asp_params)}
    elif method in TP_METHODS:
        cfg["TransformerPrune"] = {"pruned_ratio": 0.25 if method == "tp25" else 0.5}
    else:
        raise SystemExit(f"unknown method {method!r}")
    cfg["Distillation"] = {"loss": "l2", "alpha": 1.0}
    opt = {"type": args.optimizer}
    if args.optimizer == "Momentum":
        opt["momentum"] = 0.9
    cfg["TrainConfig"] = {"train_iter": iters, "learning_rate": float(args.lr),
                          "optimizer_builder": {"optimizer": opt,
                                                "weight_decay": args.weight_decay},
                          "eval_iter": iters, "logging_iter": max(1, args.logging_iter)}
    return cfg


def prunable_roots(args, model_dir: Path) -> list[str]:
    """The prunable group roots, as actc lists them (actc dump --prune-groups --format json)."""
    proc = subprocess.run([args.actc_python, "-m", "actc", "dump", str(model_dir), "--prune-groups",
                           "--format", "json"], capture_output=True, text=True, env=Q._child_env(),
                          cwd=str(ROOT), timeout=300)
    groups = json.loads(proc.stdout)["prune_groups"]
    ops = {o["weight"]: o for o in weight_ops(model_dir)}
    return [g["root"] for g in groups if not g.get("problem") and ops.get(g["root"], {}).get("type")
            == "conv2d" and ops[g["root"]]["groups"] == 1]


# ------------------------------------------------------------------ runners
def run_act(case, args, method, run_dir: Path, cfg_path: Path, tool: str) -> dict:
    v = ACT_VARIANTS[tool]
    model_copy = run_dir / "act_model"
    fixes = Q.fix_model_for_act(case["model"], model_copy, enabled=v["fixes"],
                                rename=v.get("rename", "tmp"), bn_batch_stats=v["bn"])
    if v.get("no_dropout"):
        n = remove_dropout(model_copy)
        if n:
            fixes.append(f"removed {n} dropout op(s) (upscale_in_train: identity at inference)")
    out = run_dir / "act_out"
    spec = {"model_dir": str(model_copy), "save_dir": str(out), "config": str(cfg_path),
            "train": str(case["train"]), "feed": case["feed"], "batch_size": args.batch_size,
            "seed": args.seed, "result": str(run_dir / "act_result.json"), "qmax_train": False,
            "gmp_export": bool(v.get("gmp_export")), "asp_exclude": bool(v.get("asp_exclude")),
            # TransformerPrune ranks heads/neurons by |d cross-entropy / d mask| on ACT's
            # eval_dataloader, which must carry labels: the training split with its labels
            "eval_labels": method in TP_METHODS,
            "tp_eval_dropout": bool(v.get("tp_eval_dropout")) and method in TP_METHODS}
    if spec["tp_eval_dropout"]:
        fixes.append("dropout in inference mode while TransformerPrune ranks heads/neurons (ACT's "
                     "recover_inference_program sets is_test=False on every op, so the mask "
                     "gradients are taken through random dropout)")
    if v.get("asp_exclude") and method == "asp":
        fixes.append("ASP exclusions kept for every program (ACT sets them on a Program object "
                     "the optimizer and prune_model never see)")
    if v.get("gmp_export") and method == "unstr75":
        fixes.append("pruner.update_params() after training (ACT's own call is skipped: "
                     "'unstructure' in self._strategy tests a list)")
    spec_file = run_dir / "act_spec.json"
    spec_file.write_text(json.dumps(spec))
    log = run_dir / "act.log"
    t0 = time.perf_counter()
    try:
        with open(log, "w") as f:
            proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--act-worker",
                                   str(spec_file)], stdout=f, stderr=subprocess.STDOUT,
                                  env=Q._child_env(), cwd=str(run_dir), timeout=args.timeout)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        rc = "timeout"
    wall = time.perf_counter() - t0
    res = json.loads(Path(spec["result"]).read_text()) if Path(spec["result"]).exists() else {
        "ok": False, "error": f"worker exited {rc} without a result (crash)"}
    res.update({"wall_s": wall, "fixes": fixes, "log": str(log), "rc": rc})
    text = log.read_text(errors="replace")
    losses = [(int(m.group(1)), float(m.group(2))) for m in Q._LOSS_RE.finditer(text)]
    if losses:
        res["loss_first"], res["loss_last"] = losses[0][1], losses[-1][1]
    shapes = re.findall(r"(\S+), from \[([^\]]*)\] to \[([^\]]*)\]", text)
    if shapes:
        res["pruned_shapes"] = {n: [a, b] for n, a, b in shapes}
    warns = sorted({ln.strip()[:300] for ln in text.splitlines()
                    if re.search(r"warn|not pruned|skip|unsupported", ln, re.I)
                    and "ccache" not in ln and "warnings.warn" not in ln})
    if warns:
        res["log_warnings"] = warns[:20]
    if not res.get("ok"):
        res["log_tail"] = text[-3000:]
        return res
    res["model_dir"] = str(out)
    if res.get("t_train_loop_s"):
        res["s_per_iter"] = res["t_train_loop_s"] / args.iters
    return res


def lowered_recipe(args, cfg_path: Path, run_dir: Path) -> Path:
    """`actc lower` of the config, with ASPPrune's long name list put back by hand.

    Work-around for an actc lowering bug: a step with a single argument whose one-line form is
    over 100 characters is wrapped without its closing ')' (actc/act/lower.py render()), so an
    ASPPrune with many prune_params_name entries fails with "syntax error: unexpected '('".
    Lower the config with one name, then substitute the full list on one line.
    """
    import yaml

    cfg = yaml.safe_load(cfg_path.read_text())
    names = cfg["ASPPrune"]["prune_params_name"]
    short = dict(cfg)
    short["ASPPrune"] = dict(cfg["ASPPrune"], prune_params_name=names[:1])
    short_path = run_dir / "config_short.yaml"
    Q.write_config(short_path, short)
    proc = subprocess.run([args.actc_python, "-m", "actc", "lower", str(short_path)],
                          capture_output=True, text=True, env=Q._child_env(), cwd=str(ROOT))
    if proc.returncode:
        raise RuntimeError(proc.stderr.strip() or proc.stdout.strip())
    one = "[" + ", ".join(json.dumps(n) for n in names[:1]) + "]"
    full = "[" + ", ".join(json.dumps(n) for n in names) + "]"
    text = proc.stdout.replace(f"op.input in {one}", f"op.input in {full}", 1)
    path = run_dir / "recipe.actc"
    path.write_text(text)
    return path


def gradient_recipe(args, cfg_path: Path, run_dir: Path) -> Path:
    """`actc lower` of the config with ``criterion: gradient`` (ACT's ranking) on prune_transformer.

    actc's default (``auto`` = distill_loss with data) ranks by the distillation-loss increase of
    each head removed alone; this variant ranks as ACT does, |d cross-entropy / d mask| summed
    over 32 batches of the --data split's labels. The YAML has no key for it.
    """
    proc = subprocess.run([args.actc_python, "-m", "actc", "lower", str(cfg_path)],
                          capture_output=True, text=True, env=Q._child_env(), cwd=str(ROOT))
    if proc.returncode:
        raise RuntimeError(proc.stderr.strip() or proc.stdout.strip())
    text, n = re.subn(r"prune_transformer\(ratio: ([\d.]+)\)",
                      r"prune_transformer(ratio: \1, criterion: gradient)", proc.stdout)
    if n != 1:
        raise RuntimeError(f"expected one prune_transformer step in the lowering, found {n}")
    path = run_dir / "recipe.actc"
    path.write_text(text)
    return path


def run_actc(case, args, method, run_dir: Path, cfg_path: Path, tool: str = "actc") -> dict:
    py = Path(args.actc_python)
    if not py.exists():
        return {"ok": False, "error": f"actc python {py} not found"}
    out = run_dir / "actc_out"
    if tool == "actc_recipe":
        if method != "asp":
            return {"ok": False, "error": "actc_recipe is the ASPPrune lowering work-around only"}
        src = ["--recipe", str(lowered_recipe(args, cfg_path, run_dir))]
    elif tool == "actc_grad":
        if method not in TP_METHODS:
            return {"ok": False, "error": "actc_grad is for TransformerPrune only"}
        src = ["--recipe", str(gradient_recipe(args, cfg_path, run_dir))]
    else:
        src = ["--config", str(cfg_path)]
    cmd = [str(py), "-m", "actc", "compile", str(case["model"]), *src,
           "-o", str(out), "--data", str(case["train"]), "--eval-data", str(case["test"]),
           "--device", "cpu", "--time-passes"]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=Q._child_env(),
                              cwd=str(ROOT), timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {args.timeout}s", "cmd": " ".join(cmd)}
    wall = time.perf_counter() - t0
    text = (proc.stdout or "") + (proc.stderr or "")
    (run_dir / "actc.log").write_text(text)
    res = {"wall_s": wall, "cmd": " ".join(cmd), "rc": proc.returncode,
           "log": str(run_dir / "actc.log"),
           "notes": [ln.strip() for ln in text.splitlines() if ln.strip().startswith(
               ("note:", "warning:", "error:"))][:40]}
    if proc.returncode != 0 or not (out / "model.pdmodel").exists():
        lines = [ln for ln in text.strip().splitlines() if ln.strip()]
        err = next((ln for ln in reversed(lines) if "error" in ln.lower()),
                   lines[-1] if lines else f"exit {proc.returncode}")
        res.update({"ok": False, "error": err.strip(), "log_tail": text[-3000:]})
        return res
    res["ok"] = True
    res["model_dir"] = str(out)
    m = re.search(r"train: (\d+) iterations x (\d+)", text)
    if m:
        res["iters_reported"], res["batch_reported"] = int(m.group(1)), int(m.group(2))
        if res["batch_reported"] != args.batch_size:
            res["warning"] = f"actc trained with batch {res['batch_reported']}, not {args.batch_size}"
    m = re.search(r"\(([\d.]+) ms/it", text)
    if m:
        res["s_per_iter"] = float(m.group(1)) / 1000
    m = re.search(r"last loss ([-\d.eE+naif]+)", text)
    if m:
        res["loss_last"] = float(m.group(1))
    return res


def act_worker(spec_file: str) -> int:
    """qat_vs_act's ACT worker, plus fix 5 when the spec asks for it (act_all)."""
    spec = json.loads(Path(spec_file).read_text())
    if spec.get("gmp_export"):
        # ACT 2.6 ends _start_train with `if 'unstructure' in self._strategy ...: update_params()`,
        # but self._strategy is a list of names ('unstructure_prune_dis'), so the test is False and
        # the masks are never multiplied into the weights before export. Without an eval callback
        # nothing else calls update_params(), and the optimizer step after the in-program
        # elementwise_mul(param, mask) leaves the masked weights non-zero: the written model is dense.
        from paddleslim.auto_compression import AutoCompression

        orig = AutoCompression._start_train

        def start_train_then_apply_masks(self, *a, **k):
            out = orig(self, *a, **k)
            if getattr(self, "_pruner", None) is not None and hasattr(self._pruner, "update_params"):
                self._pruner.update_params()
            return out

        AutoCompression._start_train = start_train_then_apply_masks
    if spec.get("eval_labels"):
        # qat_vs_act's worker passes no eval_dataloader, so ACT would take the (label-less)
        # training batches and TransformerPrune asserts "maybe something wrong in get label name
        # from eval_dataloader". Give it the training split with labels, in order, batches of
        # --batch-size: ACT sums its head/neuron gradients over every batch of it.
        from paddleslim.auto_compression import AutoCompression

        data = np.load(spec["train"])
        x, y = data[spec["feed"]], data["label"].astype(np.int64).reshape(-1, 1)
        bs = int(spec["batch_size"])

        def eval_loader():
            for i in range(len(x) // bs):
                yield {spec["feed"]: x[i * bs:(i + 1) * bs], "label": y[i * bs:(i + 1) * bs]}

        orig_init = AutoCompression.__init__

        def init_with_eval(self, *a, **k):
            k["eval_dataloader"] = eval_loader
            return orig_init(self, *a, **k)

        AutoCompression.__init__ = init_with_eval
    if spec.get("tp_eval_dropout"):
        # TransformerPruner._program_add_mask builds its gradient program with
        # recover_inference_program, which sets is_test=False on every op: the head-mask and
        # FFN gradients that rank heads and neurons are taken through random dropout (which also
        # sits between softmax and the mask). Rank in inference mode instead; training unchanged.
        import paddleslim.auto_compression.transformer_pruner as act_tp

        orig_recover = act_tp.recover_inference_program

        def recover_eval_dropout(program, *a, **k):
            program = orig_recover(program, *a, **k)
            for block in program.blocks:
                for op in block.ops:
                    if op.type == "dropout":
                        op._set_attr("is_test", True)
            return program

        act_tp.recover_inference_program = recover_eval_dropout
    if spec.get("asp_exclude"):
        # ACT calls asp.set_excluded_layers(main_program=<the program build_prune_program sees>),
        # but Paddle keys the exclusions by Program object and ACT's decorated optimizer and
        # prune_model run on a different Program, whose exclusion list is empty: every conv2d /
        # linear weight whose name Paddle's ASP recognises is pruned, named or not. Keep the
        # exclusions for all programs.
        from paddle.incubate.asp.asp import ASPHelper

        excluded: set[str] = set()
        orig_set = ASPHelper.set_excluded_layers.__func__
        orig_sup = ASPHelper._is_supported_layer.__func__

        def set_excluded(cls, param_names, main_program=None):
            excluded.update(param_names)
            return orig_set(cls, param_names, main_program)

        def is_supported(cls, main_program, param_name):
            if any(layer in param_name for layer in excluded):
                return False
            return orig_sup(cls, main_program, param_name)

        ASPHelper.set_excluded_layers = classmethod(set_excluded)
        ASPHelper._is_supported_layer = classmethod(is_supported)
    return Q.act_worker(spec_file)


# ------------------------------------------------------------------ latency (own process)
def latency_worker(spec_file: str) -> int:
    spec = json.loads(Path(spec_file).read_text())
    import paddle.inference as pi

    res: dict = {}
    test = np.load(spec["test"])
    x_test = test[spec.get("feed", "image")]
    if x_test.dtype == np.float64:
        x_test = x_test.astype(np.float32)
    labels = test["label"]
    preds = {}
    for key, d in spec["models"].items():
        try:
            model_file, params_file = Q._program_file(Path(d))
            cfg = pi.Config(str(Path(d) / model_file), str(Path(d) / params_file))
            cfg.disable_gpu()
            cfg.enable_mkldnn()
            cfg.set_cpu_math_library_num_threads(1)
            cfg.disable_glog_info()
            cfg.switch_ir_optim(True)
            p = pi.create_predictor(cfg)
            inp = p.get_input_handle(p.get_input_names()[0])
            out = p.get_output_handle(p.get_output_names()[0])
            outs = []
            for i in range(0, len(x_test), 8):   # sanity: top-1 through this predictor
                xb = x_test[i:i + 8]
                inp.reshape(list(xb.shape))
                inp.copy_from_cpu(xb)
                p.run()
                outs.append(out.copy_to_cpu())
            acc = float((np.concatenate(outs).argmax(-1) == labels).mean())
            preds[key] = (p, inp, out)
            res[key] = {"acc_infer": acc, "rounds": {str(b): [] for b in spec["batches"]}}
        except Exception as e:  # noqa: BLE001
            res[key] = {"error": f"{type(e).__name__}: {e}"[:500]}
    rng = np.random.default_rng(0)
    keys = list(preds)
    for _ in range(spec["rounds"]):
        rng.shuffle(keys)   # a fresh order each round: no model always runs first (or after fp32)
        for key in keys:
            p, inp, out = preds[key]
            for b in spec["batches"]:
                xb = x_test[rng.integers(0, len(x_test), b)]
                inp.reshape(list(xb.shape))
                for _ in range(spec["warmup"]):
                    inp.copy_from_cpu(xb)
                    p.run()
                    out.copy_to_cpu()
                ts = []
                for _ in range(spec["runs"]):
                    t0 = time.perf_counter()
                    inp.copy_from_cpu(xb)
                    p.run()
                    out.copy_to_cpu()
                    ts.append(time.perf_counter() - t0)
                res[key]["rounds"][str(b)].append(statistics.median(ts))
    for key, r in res.items():
        if "rounds" in r:
            # per round: the median of `runs` timings; reported: the least disturbed round (the
            # machine is shared, so a slow round is someone else's load), and the rounds' median
            r["ms"] = {b: 1000 * min(v) for b, v in r["rounds"].items()}
            r["ms_median_of_rounds"] = {b: 1000 * statistics.median(v) for b, v in r["rounds"].items()}
    Path(spec["result"]).write_text(json.dumps(res))
    return 0


def measure_latency(models: dict[str, str], case, args, work: Path) -> dict:
    d = Path(tempfile.mkdtemp(prefix="latency_", dir=work))
    spec = {"models": models, "test": str(case["test"]), "feed": case.get("feed", "image"),
            "batches": [1, 8],
            "warmup": args.lat_warmup, "runs": args.lat_runs, "rounds": args.lat_rounds,
            "result": str(d / "latency.json")}
    (d / "spec.json").write_text(json.dumps(spec))
    env = Q._child_env()
    env["OMP_NUM_THREADS"] = "1"
    with open(d / "latency.log", "w") as f:
        subprocess.run([sys.executable, str(Path(__file__).resolve()), "--latency-worker",
                        str(d / "spec.json")], stdout=f, stderr=subprocess.STDOUT, env=env,
                       timeout=args.timeout)
    if not Path(spec["result"]).exists():
        return {"error": (d / "latency.log").read_text(errors="replace")[-2000:]}
    return json.loads(Path(spec["result"]).read_text())


# ------------------------------------------------------------------ driver
def run_cell(tool, method, case, args, work: Path, cp_params, asp_params) -> dict:
    (work / "prune_runs").mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix=f"{tool}_{case['name']}_{method}_", dir=work / "prune_runs"))
    cfg = Q.write_config(run_dir / "config.yaml",
                         make_config(method, args, args.iters, cp_params, asp_params))
    runner = run_actc if tool.startswith("actc") else run_act
    try:
        res = runner(case, args, method, run_dir, cfg, tool)
    except Exception as e:  # noqa: BLE001
        res = {"ok": False, "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
    res["run_dir"] = str(run_dir)
    res["config"] = str(cfg)
    if res.get("ok"):
        try:
            res["acc"] = Q.evaluate(Path(res["model_dir"]), case["test"])
            res.update(model_stats(Path(res["model_dir"]), method, asp_params))
        except Exception as e:  # noqa: BLE001 - written but not loadable
            res["ok"] = False
            res["error"] = f"written model does not load/score: {type(e).__name__}: {e}"[:500]
    if not args.keep:
        shutil.rmtree(run_dir / "act_model", ignore_errors=True)
    print(f"  {tool} {method}: " + json.dumps({k: res.get(k) for k in (
        "ok", "error", "acc", "params_bytes", "sparsity", "target_sparsity", "asp_2to4_holds",
        "s_per_iter", "wall_s", "loss_last", "warning") if res.get(k) is not None}), flush=True)
    return res


def fmt_tables(result: dict) -> str:
    def pct(v, nd=2):
        return "-" if v is None else f"{100 * v:.{nd}f}"

    def fms(ms, b, lat):
        if ms.get(b) is not None:
            return f"{ms[b]:.3f}"
        return "load error" if lat.get("error") else "-"

    def sec(v):
        return "-" if v is None else f"{v:.4f}"

    fp = result["fp32"]
    lat_fp = fp.get("latency", {}).get("ms", {})
    lines = [f"model {result['model']}, {result['iters']} iters x batch {result['batch_size']}, "
             f"{result['optimizer']} lr {result['lr']} (constant), weight decay "
             f"{result['weight_decay']}, l2 distillation (default node), cp params: "
             f"{result['cp_params_mode']}"
             + (f" minus {', '.join(result['cp_exclude'])}" if result.get("cp_exclude") else ""),
             f"fp32: top-1 {pct(fp['acc'])} %, params {fp['params_bytes']} B, sparsity "
             f"{pct(fp['sparsity'], 1)} %, latency b1 {lat_fp.get('1', float('nan')):.3f} ms, "
             f"b8 {lat_fp.get('8', float('nan')):.3f} ms", "",
             "| method | tool | top-1 % | params B | sparsity % (conv+linear) | target sparsity % | "
             "b1 ms | b8 ms | x fp32 b1 | x fp32 b8 | top-1 % (oneDNN) | train s/iter | wall s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    notes = []
    for method, tools in result["cells"].items():
        for tool, r in tools.items():
            if not r.get("ok"):
                err = str(r.get("error"))[:200].replace("|", "/").replace("\n", " ")
                lines.append(f"| {method} | {tool} | error: {err} | | | | | | | | | | {r.get('wall_s', 0):.1f} |")
                continue
            lat = r.get("latency", {})
            ms = lat.get("ms", {})
            tgt = pct(r.get("target_sparsity"), 1)
            if r.get("asp_targets") is not None:
                tgt += f" (2:4 in {r['asp_2to4_holds']}/{r['asp_targets']})"
            sp1 = (f"{lat_fp['1'] / ms['1']:.2f}" if ms.get("1") and lat_fp.get("1") else "-")
            sp8 = (f"{lat_fp['8'] / ms['8']:.2f}" if ms.get("8") and lat_fp.get("8") else "-")
            lines.append(
                f"| {method} | {tool} | {pct(r.get('acc'))} | {r.get('params_bytes')} | "
                f"{pct(r.get('sparsity'), 1)} | {tgt} | "
                f"{fms(ms, '1', lat)} | {fms(ms, '8', lat)} | {sp1} | {sp8} | "
                f"{pct(lat.get('acc_infer'))} | {sec(r.get('s_per_iter'))} | {r.get('wall_s', 0):.1f} |")
            if not tool.startswith("actc") and r.get("fixes"):
                notes.append(f"- {tool}: " + "; ".join(r["fixes"]))
    if notes:
        lines += [""] + sorted(set(notes))
    if result.get("xshape_latency"):
        lines += ["", "The same models timed with transpose2's XShape output restored (--lat-xshape):", "",
                  "| model | b1 ms | b8 ms | b1 ms as written | b8 ms as written |", "|---|---|---|---|---|"]
        for key, v in result["xshape_latency"].items():
            base = (fp.get("latency", {}) if key == "fp32" else
                    result["cells"][key.split("/")[0]][key.split("/")[1]].get("latency", {})).get("ms", {})
            ms = v.get("ms", {})
            lines.append(f"| {key} | {fms(ms, '1', v)} | {fms(ms, '8', v)} | {fms(base, '1', {})} | "
                         f"{fms(base, '8', {})} |")
    return "\n".join(lines)


def add_latency(result: dict, case, args) -> None:
    models = {"fp32": str(case["model"])}
    for method, tools in result["cells"].items():
        for tool, r in tools.items():
            if r.get("ok"):
                models[f"{method}/{tool}"] = r["model_dir"]
    if getattr(args, "lat_xshape", False):
        xdir = Path(tempfile.mkdtemp(prefix="xshape_", dir=args.work))
        for key in [k for k in models if k == "fp32" or k.split("/")[1].startswith("actc")]:
            dst = xdir / key.replace("/", "_")
            if add_transpose_xshape(Path(models[key]), dst):
                models[key + "+xshape"] = str(dst)
    print(f"latency: {len(models)} models ...", flush=True)
    lat = measure_latency(models, case, args, args.work)
    if isinstance(lat.get("error"), str):
        print("latency failed: " + lat["error"], flush=True)
        return
    result["fp32"]["latency"] = lat.get("fp32", {})
    result["latency_settings"] = {"runs": args.lat_runs, "warmup": args.lat_warmup,
                                  "rounds": args.lat_rounds, "omp_num_threads": 1,
                                  "math_threads": 1, "mkldnn": True}
    result.pop("xshape_latency", None)
    for key, v in lat.items():
        if key.endswith("+xshape"):
            result.setdefault("xshape_latency", {})[key[:-len("+xshape")]] = v
        elif key != "fp32":
            m, t = key.split("/")
            result["cells"][m][t]["latency"] = v


def relatency(args) -> int:
    result = json.loads(Path(args.latency_only).read_text())
    case = get_case(result["model"], args.work, args.pd26_python)
    add_latency(result, case, args)
    print(fmt_tables(result))
    Path(args.latency_only).write_text(json.dumps(result, indent=1, default=str))
    print(f"\nrewrote {args.latency_only}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=MODELS, default="digits")
    ap.add_argument("--methods", nargs="+", choices=METHODS, default=METHODS)
    ap.add_argument("--tools", nargs="+", choices=TOOLS, default=["act", "act_bn", "actc"])
    ap.add_argument("--iters", type=int, default=600)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=0.005)
    ap.add_argument("--optimizer", choices=["Momentum", "SGD", "Adam"], default="Momentum")
    ap.add_argument("--weight-decay", type=float, default=4e-5)
    ap.add_argument("--gmp-steps", type=int, default=10)
    ap.add_argument("--cp-params", choices=["all", "prunable", "null"], default="all",
                    help="ChannelPrune.prune_params_name: every conv2d groups-1 weight (all), only "
                         "the prunable group roots actc lists (prunable), or none (null)")
    ap.add_argument("--cp-exclude", nargs="*", default=[], metavar="WEIGHT",
                    help="leave these weights out of ChannelPrune.prune_params_name (both tools; "
                         "e.g. a conv feeding a flatten, which ACT's flatten worker mis-prunes)")
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK)
    ap.add_argument("--actc-python", default=str(Q.DEFAULT_ACTC_PYTHON))
    ap.add_argument("--pd26-python", default=str(DEFAULT_PD26_PYTHON),
                    help="paddlepaddle 2.6.2 + scikit-learn python that builds tfm_digits if missing")
    ap.add_argument("--no-latency", action="store_true")
    ap.add_argument("--lat-runs", type=int, default=50)
    ap.add_argument("--lat-warmup", type=int, default=20)
    ap.add_argument("--lat-rounds", type=int, default=9)
    ap.add_argument("--lat-xshape", action="store_true",
                    help="also time fp32 and actc's models with transpose2's XShape output restored "
                         "(ACT's models have it; oneDNN's matmul_transpose_reshape fuse needs it)")
    ap.add_argument("--logging-iter", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=int, default=900, help="per tool run, seconds")
    ap.add_argument("--keep", action="store_true", help="keep ACT's model copies")
    ap.add_argument("--out-json", default=None)
    ap.add_argument("--act-worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--latency-worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--latency-only", default=None, metavar="JSON",
                    help="re-time the models of an earlier --out-json (kept in their run dirs) "
                         "and rewrite it; no training")
    args = ap.parse_args(argv)
    if args.latency_only:
        return relatency(args)
    if args.act_worker:
        return act_worker(args.act_worker)
    if args.latency_worker:
        return latency_worker(args.latency_worker)

    args.work.mkdir(parents=True, exist_ok=True)
    case = get_case(args.model, args.work, args.pd26_python)
    conv1 = conv_groups1_weights(case["model"])
    cp_params = {"all": conv1, "null": None}.get(args.cp_params)
    if args.cp_params == "prunable":
        cp_params = prunable_roots(args, case["model"])
    if cp_params is not None and args.cp_exclude:
        cp_params = [n for n in cp_params if n not in set(args.cp_exclude)]
    fp32 = {"acc": Q.evaluate(case["model"], case["test"])}
    fp32.update(model_stats(case["model"], None, conv1))
    print(f"{args.model}: fp32 top-1 {100 * fp32['acc']:.2f} %, {len(conv1)} conv2d groups-1 weights: "
          f"{', '.join(conv1)}", flush=True)
    result = {"model": args.model, "iters": args.iters, "batch_size": args.batch_size,
              "lr": args.lr, "optimizer": args.optimizer, "weight_decay": args.weight_decay,
              "cp_params_mode": args.cp_params, "cp_exclude": args.cp_exclude,
              "cp_params": cp_params, "asp_params": conv1,
              "train_data": str(case["train"]), "test_data": str(case["test"]),
              "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "fp32": fp32, "cells": {}}
    for method in args.methods:
        print(f"{method}:", flush=True)
        result["cells"][method] = {}
        for tool in args.tools:
            if tool == "act_all" and method in ("cp50", "cp25") and "act_bn" in args.tools:
                continue   # fixes 5 and 6 change UnstructurePrune / ASPPrune only
            if tool == "act_nodrop" and method not in ("cp50", "cp25"):
                continue   # fix 7 is for ChannelPrune
            if tool in ("act_mean", "act_tpdrop") and method not in TP_METHODS:
                continue   # fix 8 is for the transformers' mean pooling
            if tool == "actc_grad" and method not in TP_METHODS:
                continue
            r = result["cells"][method][tool] = run_cell(tool, method, case, args, args.work,
                                                         cp_params, conv1)
            if (tool == "actc" and method == "asp" and not r.get("ok") and "actc_recipe" not in
                    args.tools and "(lowered)" in str(r.get("error")) and "syntax error" in
                    str(r.get("error"))):
                print("  actc could not parse its own lowering of the config; running the "
                      "lowered recipe with the list restored (actc_recipe)", flush=True)
                result["cells"][method]["actc_recipe"] = run_cell(
                    "actc_recipe", method, case, args, args.work, cp_params, conv1)
            if args.out_json:   # partial results survive a later crash
                Path(args.out_json).write_text(json.dumps(result, indent=1, default=str))
    if not args.no_latency:
        add_latency(result, case, args)
    print()
    print(fmt_tables(result))
    if args.out_json:
        Path(args.out_json).write_text(json.dumps(result, indent=1, default=str))
        print(f"\nwrote {args.out_json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
