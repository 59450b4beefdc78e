"""Expression evaluation, shared by selectors, step arguments and rule bodies.

Values are plain Python (int, float, str, bool, None, list, dict, set) plus ``values.*``;
ops are ``ir.Op`` objects and vars are their names (so ``x + "@scale"`` just works and
``x.shape`` looks the var up). A ``Selector`` in a boolean position is applied to the current
subject (the matched op or var).
"""
from __future__ import annotations

import fnmatch

import numpy as np
import re
from typing import Any

from actc.dsl import ast as A
from actc.dsl.values import ArgNames, AttrView, EnumName, Range, Selector, type_name, show
from actc.ir.program import Op, Program


class EvalError(Exception):
    """An evaluation problem at a source position (turned into ActcError by the caller)."""

    def __init__(self, message: str, pos: A.Pos | None = None):
        super().__init__(message)
        self.message = message
        self.pos = pos


SUBJECT = "__subject__"
OP_FIELDS = ("type", "name_scope", "input", "output", "attr", "has_weight", "is_conv1x1",
             "uid", "block", "inputs", "outputs")
VAR_FIELDS = ("name", "is_weight", "shape", "dtype", "persistable", "rank")


class Evaluator:
    """Evaluates expressions against one program (None at compile time: no model)."""

    def __init__(self, program: Program | None = None, primitives: dict | None = None,
                 ctx: Any = None):
        self.program = program
        self.primitives = primitives
        self.ctx = ctx

    # ---------------------------------------------------------------- truth
    def truth(self, value, env: dict) -> bool:
        if isinstance(value, Selector):
            subject = env.get(SUBJECT)
            if subject is None:
                raise EvalError("a selector needs an op or var to test")
            return self.test(value, subject)
        if isinstance(value, ArgNames):
            return len(value) > 0
        if isinstance(value, EnumName) and value in ("all", "none"):
            return value == "all"  # the selector constants
        if isinstance(value, np.ndarray) and value.size != 1:
            raise EvalError(f"an array of {value.size} elements is neither true nor false; "
                            "test one element, or compare whole arrays with ==")
        return bool(value)

    def test(self, sel: Selector, subject) -> bool:
        """Does ``subject`` (an Op, or a var name) satisfy the selector?"""
        env = dict(sel.env)
        if isinstance(subject, Op):
            env["op"] = subject
        else:
            env["var"] = subject
        env[SUBJECT] = subject
        return self.truth(self.eval(sel.expr, env), env)

    def select_ops(self, sel: Selector, block: int | None = None) -> list[Op]:
        return [op for op in self.program.ops(block=block) if self.test(sel, op)]

    def select_vars(self, sel: Selector) -> list[str]:
        return [v.name for v in self.program.all_vars() if self.test(sel, v.name)]

    # ---------------------------------------------------------------- eval
    def eval(self, e, env: dict):
        method = getattr(self, "_" + type(e).__name__)
        return method(e, env)

    def _Lit(self, e: A.Lit, env):
        return e.value

    def _Name(self, e: A.Name, env):
        if e.id in env:
            return env[e.id]
        if e.id in ("op", "var"):
            raise EvalError(f"'{e.id}' is only defined inside a selector", e.pos)
        return EnumName(e.id)

    def _ListLit(self, e: A.ListLit, env):
        return [self.eval(x, env) for x in e.items]

    def _SetLit(self, e: A.SetLit, env):
        return frozenset(self.eval(x, env) for x in e.items)

    def _MapLit(self, e: A.MapLit, env):
        return {k: self.eval(v, env) for k, _, v in e.items}

    def _RangeLit(self, e: A.RangeLit, env):
        return Range(self.eval(e.lo, env), self.eval(e.hi, env))

    def _Unary(self, e: A.Unary, env):
        v = self.eval(e.operand, env)
        if e.op == "not":
            return not self.truth(v, env)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise EvalError(f"cannot negate a {type_name(v)}", e.pos)
        return _bounded("-", -v, e.pos)

    def _Binary(self, e: A.Binary, env):
        if e.op == "and":
            return self.truth(self.eval(e.left, env), env) and \
                self.truth(self.eval(e.right, env), env)
        if e.op == "or":
            return self.truth(self.eval(e.left, env), env) or \
                self.truth(self.eval(e.right, env), env)
        a, b = self.eval(e.left, env), self.eval(e.right, env)
        _check_growth(e.op, a, b, e.pos)
        try:
            with np.errstate(all="ignore"):  # overflow is reported by _bounded, not warned
                return self._arith(e, a, b)
        except TypeError:
            pass
        except ValueError as err:  # numpy: shapes that do not broadcast
            raise EvalError(f"cannot apply '{e.op}': {err}", e.pos) from None
        except OverflowError:
            raise EvalError(f"'{e.op}' overflows: the result is not a finite float",
                            e.pos) from None
        except ZeroDivisionError:
            raise EvalError("division by zero", e.pos) from None
        raise EvalError(f"cannot apply '{e.op}' to {type_name(a)} and {type_name(b)}", e.pos)

    def _arith(self, e: A.Binary, a, b):
        """``a op b`` for + - * / %; TypeError when the operands do not go together."""
        if e.op == "+":
            if isinstance(a, str) != isinstance(b, str):
                raise TypeError
            if isinstance(a, (list, tuple)):
                return list(a) + list(b)
            return (str(a) + str(b)) if isinstance(a, str) else _bounded("+", a + b, e.pos)
        if isinstance(a, (str, list)) or isinstance(b, (str, list)):
            raise TypeError
        if e.op == "-":
            return _bounded("-", a - b, e.pos)
        if e.op == "*":
            return _bounded("*", a * b, e.pos)
        if e.op == "/":
            return _bounded("/", a // b if isinstance(a, int) and isinstance(b, int)
                            else a / b, e.pos)
        if e.op == "%":
            return _bounded("%", a % b, e.pos)
        raise TypeError

    def _Cond(self, e: A.Cond, env):
        if self.truth(self.eval(e.test, env), env):
            return self.eval(e.then, env)
        return self.eval(e.orelse, env)

    def _Compare(self, e: A.Compare, env):
        a, b = self.eval(e.left, env), self.eval(e.right, env)
        if isinstance(a, ArgNames):
            return any(self._cmp(e, x, b) for x in a)
        return self._cmp(e, a, b)

    def _cmp(self, e: A.Compare, a, b) -> bool:
        op = e.op
        if op in ("==", "!="):
            if a is None or b is None:  # null compares by identity (arrays included)
                eq = a is b
            elif isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
                eq = isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and \
                    a.shape == b.shape and bool(np.array_equal(a, b))
            else:
                eq = _norm(a) == _norm(b)
            return eq if op == "==" else not eq
        if op in ("in", "not in"):
            if isinstance(b, Range):
                found = b.lo <= a <= b.hi
            elif isinstance(b, (list, tuple, set, frozenset, dict, str)):
                found = _norm(a) in {_norm(x) for x in b} if not isinstance(b, str) else a in b
            else:
                raise EvalError(f"'in' needs a list, set or range on the right, not a "
                                f"{type_name(b)}", e.pos)
            return found if op == "in" else not found
        if op == "contains":
            if a is None:
                return False
            if isinstance(a, str):
                return str(b) in a
            if isinstance(a, (list, tuple)):
                return b in a
            raise EvalError(f"'contains' needs a string or list on the left, not a "
                            f"{type_name(a)}", e.pos)
        if op in ("glob", "matches"):
            if a is None:
                return False
            if not isinstance(a, str) or not isinstance(b, str):
                raise EvalError(f"'{op}' compares a string with a pattern string", e.pos)
            if op == "glob":
                return fnmatch.fnmatchcase(a, b)
            try:
                return re.search(b, a) is not None
            except re.error as err:
                raise EvalError(f"bad regular expression {b!r}: {err}", e.pos) from None
        try:
            return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
        except TypeError:
            raise EvalError(f"cannot compare {type_name(a)} {op} {type_name(b)}",
                            e.pos) from None

    def _Attr(self, e: A.Attr, env):
        obj = self.eval(e.obj, env)
        return self.get_field(obj, e.name, e.pos)

    def get_field(self, obj, name: str, pos=None):
        if isinstance(obj, Op):
            return self._op_field(obj, name, pos)
        if isinstance(obj, AttrView):
            return obj.op.attr(name)
        if isinstance(obj, ArgNames):
            return list(obj.slots.get(name, []))
        if isinstance(obj, dict):
            if name not in obj:
                raise EvalError(f"mapping has no key '{name}'", pos)
            return obj[name]
        if isinstance(obj, (list, tuple)) and name in ("rank", "len", "length"):
            return len(obj)
        if isinstance(obj, str):
            return self._var_field(obj, name, pos)
        raise EvalError(f"a {type_name(obj)} has no field '{name}'", pos)

    def _op_field(self, op: Op, name: str, pos):
        if name == "type":
            return op.type
        if name == "name_scope":
            return op.name_scope
        if name in ("input", "inputs"):
            return ArgNames(op.input_names, op.inputs)
        if name in ("output", "outputs"):
            return ArgNames(op.output_names, op.outputs)
        if name == "attr":
            return AttrView(op)
        if name == "has_weight":
            return self.program is not None and any(
                self.program.is_weight(n, op.block) for n in op.input_names)
        if name == "is_conv1x1":
            if op.type not in ("conv2d", "depthwise_conv2d") or self.program is None:
                return False
            f = op.input("Filter")
            var = self.program.var(f[0], op.block) if f else None
            return var is not None and var.shape is not None and len(var.shape) == 4 \
                and tuple(var.shape[2:]) == (1, 1)
        if name == "uid":
            return op.uid
        if name == "block":
            return op.block
        raise EvalError(f"an op has no field '{name}' (fields: {', '.join(OP_FIELDS)})", pos)

    def _var_field(self, name: str, field: str, pos):
        if field == "name":
            return name
        prog = self.program
        var = prog.var(name) if prog is not None else None
        if field == "is_weight":
            return prog is not None and prog.is_weight(name)
        if field == "persistable":
            return var is not None and var.persistable
        if field == "shape":
            return list(var.shape) if var is not None and var.shape is not None else None
        if field == "rank":
            return len(var.shape) if var is not None and var.shape is not None else None
        if field == "dtype":
            return var.dtype if var is not None else None
        raise EvalError(f"a var has no field '{field}' (fields: {', '.join(VAR_FIELDS)})", pos)

    def _Index(self, e: A.Index, env):
        obj, idx = self.eval(e.obj, env), self.eval(e.index, env)
        if isinstance(obj, (AttrView, ArgNames)) and isinstance(idx, str):
            return self.get_field(obj, idx, e.pos)
        if isinstance(obj, dict):
            if idx not in obj:
                raise EvalError(f"mapping has no key {show(idx)}", e.pos)
            return obj[idx]
        if isinstance(obj, (list, tuple, str)) and isinstance(idx, int) \
                and not isinstance(idx, bool):
            if not -len(obj) <= idx < len(obj):
                raise EvalError(f"index {idx} is out of range (length {len(obj)})", e.pos)
            return obj[idx]
        raise EvalError(f"cannot index a {type_name(obj)} with a {type_name(idx)}", e.pos)

    def _Call(self, e: A.Call, env):
        target = env.get(e.func)
        if isinstance(target, Selector):
            if len(e.args) != 1 or e.kwargs:
                raise EvalError(f"selector '{e.func}' takes one op or var", e.pos)
            return self.test(target, self.eval(e.args[0], env))
        from actc.dsl.primitives import PRIMITIVES
        prim = PRIMITIVES.get(e.func)
        if prim is None:
            from actc.errors import did_you_mean
            raise EvalError(f"unknown function '{e.func}'{did_you_mean(e.func, PRIMITIVES)}",
                            e.pos)
        args = [self.eval(a, env) for a in e.args]
        kwargs = {a.name: self.eval(a.value, env) for a in e.kwargs}
        return prim.call(self, args, kwargs, e.pos)


def _norm(v):
    """Compare lists and tuples alike, and names with strings."""
    if isinstance(v, (list, tuple)):
        return tuple(_norm(x) for x in v)
    if isinstance(v, EnumName):
        return str(v)
    return v


def _bounded(op: str, v, pos):
    """Arithmetic stays in what a recipe can mean: 64-bit integers, finite floats (arrays
    too: numpy only warns when a float overflows to inf)."""
    from actc.dsl.limits import MAX_INT

    if isinstance(v, bool):
        return v
    if isinstance(v, int) and not -MAX_INT - 1 <= v <= MAX_INT:
        raise EvalError(f"'{op}' overflows: the result does not fit in 64 bits", pos)
    if isinstance(v, (float, np.floating, np.ndarray)) and np.asarray(v).dtype.kind == "f" \
            and not np.isfinite(v).all():
        raise EvalError(f"'{op}' overflows: the result is not a finite float", pos)
    return v


def _check_growth(op: str, a, b, pos) -> None:
    """Refuse before building a value too big to be a recipe's (doubling a string forty
    times used to end in MemoryError)."""
    from actc.dsl.limits import MAX_ARRAY, MAX_LIST, MAX_STRING

    if op == "+" and isinstance(a, str) and isinstance(b, str) and \
            len(a) + len(b) > MAX_STRING:
        raise EvalError(f"'+' would make a string of {len(a) + len(b)} characters; the limit "
                        f"is {MAX_STRING}", pos)
    if op == "+" and isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and \
            len(a) + len(b) > MAX_LIST:
        raise EvalError(f"'+' would make a list of {len(a) + len(b)} elements; the limit is "
                        f"{MAX_LIST}", pos)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        try:
            shape = np.broadcast_shapes(np.shape(a), np.shape(b))
        except ValueError:
            return  # numpy reports the mismatch itself
        size = int(np.prod(shape, dtype=object))
        if size > MAX_ARRAY:
            raise EvalError(f"'{op}' would make an array of {size} elements; the limit is "
                            f"{MAX_ARRAY}", pos)
