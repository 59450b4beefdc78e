"""What ``algo: auto`` costs over ``hist`` (ACT's default): the calibrate step's wall and CPU
time, medians of alternating runs.

    python benchmarks/auto_cost.py                       # example + MobileNetV2-style, W8A8/W4A4
    python benchmarks/auto_cost.py --models example --repeats 3

Each run is ``actc compile MODEL --recipe ptq --set algo=... --time-passes`` in a subprocess,
as a user runs it; hist and auto alternate so that a change in machine load hits both. The
CPU time (``[time] calibrate: ... (cpu ...)``) moves far less than the wall time on a shared
machine, so the ratio of CPU medians is the figure of merit (issue 12: auto <= 1.5x hist).
Writes ``benchmarks/results/auto_cost.{md,json}``. Memory on a large input:
``benchmarks/calib_memory.py --algo auto``.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE))

from ptq_defaults import SETTINGS, model_args  # noqa: E402

TIME = re.compile(r"\[time\] calibrate: ([0-9.]+) ms \(cpu ([0-9.]+) ms\)")
SNR = re.compile(r"SNR (-?[0-9.]+) dB vs float")


def run(model: str, extra: list[str], flags: list[str]) -> dict:
    out = Path(os.environ.get("TMPDIR", "/tmp")) / "actc_auto_cost"
    cmd = [sys.executable, "-m", "actc", "compile", model, "--recipe", "ptq", "-o", str(out),
           "--time-passes", *extra, *flags]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))
    text = r.stdout + r.stderr
    t, snr = TIME.search(text), SNR.search(text)
    if r.returncode != 0 or t is None:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{text[-2000:]}")
    return {"wall_s": float(t.group(1)) / 1000, "cpu_s": float(t.group(2)) / 1000,
            "snr_db": float(snr.group(1)) if snr else None}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["example", "mbv2_digits"])
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    rows = []
    for name in args.models:
        model, extra = model_args(name)
        for setting in args.settings:
            w, a = SETTINGS[setting]
            bits = ["--set", f"weight_bits={w}", "--set", f"activation_bits={a}"]
            runs: dict[str, list[dict]] = {"hist": [], "auto": []}
            for _ in range(args.repeats):
                for algo in runs:
                    runs[algo].append(run(model, extra, bits + ["--set", f"algo={algo}"]))
            row = {"model": name, "setting": setting, "repeats": args.repeats}
            for algo, got in runs.items():
                row[algo] = {k: statistics.median(g[k] for g in got) for k in ("wall_s", "cpu_s")}
                row[algo]["snr_db"] = got[0]["snr_db"]
            row["cpu_ratio"] = row["auto"]["cpu_s"] / row["hist"]["cpu_s"]
            row["wall_ratio"] = row["auto"]["wall_s"] / row["hist"]["wall_s"]
            rows.append(row)
            print(json.dumps(row), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "auto_cost.json").write_text(json.dumps(rows, indent=1) + "\n")
    load = os.getloadavg()[0]
    lines = ["# algo auto vs hist: calibrate step time", "",
             f"`python benchmarks/auto_cost.py --repeats {args.repeats}` (medians of "
             f"{args.repeats} alternating runs each, OMP_NUM_THREADS=1, load average "
             f"{load:.1f} on 2 cores at the end).", "",
             "| model | setting | hist cpu s | auto cpu s | cpu ratio | hist wall s | auto wall s "
             "| wall ratio | SNR dB hist / auto |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        h, u = r["hist"], r["auto"]
        lines.append(f"| {r['model']} | {r['setting']} | {h['cpu_s']:.2f} | {u['cpu_s']:.2f} | "
                     f"{r['cpu_ratio']:.2f}x | {h['wall_s']:.2f} | {u['wall_s']:.2f} | "
                     f"{r['wall_ratio']:.2f}x | {h['snr_db']:.2f} / {u['snr_db']:.2f} |")
    (RESULTS / "auto_cost.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
