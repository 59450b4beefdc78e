"""``actc export MODEL -o model.onnx``: the program as ONNX (opset 17), with no Paddle."""
from __future__ import annotations

from actc.cli.common import add_model_args, load_from_args
from actc.errors import ActcError


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="write the model as ONNX (fp32, int8 QDQ, pruned)",
                       description="Convert the program and its weights to ONNX (opset 17) "
                                   "with the onnx package, no Paddle needed. Quantized "
                                   "programs become QuantizeLinear/DequantizeLinear with int8 "
                                   "per-channel weights and uint8 activations (zero point "
                                   "128), batch_norm folded into the convs: the form "
                                   "onnxruntime's CPU kernels run fastest. The model passes "
                                   "onnx.checker and is written atomically.")
    add_model_args(p)
    p.add_argument("-o", "--output", required=True, metavar="FILE.onnx",
                   help="the ONNX file to write")
    p.add_argument("--format", default="onnx", choices=["onnx"], help="output format")
    p.add_argument("--activations", default="uint8", choices=["uint8", "int8"],
                   help="quantized activation type: uint8 with zero point 128 (default, "
                        "fastest in onnxruntime) or int8 with zero point 0 (Paddle's grid "
                        "unshifted); the values are the same")
    p.add_argument("--data", metavar="FILE.npz",
                   help="quantized models: calibration inputs (arrays named after the feeds) "
                        "to quantize the conv/add outputs Paddle leaves float, so onnxruntime "
                        "runs QLinearConv/QLinearAdd (2-3x faster than fp32); without it the "
                        "graph mirrors the Paddle model exactly and onnxruntime runs float "
                        "convs")
    p.add_argument("--batch-size", type=int, default=8, help="calibration batch size")
    p.add_argument("--max-batches", type=int, default=8, help="calibration batches at most")


def run(args) -> int:
    from actc.cli.common import model_path
    from actc.export.onnx import check_output_file, export_model
    from actc.export.onnx.writer import import_onnx
    from actc.io.locate import locate_model

    files = locate_model(model_path(args.model), args.params,
                         model_filename=args.model_filename,
                         params_filename=args.params_filename)
    out = check_output_file(args.output, [files.program, files.params])
    import_onnx()  # before reading weights: a missing package is said first
    program, files = load_from_args(args)
    calib = None
    if args.data:
        from actc.export.onnx import calibration_batches

        if args.batch_size <= 0 or args.max_batches <= 0:
            raise ActcError("--batch-size and --max-batches must be positive")
        calib = calibration_batches(program, args.data, args.batch_size, args.max_batches)
    summary = export_model(program, out, activations=args.activations, calib=calib,
                           model_path=files.program)
    print(f"wrote {out} ({summary.size_bytes / 1024:.1f} KiB): {summary.describe()}")
    if summary.completed:
        c = summary.completed
        print(f"  quantized for onnxruntime's integer kernels: {c['relu_folded']} outputs on "
              f"the scale of the activation after them, {c['reused']} sharing Paddle's "
              f"quantizer, {c['calibrated']} calibrated on {args.data}"
              + (f"; {c['float_stem']} stem conv(s) on the input kept float (int8 does not pay "
                 "at 3 channels)" if c.get("float_stem") else ""))
    elif summary.quantized and not args.data:
        print("  note: Paddle's quantizers are mirrored exactly; conv/matmul outputs stay float, "
              "so onnxruntime runs them as float ops. Pass --data CALIB.npz for its integer "
              "kernels (QLinearConv, QLinearMatMul: fast)")
    return 0

