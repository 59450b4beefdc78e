"""restore_xshape's effect on deployment latency (issue 9): tfm_encoder pruned at 0.5 with
and without the XShape outputs (the unpruned fixture too), timed by ``actc bench`` on CPU
(oneDNN, 1 thread) in rounds that alternate the models' order.

    python benchmarks/xshape_latency.py --rounds 50

A shared machine's load moves between runs, so each round times all models back to back and
the summary gives, per model and batch, the median and the min over rounds of ``actc bench``'s
median, and the median over rounds of the per-round ratio with / without XShape. It also
counts the ops Paddle Inference keeps after its IR optimisation. Writes
benchmarks/results/xshape_latency.md.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "tfm_encoder"
RESULTS = Path(__file__).resolve().parent / "results" / "xshape_latency.md"
RECIPES = {"tp50": "recipe m() { prune_transformer(ratio: 0.5) }",
           "tp50+xshape": "recipe m() { prune_transformer(ratio: 0.5) restore_xshape() }",
           "fp32+xshape": "recipe m() { restore_xshape() }"}


def actc(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "actc", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"actc {' '.join(args)} failed:\n{proc.stderr}")
    return proc.stdout


def optimized_ops(model: Path, work: Path) -> int:
    """Ops in the main block after Paddle Inference's IR optimisation (oneDNN)."""
    import paddle.inference as pi
    from actc.proto import framework_pb2 as fpb

    cache = Path(tempfile.mkdtemp(dir=work))
    cfg = pi.Config(str(model / "model.pdmodel"), str(model / "model.pdiparams"))
    cfg.disable_gpu()
    cfg.enable_mkldnn()
    cfg.disable_glog_info()
    cfg.set_optim_cache_dir(str(cache))
    cfg.enable_save_optim_model(True)
    pi.create_predictor(cfg)
    desc = fpb.ProgramDesc()
    desc.ParseFromString((cache / "_optimized.pdmodel").read_bytes())
    return len(desc.blocks[0].ops)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--repeats", default="300")
    ap.add_argument("--warmup", default="50")
    ap.add_argument("--batch", nargs="+", default=["1", "8"])
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="xshape_latency_"))
    models = {"fp32": FIXTURE}
    for name, text in RECIPES.items():
        (work / f"{name}.actc").write_text(text)
        models[name] = work / name
        actc("compile", str(FIXTURE), "--recipe", str(work / f"{name}.actc"), "-o",
             str(models[name]), "--data", str(FIXTURE / "train.npz"))
    names = list(models)
    ops = {n: optimized_ops(Path(models[n]), work) for n in names}
    runs = collections.defaultdict(list)  # (model, batch) -> actc bench's median per round
    load = [os.getloadavg()[0]]
    for i in range(args.rounds):
        order = names if i % 2 == 0 else names[::-1]
        out = json.loads(actc("bench", *(str(models[n]) for n in order), "--batch", *args.batch,
                              "--warmup", args.warmup, "--repeats", args.repeats, "--json"))
        for n, r in zip(order, out):
            for b, v in r["batches"].items():
                runs[(n, b)].append(v["median_ms"])
        print(f"round {i + 1}/{args.rounds}", file=sys.stderr)
    load.append(os.getloadavg()[0])
    lines = ["# restore_xshape: Paddle Inference latency with and without XShape", "",
             f"`python benchmarks/xshape_latency.py --rounds {args.rounds} --repeats "
             f"{args.repeats}` (actc bench: CPU, oneDNN, 1 thread; tfm_encoder, pruned "
             "models ranked by the default distill_loss on train.npz). Per model and batch: "
             "`actc bench`'s median per round, then its median and min over the rounds; "
             "ratio = the median over rounds of (with XShape / without) in the same round. "
             f"{os.cpu_count()} cores, load average {load[0]:.1f} before, {load[1]:.1f} after.",
             "",
             "| model | ops after IR optimisation | batch | median ms | min ms | ratio |",
             "|---|---|---|---|---|---|"]
    for n in names:
        for b in args.batch:
            xs = runs[(n, b)]
            ratio = ""
            if n.endswith("+xshape"):
                base = runs[(n[:-len("+xshape")], b)]
                rs = [x / y for x, y in zip(xs, base)]
                ratio = (f"{statistics.median(rs):.3f} (faster in {sum(r < 1 for r in rs)}/"
                         f"{len(rs)} rounds)")
            lines.append(f"| {n} | {ops[n]} | {b} | {statistics.median(xs):.3f} | "
                         f"{min(xs):.3f} | {ratio} |")
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
