"""Peak memory of calibration against Paddle running the same forward pass.

Two subprocesses see the same batches (random [B,3,224,224] images, seeded): (a) Paddle
alone (``paddle.static.load_inference_model`` + ``Executor.run`` of the model's outputs);
(b) actc: ``quantize()`` then ``calibrate(algo)`` on the corpus model. Each reports
``resource.getrusage(RUSAGE_SELF).ru_maxrss``; the ratio b / a is the figure of merit
(issue 11: <= 1.5).

    python benchmarks/calib_memory.py                      # mobilenet_v2, batch 32, 4 batches
    python benchmarks/calib_memory.py --batch-size 8 --batches 2 --model resnet18
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests"))  # the corpus helper

ENV_BATCH, ENV_COUNT, ENV_FEED = "ACTC_BENCH_BATCH", "ACTC_BENCH_BATCHES", "ACTC_BENCH_FEED"


def batches():
    """The data function both sides read (actc as ``calib_memory:batches``)."""
    size, count = int(os.environ[ENV_BATCH]), int(os.environ[ENV_COUNT])
    rng = np.random.default_rng(0)
    for _ in range(count):
        yield {os.environ[ENV_FEED]: rng.standard_normal((size, 3, 224, 224), np.float32)}


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def paddle_forward(model: Path) -> dict:
    """(a): the plain inference forward, outputs fetched and dropped batch by batch."""
    from actc.runtime.paddle_env import import_paddle, set_forward_only

    paddle = import_paddle()
    paddle.enable_static()
    set_forward_only(True)  # the same oneDNN setting calibration runs with
    exe = paddle.static.Executor(paddle.CPUPlace())
    prog, feeds, fetches = paddle.static.load_inference_model(str(model / "model"), exe)
    start = time.perf_counter()
    for batch in batches():
        exe.run(prog, feed=batch, fetch_list=fetches)
    return {"seconds": time.perf_counter() - start}


def actc_calibrate(model: Path, algo: str) -> dict:
    """(b): quantize + calibrate through the recipe pipeline."""
    from actc.dsl.compiler import compile_source
    from actc.dsl.pipeline import Options, PipelineContext, run_pipeline
    from actc.io.model import load_model

    program, files = load_model(model)
    count = os.environ[ENV_COUNT]
    src = (f"recipe main() {{ quantize() calibrate(algo: {algo}, batch_size: "
           f"{os.environ[ENV_BATCH]}, batch_nums: {count}) }}")
    compiled = compile_source(src, "bench.actc", program=program)
    ctx = PipelineContext(program, files, data="calib_memory:batches", device="cpu")
    start = time.perf_counter()
    run_pipeline(compiled, ctx, Options(verify=False))
    return {"seconds": time.perf_counter() - start}


def worker(kind: str, model: str, algo: str) -> None:
    sys.path.insert(0, str(HERE))
    out = paddle_forward(Path(model)) if kind == "paddle" else actc_calibrate(Path(model), algo)
    out["peak_mb"] = _peak_mb()
    print(json.dumps(out))


def run(kind: str, model: Path, args) -> dict:
    env = dict(os.environ, FLAGS_enable_pir_api="0", GLOG_minloglevel="2",
               **{ENV_BATCH: str(args.batch_size), ENV_COUNT: str(args.batches),
                  ENV_FEED: args.feed})
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(REPO), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, __file__, "--worker", kind, str(model), args.algo],
                          capture_output=True, text=True, env=env, timeout=args.timeout)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="mobilenet_v2", help="corpus model name")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--batches", type=int, default=4)
    p.add_argument("--algo", default="hist")
    p.add_argument("--feed", default="image")
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    import corpus
    model = corpus.export_corpus(names=[args.model])[args.model]
    a = run("paddle", model, args)
    b = run("actc", model, args)
    print(f"{args.model}, {args.batches} batches x {args.batch_size} at 224x224, "
          f"algo={args.algo}")
    print(f"  paddle forward   peak {a['peak_mb']:8.0f} MB  ({a['seconds']:.1f} s)")
    print(f"  actc calibrate   peak {b['peak_mb']:8.0f} MB  ({b['seconds']:.1f} s)")
    print(f"  ratio {b['peak_mb'] / a['peak_mb']:.2f} (goal <= 1.5)")


if __name__ == "__main__":
    main()
