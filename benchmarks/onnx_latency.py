"""ONNX latency: actc's default PTQ output exported as int8 QDQ vs the fp32 export, both in
onnxruntime on CPU, measured by ``actc bench`` (each model in its own process; medians after
warm-up).

    python benchmarks/onnx_latency.py --models resnet18 mobilenet_v2 --batch 1 8

For each model: ``actc compile --recipe ptq``, then ``actc export`` three times: fp32; int8
mirroring Paddle's quantizers exactly (conv outputs float); and int8 completed with ``--data``
(conv/add outputs quantized, so onnxruntime runs QLinearConv/QLinearAdd). The kernels
onnxruntime ends up with (its optimized graph) are listed for the completed model. Models come
from the corpus cache (tests/test_corpus.py builds it; 224x224); calibration uses random
inputs: latency does not depend on the weights' values. The machine's load (``uptime``) is
recorded, since other processes share the cores. Writes benchmarks/results/onnx_latency.md.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

CORPUS = Path.home() / ".cache" / "actc" / "corpus" / "paddle-3.3.1"
RESULTS = Path(__file__).resolve().parent / "results" / "onnx_latency.md"


def actc(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "actc", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"actc {' '.join(args)} failed:\n{proc.stderr}")
    return proc.stdout


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def ort_kernels(path: Path, threads: int) -> Counter:
    """Node types of onnxruntime's optimized graph (what actually runs)."""
    import onnx
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    so.optimized_model_filepath = str(path.with_suffix(".opt.onnx"))
    ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return Counter(n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node)


def main(argv=None) -> int:
    import onnxruntime as ort

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["resnet18", "mobilenet_v2"])
    ap.add_argument("--batch", nargs="+", default=["1", "8"])
    ap.add_argument("--repeats", default="30")
    ap.add_argument("--threads", default="1")
    ap.add_argument("--rounds", type=int, default=3,
                    help="actc bench runs per model; the best median of the rounds is kept "
                         "(other processes share the cores)")
    args = ap.parse_args(argv)
    missing = [m for m in args.models if not (CORPUS / m).is_dir()]
    if missing:
        print(f"onnx_latency: not in the corpus cache {CORPUS}: {', '.join(missing)} (run "
              "the corpus tests once to build it)", file=sys.stderr)
        return 2
    loads = [f"start: {load()}"]
    lines = ["# ONNX latency: fp32 export vs actc PTQ int8 QDQ export, onnxruntime CPU", "",
             f"`python benchmarks/onnx_latency.py --models {' '.join(args.models)} --batch "
             f"{' '.join(args.batch)}`; onnxruntime {ort.__version__}, {args.threads} "
             f"thread(s); median of {args.repeats} runs after warm-up, best of {args.rounds} "
             "rounds.", "",
             "| model | batch | fp32 ms | int8 exact-mirror ms | int8 QDQ (--data) ms | "
             "speed-up | fp32 size | int8 size |",
             "|---|---|---|---|---|---|---|---|"]
    kernels = []
    config = ""
    with tempfile.TemporaryDirectory(prefix="actc-onnx-") as tmp:
        tmp = Path(tmp)
        data = tmp / "calib.npz"
        np.savez(data, image=np.random.default_rng(0).standard_normal(
            (64, 3, 224, 224)).astype("float32"))
        for m in args.models:
            q = tmp / f"{m}-int8"
            actc("compile", str(CORPUS / m), "--recipe", "ptq", "--data", str(data), "--set",
                 "batch_size=16", "--set", "batch_nums=4", "-o", str(q), "-q", "--no-eval")
            fp32, exact, fast = (tmp / f"{m}-{k}.onnx" for k in ("fp32", "exact", "qdq"))
            actc("export", str(CORPUS / m), "-o", str(fp32))
            actc("export", str(q), "-o", str(exact))
            actc("export", str(q), "-o", str(fast), "--data", str(data))
            rounds = [json.loads(actc("bench", str(fp32), str(exact), str(fast), "--batch",
                                      *args.batch, "--repeats", args.repeats, "--threads",
                                      args.threads, "--json")) for _ in range(args.rounds)]
            rows = rounds[0]
            config = rows[0]["config"]
            for b in args.batch:
                f, e, s = (min(r[i]["batches"][b]["median_ms"] for r in rounds)
                           for i in range(3))
                lines.append(f"| {m} | {b} | {f:.2f} | {e:.2f} | {s:.2f} | {f / s:.2f}x | "
                             f"{rows[0]['size_bytes'] / 2**20:.1f} MiB | "
                             f"{rows[2]['size_bytes'] / 2**20:.1f} MiB |")
                print(lines[-1])
            k = ort_kernels(fast, int(args.threads))
            ke = ort_kernels(exact, int(args.threads))
            kernels.append(f"- {m}, int8 QDQ (--data): " + ", ".join(
                f"{t} x{n}" for t, n in k.most_common()))
            kernels.append(f"- {m}, int8 exact mirror: " + ", ".join(
                f"{t} x{n}" for t, n in ke.most_common()))
            loads.append(f"after {m}: {load()}")
    lines += ["", f"Session options: {config}.", "",
              "speed-up: fp32 / int8 QDQ (--data). The exact mirror keeps Paddle's quantizers "
              "only (on conv inputs), so each conv's output is float and onnxruntime cannot "
              "use QLinearConv: it dequantizes and runs float convs (slower than fp32). "
              "`actc export --data` quantizes those outputs (on the scale of the Relu/relu6 "
              "quantizer after them where there is one, else calibrated), and onnxruntime "
              "fuses every conv.", "",
              "Kernels in onnxruntime's optimized graph (ORT_ENABLE_EXTENDED):", "", *kernels,
              "", "Machine load while measuring (other processes share the 2 cores):", "",
              *[f"- {x}" for x in loads], ""]
    RESULTS.write_text("\n".join(lines))
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
