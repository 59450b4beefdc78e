"""Run-time values of the language that plain Python types do not cover."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any


class EnumName(str):
    """A bare identifier used as a value (``hist``, ``conv2d``, ``channel_wise_abs_max``)."""


@dataclass(frozen=True)
class Range:
    """An inclusive search range ``lo .. hi``."""
    lo: Any
    hi: Any

    def __str__(self) -> str:
        return f"{self.lo} .. {self.hi}"


@dataclass
class Selector:
    """An unevaluated predicate over ``op`` (or ``var``), closed over the names it may use.

    ``env`` holds the recipe/pass parameters visible where it was written; ``text`` is its
    source, for messages and for printing recipes back.
    """
    expr: Any
    env: dict = field(default_factory=dict)
    text: str = ""
    path: str = ""

    @property
    def subject(self) -> str:
        """'op' or 'var': which kind of thing the predicate talks about."""
        from actc.dsl.selectors import subject_of
        return subject_of(self.expr)

    def __str__(self) -> str:
        return self.text or "<selector>"

    def __repr__(self) -> str:
        return f"Selector({self.text!r})"


class ArgNames(tuple):
    """``op.input`` / ``op.output``: all argument names; comparisons hold if any name matches,
    and ``.Slot`` / ``[slot]`` gives one slot's list."""

    def __new__(cls, names, slots: dict[str, list[str]]):
        obj = super().__new__(cls, names)
        obj.slots = slots
        return obj


class AttrView:
    """``op.attr``: attribute access that yields null for a missing attribute."""

    __slots__ = ("op",)

    def __init__(self, op):
        self.op = op


def type_name(value) -> str:
    """How a value's kind is spelled in messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, EnumName):
        return "name"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Selector):
        return "selector"
    if isinstance(value, Range):
        return "range"
    if isinstance(value, dict):
        return "mapping"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, (set, frozenset)):
        return "set"
    return type(value).__name__


# Words the grammar uses as keywords: a name spelled like one is written as a string.
RESERVED = frozenset({
    "import", "pass", "recipe", "rule", "match", "where", "set", "let", "for", "in", "insert",
    "before", "after", "remove", "bypass", "and", "or", "not", "all", "none", "true", "false",
    "null", "op", "var", "contains", "glob", "matches",
})


class SelectorText(str):
    """Selector source written by a generator (the YAML lowering), printed verbatim."""


def _float_source(x: float) -> str:
    if math.isinf(x) or math.isnan(x):
        raise ValueError(f"cannot write {x} in a recipe")
    r = repr(float(x))
    if "e" in r:
        mant, exp = r.split("e")
        if "." not in mant:
            mant += ".0"
        r = f"{mant}e{exp}"
    return r


def show(value, _depth: int = 0) -> str:
    """A value as recipe source: what messages quote and what generated recipes contain.
    A loop can nest a list deeper than any literal: past limits.MAX_NESTING it is refused."""
    from actc.dsl.limits import MAX_NESTING

    if _depth > MAX_NESTING:
        raise ValueTooDeep(f"a value nested deeper than {MAX_NESTING} levels")
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (Selector, SelectorText)):
        return str(value)
    if isinstance(value, EnumName):
        ok = value.isidentifier() and value not in RESERVED
        return str(value) if ok else json.dumps(str(value))
    if isinstance(value, Range):
        return f"{show(value.lo)} .. {show(value.hi)}"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float_source(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(show(v, _depth + 1) for v in value) + "]"
    if isinstance(value, (set, frozenset)):
        return "{" + ", ".join(sorted(show(v, _depth + 1) for v in value)) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key_source(k)}: {show(v, _depth + 1)}"
                               for k, v in value.items()) + "}"
    return str(value)


def _key_source(key) -> str:
    """A mapping key as recipe source: a plain name bare, anything else (a var name with dots,
    a reserved word) quoted."""
    key = str(key)
    return key if key.isidentifier() and key not in RESERVED else json.dumps(key,
                                                                          ensure_ascii=False)


class ValueTooDeep(ValueError):
    """show() of a value nested past limits.MAX_NESTING."""
