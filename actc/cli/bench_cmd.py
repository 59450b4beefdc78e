"""``actc bench MODEL [MODEL ...]``: what users get in deployment — latency, throughput,
memory and size in Paddle Inference, each model with the configuration that suits it."""
from __future__ import annotations

import json

from actc.errors import ActcError


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="latency, throughput, memory and size in Paddle Inference",
                       description="Load each model in Paddle Inference with the configuration "
                                   "that suits it (fp32: oneDNN; int8: oneDNN int8 on CPU, "
                                   "TensorRT int8 on a GPU), and report latency (median and "
                                   "p90 after warm-up), throughput, peak memory and size side "
                                   "by side, with the speed-up against the first model.")
    p.add_argument("models", nargs="+", metavar="MODEL",
                   help="model directories, .pdmodel files, or 'example'")
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


def run(args) -> int:
    from actc.cli.common import model_path
    from actc.deploy.bench import format_table, run_one
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
    loaded = [(m, *load_model(model_path(m))) for m in args.models]  # all checked first
    results = [run_one(name, program, files, batches=args.batch, device=device,
                       threads=args.threads, warmup=args.warmup, repeats=args.repeats,
                       shapes=shapes, data=args.data)
               for name, program, files in loaded]
    if args.json:
        print(json.dumps([r.to_json() for r in results], indent=1))
    else:
        print(format_table(results, args.batch))
    return 1 if any(r.error for r in results) else 0
