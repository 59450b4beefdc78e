"""``actc eval``: top-1 accuracy, and fidelity against a reference model."""
from __future__ import annotations

from actc.cli.common import add_model_args, load_from_args, model_path
from actc.data import open_dataset
from actc.errors import ActcError
from actc.io.model import load_model


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="accuracy of a model; cosine/SNR against a reference model",
                       description="Run a model on data with Paddle: top-1 accuracy where the "
                                   "data has a 'label' array, and cosine/SNR of every output "
                                   "against --reference (e.g. the fp32 model).")
    add_model_args(p)
    p.add_argument("--data", required=True,
                   help=".npz (arrays named after feeds, optional 'label'), a directory of "
                        ".npz, or module:function")
    p.add_argument("--reference", default=None, help="a reference (e.g. fp32) model directory, or 'example'")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--batch-nums", type=int, default=None)
    p.add_argument("--device", default="auto", help="cpu, gpu, gpu:N or auto")


def format_result(result) -> str:
    lines = [f"samples: {result.samples}"]
    if result.accuracy is None and not result.fidelity:
        lines.append("nothing measured: the data has no 'label' array and no --reference was "
                     "given (add labels for top-1, or --reference MODEL for cosine/SNR)")
    if result.accuracy is not None:
        lines.append(f"top-1 accuracy: {result.accuracy * 100:.2f}%")
    for f in result.fidelity:
        lines.append(f"{f.name}: cosine {f.cosine:.6f}  SNR {f.snr_db:.2f} dB  "
                     f"max|err| {f.max_abs_err:.4g}")
    return "\n".join(lines)


def run(args) -> int:
    from actc.runtime.evaluate import evaluate

    program, _ = load_from_args(args)
    if args.batch_size <= 0:
        raise ActcError(f"--batch-size must be positive, got {args.batch_size}")
    dataset = open_dataset(args.data, program)
    reference = load_model(model_path(args.reference))[0] if args.reference else None
    if reference is not None and reference.fetch_names().__len__() != program.fetch_names().__len__():
        raise ActcError("the reference model has a different number of outputs",
                        path=args.reference)
    result = evaluate(program, dataset, device=args.device, batch_size=args.batch_size,
                      batch_nums=args.batch_nums, reference=reference)
    print(format_result(result))
    return 0
