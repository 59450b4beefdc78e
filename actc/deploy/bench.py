"""``actc bench``: latency, throughput, peak memory and size of models in Paddle Inference,
each with the predictor configuration that suits it (actc.deploy.predictor), side by side."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from actc.deploy.predictor import plan_for
from actc.dump.common import human_bytes
from actc.errors import ActcError
from actc.io.model import ModelFiles
from actc.ir.program import Program


@dataclass
class BenchResult:
    name: str
    plan: str
    size_bytes: int
    batches: dict[str, dict] = field(default_factory=dict)
    peak_rss_mb: float | None = None
    error: str | None = None

    def to_json(self) -> dict:
        return {"model": self.name, "config": self.plan, "size_bytes": self.size_bytes,
                "batches": self.batches, "peak_rss_mb": self.peak_rss_mb, "error": self.error}


def model_size(files: ModelFiles) -> int:
    """Bytes on disk: program plus params."""
    return sum(p.stat().st_size for p in (files.program, files.params) if p is not None)


def feed_specs(program: Program, shapes: dict[str, list[int]]) -> list[dict]:
    """Each feed's dtype and shape (batch dim first); unknown dims other than the batch must
    come from --shape."""
    out = []
    for name in program.feed_names():
        var = program.var(name)
        shape = list(shapes.get(name) or (var.shape if var is not None and var.shape else []))
        if not shape or any(d is None or d < 0 for d in shape[1:]):
            raise ActcError(f"feed '{name}' has shape {shape or '?'}: give its sizes with "
                            f"--shape {name}:{'x'.join(['N'] + ['D'] * max(len(shape) - 1, 1))}")
        out.append({"name": name, "shape": shape,
                    "dtype": str(var.dtype) if var is not None and var.dtype else "float32"})
    return out


def run_one(name: str, program: Program, files: ModelFiles, *, batches: list[int],
            device: str, threads: int, warmup: int, repeats: int,
            shapes: dict[str, list[int]], data: str | None) -> BenchResult:
    plan = plan_for(program, device, threads)
    result = BenchResult(name, plan.describe(), model_size(files))
    spec = {"program": str(files.program), "params": str(files.params) if files.params else None,
            "plan": {"precision": plan.precision, "device": plan.device, "threads": threads},
            "feeds": feed_specs(program, shapes), "batches": batches, "warmup": warmup,
            "repeats": repeats, "data": data}
    return _run_worker(result, spec)


# what the onnxruntime worker sets (actc.deploy.worker._onnx_step), printed with the results
ORT_OPTIONS = ("onnxruntime CPUExecutionProvider: intra_op_num_threads={threads}, "
               "inter_op_num_threads=1, execution_mode=ORT_SEQUENTIAL, "
               "graph_optimization_level=ORT_ENABLE_ALL")


def onnx_feed_specs(path: Path, shapes: dict[str, list[int]]) -> list[dict]:
    """Feeds of an .onnx file (dtype, shape with -1 for symbolic dims)."""
    from actc.export.onnx.types import ONNX_CODE
    from actc.export.onnx.writer import import_onnx

    onnx = import_onnx()
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise ActcError(f"not an ONNX model: {e}", path=path) from None
    names = {v: k for k, v in ONNX_CODE.items()}
    inits = {t.name for t in model.graph.initializer}
    out = []
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        shape = list(shapes.get(vi.name) or [d.dim_value if d.HasField("dim_value") else -1
                                             for d in tt.shape.dim])
        if not shape or any(d < 0 for d in shape[1:]):
            raise ActcError(f"input '{vi.name}' has shape {shape or '?'}: give its sizes with "
                            f"--shape {vi.name}:NxDxD", path=path)
        out.append({"name": vi.name, "shape": shape, "dtype": names.get(tt.elem_type,
                                                                       "float32")})
    return out


def run_one_onnx(name: str, path: Path, *, batches: list[int], threads: int, warmup: int,
                 repeats: int, shapes: dict[str, list[int]], data: str | None,
                 note: str = "") -> BenchResult:
    """One .onnx model in onnxruntime on CPU, measured like the Paddle models."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise ActcError("--onnx needs onnxruntime: pip install 'actc[onnx]'") from None
    result = BenchResult(name, ORT_OPTIONS.format(threads=threads) + note,
                         Path(path).stat().st_size)
    spec = {"program": str(path), "runtime": "onnxruntime",
            "plan": {"precision": "onnx", "device": "cpu", "threads": threads},
            "feeds": onnx_feed_specs(Path(path), shapes), "batches": batches,
            "warmup": warmup, "repeats": repeats, "data": data}
    return _run_worker(result, spec)


def _run_worker(result: BenchResult, spec: dict) -> BenchResult:
    with tempfile.TemporaryDirectory(prefix="actc-bench-") as tmp:
        spec_file, out_file = Path(tmp) / "spec.json", Path(tmp) / "result.json"
        spec_file.write_text(json.dumps(spec))
        env = dict(os.environ, FLAGS_enable_pir_api="0", GLOG_minloglevel="3")
        proc = subprocess.run([sys.executable, "-m", "actc.deploy.worker", str(spec_file),
                               str(out_file)], capture_output=True, text=True, env=env)
        if not out_file.exists():
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            result.error = f"the predictor process failed (exit {proc.returncode}): {last}"
            return result
        got = json.loads(out_file.read_text())
    result.error = got.get("error")
    result.batches = got.get("batches", {})
    result.peak_rss_mb = got.get("peak_rss_mb")
    return result


def format_table(results: list[BenchResult], batches: list[int]) -> str:
    """One row per model and batch size; speed-up against the first model."""
    head = ["model", "batch", "median ms", "p90 ms", "samples/s", "speed-up", "peak RSS",
            "size"]
    rows = [head]
    base = results[0] if results and results[0].error is None else None
    for r in results:
        if r.error:
            rows.append([r.name, "-", "error", "", "", "", "", human_bytes(r.size_bytes)])
            continue
        for b in batches:
            m = r.batches[str(b)]
            speed = ""
            if base is not None and r is not base:
                speed = f"{base.batches[str(b)]['median_ms'] / m['median_ms']:.2f}x"
            rows.append([r.name, str(b), f"{m['median_ms']:.2f}", f"{m['p90_ms']:.2f}",
                         f"{m['throughput']:.1f}", speed, f"{r.peak_rss_mb:.0f} MiB",
                         human_bytes(r.size_bytes)])
    widths = [max(len(row[c]) for row in rows) for c in range(len(head))]
    lines = ["  ".join(cell.ljust(w) if c == 0 else cell.rjust(w)
                       for c, (cell, w) in enumerate(zip(row, widths))) for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    for r in results:
        lines.append(f"{r.name}: {r.plan}" + (f"; error: {r.error}" if r.error else ""))
    return "\n".join(lines)


def measured_speedup(before: Program, after: Program, *, device: str = "cpu", batch: int = 1,
                     shapes: dict[str, list[int]] | None = None) -> tuple[float | None, str]:
    """Latency ratio before/after of two in-memory programs (each written to a temporary
    model and benched), and what was measured or why it could not be."""
    from actc.io.model import save_model

    with tempfile.TemporaryDirectory(prefix="actc-speedup-") as tmp:
        runs = []
        for name, program in (("before", before), ("after", after)):
            files = save_model(program, Path(tmp) / name)
            try:
                runs.append(run_one(name, program, files, batches=[batch], device=device,
                                    threads=1, warmup=5, repeats=20, shapes=shapes or {},
                                    data=None))
            except ActcError as e:
                return None, e.message
    if any(r.error for r in runs):
        return None, next(r.error for r in runs if r.error)
    b, a = (r.batches[str(batch)]["median_ms"] for r in runs)
    return b / a, f"batch {batch}, {runs[1].plan}"
