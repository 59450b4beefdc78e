"""Latency of channel-pruned models vs fp32 in Paddle Inference on CPU (oneDNN), measured by
``actc bench`` with the fp32 and the pruned model back to back in the same run.

    python benchmarks/prune_latency.py --models resnet18 mobilenet_v2 --batch 1 8

Each model comes from the corpus cache (tests/test_corpus.py builds it: Paddle's model zoo,
pretrained=False, 224x224), or is a model directory (e.g. the MobileNetV2-style digits model
of benchmarks/digits_models.py, benched at a larger input with --shape since its adaptive
pool takes any size), and is pruned by `prune_channels` alone (no fine-tuning: latency
does not depend on the weights' values) at each ratio / round_to given. The machine load
(`uptime`) is recorded before and after, since other processes may share the cores.
Writes benchmarks/results/prune_latency.md.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

CORPUS = Path.home() / ".cache" / "actc" / "corpus" / "paddle-3.3.1"
RESULTS = Path(__file__).resolve().parent / "results" / "prune_latency.md"


def actc(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "actc", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"actc {' '.join(args)} failed:\n{proc.stderr}")
    return proc


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["resnet18", "mobilenet_v2"])
    ap.add_argument("--batch", nargs="+", default=["1", "8"])
    ap.add_argument("--ratio", nargs="+", default=["0.5"])
    ap.add_argument("--round-to", nargs="+", default=["1", "8"])
    ap.add_argument("--ops", default="op.type == conv2d and op.attr.groups == 1",
                    help="the prune_channels selector (ACT ChannelPrune's default targets)")
    ap.add_argument("--repeats", default="30")
    ap.add_argument("--rounds", default="2", help="bench calls per model (lowest median kept)")
    ap.add_argument("--threads", default="1")
    ap.add_argument("--shape", action="append", default=[], metavar="MODEL=FEED:DxDxD",
                    help="a feed shape for one model's bench (e.g. mbv2_digits=image:1x1x224x224)")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    shapes = dict(item.split("=", 1) for item in args.shape)
    where = {m: Path(m) if Path(m).is_dir() else CORPUS / m for m in args.models}
    missing = [m for m in args.models if not where[m].is_dir()]
    if missing:
        print(f"prune_latency: not in the corpus cache {CORPUS}: {', '.join(missing)} (run "
              "the corpus tests once to build it)", file=sys.stderr)
        return 2
    home = str(Path.home())
    cmd = " ".join(["python benchmarks/prune_latency.py", "--models",
                    *[m.replace(home, "~") for m in args.models],
                    *[f"--shape {x}" for x in args.shape], "--batch",
                    *args.batch, "--ratio", *args.ratio, "--round-to", *args.round_to,
                    "--threads", args.threads, "--rounds", args.rounds])
    lines = ["# Channel pruning latency: pruned vs fp32, Paddle Inference CPU (oneDNN)", "",
             f"`{cmd}`; prune_channels(ops: {args.ops}) only, no fine-tuning; "
             f"{args.threads} thread(s); median of {args.repeats} runs after warm-up, fp32 and "
             f"the pruned models in one `actc bench` call, {args.rounds} calls, the lowest "
             "median kept; load = `uptime` averages (1, 5, 15 min) on 2 shared cores.", "",
             "| model | ratio | round_to | batch | fp32 ms | pruned ms | speed-up | MFLOPs fp32 "
             "-> pruned | weights MiB | load before / after |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    configs = []
    with tempfile.TemporaryDirectory(prefix="actc-prune-lat-") as tmp:
        for m in args.models:
            name = where[m].name
            variants = []
            for ratio in args.ratio:
                for rt in args.round_to:
                    recipe = Path(tmp) / f"r{ratio}-{rt}.actc"
                    recipe.write_text(f"recipe m() {{ prune_channels(ops: {args.ops}, ratio: "
                                      f"{ratio}, round_to: {rt}) }}\n")
                    out = Path(tmp) / f"{name}-{ratio}-{rt}"
                    proc = actc("compile", str(where[m]), "--recipe", str(recipe), "-o",
                                str(out), "--no-eval")
                    size = re.search(r"model: \d+ bytes of weights, ([\d.]+) MFLOPs -> \d+ "
                                     r"bytes of weights, ([\d.]+) MFLOPs", proc.stderr)
                    flops = f"{size.group(1)} -> {size.group(2)}" if size else "?"
                    variants.append((ratio, rt, out, flops))
            # every model of this row in one bench call (fp32 first), args.rounds times; the
            # lowest median of the rounds is kept (other processes only ever add time)
            before = load()
            best: list[dict] = []
            for _ in range(int(args.rounds)):
                shape = ["--shape", shapes[name]] if name in shapes else []
                rows = json.loads(actc("bench", str(where[m]), *[str(v[2]) for v in variants],
                                       "--batch", *args.batch, "--repeats", args.repeats,
                                       "--threads", args.threads, *shape, "--json").stdout)
                if not best:
                    best = rows
                    continue
                for kept, row in zip(best, rows):
                    for b in args.batch:
                        if row["batches"][b]["median_ms"] < kept["batches"][b]["median_ms"]:
                            kept["batches"][b] = row["batches"][b]
            after = load()
            fp32 = best[0]
            configs = [fp32["config"]]
            for (ratio, rt, _, flops), pruned in zip(variants, best[1:]):
                for b in args.batch:
                    f = fp32["batches"][b]["median_ms"]
                    q = pruned["batches"][b]["median_ms"]
                    lines.append(
                        f"| {name}{' ' + shapes[name].split(':')[-1] if name in shapes else ''}"
                        f" | {ratio} | {rt} | {b} | {f:.2f} | {q:.2f} | {f / q:.2f}x | "
                        f"{flops} | {fp32['size_bytes'] / 2**20:.1f} -> "
                        f"{pruned['size_bytes'] / 2**20:.1f} | {before} / {after} |")
                    print(lines[-1], flush=True)
    lines += ["", "MFLOPs: actc's count over the declared shapes (one sample; for a model benched "
              "with --shape, at the input size it declares).", "",
              f"config: {configs[0]}" if configs else "", ""]
    Path(args.out).write_text("\n".join(lines))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
