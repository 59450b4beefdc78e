"""QAT + distillation, side by side: PaddleSlim 2.6 ACT (AutoCompression) vs actc, same model and data.

Install (PaddleSlim is NOT an actc dependency; keep it in its own venv):

    python3 -m venv /work/bench-venv
    /work/bench-venv/bin/pip install paddlepaddle==3.3.1 "paddleslim==2.6.0" six requests \
        decorator tqdm pyyaml scikit-learn
    # actc itself runs from the repo's venv (.venv, `pip install -e ".[paddle,test]"`);
    # this script calls it as `<actc-python> -m actc compile ...` and never imports it.

Run (CPU; a digits row takes ~1 min, an mbv2_digits row ~5 min on 2 cores):

    B=/work/bench-venv/bin/python
    ALL="act_raw act act_bn act_all actc"
    $B benchmarks/qat_vs_act.py --model digits --bits W8A8 --iters 300 --repeats 3 --tools $ALL \
        --out-json digits_W8A8.json
    $B benchmarks/qat_vs_act.py --model digits --bits W4A4 --iters 300 --repeats 3 --tools $ALL
    $B benchmarks/qat_vs_act.py --model mbv2_digits --bits W8A8 --iters 300 --repeats 2 \
        --tools act_raw act act_bn actc          # builds + caches the model first (~2.5 min)
    $B benchmarks/qat_vs_act.py --model digits --tools actc --actc-python .venv/bin/python

    Results measured this way: benchmarks/results/qat_vs_act.md. Each run leaves its config, logs
    and written models in WORK/runs/<tool>_<model>_<bits>_r<k>_*/.

What both tools get
    * the same float model (``digits``: the embedded example ``actc/example/digits``;
      ``mbv2_digits``: a MobileNetV2-style net built and cached by ``benchmarks/digits_models.py``
      under ``--work``, default /tmp/actc_bench);
    * the same unlabelled training images (digits: ``calib.npz``, 500 images; mbv2_digits:
      ``train.npz``, the whole 1437-image training split) in batches of ``--batch-size``
      (full batches only, reshuffled every epoch with a fixed seed for ACT);
    * one ACT YAML config written by this script (``RUN/config.yaml``): QuantAware (weight/activation
      bits, onnx_format, quantize_op_types conv2d/depthwise_conv2d/mul/matmul_v2), Distillation
      (l2, alpha 1.0, default node = output of the last weighted layer), TrainConfig (train_iter,
      learning_rate float or PiecewiseDecay, optimizer_builder {optimizer: Momentum|SGD,
      weight_decay}, eval_iter = train_iter, logging_iter). ACT reads the file itself
      (``AutoCompression(config=path)``), actc gets it as ``actc compile MODEL --config``.
      ACT has no batch-size key (the dataloader decides); the file carries ``Global.batch_size``
      for the record, which actc ignores too: actc trains with its own batch size (32 today,
      read from its "N iterations x B" note; the script warns when it differs from
      ``--batch-size``). actc reads and batches the training npz itself.

Scoring: every written model is loaded back with ``paddle.static.load_inference_model`` in a fresh
scope and scored top-1 on the test split (360 held-out digits) by the same function, ``evaluate``.
ACT gets no eval_callback (so it exports its final weights rather than a best-on-test
checkpoint, like actc without early stopping).

Speed: each tool runs in its own process. "s/iter" is measured two ways:
    * ``loop``: ACT only -- the wall time of ACT's training loop (``AutoCompression._start_train``,
      monkey-patched with a timer) divided by the iterations;
    * ``diff``: (wall(N iters) - wall(1 iter)) / (N - 1) over the whole process, for both tools
      (``--no-overhead-run`` skips the 1-iteration run); ``overhead_s`` = wall(1 iter) - 1 * s/iter
      is the fixed load/rewrite/convert/save cost.

ACT variants (``--tools``; all get a private temp copy of the model, because ACT rewrites
model.pdmodel in the dir it is given, and writes into save_dir):
    act_raw  the model as exported by Paddle 3.x, no fixes;
    act      the two fixes ACT needs on a Paddle 3.x export (plus any ``--act-*`` flags):
             1. rename non-persistable vars called ``tmp_N`` to ``bench_tmp_N``. ACT's distillation
                loss (``l2(...) * alpha``, the sums, ``paddle.mean``) creates ``scale`` ops whose
                outputs Paddle 3.x names ``tmp_0``, ``tmp_1``... in the parsed program, the same
                names a dygraph export gives unnamed intermediates (e.g. a residual add's output).
                The loss then overwrites that activation and its gradient is summed into the
                residual branch: training silently diverges (digits: 10 % top-1);
             2. give ``dropout`` ops back their ``Mask`` output (uint8, shape of Out), which export
                drops and PaddleSlim 2.6's recover_inference_program does not restore (without it:
                ``ValueError: ... "dropout", should set: [Mask]``); also ``XShape`` on
                reshape2/squeeze2, which it does not restore either;
    act_bn   + 3. ``use_global_stats=False`` on batch_norm. Paddle 3.x exports batch_norm with
             use_global_stats=True and ACT only flips is_test, so its QAT trains against frozen
             running statistics; at lr 5e-3 that diverged on the digits CNN;
    act_all  + 4. qmin/qmax set on the quantize_linear/dequantize_linear ops of ACT's training and
             test programs (patched as ``build_quant_program`` returns them). Paddle 3.x's
             quantize_linear takes its integer grid from qmin/qmax (default -128/127), not from
             bit_length, and PaddleSlim 2.6 never sets them, so ACT's "W4A4" QAT really trains
             8-bit grids (its losses are bit-identical to W8A8's) and writes a 4-bit model that
             decodes wrongly (10 % top-1 as written). No effect at W8A8.
ACT's logging_iter counts batches within an epoch (it logs batch_id % logging_iter == 0), so
"last loss" for ACT is the loss logged last, often the first batch of the last epoch; and without
TrainConfig.epochs ACT runs at most 100 epochs whatever train_iter says (the script warns).
For sub-8-bit settings every ACT output is also scored with qmin/qmax patched into the written
model (``acc_qmax_patched``): that is 4-bit export of weights trained on 8-bit grids unless
act_all. ``--no-act-fixes``, ``--act-bn-batch-stats``, ``--act-qmax-train`` adjust plain ``act``.
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

OP_TYPES = ["conv2d", "depthwise_conv2d", "mul", "matmul_v2"]
BITS = {"W8A8": (8, 8), "W4A4": (4, 4)}
DEFAULT_WORK = Path(os.environ.get("ACTC_BENCH_WORK", "/tmp/actc_bench"))
DEFAULT_ACTC_PYTHON = ROOT / ".venv" / "bin" / "python"


# ------------------------------------------------------------------ models & data
def get_case(name: str, work: Path) -> dict:
    if name == "digits":
        d = ROOT / "actc" / "example" / "digits"
        return {"name": name, "model": d, "train": d / "calib.npz", "test": d / "test.npz",
                "feed": "image"}
    if name == "mbv2_digits":
        from digits_models import ensure_mbv2_digits

        d = ensure_mbv2_digits(work)
        return {"name": name, "model": d, "train": d / "train.npz", "test": d / "test.npz",
                "feed": "image"}
    raise SystemExit(f"unknown model {name!r}")


def _program_file(model_dir: Path) -> tuple[str, str]:
    for stem in ("model", "inference"):
        if (model_dir / f"{stem}.pdmodel").exists():
            return f"{stem}.pdmodel", f"{stem}.pdiparams"
    pd = sorted(model_dir.glob("*.pdmodel"))
    if len(pd) == 1:
        return pd[0].name, pd[0].with_suffix(".pdiparams").name
    raise FileNotFoundError(f"{model_dir}: no (single) *.pdmodel")


# ------------------------------------------------------------------ scoring (both tools)
def evaluate(model_dir: Path, test_npz: Path, batch: int = 64) -> float:
    """Top-1 of a saved inference model on test_npz (keys: the feed name or 'image', and 'label')."""
    import paddle

    data = np.load(test_npz)
    labels = data["label"]
    model_file, params_file = _program_file(Path(model_dir))
    paddle.enable_static()
    exe = paddle.static.Executor(paddle.CPUPlace())
    scope = paddle.static.Scope()
    with paddle.static.scope_guard(scope):
        prog, feeds, fetches = paddle.static.load_inference_model(
            str(model_dir), exe, model_filename=model_file, params_filename=params_file)
        x = data[feeds[0]] if feeds[0] in data.files else data["image"]
        outs = [np.asarray(exe.run(prog, feed={feeds[0]: x[i:i + batch]},
                                   fetch_list=fetches[:1])[0])
                for i in range(0, len(x), batch)]
    return float((np.concatenate(outs).argmax(-1) == labels).mean())


# ------------------------------------------------------------------ program surgery (protobuf)
def _pb():
    from paddle.base.proto import framework_pb2

    return framework_pb2


def _rename_in_program(prog, old: str, new: str) -> None:
    for block in prog.blocks:
        for v in block.vars:
            if v.name == old:
                v.name = new
        for op in block.ops:
            for slot in list(op.inputs) + list(op.outputs):
                for i, a in enumerate(slot.arguments):
                    if a == old:
                        slot.arguments[i] = new


def _add_output_var(block, op, slot_name: str, like: str, suffix: str, dtype: int | None,
                    pb, prefix_dims=()) -> str:
    src = next((v for v in block.vars if v.name == like), None)
    name = f"{like}.{suffix}"
    var = block.vars.add()
    var.name = name
    var.type.type = pb.VarType.DENSE_TENSOR if hasattr(pb.VarType, "DENSE_TENSOR") \
        else pb.VarType.LOD_TENSOR
    if src is not None and src.type.HasField("dense_tensor" if hasattr(src.type, "dense_tensor")
                                             else "lod_tensor"):
        st = src.type.dense_tensor if hasattr(src.type, "dense_tensor") else src.type.lod_tensor
        dt = var.type.dense_tensor if hasattr(var.type, "dense_tensor") else var.type.lod_tensor
        dt.tensor.data_type = st.tensor.data_type if dtype is None else dtype
        dt.tensor.dims.extend(list(prefix_dims) + list(st.tensor.dims))
    var.persistable = False
    slot = next((s for s in op.outputs if s.parameter == slot_name), None)
    if slot is None:
        slot = op.outputs.add()
        slot.parameter = slot_name
    del slot.arguments[:]
    slot.arguments.append(name)
    return name


def fix_model_for_act(src: Path, dst: Path, enabled: bool = True, rename: str = "tmp",
                      bn_batch_stats: bool = False) -> list[str]:
    """Copy src to dst, applying the two model-side fixes ACT needs on Paddle 3.x exports.

    rename: "tmp" renames the non-persistable vars called tmp_N; "tmp_mean" also mean_N.tmp_M
    (ACT's l2 loss is paddle.mean(...), whose output mean_0.tmp_0 collides with the model's own
    paddle.mean, e.g. a transformer's pooling); "all" every non-persistable
    var except the feeds (an experiment: it also changes the fetch name).
    """
    pb = _pb()
    dst.mkdir(parents=True, exist_ok=True)
    model_file, params_file = _program_file(src)
    shutil.copyfile(src / params_file, dst / "model.pdiparams")
    prog = pb.ProgramDesc()
    prog.ParseFromString((src / model_file).read_bytes())
    fixes: list[str] = []
    if enabled:
        # 1. tmp_N renames
        pat = re.compile({"tmp": r"^tmp_\d+$", "tmp_mean": r"^(tmp_\d+|mean_\d+\.tmp_\d+)$"}
                         .get(rename, r"."))
        feeds = {a for b in prog.blocks for op in b.ops if op.type == "feed"
                 for s in op.outputs for a in s.arguments}
        names = sorted({v.name for b in prog.blocks for v in b.vars
                        if pat.match(v.name) and not v.persistable and v.name not in feeds
                        and v.name not in ("feed", "fetch")})
        for n in names:
            _rename_in_program(prog, n, "bench_" + n)
        if names:
            kind = {"tmp": "tmp_N ", "tmp_mean": "tmp_N/mean_N.tmp_M "}.get(rename, "")
            fixes.append(f"renamed {len(names)} non-persistable {kind}var(s): "
                         + ", ".join(names[:6]) + (" ..." if len(names) > 6 else ""))
        # 2. training-only outputs that inference export drops and PaddleSlim 2.6 does not restore
        n_mask = n_xshape = 0
        for block in prog.blocks:
            for op in block.ops:
                outs = {s.parameter: list(s.arguments) for s in op.outputs}
                ins = {s.parameter: list(s.arguments) for s in op.inputs}
                if op.type == "dropout" and not outs.get("Mask"):
                    _add_output_var(block, op, "Mask", outs["Out"][0], "mask",
                                    pb.VarType.UINT8, pb)
                    n_mask += 1
                elif op.type in ("reshape2", "squeeze2") and not outs.get("XShape"):
                    _add_output_var(block, op, "XShape", ins["X"][0], "xshape", None, pb, (0,))
                    n_xshape += 1
        if n_mask:
            fixes.append(f"added Mask output to {n_mask} dropout op(s)")
    if bn_batch_stats:
        # 3. (optional) Paddle 3.x exports batch_norm with use_global_stats=True; ACT only flips
        # is_test, so its QAT keeps BN frozen on the running statistics. False here lets BN use
        # batch statistics in training (inference ignores it: is_test=True uses the running stats).
        n_bn = 0
        for block in prog.blocks:
            for op in block.ops:
                if op.type != "batch_norm":
                    continue
                for a in op.attrs:
                    if a.name == "use_global_stats" and a.b:
                        a.b = False
                        n_bn += 1
        if n_bn:
            fixes.append(f"set use_global_stats=False on {n_bn} batch_norm op(s)")
        if n_xshape:
            fixes.append(f"added XShape output to {n_xshape} reshape2/squeeze2 op(s)")
    (dst / "model.pdmodel").write_bytes(prog.SerializeToString())
    return fixes


def patch_qmin_qmax(src: Path, dst: Path) -> int:
    """Copy of a quantized model with qmin/qmax set from bit_length (what Paddle 3.x reads)."""
    pb = _pb()
    shutil.copytree(src, dst, dirs_exist_ok=True)
    model_file, _ = _program_file(dst)
    prog = pb.ProgramDesc()
    prog.ParseFromString((dst / model_file).read_bytes())
    n = 0
    for block in prog.blocks:
        for op in block.ops:
            if op.type not in ("quantize_linear", "dequantize_linear"):
                continue
            attrs = {a.name: a for a in op.attrs}
            bits = attrs["bit_length"].i if "bit_length" in attrs else 8
            for name, val in (("qmin", -(1 << (bits - 1))), ("qmax", (1 << (bits - 1)) - 1)):
                a = attrs.get(name)
                if a is None:
                    a = op.attrs.add()
                    a.name = name
                    a.type = pb.AttrType.INT
                a.i = val
            n += 1
    (dst / model_file).write_bytes(prog.SerializeToString())
    return n


def quant_summary(model_dir: Path) -> dict:
    pb = _pb()
    model_file, _ = _program_file(model_dir)
    prog = pb.ProgramDesc()
    prog.ParseFromString((model_dir / model_file).read_bytes())
    counts: dict[str, int] = {}
    bits = set()
    for block in prog.blocks:
        for op in block.ops:
            counts[op.type] = counts.get(op.type, 0) + 1
            if "quant" in op.type:
                for a in op.attrs:
                    if a.name == "bit_length":
                        bits.add(a.i)
    return {"quant_ops": {k: v for k, v in counts.items() if "quant" in k},
            "bit_lengths": sorted(bits), "n_ops": sum(counts.values())}


# ------------------------------------------------------------------ the shared config
def make_config(args, iters: int) -> dict:
    wb, ab = BITS[args.bits]
    if args.lr_schedule == "piecewise":
        b1 = max(1, iters * 2 // 3)
        lr = {"type": "PiecewiseDecay", "boundaries": [b1], "values": [args.lr, args.lr * 0.1]}
    else:
        lr = float(args.lr)
    opt = {"type": args.optimizer}
    if args.optimizer == "Momentum":
        opt["momentum"] = 0.9
    return {
        "Global": {"batch_size": args.batch_size},    # for actc; ACT ignores Global
        "QuantAware": {"weight_bits": wb, "activation_bits": ab, "onnx_format": True,
                       "quantize_op_types": list(OP_TYPES),
                       "weight_quantize_type": "channel_wise_abs_max",
                       "activation_quantize_type": "moving_average_abs_max"},
        "Distillation": {"loss": "l2", "alpha": 1.0},
        "TrainConfig": {"train_iter": iters, "learning_rate": lr,
                        "optimizer_builder": {"optimizer": opt,
                                              "weight_decay": args.weight_decay},
                        "eval_iter": iters, "logging_iter": max(1, args.logging_iter)},
    }


def write_config(path: Path, cfg: dict) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


# ------------------------------------------------------------------ ACT (runs in a worker process)
def act_worker(spec_file: str) -> int:
    """Run one AutoCompression job described by a JSON spec; write timings to spec['result']."""
    spec = json.loads(Path(spec_file).read_text())
    res: dict = {"ok": False}
    t_proc = time.perf_counter()
    try:
        import paddle
        from paddleslim.auto_compression import AutoCompression

        paddle.set_device("cpu")
        paddle.seed(int(spec["seed"]))   # dropout in ACT's training program still varies run to run
        res["t_import_s"] = time.perf_counter() - t_proc
        data = np.load(spec["train"])
        x = data[spec["feed"]] if spec["feed"] in data.files else data["image"]
        bs = int(spec["batch_size"])
        n_full = len(x) // bs
        calls = {"n": 0}

        def loader():   # a fresh, deterministic shuffle per call (= per ACT epoch)
            rng = np.random.default_rng(spec["seed"] + calls["n"])
            calls["n"] += 1
            perm = rng.permutation(len(x))
            for i in range(n_full):
                yield {spec["feed"]: x[perm[i * bs:(i + 1) * bs]]}

        t0 = time.perf_counter()
        ac = AutoCompression(model_dir=spec["model_dir"], model_filename="model.pdmodel",
                             params_filename="model.pdiparams", save_dir=spec["save_dir"],
                             config=spec["config"], train_dataloader=loader,
                             eval_callback=None)
        res["t_init_s"] = time.perf_counter() - t0
        res["strategies"] = list(map(str, getattr(ac, "_strategy", [])))
        loop = {}
        orig = ac._start_train

        def timed_start_train(*a, **k):
            s = time.perf_counter()
            out = orig(*a, **k)
            loop["s"] = time.perf_counter() - s
            return out

        ac._start_train = timed_start_train
        if spec.get("qmax_train"):
            # Paddle 3.x's quantize_linear takes its grid from qmin/qmax (default -128/127), not
            # from bit_length, and PaddleSlim 2.6 never sets them: without this its "W4A4" QAT
            # trains on 8-bit grids (the losses are bit-identical to W8A8's).
            # Patch the programs as build_quant_program returns them: _prepare_program wraps them
            # in CompiledProgram right after, which copies the desc (later edits are ignored).
            import paddleslim.auto_compression.compressor as act_compressor

            orig_bqp = act_compressor.build_quant_program

            def bqp_with_qmax(*a, **k):
                tr, te, cfg = orig_bqp(*a, **k)
                res["qmax_train_patched_ops"] = sum(_set_qmin_qmax_static(getattr(
                    pi.program, "_program", pi.program)) for pi in (tr, te))
                return tr, te, cfg

            act_compressor.build_quant_program = bqp_with_qmax
        t0 = time.perf_counter()
        ac.compress()
        res["t_compress_s"] = time.perf_counter() - t0
        res["t_train_loop_s"] = loop.get("s")
        res["ok"] = True
    except BaseException as e:  # noqa: BLE001 - record, don't crash the benchmark
        res["error"] = f"{type(e).__name__}: {e}"
        res["traceback"] = traceback.format_exc()[-4000:]
    res["t_process_s"] = time.perf_counter() - t_proc
    Path(spec["result"]).write_text(json.dumps(res))
    return 0 if res["ok"] else 1


def _set_qmin_qmax_static(program) -> int:
    n = 0
    for block in program.blocks:
        for op in block.ops:
            if op.type in ("quantize_linear", "dequantize_linear"):
                bits = int(op.attr("bit_length")) if op.has_attr("bit_length") else 8
                op._set_attr("qmin", -(1 << (bits - 1)))
                op._set_attr("qmax", (1 << (bits - 1)) - 1)
                n += 1
    return n


_LOSS_RE = re.compile(r"Total iter: (\d+), epoch: \d+, batch: \d+, loss: \[?([-\d.eE+naif]+)")


# ACT variants (--tools): which of the fixes each one gets. "act" = the two required model fixes,
# plus whatever --act-bn-batch-stats / --act-qmax-train / --no-act-fixes say.
ACT_VARIANTS = {
    "act_raw": {"fixes": False, "bn": False, "qmax": False},
    "act": None,
    "act_bn": {"fixes": True, "bn": True, "qmax": False},
    "act_all": {"fixes": True, "bn": True, "qmax": True},
}
TOOLS = list(ACT_VARIANTS) + ["actc"]


def act_variant(tool: str, args) -> dict:
    v = ACT_VARIANTS[tool]
    if v is None:
        v = {"fixes": not args.no_act_fixes, "bn": args.act_bn_batch_stats,
             "qmax": args.act_qmax_train}
    return v


def run_act(case, args, iters: int, run_dir: Path, cfg_path: Path, tool: str = "act") -> dict:
    v = act_variant(tool, args)
    model_copy = run_dir / "act_model"
    fixes = fix_model_for_act(case["model"], model_copy, enabled=v["fixes"],
                              rename=args.act_rename, bn_batch_stats=v["bn"])
    if v["qmax"]:
        fixes.append("set qmin/qmax on the quantize_linear/dequantize_linear ops of ACT's "
                     "training and test programs (in the worker)")
    out = run_dir / "act_out"
    spec = {"model_dir": str(model_copy), "save_dir": str(out), "config": str(cfg_path),
            "train": str(case["train"]), "feed": case["feed"], "batch_size": args.batch_size,
            "seed": args.seed, "result": str(run_dir / "act_result.json"),
            "qmax_train": bool(v["qmax"])}
    spec_file = run_dir / "act_spec.json"
    spec_file.write_text(json.dumps(spec))
    log = run_dir / "act.log"
    t0 = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve()),
                               "--act-worker", str(spec_file)], stdout=f,
                              stderr=subprocess.STDOUT, env=_child_env(), cwd=str(run_dir),
                              timeout=args.timeout)
    wall = time.perf_counter() - t0
    res = json.loads(Path(spec["result"]).read_text()) if Path(spec["result"]).exists() else {
        "ok": False, "error": f"worker exited {proc.returncode} without a result"}
    res.update({"wall_s": wall, "fixes": fixes, "iters": iters, "log": str(log)})
    n_batches = len(np.load(case["train"])["image"]) // args.batch_size
    if iters > 100 * n_batches:
        res["warning"] = (f"ACT without TrainConfig.epochs stops after 100 epochs = "
                          f"{100 * n_batches} iterations, not {iters}")
    text = log.read_text(errors="replace")
    losses = [(int(m.group(1)), float(m.group(2))) for m in _LOSS_RE.finditer(text)]
    if losses:
        res["loss_first"], res["loss_last"] = losses[0][1], losses[-1][1]
    if not res.get("ok"):
        res["log_tail"] = text[-3000:]
        return res
    res["model_dir"] = str(out)
    res["quant"] = quant_summary(out)
    res["acc"] = evaluate(out, case["test"])
    if BITS[args.bits][0] < 8 or BITS[args.bits][1] < 8:
        res["qmax_patched_ops"] = patch_qmin_qmax(out, run_dir / "act_out_qmax")
        res["acc_qmax_patched"] = evaluate(run_dir / "act_out_qmax", case["test"])
    if res.get("t_train_loop_s"):
        res["s_per_iter_loop"] = res["t_train_loop_s"] / iters
    return res


# ------------------------------------------------------------------ actc (subprocess CLI)
_ACTC_ITER_RES = [
    re.compile(r"([\d.]+)\s*s/it(?:er)?\b"),
    re.compile(r"([\d.]+)\s*ms/it(?:er)?\b"),
    re.compile(r"(\d+)\s+iter(?:ation)?s?\s+in\s+([\d.]+)\s*s"),
]


def run_actc(case, args, iters: int, run_dir: Path, cfg_path: Path, tool: str = "actc") -> dict:
    py = Path(args.actc_python)
    if not py.exists():
        return {"ok": False, "error": f"actc python {py} not found"}
    out = run_dir / "actc_out"
    cmd = [str(py), "-m", "actc", "compile", str(case["model"]), "--config", str(cfg_path),
           "-o", str(out), "--data", str(case["train"]), "--eval-data", str(case["test"]),
           "--device", "cpu", "--time-passes"]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=_child_env(),
                              cwd=str(ROOT), timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {args.timeout}s", "cmd": cmd}
    wall = time.perf_counter() - t0
    text = (proc.stdout or "") + (proc.stderr or "")
    (run_dir / "actc.log").write_text(text)
    res = {"wall_s": wall, "iters": iters, "cmd": " ".join(cmd), "rc": proc.returncode,
           "log": str(run_dir / "actc.log")}
    if proc.returncode != 0 or not (out / "model.pdmodel").exists():
        lines = [ln for ln in text.strip().splitlines() if ln.strip()]
        err = next((ln for ln in reversed(lines) if "error" in ln.lower()),
                   lines[-1] if lines else f"exit {proc.returncode}")
        res.update({"ok": False, "error": err.strip(), "log_tail": text[-3000:]})
        return res
    res["ok"] = True
    res["model_dir"] = str(out)
    res["quant"] = quant_summary(out)
    res["acc"] = evaluate(out, case["test"])
    m = re.search(r"train: (\d+) iterations x (\d+)", text)
    if m:
        res["iters_reported"], res["batch_reported"] = int(m.group(1)), int(m.group(2))
        if res["batch_reported"] != args.batch_size:
            res["warning"] = (f"actc trained with batch {res['batch_reported']}, not "
                              f"--batch-size {args.batch_size} (it ignores Global.batch_size)")
    m = re.search(r"last loss ([-\d.eE+naif]+)", text)
    if m:
        res["loss_last"] = float(m.group(1))
    for rx in _ACTC_ITER_RES:
        m = rx.search(text)
        if m:
            if rx.groups == 2:
                res["s_per_iter_reported"] = float(m.group(2)) / max(1, int(m.group(1)))
            else:
                v = float(m.group(1))
                res["s_per_iter_reported"] = v / 1000 if "ms/" in rx.pattern else v
            break
    return res


def _child_env() -> dict:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = os.environ.get("OMP_NUM_THREADS", "1")
    env["FLAGS_enable_pir_api"] = "0"
    env.setdefault("GLOG_minloglevel", "2")
    env["CUDA_VISIBLE_DEVICES"] = ""
    return env


# ------------------------------------------------------------------ driver
def run_tool(tool, case, args, work: Path) -> dict:
    runner = run_actc if tool == "actc" else run_act
    reps = []
    for r in range(args.repeats):
        (work / "runs").mkdir(parents=True, exist_ok=True)
        run_dir = Path(tempfile.mkdtemp(prefix=f"{tool}_{case['name']}_{args.bits}_r{r}_",
                                        dir=work / "runs"))
        cfg = write_config(run_dir / "config.yaml", make_config(args, args.iters))
        res = runner(case, args, args.iters, run_dir, cfg, tool)
        if res.get("ok") and not args.no_overhead_run and args.iters > 1:
            one_dir = run_dir / "one_iter"
            one_dir.mkdir()
            cfg1 = write_config(one_dir / "config.yaml", make_config(args, 1))
            one = runner(case, args, 1, one_dir, cfg1, tool)
            if one.get("ok"):
                res["wall_1iter_s"] = one["wall_s"]
                res["s_per_iter_diff"] = (res["wall_s"] - one["wall_s"]) / (args.iters - 1)
                res["overhead_s"] = one["wall_s"] - res["s_per_iter_diff"]
            else:
                res["one_iter_error"] = one.get("error")
        res["run_dir"] = str(run_dir)
        print(f"  {tool} r{r}: " + json.dumps({k: v for k, v in res.items() if k in (
            "ok", "error", "acc", "acc_qmax_patched", "wall_s", "s_per_iter_loop",
            "s_per_iter_diff", "s_per_iter_reported", "overhead_s", "loss_first", "loss_last",
            "fixes", "warning")}), flush=True)
        reps.append(res)
        if not args.keep:
            for sub in ("act_model", "act_out_qmax"):
                shutil.rmtree(run_dir / sub, ignore_errors=True)
    return summarize(reps)


def summarize(reps: list[dict]) -> dict:
    ok = [r for r in reps if r.get("ok")]
    if not ok:
        return {"ok": False, "error": reps[0].get("error"), "runs": reps}
    out = {"ok": True, "runs": reps}
    for k in ("acc", "acc_qmax_patched", "loss_last", "wall_s", "s_per_iter_loop", "s_per_iter_diff",
              "s_per_iter_reported", "overhead_s", "wall_1iter_s", "t_init_s", "t_compress_s",
              "t_train_loop_s"):
        vals = [r[k] for r in ok if r.get(k) is not None]
        if vals:
            out[k] = statistics.median(vals)
    out["fixes"] = ok[0].get("fixes")
    return out


def fmt_table(result: dict) -> str:
    def pct(v):
        return "-" if v is None else f"{100 * v:.2f}"

    def sec(v, nd=4):
        return "-" if v is None else f"{v:.{nd}f}"

    def loss(v):
        return "-" if v is None else f"{v:.3g}"

    lines = [f"model {result['model']}, {result['bits']}, {result['iters']} iters x batch "
             f"{result['batch_size']}, lr {result['lr']} ({result['lr_schedule']}), "
             f"{result['optimizer']}, repeats {result['repeats']} (medians); "
             f"fp32 top-1 {pct(result['fp32_acc'])} %", "",
             "| tool | top-1 % | top-1 % (qmin/qmax patched) | last loss | s/iter (loop) | "
             "s/iter (diff) | overhead s | wall s |", "|---|---|---|---|---|---|---|---|"]
    notes = []
    for tool, r in result["tools"].items():
        if not r.get("ok"):
            lines.append(f"| {tool} | error: {str(r.get('error'))[:160]} | | | | | | |")
            continue
        lines.append(f"| {tool} | {pct(r.get('acc'))} | {pct(r.get('acc_qmax_patched'))} | "
                     f"{loss(r.get('loss_last'))} | "
                     f"{sec(r.get('s_per_iter_loop') or r.get('s_per_iter_reported'))} | "
                     f"{sec(r.get('s_per_iter_diff'))} | {sec(r.get('overhead_s'), 2)} | "
                     f"{sec(r.get('wall_s'), 2)} |")
        if tool != "actc":
            notes.append(f"{tool}: " + ("; ".join(r.get("fixes") or []) or "no fixes"))
        warn = {x.get("warning") for x in r.get("runs", []) if x.get("warning")}
        notes += [f"{tool}: {w}" for w in sorted(warn)]
    if notes:
        lines += [""] + notes
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=["digits", "mbv2_digits"], default="digits")
    ap.add_argument("--iters", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=0.005)
    ap.add_argument("--lr-schedule", choices=["const", "piecewise"], default="const",
                    help="piecewise: PiecewiseDecay, lr until 2/3 of the iterations, then lr/10")
    ap.add_argument("--optimizer", choices=["Momentum", "SGD"], default="Momentum")
    ap.add_argument("--weight-decay", type=float, default=4e-5)
    ap.add_argument("--bits", choices=list(BITS), default="W8A8")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--tools", nargs="+", choices=TOOLS, default=["act", "actc"],
                    help="act: ACT with the two required model fixes (and the --act-* flags); "
                         "act_raw: no fixes; act_bn: + BN batch statistics; act_all: + BN and "
                         "qmin/qmax in training; actc: actc compile")
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK,
                    help="cache of built models and run dirs (default /tmp/actc_bench)")
    ap.add_argument("--actc-python", default=str(DEFAULT_ACTC_PYTHON),
                    help="python with actc installed (default: the repo's .venv)")
    ap.add_argument("--no-act-fixes", action="store_true",
                    help="give ACT the model as exported (shows the tmp_N / Mask failure)")
    ap.add_argument("--act-rename", choices=["tmp", "all"], default="tmp",
                    help="fix 1 on tmp_N vars only (default) or on every non-persistable var")
    ap.add_argument("--act-bn-batch-stats", action="store_true",
                    help="fix 3 (optional): batch_norm use_global_stats=False so ACT's QAT trains "
                         "BN on batch statistics instead of frozen running statistics")
    ap.add_argument("--act-qmax-train", action="store_true",
                    help="fix 4 (optional, sub-8-bit): set qmin/qmax on the quantize_linear ops of "
                         "ACT's training program, so W4A4 QAT really trains 4-bit grids")
    ap.add_argument("--act-all-fixes", action="store_true",
                    help="= --act-bn-batch-stats --act-qmax-train (on top of the two required)")
    ap.add_argument("--no-overhead-run", action="store_true",
                    help="skip the 1-iteration run used to split off load/save overhead")
    ap.add_argument("--logging-iter", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=int, default=1800, help="per tool run, seconds")
    ap.add_argument("--keep", action="store_true", help="keep ACT's model copies")
    ap.add_argument("--out-json", default=None, help="write the results here")
    ap.add_argument("--act-worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.act_worker:
        return act_worker(args.act_worker)
    if args.act_all_fixes:
        args.act_bn_batch_stats = args.act_qmax_train = True

    args.work.mkdir(parents=True, exist_ok=True)
    case = get_case(args.model, args.work)
    fp32 = evaluate(case["model"], case["test"])
    print(f"{args.model}: fp32 top-1 {100 * fp32:.2f} % on {case['test']}", flush=True)
    result = {"model": args.model, "bits": args.bits, "iters": args.iters,
              "batch_size": args.batch_size, "lr": args.lr, "lr_schedule": args.lr_schedule,
              "optimizer": args.optimizer, "weight_decay": args.weight_decay,
              "repeats": args.repeats, "fp32_acc": fp32, "config": make_config(args, args.iters),
              "train_data": str(case["train"]), "test_data": str(case["test"]),
              "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "tools": {}}
    for tool in args.tools:
        print(f"running {tool} ...", flush=True)
        result["tools"][tool] = run_tool(tool, case, args, args.work)
    print()
    print(fmt_table(result))
    if args.out_json:
        Path(args.out_json).write_text(json.dumps(result, indent=1, default=str))
        print(f"\nwrote {args.out_json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
