"""One model's latency measurement, in a process of its own (``python -m actc.deploy.worker
SPEC.json RESULT.json``): peak memory is then the model's alone, and Paddle Inference's pass
logs stay out of actc's output."""
from __future__ import annotations

import json
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np


def _inputs(spec: dict, batch: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    out = {}
    data = np.load(spec["data"]) if spec.get("data") else None
    for feed in spec["feeds"]:
        name, dtype = feed["name"], feed["dtype"]
        if data is not None and name in data:
            x = data[name]
            idx = np.arange(batch) % len(x)
            out[name] = np.ascontiguousarray(x[idx]).astype(dtype)
            continue
        shape = [batch] + list(feed["shape"][1:])
        if np.dtype(dtype).kind in "iu":
            out[name] = rng.integers(0, 2, size=shape).astype(dtype)
        else:
            out[name] = rng.standard_normal(shape).astype(dtype)
    return out


def _paddle_step(spec: dict):
    from actc.deploy.predictor import PredictorPlan, create

    plan = PredictorPlan(**spec["plan"])
    predictor = create(plan, spec["program"], spec.get("params"))
    handles = {n: predictor.get_input_handle(n) for n in predictor.get_input_names()}
    outputs = [predictor.get_output_handle(n) for n in predictor.get_output_names()]

    def make(feeds):
        def step():
            for name, x in feeds.items():
                handles[name].reshape(list(x.shape))
                handles[name].copy_from_cpu(x)
            predictor.run()
            for h in outputs:
                h.copy_to_cpu()
        return step
    return make


def _onnx_step(spec: dict):
    """onnxruntime on CPU with the session options actc.deploy.onnx_plan describes."""
    import onnxruntime as ort

    threads = spec["plan"]["threads"]
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(spec["program"], so, providers=["CPUExecutionProvider"])

    def make(feeds):
        return lambda: sess.run(None, feeds)
    return make


def measure(spec: dict) -> dict:
    make = _onnx_step(spec) if spec.get("runtime") == "onnxruntime" else _paddle_step(spec)
    result = {"batches": {}}
    for batch in spec["batches"]:
        feeds = _inputs(spec, batch)
        step = make(feeds)

        for _ in range(spec["warmup"]):
            step()
        times = []
        for _ in range(spec["repeats"]):
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
        median = statistics.median(times)
        result["batches"][str(batch)] = {
            "median_ms": median * 1e3,
            "p90_ms": float(np.percentile(times, 90)) * 1e3,
            "throughput": batch / median if median > 0 else float("inf")}
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return result


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    try:
        result = measure(spec)
    except Exception as e:  # reported by the parent as that model's error
        result = {"error": f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"}
    Path(argv[1]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
