"""Recipe file -> checked, fully bound pipeline (``Compiled``), or an ``ActcError`` that points
at the token to fix. Nothing runs and nothing is written here.

Order: parse -> resolve imports (user passes join the registry) -> pick the recipe -> bind its
parameters (defaults, then ``--set``) -> for each step: known step, known arguments, types,
choices and ranges, selectors (fields, op types) -> with a model: every selector must match.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actc.dsl import ast as A
from actc.dsl.evaluate import EvalError, Evaluator
from actc.dsl.parser import error_at, parse, parse_expr
from actc.dsl.registry import ParamSpec, Registry, StepSpec, default_registry, param_spec, \
    stdlib_files
from actc.dsl.limits import MAX_IMPORT_DEPTH
from actc.dsl.resources import FileProblem, bundled_recipe, read_recipe
from actc.dsl.selectors import SelectorProblem, check_selector
from actc.dsl.typecheck import TypeProblem, coerce
from actc.dsl.values import EnumName, Selector
from actc.errors import ActcError, did_you_mean


@dataclass
class BoundStep:
    spec: StepSpec
    args: dict[str, Any]
    pos: A.Pos
    path: str
    source: str
    arg_pos: dict[str, A.Pos] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name

    def where(self) -> str:
        return f"{self.path}:{self.pos.line}"


@dataclass
class Compiled:
    recipe: str | None
    steps: list[BoundStep]
    params: dict[str, Any]
    path: str
    registry: Registry
    warnings: list[str] = field(default_factory=list)
    strict: bool | str = True  # a selector matching nothing is an error (check_selectors)


def load_module(path: str, source: str, registry: Registry, seen: set[str] | None = None,
                depth: int = 0) -> A.Module:
    """Parse ``source`` and register the passes of everything it imports (then its own)."""
    seen = set() if seen is None else seen
    mod = parse(source, path)
    stdlib = stdlib_files()
    for imp in mod.imports:
        target = imp.target
        if not target.endswith(".actc") and "/" not in target:
            if target not in stdlib:
                raise error_at(f"no stdlib pass file '{target}'{did_you_mean(target, stdlib)}; "
                               f"stdlib: {', '.join(stdlib)}", path, source, imp.pos)
            continue  # stdlib passes are always registered
        file = (Path(path).parent / target).absolute()
        if str(file.resolve()) in seen:
            continue
        seen.add(str(file.resolve()))
        if depth >= MAX_IMPORT_DEPTH:
            raise error_at(f"imports nested deeper than {MAX_IMPORT_DEPTH} files", path, source,
                           imp.pos)
        try:
            text = read_recipe(file, need_suffix=True)
        except FileProblem as e:
            raise error_at(f"cannot import '{target}': {e}", path, source, imp.pos) from None
        sub = load_module(str(file), text, registry, seen, depth + 1)
        if sub.recipes:
            pass  # recipes of imported files are not runnable from here; only passes count
    registry.add_module(A.Module(mod.path, mod.source, [], mod.passes, [], mod.stages))
    return mod


def pick_recipe(mod: A.Module, name: str | None) -> A.Recipe | None:
    names = [r.name for r in mod.recipes]
    if name is not None:
        for r in mod.recipes:
            if r.name == name:
                return r
        raise ActcError(f"no recipe named '{name}'{did_you_mean(name, names)}"
                        + (f"; recipes: {', '.join(names)}" if names else "; the file has none"),
                        path=mod.path)
    if not mod.recipes:
        return None
    for r in mod.recipes:
        if r.name == "main":
            return r
    if len(mod.recipes) == 1:
        return mod.recipes[0]
    raise ActcError(f"the file defines {len(names)} recipes ({', '.join(names)}) and none is "
                    "called 'main'; choose one with --recipe-name", path=mod.path)


class _Binder:
    """Evaluates and checks argument expressions of one recipe."""

    def __init__(self, mod: A.Module):
        self.mod = mod
        self.ev = Evaluator()

    def err(self, msg, pos):
        return error_at(msg, self.mod.path, self.mod.source, pos)

    def value(self, spec: ParamSpec, expr, env: dict, text: str, pos: A.Pos):
        if "selector" in spec.types and not (isinstance(expr, A.Lit) and expr.value is None):
            is_param = isinstance(expr, A.Name) and expr.id in env
            if not is_param or isinstance(env.get(expr.id), Selector):
                try:
                    check_selector(expr, set(env))
                except SelectorProblem as e:
                    raise self.err(e.message, e.pos) from None
                return Selector(expr, dict(env), text, self.mod.path)
        if isinstance(expr, A.Name) and spec.choices and expr.id in spec.choices:
            return coerce(spec, EnumName(expr.id))  # a choice wins over a same-named parameter
        try:
            value = self.ev.eval(expr, env)
        except EvalError as e:
            raise self.err(e.message, e.pos or pos) from None
        try:
            return coerce(spec, value)
        except TypeProblem as e:
            raise self.err(str(e), getattr(expr, "pos", pos)) from None


def bind_params(recipe: A.Recipe, mod: A.Module, overrides: dict[str, str]) -> dict[str, Any]:
    binder = _Binder(mod)
    specs = {p.name: param_spec(p, mod.path, mod.source) for p in recipe.params}
    for k in overrides:
        if k not in specs:
            hint = did_you_mean(k, specs) or (f"; its parameters: {', '.join(specs)}" if specs
                                              else "; it has no parameters")
            raise ActcError(f"--set {k}: recipe '{recipe.name}' has no parameter '{k}'{hint}",
                            path=mod.path)
    values: dict[str, Any] = {}
    for p in recipe.params:
        spec = specs[p.name]
        if p.name in overrides:
            text = overrides[p.name]
            try:
                expr = parse_expr(text, f"--set {p.name}")
            except ActcError as e:
                why = e.message if "out of range" in e.message else "not a valid value"
                raise ActcError(f"--set {p.name}={text}: {why}") from None
            try:
                values[p.name] = binder.value(spec, expr, {}, text, p.pos)
            except ActcError as e:
                raise ActcError(f"--set {p.name}={text}: {e.message}") from None
        elif spec.required:
            raise error_at(f"recipe parameter '{p.name}' has no default; give it with "
                           f"--set {p.name}=VALUE", mod.path, mod.source, p.pos)
        else:
            values[p.name] = spec.default
    return values


def bind_step(step: A.Step, registry: Registry, env: dict, mod: A.Module) -> BoundStep:
    binder = _Binder(mod)
    spec = registry.get(step.name)
    if spec is None:
        raise binder.err(f"unknown step '{step.name}'{did_you_mean(step.name, registry.steps)}"
                         " (see `actc passes`)", step.pos)
    args: dict[str, Any] = {}
    arg_pos: dict[str, A.Pos] = {}
    for a in step.args:
        p = spec.param(a.name)
        if p is None:
            names = [q.name for q in spec.params]
            hint = did_you_mean(a.name, names) or (
                f"; parameters: {', '.join(names)}" if names else "; it takes no parameters")
            raise binder.err(f"{spec.name} has no parameter '{a.name}'{hint}", a.pos)
        if a.name in args:
            raise binder.err(f"parameter '{a.name}' is given twice", a.pos)
        args[a.name] = binder.value(p, a.value, env, a.text, a.pos)
        arg_pos[a.name] = a.pos
    for p in spec.params:
        if p.name not in args:
            if p.required:
                raise binder.err(f"{spec.name} needs '{p.name}' ({p.type_text})", step.pos)
            args[p.name] = p.default
    return BoundStep(spec, args, step.pos, mod.path, mod.source, arg_pos)


# Steps whose selector only exempts ops: matching none changes nothing, so it is a warning
# (a bundled recipe's `skip_ops(op.name_scope contains "skip_quant")` must run on any model)
# unless the user asks for strictness (compile/check --strict).
OPTIONAL_SELECTOR_STEPS = ("skip_ops",)


def check_selectors(steps: list[BoundStep], program, strict: bool | str = True) -> list[str]:
    """Every selector written in these steps must match something in ``program``; with
    ``strict=False`` (ACT configs, whose patterns may legitimately match nothing) an empty
    selector is returned as a warning instead. ``strict=True`` still lets the steps of
    OPTIONAL_SELECTOR_STEPS match nothing (a warning); ``strict="all"`` does not."""
    warnings = []
    ev = Evaluator(program)
    for st in steps:
        for name, value in st.args.items():
            if not isinstance(value, Selector) or name not in st.arg_pos:
                continue
            if isinstance(value.expr, A.Name) and value.expr.id in ("all", "none"):
                continue
            pos = st.arg_pos[name]
            try:
                if value.subject == "var":
                    n = len(ev.select_vars(value))
                else:
                    n = len(ev.select_ops(value, block=None))
            except EvalError as e:
                raise error_at(e.message, st.path, st.source, e.pos or pos) from None
            if n == 0:
                msg = f"{st.name}: selector '{value.text}' matches no {value.subject} in the model"
                if strict == "all" or (strict and st.name not in OPTIONAL_SELECTOR_STEPS):
                    raise error_at(msg, st.path, st.source, pos)
                warnings.append(msg)
    return warnings


def compile_source(source: str, path: str = "<recipe>", *, recipe_name: str | None = None,
                   overrides: dict[str, str] | None = None, program=None,
                   strict_selectors: bool | str = True) -> Compiled:
    """Check a recipe file and bind its steps; with ``program``, check selectors against it."""
    registry = default_registry()
    mod = load_module(path, source, registry)
    recipe = pick_recipe(mod, recipe_name)
    if recipe is None:
        if overrides:
            raise ActcError(f"--set {next(iter(overrides))}: the file has no recipe", path=path)
        return Compiled(None, [], {}, path, registry)
    env = bind_params(recipe, mod, overrides or {})
    steps = [bind_step(s, registry, env, mod) for s in recipe.steps]
    compiled = Compiled(recipe.name, steps, env, path, registry, strict=strict_selectors)
    if program is not None and steps:
        # Later steps' selectors may match what earlier steps create: the pipeline checks
        # each step against the program it actually runs on; the first one is checked now.
        compiled.warnings = check_selectors(steps[:1], program, strict_selectors)
    return compiled


def compile_file(path: str | Path, **kw) -> Compiled:
    path = bundled_recipe(path)
    try:
        text = read_recipe(path, need_suffix=False)
    except FileProblem as e:
        raise ActcError(f"cannot read the recipe: {e}", path=path) from None
    return compile_source(text, str(path), **kw)
