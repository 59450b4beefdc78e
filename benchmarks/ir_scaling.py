"""How actc scales with program size: load, `check --model`, a quantize-only compile and
`dump` of a plain stack of fc layers (mul + elementwise_add + relu), 1k to 100k ops.

Each (size, command) runs in its own subprocess so peak RSS (ru_maxrss) is per command; the
time excludes interpreter start and imports (the worker imports actc, then times the call).

    python benchmarks/ir_scaling.py                       # 1k, 10k, 100k ops
    python benchmarks/ir_scaling.py --ops 1000 3000 --no-write
Writes benchmarks/results/ir_scaling.md unless --no-write.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

RECIPE = "recipe main() { quantize() }\n"
COMMANDS = ("load", "check", "compile", "dump")
WIDTH = 4  # tiny weights: the benchmark measures the IR, not the tensor bytes


def _var(block, name, shape, persistable=False):
    from actc.proto import framework_pb2 as fpb
    v = block.vars.add(name=name, persistable=persistable)
    v.type.type = fpb.VarType.DENSE_TENSOR
    v.type.dense_tensor.tensor.data_type = fpb.VarType.FP32
    v.type.dense_tensor.tensor.dims.extend(shape)
    return v


def _op(block, type, inputs, outputs, attrs=()):
    from actc.proto import framework_pb2 as fpb
    op = block.ops.add(type=type)
    for slot, names in inputs.items():
        op.inputs.add(parameter=slot, arguments=names)
    for slot, names in outputs.items():
        op.outputs.add(parameter=slot, arguments=names)
    for name, value in attrs:
        op.attrs.add(name=name, type=fpb.AttrType.INT, i=value)
    return op


def fc_stack(layers: int, width: int = WIDTH):
    """(ProgramDesc, params) of feed -> layers x (mul, elementwise_add, relu) -> fetch:
    3 * layers + 2 ops, 2 * layers weights."""
    from actc.io.params import Tensor
    from actc.proto import framework_pb2 as fpb

    desc = fpb.ProgramDesc()
    desc.version.version = 0
    block = desc.blocks.add(idx=0, parent_idx=-1)
    feed = _var(block, "feed", [], persistable=True)
    feed.type.type = fpb.VarType.FEED_MINIBATCH
    fetch = _var(block, "fetch", [], persistable=True)
    fetch.type.type = fpb.VarType.FETCH_LIST
    _var(block, "x", [-1, width])
    _op(block, "feed", {"X": ["feed"]}, {"Out": ["x"]}, [("col", 0)])
    rng = np.random.default_rng(0)
    params, x = {}, "x"
    for i in range(layers):
        w, b = f"fc_{i}.w_0", f"fc_{i}.b_0"
        _var(block, w, [width, width], persistable=True)
        _var(block, b, [width], persistable=True)
        params[w] = Tensor.from_array(rng.standard_normal((width, width), dtype=np.float32))
        params[b] = Tensor.from_array(np.zeros(width, np.float32))
        h, y, r = f"fc_{i}.tmp_0", f"fc_{i}.tmp_1", f"relu_{i}.tmp_0"
        for name in (h, y, r):
            _var(block, name, [-1, width])
        _op(block, "mul", {"X": [x], "Y": [w]}, {"Out": [h]},
            [("x_num_col_dims", 1), ("y_num_col_dims", 1)])
        _op(block, "elementwise_add", {"X": [h], "Y": [b]}, {"Out": [y]}, [("axis", 1)])
        _op(block, "relu", {"X": [y]}, {"Out": [r]})
        x = r
    _op(block, "fetch", {"X": [x]}, {"Out": ["fetch"]}, [("col", 0)])
    return desc, params


def write_fc_stack(layers: int, out_dir: Path) -> Path:
    from actc.io.model import save_model
    from actc.ir.program import Program

    desc, params = fc_stack(layers)
    save_model(Program(desc, params), out_dir)
    return out_dir


def layers_for(ops: int) -> int:
    return max(1, (ops - 2) // 3)


# ------------------------------------------------------------------ worker (one command)
def _work(command: str, model: Path, scratch: Path) -> float:
    """Seconds for one command, run in-process after its imports."""
    from actc.cli.main import main
    from actc.io.model import load_model

    recipe = scratch / "q.actc"
    recipe.write_text(RECIPE)
    argv = {
        "check": ["check", str(recipe), "--model", str(model)],
        "compile": ["compile", str(model), "--recipe", str(recipe), "-o",
                    str(scratch / "out"), "--no-eval", "-q"],
        "dump": ["dump", str(model)],
    }.get(command)
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        if argv is None:
            load_model(model)
        elif main(argv) != 0:
            raise SystemExit(f"actc {' '.join(argv)} failed")
    return time.perf_counter() - t0


def worker(command: str, model: str) -> None:
    import actc.cli.check_cmd, actc.cli.compile_cmd, actc.cli.dump_cmd  # noqa: F401,E401
    import actc.dsl.registry, actc.dump.text  # noqa: F401,E401
    with tempfile.TemporaryDirectory() as tmp:
        seconds = _work(command, Path(model), Path(tmp))
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "rss_mb": rss_kb / 1024}))


def run_one(command: str, model: Path, timeout: float) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--worker", command, str(model)],
                          capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    if proc.returncode != 0:
        raise RuntimeError(f"{command} on {model} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def resnet50_rewrite(repeat: int = 7) -> str | None:
    """Best-of-N milliseconds of the quantize pass (and the verifier after it) on the corpus
    resnet50, in process; None when the corpus is not exported."""
    sys.path.insert(0, str(REPO / "tests"))
    import corpus
    from actc.dsl.compiler import compile_source
    from actc.dsl.pipeline import Options, PipelineContext, run_pipeline
    from actc.io.model import load_model
    from actc.ir.verify import verify

    model = corpus.default_cache_dir() / "resnet50"
    if not (model / "model.pdmodel").is_file():
        return None
    passes, checks = [], []
    for _ in range(repeat):
        program, files = load_model(model)
        compiled = compile_source(RECIPE, "q.actc", program=program)
        result, = run_pipeline(compiled, PipelineContext(program, files), Options(verify=False))
        t0 = time.perf_counter()
        verify(program)
        passes.append(result.seconds)
        checks.append(time.perf_counter() - t0)
    return (f"resnet50 ({program.op_count()} ops after quantize): quantize pass "
            f"{min(passes) * 1000:.1f} ms, verifier {min(checks) * 1000:.1f} ms "
            f"(best of {repeat})")


# ------------------------------------------------------------------ driver
def measure(sizes: list[int], timeout: float) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for ops in sizes:
            model = write_fc_stack(layers_for(ops), Path(tmp) / f"fc{ops}")
            row = {"ops": 3 * layers_for(ops) + 2, "rss_mb": 0.0}
            for command in COMMANDS:
                r = run_one(command, model, timeout)
                row[command] = r["seconds"]
                row["rss_mb"] = max(row["rss_mb"], r["rss_mb"])
            rows.append(row)
            print(format_row(row), flush=True)
    return rows


HEADER = ("| ops | load s | check s | compile s | dump s | compile s / 1k ops | "
          "peak RSS MB |\n|---:|---:|---:|---:|---:|---:|---:|")


def format_row(r: dict) -> str:
    per_k = r["compile"] / r["ops"] * 1000
    return (f"| {r['ops']} | {r['load']:.2f} | {r['check']:.2f} | {r['compile']:.2f} | "
            f"{r['dump']:.2f} | {per_k:.3f} | {r['rss_mb']:.0f} |")


def growth(rows: list[dict]) -> str:
    """Time ratio of the largest to the smallest size over the op ratio (1.0 = linear)."""
    lo, hi = rows[0], rows[-1]
    scale = hi["ops"] / lo["ops"]
    parts = [f"{c} {hi[c] / max(lo[c], 1e-9) / scale:.2f}x" for c in COMMANDS]
    return f"growth {lo['ops']} -> {hi['ops']} ops vs proportional: " + ", ".join(parts)


def write_results(rows: list[dict], path: Path, extra: list[str]) -> None:
    text = ["# IR scaling: a stack of fc layers (mul + elementwise_add + relu)", "",
            f"`python benchmarks/ir_scaling.py` on {platform.machine()}, "
            f"{os.cpu_count()} CPUs, Python {platform.python_version()}. Seconds exclude "
            "interpreter start and imports; peak RSS is the largest of the four commands.",
            "", HEADER, *(format_row(r) for r in rows), "", growth(rows), "", *extra, ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(text))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ops", type=int, nargs="+", default=[1000, 10000, 100000])
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--worker", nargs=2, metavar=("COMMAND", "MODEL"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    print(HEADER)
    rows = measure(args.ops, args.timeout)
    extra = [growth(rows)]
    r50 = resnet50_rewrite()
    if r50:
        extra.append(r50)
    print("\n".join(extra))
    if not args.no_write:
        write_results(rows, HERE / "results" / "ir_scaling.md", extra[1:])


if __name__ == "__main__":
    main()
