"""Static checks on selectors: known fields, known op types, and what they are about.

Done before anything runs, so ``op.type == conv2dd`` is an error with a suggestion instead of
a selector that silently matches nothing.
"""
from __future__ import annotations

from actc.dsl import ast as A
from actc.dsl.evaluate import OP_FIELDS, VAR_FIELDS
from actc.dsl.known_ops import KNOWN_OP_TYPES
from actc.errors import did_you_mean


class SelectorProblem(Exception):
    def __init__(self, message: str, pos: A.Pos):
        super().__init__(message)
        self.message = message
        self.pos = pos


def _walk(e):
    yield e
    for child in _children(e):
        yield from _walk(child)


def _children(e):
    if isinstance(e, (A.ListLit, A.SetLit)):
        return list(e.items)
    if isinstance(e, A.MapLit):
        return [v for _, _, v in e.items]
    if isinstance(e, A.RangeLit):
        return [e.lo, e.hi]
    if isinstance(e, A.Unary):
        return [e.operand]
    if isinstance(e, (A.Binary, A.Compare)):
        return [e.left, e.right]
    if isinstance(e, A.Cond):
        return [e.test, e.then, e.orelse]
    if isinstance(e, A.Attr):
        return [e.obj]
    if isinstance(e, A.Index):
        return [e.obj, e.index]
    if isinstance(e, A.Call):
        return list(e.args) + [a.value for a in e.kwargs]
    return []


def subject_of(expr) -> str:
    """'var' if the predicate mentions ``var`` and not ``op``; else 'op'."""
    names = {e.id for e in _walk(expr) if isinstance(e, A.Name)}
    return "var" if "var" in names and "op" not in names else "op"


def _is_op_type(e) -> bool:
    return isinstance(e, A.Attr) and e.name == "type" and isinstance(e.obj, A.Name) \
        and e.obj.id == "op"


def _type_names(e, params: set[str]):
    """(name, pos) of each op-type literal on the right of an ``op.type`` comparison."""
    items = e.items if isinstance(e, (A.SetLit, A.ListLit)) else [e]
    for it in items:
        if isinstance(it, A.Name) and it.id not in params:
            yield it.id, it.pos
        elif isinstance(it, A.Lit) and isinstance(it.value, str):
            yield it.value, it.pos


def check_selector(expr, params: set[str]) -> None:
    """Raise ``SelectorProblem`` for unknown fields or op types; ``params`` are the names
    (recipe parameters) a selector may refer to."""
    for e in _walk(expr):
        if isinstance(e, A.Attr) and isinstance(e.obj, A.Name) and e.obj.id in ("op", "var"):
            fields = OP_FIELDS if e.obj.id == "op" else VAR_FIELDS
            if e.name not in fields:
                raise SelectorProblem(
                    f"unknown field '{e.obj.id}.{e.name}'{did_you_mean(e.name, fields)}; "
                    f"{e.obj.id} fields: {', '.join(fields)}", e.pos)
        if isinstance(e, A.Compare) and _is_op_type(e.left) and e.op in ("==", "!=", "in",
                                                                          "not in"):
            for name, pos in _type_names(e.right, params):
                if name not in KNOWN_OP_TYPES:
                    raise SelectorProblem(f"unknown op type '{name}'"
                                          f"{did_you_mean(name, KNOWN_OP_TYPES)}", pos)
        if isinstance(e, A.Call):
            from actc.dsl.primitives import PRIMITIVES
            if e.func not in PRIMITIVES and e.func not in params:
                raise SelectorProblem(f"unknown function '{e.func}'"
                                      f"{did_you_mean(e.func, PRIMITIVES)}", e.pos)

