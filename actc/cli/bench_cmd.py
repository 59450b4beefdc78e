"""``actc bench MODEL [MODEL ...]``: what users get in deployment — latency, throughput,
memory and size in Paddle Inference, each model with the configuration that suits it."""
from __future__ import annotations

import json

from actc.errors import ActcError


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="latency, throughput, memory and size in Paddle Inference (or onnxruntime)",
                       description="Load each model in Paddle Inference with the configuration "
                                   "that suits it (fp32: oneDNN; int8: oneDNN int8 on CPU, "
                                   "TensorRT int8 on a GPU), and report latency (median and "
                                   "p90 after warm-up), throughput, peak memory and size side "
                                   "by side, with the speed-up against the first model.")
    p.add_argument("models", nargs="+", metavar="MODEL",
                   help="model directories, .pdmodel files, 'example', or .onnx files (run "
                        "in onnxruntime)")
    p.add_argument("--batch", type=int, nargs="+", default=[1, 8], metavar="N",
                   help="batch sizes (default: 1 8)")
    p.add_argument("--device", default="cpu", help="cpu (default) or gpu")
    p.add_argument("--threads", type=int, default=1, help="CPU math threads (default 1)")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--shape", action="append", default=[], metavar="FEED:DxDxD",
                   help="a feed's full shape, first dim the batch (e.g. x:1x3x224x224); "
                        "needed where the program leaves non-batch dims unknown")
    p.add_argument("--data", metavar="FILE.npz",
                   help="inputs from these arrays (named after the feeds) instead of random")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--onnx", action="store_true",
                   help="export each Paddle model to ONNX (actc export; a quantized one "
                        "completed with --data as calibration when given) and run it in "
                        "onnxruntime on CPU instead of Paddle Inference")


def parse_shapes(items: list[str]) -> dict[str, list[int]]:
    out = {}
    for item in items:
        name, sep, dims = item.rpartition(":")
        try:
            shape = [int(d) for d in dims.lower().split("x")]
        except ValueError:
            shape = []
        if not sep or not name or not shape or any(d <= 0 for d in shape):
            raise ActcError(f"--shape expects FEED:DxDxD with positive sizes, got '{item}'")
        out[name] = shape
    return out


def _exported(program, files, out, data):
    """The model as ONNX in ``out``, and a note on how it was exported."""
    from actc.export.onnx import calibration_batches, export_model

    calib = calibration_batches(program, data) if data else None
    summary = export_model(program, out, calib=calib, model_path=files.program)
    if not summary.quantized:
        return out, "; exported fp32"
    if summary.completed:
        return out, f"; exported int8 QDQ, conv/add outputs calibrated on {data}"
    return out, ("; exported int8 QDQ mirroring Paddle (float conv/matmul outputs: pass --data "
                 "to quantize them for onnxruntime's integer kernels)")


def run(args) -> int:
    import tempfile
    from pathlib import Path

    from actc.cli.common import model_path
    from actc.deploy.bench import format_table, run_one, run_one_onnx
    from actc.io.model import load_model

    if any(b <= 0 for b in args.batch) or args.repeats <= 0 or args.warmup < 0 or \
            args.threads <= 0:
        raise ActcError("--batch, --repeats and --threads must be positive, --warmup >= 0")
    device = args.device.strip().lower()
    if device.startswith("gpu"):
        from actc.runtime.paddle_env import resolve_place

        resolve_place(device)
    elif device != "cpu":
        raise ActcError(f"--device must be cpu or gpu, not '{args.device}'")
    shapes = parse_shapes(args.shape)
    is_onnx = [str(m).endswith(".onnx") for m in args.models]
    if (args.onnx or any(is_onnx)) and device != "cpu":
        raise ActcError("onnxruntime models are measured on the CPU only")
    loaded = [(m, None, None) if o else (m, *load_model(model_path(m)))
              for m, o in zip(args.models, is_onnx)]  # all checked first
    common = dict(batches=args.batch, threads=args.threads, warmup=args.warmup,
                  repeats=args.repeats, shapes=shapes, data=args.data)
    results = []
    with tempfile.TemporaryDirectory(prefix="actc-bench-onnx-") as tmp:
        for i, (name, program, files) in enumerate(loaded):
            if program is None:
                results.append(run_one_onnx(name, Path(name), **common))
            elif args.onnx:
                path, note = _exported(program, files, Path(tmp) / f"{i}.onnx", args.data)
                results.append(run_one_onnx(name, path, note=note, **common))
            else:
                results.append(run_one(name, program, files, device=device, **common))
    if args.json:
        print(json.dumps([r.to_json() for r in results], indent=1))
    else:
        print(format_table(results, args.batch))
    return 1 if any(r.error for r in results) else 0
