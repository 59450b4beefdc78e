"""The step registry: every pass (from ``passes/*.actc``) and runtime stage, with typed
parameters. It is the single source of truth that ``actc passes``, ``actc check``, the
compiler, the YAML front end and the runtime all read.

Stage signatures are declared in ``passes/stages.actc`` in the same parameter syntax as
passes; their implementations are looked up lazily at ``actc.runtime.stages:<name>`` and
called as ``fn(ctx, args)``, so the core never imports Paddle.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from functools import lru_cache
from actc.dsl.resources import data_dir
from typing import Any

from actc.dsl import ast as A
from actc.dsl.evaluate import EvalError, Evaluator
from actc.dsl.parser import error_at, parse
from actc.dsl.typecheck import TYPES, TypeProblem, coerce
from actc.dsl.values import Selector, show
from actc.errors import ActcError, did_you_mean

STAGE_MODULE = "actc.runtime.stages"


@dataclass
class ParamSpec:
    name: str
    types: tuple[str, ...]
    default: Any = None
    required: bool = False
    choices: tuple[str, ...] | None = None
    lo: Any = None
    hi: Any = None
    doc: str = ""
    pos: A.Pos | None = None

    @property
    def nullable(self) -> bool:
        return not self.required and self.default is None

    @property
    def type_text(self) -> str:
        parts = []
        for t in self.types:
            if t == "enum" and self.choices:
                parts.append(f"enum({', '.join(self.choices)})")
            else:
                parts.append(t)
        text = " or ".join(parts)
        if self.lo is not None:
            text += f" in {self.lo}..{self.hi}"
        return text

    def describe(self) -> str:
        d = "required" if self.required else f"= {show(self.default)}"
        return f"{self.name}: {self.type_text} {d}"


@dataclass
class StepSpec:
    name: str
    kind: str  # "pass" or "stage"
    params: list[ParamSpec]
    doc: str = ""
    path: str = ""
    pos: A.Pos | None = None
    passdef: A.PassDef | None = None

    def param(self, name: str) -> ParamSpec | None:
        return next((p for p in self.params if p.name == name), None)

    def impl(self):
        """The runtime implementation of a stage, imported on first use."""
        try:
            mod = importlib.import_module(STAGE_MODULE)
        except ImportError as e:
            raise ActcError(f"stage '{self.name}' needs the Paddle runtime ({STAGE_MODULE} "
                            f"cannot be imported: {e}); install it with "
                            "pip install 'actc[paddle]'") from None
        implemented = tuple(getattr(mod, "IMPLEMENTED", ()))
        if self.name not in implemented:  # only the explicit list: never any module attribute
            raise ActcError(f"stage '{self.name}' is not a runtime stage"
                            f"{did_you_mean(self.name, implemented)}; runtime stages: "
                            f"{', '.join(implemented)}")
        fn = getattr(mod, self.name, None)
        if not callable(fn):
            raise ActcError(f"stage '{self.name}' is declared but this version of actc does "
                            f"not implement it; runtime stages: {', '.join(implemented)}")
        return fn


def param_spec(p: A.Param, path: str, source: str) -> ParamSpec:
    """Build a ParamSpec from its declaration, checking the declaration itself."""
    types, choices = [], None
    for alt in p.types:
        if alt.name not in TYPES:
            raise error_at(f"unknown type '{alt.name}'{did_you_mean(alt.name, TYPES)}; types: "
                           f"{', '.join(TYPES)}", path, source, alt.pos)
        if alt.choices is not None:
            if alt.name != "enum":
                raise error_at(f"only enum takes choices, not {alt.name}", path, source,
                               alt.pos)
            choices = tuple(alt.choices)
        types.append(alt.name)
    ev = Evaluator()
    lo = hi = None
    if p.range is not None:
        try:
            lo, hi = ev.eval(p.range[0], {}), ev.eval(p.range[1], {})
        except EvalError as e:
            raise error_at(e.message, path, source, e.pos or p.pos) from None
    spec = ParamSpec(p.name, tuple(types), choices=choices, lo=lo, hi=hi, doc=p.doc, pos=p.pos,
                     required=p.default is None)
    if p.default is not None:
        if "selector" in types and not (isinstance(p.default, A.Lit)
                                        and p.default.value is None):
            from actc.dsl.selectors import SelectorProblem, check_selector
            try:
                check_selector(p.default, set())
            except SelectorProblem as e:
                raise error_at(e.message, path, source, e.pos) from None
            spec.default = Selector(p.default, {}, _default_text(p, source), path)
        else:
            try:
                value = ev.eval(p.default, {})
                spec.default = None if value is None else coerce(spec, value)
            except EvalError as e:
                raise error_at(e.message, path, source, e.pos or p.pos) from None
            except TypeProblem as e:
                raise error_at(f"default of {e}", path, source, p.pos) from None
    return spec


def _default_text(p: A.Param, source: str) -> str:
    """The source text of a parameter's default (for listings)."""
    lines = source.splitlines()
    line = lines[p.pos.line - 1][p.pos.col - 1:] if p.pos.line <= len(lines) else ""
    text = line.split("=", 1)[1] if "=" in line else ""
    if p.doc:
        text = text.rsplit('"' + p.doc, 1)[0] if ('"' + p.doc) in text else text
    return text.strip().rstrip(",").strip() or "<selector>"


@dataclass
class Registry:
    steps: dict[str, StepSpec] = field(default_factory=dict)

    def copy(self) -> "Registry":
        return Registry(dict(self.steps))

    def get(self, name: str) -> StepSpec | None:
        return self.steps.get(name)

    def add_module(self, mod: A.Module, stdlib: bool = False) -> None:
        """Register a module's passes, and its stages only when ``stdlib`` (actc's own
        passes/*.actc, loaded by _default): said by the caller, never read off a path a user
        could spell."""
        from actc.dsl.checkpass import check_pass

        for d in list(mod.passes) + list(mod.stages):
            prev = self.steps.get(d.name)
            if prev is not None:
                where = f" (first defined in {prev.path}:{prev.pos.line})" if prev.pos else ""
                raise error_at(f"step '{d.name}' is defined twice{where}", mod.path,
                               mod.source, d.pos)
            params = []
            for p in d.params:
                if any(q.name == p.name for q in params):
                    raise error_at(f"parameter '{p.name}' is declared twice", mod.path,
                                   mod.source, p.pos)
                params.append(param_spec(p, mod.path, mod.source))
            if isinstance(d, A.PassDef):
                check_pass(d, params, mod.path, mod.source)
                self.steps[d.name] = StepSpec(d.name, "pass", params, d.doc, mod.path, d.pos, d)
            else:
                if not stdlib:  # stages are actc's own code, not a recipe's
                    raise error_at(f"a recipe file cannot declare stage '{d.name}' (stages are "
                                   "actc's own code; write a pass)", mod.path, mod.source,
                                   d.pos)
                self.steps[d.name] = StepSpec(d.name, "stage", params, d.doc, mod.path, d.pos)


def stdlib_files() -> dict[str, tuple[str, str]]:
    """{stem: (display path, text)} of every passes/*.actc."""
    out = {}
    root = data_dir("actc.stdlib")
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".actc"):
            out[entry.name[:-5]] = (f"<stdlib>/{entry.name}", entry.read_text(encoding="utf-8"))
    return out


@lru_cache(maxsize=1)
def _default() -> Registry:
    reg = Registry()
    for stem, (path, text) in stdlib_files().items():
        reg.add_module(parse(text, path), stdlib=True)
    return reg


def default_registry() -> Registry:
    """All stdlib passes and stages (a fresh copy callers may extend)."""
    return _default().copy()
