"""``actc compile MODEL --recipe FILE -o OUT``: check the recipe, run it, write the model.

Everything is checked before anything runs; the output is written only after every step
succeeded (atomically, never over the input)."""
from __future__ import annotations

import sys

from actc.cli.common import add_model_args, load_from_args, recipe_path
from actc.errors import ActcError


def add_parser(sub) -> None:
    p = sub.add_parser("compile", help="compress a model with a recipe",
                       description="Run a recipe (or an ACT YAML config) on a model.")
    add_model_args(p, optional=True)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--recipe", metavar="FILE", help=".actc recipe file")
    src.add_argument("--config", metavar="CONFIG.yaml", help="ACT YAML config (lowered to a recipe)")
    p.add_argument("--recipe-name", metavar="N", help="which recipe of the file to run")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output model directory")
    p.add_argument("--set", action="append", default=[], metavar="K=V",
                   help="override a recipe parameter, or with --config a config value as "
                        "Section.key=value (repeatable)")
    p.add_argument("--data", help="calibration/training data (.npz, a directory, or module:function)")
    p.add_argument("--device", default="auto",
                   help="auto (GPU when Paddle has CUDA and sees one, else CPU), cpu, gpu, gpu:N")
    p.add_argument("--no-verify", action="store_true", help="skip the IR verifier between steps")
    p.add_argument("--strict", action="store_true",
                   help="a skip_ops selector that matches nothing is an error, not a warning")
    p.add_argument("--print-ir-before", action="append", default=[], metavar="STEP|all")
    p.add_argument("--print-ir-after", action="append", default=[], metavar="STEP|all")
    p.add_argument("--time-passes", action="store_true", help="print how long each step took")
    p.add_argument("--eval-data", metavar="DATA",
                   help="data to compare the written model with the input on (default: a "
                        "test.npz beside the input model, if any)")
    p.add_argument("--no-eval", action="store_true", help="skip that comparison")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted train step from its checkpoint (OUT.ckpt/)")
    p.add_argument("-q", "--quiet", action="store_true", help="no per-step summary")
    p.add_argument("--report", metavar="FILE.json",
                   help="write every quantizer's error (SQNR at its calibrated scale) here")
    p.add_argument("--bench", action="store_true",
                   help="also measure latency before and after in Paddle Inference "
                        "(as actc bench INPUT OUTPUT, batch 1 and 8)")


def parse_sets(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ActcError(f"--set expects KEY=VALUE, got '{item}'")
        out[key.strip()] = value.strip()
    return out


def check_device(device: str) -> str:
    """Validate --device now: a GPU that is not there must fail before any work."""
    d = device.strip().lower()
    if d in ("auto", "cpu", "gpu") or (d.startswith("gpu:") and d[4:].isdigit()):
        if d.startswith("gpu"):
            from actc.runtime.paddle_env import resolve_place

            resolve_place(d)
        return d
    raise ActcError(f"--device must be auto, cpu, gpu or gpu:N, not '{device}'")


def load_act_config(path: str, overrides: dict[str, str] | None = None):
    try:
        from actc.act.load import load_config
    except ImportError as e:
        raise ActcError(f"the ACT YAML front end is not available ({e})") from None
    return load_config(path, overrides)


def recipe_from_config(cfg, path: str) -> tuple[str, str, list]:
    """(recipe text, display path, notes) of an ACT YAML config via the YAML front end."""
    text, where, notes, _ = lower_config(cfg, path)
    return text, where, notes


def lower_config(cfg, path: str):
    from actc.act.lower import lower

    lowered = lower(cfg)
    return lowered.text, f"{path} (lowered)", list(lowered.notes), lowered


def into_yaml(e: ActcError, where: str, lowered, path: str) -> ActcError:
    """An error at a line of the lowered recipe (which the user never saw) is reported at the
    config section that produced that step."""
    if e.path != where or lowered is None:
        return e
    pos = lowered.yaml_position(e.line)
    if pos is None:
        return e
    return ActcError(f"{e.message} (in the step lowered from this section; `actc lower "
                     f"{path}` shows it)", path=path, line=pos[0], col=pos[1])


def model_from_config(args, cfg) -> None:
    """No MODEL argument: Global.model_dir (and its file names) name the model, as in ACT."""
    loc = cfg.model_location
    if args.model is not None:
        return
    if loc is None or not loc.model_dir:
        raise ActcError("compile needs a MODEL argument (or a --config whose Global section "
                        "has model_dir)")
    args.model = loc.model_dir
    if loc.model_filename and not args.model_filename:
        args.model_filename = loc.model_filename
    if loc.params_filename and not args.params_filename:
        args.params_filename = loc.params_filename


def run(args) -> int:
    device = check_device(args.device)
    sets = parse_sets(args.set)
    cfg = None
    if args.config:
        cfg = load_act_config(args.config, sets)  # --set Section.key=value edits the config
        model_from_config(args, cfg)
    elif args.model is None:
        raise ActcError("compile needs a MODEL argument")
    program, files = load_from_args(args)
    lowered = where = None
    if cfg is not None:
        text, where, notes, lowered = lower_config(cfg, args.config)
        for note in notes:  # ignored sections, renamed keys, what ACT would have done
            print(str(note), file=sys.stderr)
    try:
        return _compile(args, device, sets, program, files, cfg, text if cfg else None, where)
    except ActcError as e:
        raise into_yaml(e, where, lowered, args.config) from None


def _compile(args, device, sets, program, files, cfg, text, where) -> int:
    from actc.dsl.compiler import compile_file, compile_source
    from actc.dsl.pipeline import Options, PipelineContext, run_pipeline, summary
    from actc.cli.check_cmd import check_stages
    from actc.io.model import check_output_dir, save_model

    check_output_dir(args.output, files)  # before any long work
    if args.report:
        check_report_path(args.report)

    if cfg is not None:
        compiled = compile_source(text, where, recipe_name=args.recipe_name, overrides={},
                                  program=program, strict_selectors=False)
    else:
        compiled = compile_file(recipe_path(args.recipe), recipe_name=args.recipe_name, overrides=sets,
                                program=program, strict_selectors="all" if args.strict else True)
    for w in compiled.warnings:
        print(f"actc: warning: {w}", file=sys.stderr)
    ctx = PipelineContext(program=program, source=files, data=args.data, device=device,
                          out_dir=args.output, params=compiled.params,
                          eval_data=args.eval_data, resume=args.resume)
    opts = Options(verify=not args.no_verify, print_before=set(args.print_ir_before),
                   print_after=set(args.print_ir_after), time_passes=args.time_passes)
    for name in opts.print_before | opts.print_after:
        if name != "all" and name not in compiled.registry.steps:
            from actc.errors import did_you_mean
            raise ActcError(f"--print-ir: unknown step '{name}'"
                            f"{did_you_mean(name, compiled.registry.steps)}")
    check_stages(compiled.steps)  # a missing stage fails now, not after an hour of work
    original = program.clone() if results_may_change(compiled) else None
    ctx.original = original
    if args.resume and not any(s.name == "train" for s in compiled.steps):
        raise ActcError("--resume: this recipe has no train step")
    if original is not None and args.eval_data:
        from actc.data import open_dataset

        open_dataset(args.eval_data, program)  # a bad --eval-data fails before anything is written
    results = run_pipeline(compiled, ctx, opts)
    results += strip_training_ops(ctx, opts)
    from actc.train.parallel import current_world

    if not current_world().is_main:  # data-parallel training: rank 0 writes the model
        print(f"actc: rank {current_world().rank} done (rank 0 writes {args.output})",
              file=sys.stderr)
        return 0
    written = save_model(ctx.program, args.output, source=files)
    if not args.quiet:
        print(f"actc: {len(results)} step(s) from {compiled.path}"
              + (f" recipe '{compiled.recipe}'" if compiled.recipe else " (no recipe: copy)"),
              file=sys.stderr)
        if results:
            print(summary(results), file=sys.stderr)
        for note in ctx.notes:
            print(f"  note: {note}", file=sys.stderr)
        if ctx.reports.get("quantizers"):
            from actc.quant.error import worst_table

            auto = ctx.reports.get("auto") or {}
            winners = {t["tensor"]: t["applied"] for t in auto.get("tensors", [])}
            print(worst_table(ctx.reports["quantizers"], winners=winners), file=sys.stderr)
        print(f"wrote {written.program}", file=sys.stderr)
        print(size_line(files, written), file=sys.stderr)
    if args.report:
        write_report(args.report, ctx.reports.get("quantizers"), ctx.reports.get("auto"))
    if args.bench:
        print(bench_before_after(files, written, device), file=sys.stderr)
    if original is not None and not args.no_eval:
        from actc.runtime.report import compare, eval_source

        data = eval_source(args.eval_data, files)
        if data is not None:
            from actc.io.model import load_model

            print(compare(original, load_model(written.program.parent)[0], data, device))
    return 0


def check_report_path(path: str) -> None:
    from pathlib import Path

    p = Path(path)
    if p.is_dir():
        raise ActcError("--report names a directory; give a file name", path=path)
    parent = next((d for d in [p.parent, *p.parent.parents] if d.exists()), Path("."))
    import os

    if not os.access(parent, os.W_OK):
        raise ActcError(f"--report: cannot write here ({parent} is not writable)", path=path)


def write_report(path: str, rows, auto: dict | None = None) -> None:
    """--report: every quantizer's error as JSON (empty when the recipe quantized nothing),
    and with ``algo: auto`` every candidate's error per tensor and the whole-model check."""
    import json

    from actc.io.atomic import write_atomic

    data = [dict(r.to_json(), sqnr_db=None if r.sqnr_db == float("inf") else r.sqnr_db)
            for r in rows or []]  # exact (inf) -> null: JSON has no infinity
    report = {"quantizers": data}
    if auto:
        report["auto"] = auto
    write_atomic(path, (json.dumps(report, indent=1) + "\n").encode())


def size_line(before, after) -> str:
    """Model size on disk before and after, the first thing a user compressing asks."""
    from actc.deploy.bench import model_size
    from actc.dump.common import human_bytes

    a, b = model_size(before), model_size(after)
    ratio = f" ({a / b:.2f}x smaller)" if b and b < a else ""
    return f"size: {human_bytes(a)} -> {human_bytes(b)}{ratio}"


def bench_before_after(before, after, device: str) -> str:
    """compile --bench: `actc bench INPUT OUTPUT` at batch 1 and 8."""
    from actc.deploy.bench import format_table, run_one
    from actc.io.model import load_model

    runs = []
    for name, f in (("input", before), ("output", after)):
        program, files = load_model(f.program, f.params, files=f)
        runs.append(run_one(name, program, files, batches=[1, 8],
                            device="gpu" if device.startswith("gpu") else "cpu", threads=1,
                            warmup=5, repeats=20, shapes={}, data=None))
    return format_table(runs, [1, 8])


def strip_training_ops(ctx, opts) -> list:
    """What a recipe left for training only: strip_distill (teacher, losses) and fold_masks
    (sparsity masks into zero weights), so the written model holds the plain student."""
    from actc.dsl.pipeline import run_step
    from actc.dsl.registry import default_registry
    from actc.ir.dead import dead_ops

    from actc.dsl.compiler import BoundStep

    results = []
    if any(op.has_attr("actc_teacher") or op.has_attr("actc_loss") or
           op.has_attr("actc_label") for op in dead_ops(ctx.program)):
        spec = default_registry().get("strip_distill")
        results.append(run_step(BoundStep(spec, {}, spec.pos, spec.path, ""), ctx))
        ctx.notes.append("strip_distill: teacher and loss ops removed before writing "
                         "(added automatically)")
    if any(op.has_attr("actc_mask") for op in ctx.program.ops()):
        spec = default_registry().get("fold_masks")
        results.append(run_step(BoundStep(spec, {}, spec.pos, spec.path, ""), ctx))
        ctx.notes.append("fold_masks: sparsity masks multiplied into the weights before "
                         "writing (added automatically)")
    return results


def results_may_change(compiled) -> bool:
    """Only recipes that run the model (a runtime stage) are worth an accuracy report."""
    return any(getattr(step.spec, "kind", None) == "stage" or step.name in WEIGHT_PASSES
               for step in compiled.steps)


# passes that change what the model computes (worth an accuracy report without any stage)
WEIGHT_PASSES = ("prune_channels", "prune_transformer", "sparsify", "asp_prune", "fold_masks")
