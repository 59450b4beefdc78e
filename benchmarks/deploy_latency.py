"""Deployment latency: actc's default PTQ output vs the fp32 model in Paddle Inference on CPU,
each with the configuration actc recommends (fp32: oneDNN; int8: oneDNN int8), measured by
``actc bench`` (each model in its own process; medians after warm-up).

    python benchmarks/deploy_latency.py --models resnet18 mobilenet_v2 --batch 1 8

Models come from the corpus cache (tests/test_corpus.py builds it: Paddle's model zoo with
pretrained=False, 224x224 inputs). Calibration uses random inputs: latency does not depend on
the weights' values. Writes benchmarks/results/deploy_latency.md.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CORPUS = Path.home() / ".cache" / "actc" / "corpus" / "paddle-3.3.1"
RESULTS = Path(__file__).resolve().parent / "results" / "deploy_latency.md"


def actc(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "actc", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"actc {' '.join(args)} failed:\n{proc.stderr}")
    return proc.stdout


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["resnet18", "mobilenet_v2"])
    ap.add_argument("--batch", nargs="+", default=["1", "8"])
    ap.add_argument("--repeats", default="30")
    ap.add_argument("--threads", default="1")
    args = ap.parse_args(argv)
    missing = [m for m in args.models if not (CORPUS / m).is_dir()]
    if missing:
        print(f"deploy_latency: not in the corpus cache {CORPUS}: {', '.join(missing)} (run "
              "the corpus tests once to build it)", file=sys.stderr)
        return 2
    lines = ["# Deployment latency: actc PTQ (default recipe) vs fp32, Paddle Inference CPU", "",
             f"`python benchmarks/deploy_latency.py --models {' '.join(args.models)} --batch "
             f"{' '.join(args.batch)}`; {args.threads} thread(s); median of {args.repeats} runs "
             "after warm-up.", "",
             "| model | batch | fp32 ms | int8 ms | speed-up | fp32 size | int8 size |",
             "|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory(prefix="actc-deploy-") as tmp:
        data = Path(tmp) / "calib.npz"
        np.savez(data, image=np.random.default_rng(0).standard_normal(
            (64, 3, 224, 224)).astype("float32"))
        for m in args.models:
            out = Path(tmp) / f"{m}-int8"
            actc("compile", str(CORPUS / m), "--recipe", "ptq", "--data", str(data), "--set",
                 "batch_size=16", "--set", "batch_nums=4", "-o", str(out), "-q", "--no-eval")
            rows = json.loads(actc("bench", str(CORPUS / m), str(out), "--batch", *args.batch,
                                   "--repeats", args.repeats, "--threads", args.threads,
                                   "--json"))
            fp32, int8 = rows
            for b in args.batch:
                f, q = fp32["batches"][b]["median_ms"], int8["batches"][b]["median_ms"]
                lines.append(f"| {m} | {b} | {f:.2f} | {q:.2f} | {f / q:.2f}x | "
                             f"{fp32['size_bytes'] / 2**20:.1f} MiB | "
                             f"{int8['size_bytes'] / 2**20:.1f} MiB |")
                print(lines[-1])
    lines += ["", f"fp32 config: {fp32['config']}", "", f"int8 config: {int8['config']}", ""]
    RESULTS.write_text("\n".join(lines))
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
