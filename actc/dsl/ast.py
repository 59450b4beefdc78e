"""The typed syntax tree of an ``.actc`` file; every node keeps its source position so the
compiler can point at the exact token a user has to fix."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union


@dataclass(frozen=True)
class Pos:
    line: int
    col: int


# ------------------------------------------------------------------ expressions
@dataclass
class Lit:
    """A literal: int, float, str, bool or None."""
    value: Any
    pos: Pos


@dataclass
class Name:
    """A bare identifier: a local, a parameter, ``op``/``var``, or an enum name."""
    id: str
    pos: Pos


@dataclass
class ListLit:
    items: list
    pos: Pos


@dataclass
class SetLit:
    items: list
    pos: Pos


@dataclass
class MapLit:
    items: list  # [(key: str, key_pos: Pos, value: Expr)]
    pos: Pos


@dataclass
class RangeLit:
    lo: Any
    hi: Any
    pos: Pos


@dataclass
class Unary:
    op: str  # "-" or "not"
    operand: Any
    pos: Pos


@dataclass
class Binary:
    op: str  # + - * / % and or
    left: Any
    right: Any
    pos: Pos


@dataclass
class Compare:
    op: str  # == != < <= > >= in "not in" contains glob matches
    left: Any
    right: Any
    pos: Pos


@dataclass
class Cond:
    test: Any
    then: Any
    orelse: Any
    pos: Pos


@dataclass
class Attr:
    obj: Any
    name: str
    pos: Pos


@dataclass
class Index:
    obj: Any
    index: Any
    pos: Pos


@dataclass
class Call:
    func: str
    args: list
    kwargs: list  # [Arg]
    pos: Pos


Expr = Union[Lit, Name, ListLit, SetLit, MapLit, RangeLit, Unary, Binary, Compare, Cond, Attr,
             Index, Call]


# ------------------------------------------------------------------ declarations
@dataclass
class Arg:
    name: str
    value: Any
    pos: Pos
    text: str = ""  # the value's source text


@dataclass
class TypeAlt:
    name: str  # int float bool str enum selector list range mapping
    choices: list[str] | None
    pos: Pos


@dataclass
class Param:
    name: str
    types: list[TypeAlt]
    range: tuple | None  # (lo Expr, hi Expr)
    default: Any | None  # Expr, or None when the parameter is required
    doc: str
    pos: Pos


@dataclass
class Step:
    name: str
    args: list[Arg]
    pos: Pos


@dataclass
class Recipe:
    name: str
    params: list[Param]
    doc: str
    steps: list[Step]
    pos: Pos


@dataclass
class Match:
    var: str
    kind: str  # "op", "var" or "program" (the rule runs once)
    where: Any | None
    pos: Pos


@dataclass
class Rule:
    name: str
    match: Match
    body: list
    pos: Pos


@dataclass
class PassDef:
    name: str
    params: list[Param]
    doc: str
    rules: list[Rule]
    pos: Pos
    source: str = ""  # the definition's text, shown by `actc passes NAME`
    path: str = ""


@dataclass
class StageDef:
    name: str
    params: list[Param]
    doc: str
    pos: Pos
    path: str = ""


@dataclass
class Import:
    target: str
    pos: Pos


@dataclass
class Module:
    path: str
    source: str
    imports: list[Import] = field(default_factory=list)
    passes: list[PassDef] = field(default_factory=list)
    recipes: list[Recipe] = field(default_factory=list)
    stages: list[StageDef] = field(default_factory=list)


# ------------------------------------------------------------------ statements
@dataclass
class Let:
    name: str
    value: Any
    pos: Pos


@dataclass
class NewVar:
    name: str
    args: list[Arg]
    pos: Pos


@dataclass
class Insert:
    bind: str | None
    op_type: Any  # str or Expr
    position: str  # before / after / end (then anchor is None)
    anchor: Any
    inputs: MapLit
    outputs: MapLit
    attrs: MapLit | None
    pos: Pos


@dataclass
class For:
    var: str
    iter: Any
    body: list
    pos: Pos


@dataclass
class If:
    test: Any
    then: list
    orelse: list
    pos: Pos


@dataclass
class SetStmt:
    target: Any
    value: Any
    pos: Pos


@dataclass
class Unset:
    target: Any
    pos: Pos


@dataclass
class Rewire:
    op: Any
    old: Any
    new: Any
    pos: Pos


@dataclass
class Replace:
    old: Any
    new: Any
    where: Any | None
    pos: Pos


@dataclass
class Remove:
    op: Any
    bypass: bool
    in_slot: str | None
    out_slot: str | None
    pos: Pos


@dataclass
class Rename:
    old: Any
    new: Any
    pos: Pos


@dataclass
class Fail:
    message: Any
    pos: Pos


@dataclass
class Note:
    message: Any
    pos: Pos


@dataclass
class Merge:
    program: Any   # an expression giving a Program (e.g. teacher_program(...))
    prefix: Any
    keep: Any | None
    share: Any | None
    pos: Pos


@dataclass
class Return:
    pos: Pos
