"""``actc check RECIPE [--model M]``: validate a recipe without writing anything; with a
model, also check selectors against it and dry-run the passes (which ops quantize touches)."""
from __future__ import annotations



def add_parser(sub) -> None:
    p = sub.add_parser("check", help="validate a recipe (optionally against a model)",
                       description="Parse and type-check a recipe, and check that every stage "
                                   "it calls can run; with --model, also check its selectors "
                                   "against the model and dry-run its passes in memory. "
                                   "Nothing is written.")
    p.add_argument("recipe", help=".actc recipe file")
    p.add_argument("--recipe-name", metavar="N")
    p.add_argument("--set", action="append", default=[], metavar="K=V")
    p.add_argument("--model", help="model dir: check selectors and dry-run the passes")
    p.add_argument("--strict", action="store_true",
                   help="a skip_ops selector that matches nothing is an error, not a warning")


def dry_run(steps, program, files=None) -> list[str]:
    """Run the structural passes on the in-memory program; explain each quantize step."""
    from actc.dsl.quantinfo import explain_quantize, format_decisions
    from actc.dsl.pipeline import PipelineContext
    from actc.dsl.rules import RuleRunner

    # passes like distill read the input model (the default teacher) from the context
    ctx = PipelineContext(program=program, source=files, original=program.clone())
    out = []
    for st in steps:
        if st.spec.kind != "pass":
            out.append(f"{st.name}: runtime stage (not run by check)")
            continue
        if st.name == "quantize":
            out.append(format_decisions(explain_quantize(program, st.args["ops"])))
        result = RuleRunner(program, st.spec.passdef, st.args, ctx).run()
        out.append(f"{st.name}: {result.summary()}")
    return out


def check_stages(steps) -> None:
    """A stage compile would refuse fails the check too, at the step that calls it."""
    from actc.errors import ActcError

    for step in steps:
        if step.spec.kind == "stage":
            try:
                step.spec.impl()
            except ActcError as e:
                raise ActcError(e.message, path=step.path, line=step.pos.line,
                                col=step.pos.col) from None


def run(args) -> int:
    from actc.cli.common import recipe_path
    from actc.cli.compile_cmd import parse_sets
    from actc.dsl.compiler import compile_file

    program = None
    if args.model:
        from actc.cli.common import model_path
        from actc.io.model import load_model
        program, files = load_model(model_path(args.model), need_params=False)
    compiled = compile_file(recipe_path(args.recipe), recipe_name=args.recipe_name,
                            overrides=parse_sets(args.set), program=program,
                            strict_selectors="all" if args.strict else True)
    check_stages(compiled.steps)
    for w in compiled.warnings:
        print(f"warning: {w}")
    if compiled.recipe is None:
        print(f"{args.recipe}: ok (no recipe: compile copies the model unchanged)")
        return 0
    print(f"{args.recipe}: ok: recipe '{compiled.recipe}', {len(compiled.steps)} step(s)")
    for st in compiled.steps:
        print(f"  {st.name}({', '.join(f'{k}: {_show(v)}' for k, v in st.args.items())})")
    if program is not None:
        if program.params or not program.persistable_names():
            lines = dry_run(compiled.steps, program, files)
        else:
            lines = [f"(no params file beside {files.program}: passes not dry-run; selectors "
                     "were checked against the program)"]
        for line in lines:
            print(line)
    return 0


def _show(v) -> str:
    from actc.dsl.values import show
    return show(v)
