"""``actc sensitivity MODEL``: what each prunable group and each quantized layer costs alone,
as a table (and a plot, a JSON file, a recipe within a metric budget)."""
from __future__ import annotations

import sys

from actc.cli.common import add_model_args, load_from_args
from actc.errors import ActcError


def add_parser(sub) -> None:
    p = sub.add_parser("sensitivity", help="per-layer sensitivity to channel pruning and "
                                           "quantization",
                       description="Measure, per prunable group and per quantizable layer, how "
                                   "much the model's metric drops, and suggest a recipe within "
                                   "a drop budget.")
    add_model_args(p)
    p.add_argument("--eval-data", default=None,
                   help="data to score on (labels: top-1; else SNR vs the model); default: "
                        "test.npz beside the model")
    p.add_argument("--data", default=None, help="calibration data for the quantization trials "
                                                "(default: calib.npz beside the model)")
    p.add_argument("--ratios", type=float, nargs="+", default=[0.25, 0.5, 0.75],
                   help="pruning ratios to try per group")
    p.add_argument("--bits", default="8", help="bits for the one-layer quantization trials, "
                                               "or 'none' to skip them")
    p.add_argument("--max-drop", type=float, default=1.0,
                   help="budget per layer for --emit-recipe (top-1 points, or dB)")
    p.add_argument("--plot", metavar="FILE.png|svg", help="plot the results (matplotlib)")
    p.add_argument("--json", metavar="FILE", help="write every trial as JSON")
    p.add_argument("--emit-recipe", metavar="FILE.actc",
                   help="write a recipe: per-weight ratios and skip_ops within --max-drop")
    p.add_argument("--device", default="auto")


def run(args) -> int:
    from actc.io.atomic import write_atomic
    from actc.prune.sensitivity import Analysis, plot, suggest_recipe
    from actc.runtime.report import eval_source

    program, files = load_from_args(args)
    for r in args.ratios:
        if not 0.0 < r < 1.0:
            raise ActcError(f"--ratios: each ratio must be in (0, 1), got {r}")
    bits = None if str(args.bits).lower() == "none" else int(args.bits)
    if bits is not None and not 1 <= bits <= 8:
        raise ActcError(f"--bits must be 1..8 or none, got {args.bits}")
    data = eval_source(args.eval_data, files)
    if data is None:
        raise ActcError("sensitivity needs --eval-data (no test.npz beside the model)")
    analysis = Analysis(program, files, data, args.data, args.device)

    def show(t):
        print(f"  {t.kind} {t.target} @ {t.setting:g}: {analysis.metric_name} {t.metric:.4f}",
              file=sys.stderr)

    report = analysis.analyse(sorted(args.ratios), bits, progress=show)
    print(report.table())
    if args.json:
        write_atomic(args.json, report.to_json().encode())
    if args.plot:
        plot(report, args.plot)
    if args.emit_recipe:
        budget = args.max_drop / 100 if report.metric_name == "top-1" else args.max_drop
        write_atomic(args.emit_recipe, suggest_recipe(report, budget, args.model).encode())
        print(f"wrote {args.emit_recipe}", file=sys.stderr)
    return 0
