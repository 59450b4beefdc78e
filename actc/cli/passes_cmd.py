"""``actc passes [NAME]``: the step registry (passes and stages) with parameters and docs;
one step with its DSL source; ``--model`` with quantize: which ops it would rewrite."""
from __future__ import annotations

from actc.errors import ActcError, did_you_mean


def add_parser(sub) -> None:
    p = sub.add_parser("passes", help="list passes and runtime stages")
    p.add_argument("name", nargs="?", help="show one step in full")
    p.add_argument("--model", help="with 'quantize': dry-run it with its defaults on MODEL")
    p.add_argument("--primitives", action="store_true", help="list the DSL's Python primitives")


def run(args) -> int:
    from actc.dsl.registry import default_registry

    reg = default_registry()
    if args.primitives:
        from actc.dsl.primitives import PRIMITIVES
        for prim in PRIMITIVES.values():
            print(f"{prim.signature()}\n    {prim.doc}")
        return 0
    if not args.name:
        for kind in ("pass", "stage"):
            print("Passes (structural rewrites, DSL):" if kind == "pass"
                  else "\nRuntime stages (need Paddle):")
            for spec in reg.steps.values():
                if spec.kind == kind:
                    print(f"  {spec.name:<18} {spec.doc}")
                    for p in spec.params:
                        doc = f"  -- {p.doc}" if p.doc else ""
                        print(f"      {p.describe()}{doc}")
        return 0
    spec = reg.get(args.name)
    if spec is None:
        raise ActcError(f"unknown step '{args.name}'{did_you_mean(args.name, reg.steps)}")
    print(f"{spec.kind} {spec.name}: {spec.doc}\n  defined in {spec.path}:{spec.pos.line}")
    for p in spec.params:
        print(f"  {p.describe()}" + (f"  -- {p.doc}" if p.doc else ""))
    if spec.passdef is not None:
        print("\n" + spec.passdef.source)
    else:
        print(f"\n  implementation: actc.runtime.stages:{spec.name}(ctx, args)")
    if args.model:
        if spec.name != "quantize":
            raise ActcError("--model dry runs only the quantize pass")
        from actc.dsl.quantinfo import explain_quantize, format_decisions
        from actc.cli.common import model_path
        from actc.io.model import load_model
        program, _ = load_model(model_path(args.model))
        print(format_decisions(explain_quantize(program, spec.param("ops").default)))
    return 0
