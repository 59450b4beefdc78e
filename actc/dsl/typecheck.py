"""Checking a value against a parameter's declared type, choices and range."""
from __future__ import annotations

from actc.dsl.values import EnumName, Range, Selector, show, type_name
from actc.errors import did_you_mean

TYPES = ("int", "float", "bool", "str", "enum", "selector", "list", "range", "mapping", "any")


class TypeProblem(Exception):
    pass


def _one(t: str, value, choices):
    """The value converted to type ``t``, or raise TypeProblem."""
    if t == "any":
        return value
    if t == "int" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if t == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if t == "bool" and isinstance(value, bool):
        return value
    if t == "str" and isinstance(value, str) and not isinstance(value, EnumName):
        return value
    if t == "enum" and isinstance(value, str):
        if choices and str(value) not in choices:
            raise TypeProblem(f"{show(value)} is not one of {', '.join(choices)}"
                              f"{did_you_mean(value, choices)}")
        return EnumName(value)
    if t == "selector" and isinstance(value, (Selector, bool)):
        return value
    if t == "list" and isinstance(value, (list, tuple, frozenset, set)):
        return sorted(value) if isinstance(value, (set, frozenset)) else list(value)
    if t == "range" and isinstance(value, Range):
        return value
    if t == "mapping" and isinstance(value, dict):
        return value
    raise TypeProblem(None)


def coerce(spec, value):
    """``value`` checked against ``spec`` (a ParamSpec); raises TypeProblem with a message."""
    if value is None:
        if spec.nullable:
            return None
        raise TypeProblem(f"'{spec.name}' expects {spec.type_text}, got null")
    last = None
    for t in spec.types:
        try:
            out = _one(t, value, spec.choices)
        except TypeProblem as e:
            if e.args[0]:
                last = e.args[0]
            continue
        if spec.lo is not None and isinstance(out, (int, float)) and not isinstance(out, bool):
            if not spec.lo <= out <= spec.hi:
                raise TypeProblem(f"'{spec.name}' must be in {spec.lo}..{spec.hi}, got {out}")
        return out
    if last:
        raise TypeProblem(f"'{spec.name}': {last}")
    raise TypeProblem(f"'{spec.name}' expects {spec.type_text}, got {type_name(value)} "
                      f"{show(value)}")
