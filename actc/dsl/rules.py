"""The rule engine: runs a DSL pass's rules on a program.

Contract (single sweep, like a greedy rewriter without re-queueing): each rule, in order,
snapshots its candidates (ops in program order across all blocks, or vars in declaration
order) before rewriting; for each candidate still present it re-checks ``where`` against
the current program and runs the body. Ops a rule inserts are never matched by that same
sweep, so a rewrite cannot feed itself and every pass terminates. Later rules see earlier
rules' results.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from actc.dsl import ast as A
from actc.dsl.evaluate import SUBJECT, EvalError, Evaluator
from actc.dsl.parser import error_at
from actc.dsl.values import AttrView, Selector, show, type_name
from actc.ir.program import IRError, Op, Program


@dataclass
class PassResult:
    """What a step changed (filled by the engine, or by diffing for stages)."""
    name: str
    matched: int = 0
    ops_added: int = 0
    ops_removed: int = 0
    rewired: int = 0
    vars_added: int = 0
    attrs_set: int = 0
    renamed: int = 0
    params_set: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = []
        for label, n in (("matched", self.matched), ("ops +", self.ops_added),
                         ("ops -", self.ops_removed), ("rewired", self.rewired),
                         ("vars +", self.vars_added), ("attrs set", self.attrs_set),
                         ("renamed", self.renamed), ("weights set", self.params_set)):
            if n:
                parts.append(f"{label} {n}")
        return ", ".join(parts) if parts else "no change"


REBOUND = "__rebound__"


# Source nesting is capped by the parser, so Python's stack runs out only on a value a loop
# nested (`set x = [x]`) that comparing or printing walks: refused where the statement is.
_TOO_DEEP = "a value nested deeper than Python can walk (lists built inside lists by a loop)"


def _array(data, dtype, pos) -> np.ndarray:
    """A new var's data as an array, or one line saying what it must be."""
    from actc.dsl.limits import MAX_ARRAY

    try:
        out = np.asarray(data, dtype=dtype or None)
    except (ValueError, TypeError, OverflowError):
        out = None
    if out is None or out.dtype == object or out.size > MAX_ARRAY:
        raise EvalError(f"new var: data must be numbers of {dtype or 'one type'} (nested lists "
                        f"of one shape), at most {MAX_ARRAY} of them", pos)
    return out


SLOT_SIDES = {"input": "input", "inputs": "input", "output": "output", "outputs": "output"}


def slot_target(t):
    """A `set` target naming an op's slot, `x.output.SLOT` or `x.output[EXPR]` (`input`,
    `inputs`, `outputs` alike): (side, op expression, slot name or expression), else None."""
    if isinstance(t, (A.Attr, A.Index)) and isinstance(t.obj, A.Attr) \
            and t.obj.name in SLOT_SIDES:
        return SLOT_SIDES[t.obj.name], t.obj.obj, t.name if isinstance(t, A.Attr) else t.index
    return None


class _Return(Exception):
    """`return`: the rule is done with the current match."""


def _child(env: dict) -> dict:
    """A nested scope: `let` stays local, `set NAME` flows back out (see _rebind)."""
    inner = dict(env)
    inner[REBOUND] = set()
    return inner


def _rebind(env: dict, inner: dict) -> None:
    for name in inner.get(REBOUND, ()):
        if name in env:
            env[name] = inner[name]
            env.setdefault(REBOUND, set()).add(name)


class RuleRunner:
    """Executes one pass definition with bound arguments."""

    def __init__(self, program: Program, passdef: A.PassDef, args: dict, ctx=None,
                 path: str = "", source: str = ""):
        self.program = program
        self.passdef = passdef
        self.args = args
        self.ctx = ctx
        self.ev = Evaluator(program, ctx=ctx)
        self.path = passdef.path or path
        self.source = source
        self.result = PassResult(passdef.name)

    def err(self, message: str, pos):
        return error_at(f"in pass '{self.passdef.name}': {message}", self.path, self._src(),
                        pos)

    def _src(self) -> str:
        if self.source:
            return self.source
        from actc.dsl.registry import stdlib_files
        for _, (p, text) in stdlib_files().items():
            if p == self.path:
                return text
        try:
            return open(self.path, encoding="utf-8").read()
        except OSError:
            return ""

    def run(self) -> PassResult:
        for rule in self.passdef.rules:
            self.run_rule(rule)
        return self.result

    def run_rule(self, rule: A.Rule) -> None:
        m = rule.match
        if m.kind == "program":  # whole-program rules run once; the subject is the program
            candidates = [self.program]
        elif m.kind == "op":
            candidates = list(self.program.ops(block=None))
        else:
            candidates = [v.name for v in self.program.all_vars()]
        for c in candidates:
            if isinstance(c, Op) and c.uid not in self.program.graph:
                continue
            if isinstance(c, str) and self.program.var(c) is None:
                continue
            env = dict(self.args)
            env[m.var] = c
            env[SUBJECT] = c
            try:
                if m.where is not None and not self.ev.truth(self.ev.eval(m.where, env), env):
                    continue
                self.result.matched += 1
                try:
                    self.block(rule.body, env)
                except _Return:
                    pass
            except EvalError as e:
                raise self.err(e.message, e.pos or m.pos) from None
            except IRError as e:
                raise self.err(str(e), m.pos) from None

    # ------------------------------------------------------------ statements
    def block(self, stmts, env: dict) -> None:
        for s in stmts:
            try:
                getattr(self, "_" + type(s).__name__)(s, env)
            except RecursionError:
                raise EvalError(_TOO_DEEP, s.pos) from None
            except EvalError as e:
                e.pos = e.pos or s.pos  # e.g. truth(): the statement that asked
                raise

    def val(self, e, env):
        return self.ev.eval(e, env)

    def _Let(self, s: A.Let, env):
        env[s.name] = self.val(s.value, env)

    def _NewVar(self, s: A.NewVar, env):
        a = {x.name: self.val(x.value, env) for x in s.args}
        base = a["name"]
        if not isinstance(base, str):
            raise EvalError(f"a var name must be a string, not {type_name(base)}", s.pos)
        like = a.get("like")
        shape, dtype = a.get("shape"), a.get("dtype")
        if like is not None:
            v = self.program.var(like)
            if v is None:
                raise EvalError(f"new var: no var '{like}' to copy", s.pos)
            shape = v.shape if shape is None else shape
            dtype = v.dtype if dtype is None else dtype
        data = a.get("data")
        persistable = bool(a.get("persistable", data is not None))
        if data is not None:
            data = _array(data, dtype, s.pos)
        subject = env.get(SUBJECT)
        block = 0 if persistable or not isinstance(subject, Op) else subject.block
        name = self.program.fresh_name(base)
        self.program.add_var(name, shape=list(shape) if shape is not None else None,
                             dtype=dtype or "float32", persistable=persistable, block=block,
                             data=data)
        self.result.vars_added += 1
        env[s.name] = name

    def _io(self, m: A.MapLit, env) -> dict[str, list[str]]:
        out = {}
        for key, _, e in m.items:
            v = self.val(e, env)
            if v is None:
                continue
            names = [v] if isinstance(v, str) else list(v)
            if not all(isinstance(n, str) for n in names):
                raise EvalError(f"slot {key} needs var names, got {show(v)}", e.pos)
            out[key] = names
        return out

    def _Insert(self, s: A.Insert, env):
        op_type = s.op_type if isinstance(s.op_type, str) else self.val(s.op_type, env)
        attrs = {k: self.val(e, env) for k, _, e in s.attrs.items} if s.attrs else {}
        if s.position == "end":  # end of the main block, ahead of its fetch ops
            fetch = self.program.trailing_fetch(0)
            kw = {"before": fetch} if fetch is not None else {"block": 0}
        else:
            anchor = self.val(s.anchor, env)
            if not isinstance(anchor, Op):
                raise EvalError(f"insert {s.position} needs an op, got {type_name(anchor)}",
                                s.pos)
            kw = {"before": anchor} if s.position == "before" else {"after": anchor}
        op = self.program.new_op(str(op_type), self._io(s.inputs, env),
                                 self._io(s.outputs, env), attrs, **kw)
        self.result.ops_added += 1
        if s.bind:
            env[s.bind] = op

    def _For(self, s: A.For, env):
        items = self.val(s.iter, env)
        if isinstance(items, (set, frozenset)):
            items = sorted(items)
        if not isinstance(items, (list, tuple)):
            raise EvalError(f"for needs a list, got {type_name(items)}", s.pos)
        for item in list(items):
            inner = _child(env)
            inner[s.var] = item
            self.block(s.body, inner)
            _rebind(env, inner)

    def _If(self, s: A.If, env):
        branch = s.then if self.ev.truth(self.val(s.test, env), env) else s.orelse
        inner = _child(env)
        self.block(branch, inner)
        _rebind(env, inner)

    def _target(self, t, env):
        if isinstance(t, A.Attr):
            view, name = self.val(t.obj, env), t.name
        else:
            view, name = self.val(t.obj, env), self.val(t.index, env)
        if not isinstance(view, AttrView) or not isinstance(name, str):
            raise EvalError("can only set an op attribute", t.pos)
        return view.op, name

    def _SetStmt(self, s: A.SetStmt, env):
        if isinstance(s.target, A.Attr) and s.target.name == "shape":
            self._set_shape(s, env)
            return
        if slot_target(s.target) is not None:
            self._set_slot(s, env)
            return
        if isinstance(s.target, A.Name):  # rebind a name of an enclosing scope
            env[s.target.id] = self.val(s.value, env)
            env.setdefault(REBOUND, set()).add(s.target.id)
            return
        op, name = self._target(s.target, env)
        value = self.val(s.value, env)
        if isinstance(value, (Selector, dict)) or value is None:
            raise EvalError(f"cannot store a {type_name(value)} in attribute '{name}'", s.pos)
        if op.has_attr(name) and op.attr(name) == value:
            return
        try:
            op.set_attr(name, value)
        except (TypeError, ValueError) as e:
            raise EvalError(f"cannot set attribute '{name}' of {op.type} to {show(value)}: "
                            f"{e}", s.pos) from None
        self.result.attrs_set += 1

    def _set_slot(self, s: A.SetStmt, env):
        """`set o.output.SLOT = [names]` (or `o.input`, `[EXPR]` for the slot): replace the
        whole argument list of one slot, adding the slot when the op lacks it."""
        side, op_expr, slot_expr = slot_target(s.target)
        op = self.val(op_expr, env)
        if not isinstance(op, Op):
            raise EvalError(f"set .{side}.SLOT needs an op, got {type_name(op)}", s.pos)
        slot = slot_expr if isinstance(slot_expr, str) else self.val(slot_expr, env)
        if not isinstance(slot, str) or not slot:
            raise EvalError(f"an {side} slot is named by a string, got {show(slot)}", s.pos)
        value = self.val(s.value, env)
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
            raise EvalError(f"{op.type}.{side}.{slot} takes var names (a string or a list of "
                            f"them), got {show(value)}", s.pos)
        names = [str(n) for n in names]
        from actc.ir.opdefs import lookup
        from actc.errors import did_you_mean
        d = lookup(op.type)
        if d is not None:
            slots = d.outputs if side == "output" else d.inputs
            if slot not in slots:
                raise EvalError(f"{op.type} has no {side} slot '{slot}' (its {side}s: "
                                f"{', '.join(slots) or 'none'}){did_you_mean(slot, slots)}",
                                s.pos)
            if len(names) > 1 and not slots[slot].duplicable:
                raise EvalError(f"{op.type}.{side}.{slot} holds one var, got {len(names)}",
                                s.pos)
        for n in names:
            if self.program.var(n, op.block) is None:
                raise EvalError(f"set {op.type}.{side}.{slot}: no var '{n}' (declare it with "
                                "`let x = new var(...)` first)", s.pos)
        current = op.outputs.get(slot) if side == "output" else op.inputs.get(slot)
        if current is not None and list(current) == names:
            return
        if side == "output":
            for n in names:
                other = [p for p, _, _ in self.program.producers(n, op.block) if p is not op]
                if other:
                    raise EvalError(f"set {op.type}.output.{slot}: '{n}' is already written by "
                                    f"{other[0].type}; an op's output must be a var no other "
                                    "op writes", s.pos)
            self.program.set_args(op, outputs={slot: names})
        else:
            self.program.set_args(op, inputs={slot: names})
        self.result.rewired += 1

    def _set_shape(self, s: A.SetStmt, env):
        name, shape = self.val(s.target.obj, env), self.val(s.value, env)
        var = self.program.var(name) if isinstance(name, str) else None
        if var is None:
            raise EvalError(f"set .shape needs a var name, got {show(name)}", s.pos)
        if not isinstance(shape, (list, tuple)) or not all(
                isinstance(d, int) and not isinstance(d, bool) for d in shape):
            raise EvalError(f"a shape is a list of ints, got {show(shape)}", s.pos)
        if var.name in self.program.params:
            raise EvalError(f"'{var.name}' holds data: its shape follows the data", s.pos)
        td = var._tensor_desc()
        if td is None:
            raise EvalError(f"'{var.name}' is not a tensor", s.pos)
        if list(td.dims) != list(shape):
            del td.dims[:]
            td.dims.extend(int(d) for d in shape)
            self.result.attrs_set += 1

    def _Unset(self, s: A.Unset, env):
        op, name = self._target(s.target, env)
        if op.has_attr(name):
            op.remove_attr(name)
            self.result.attrs_set += 1

    def _Rewire(self, s: A.Rewire, env):
        op, old, new = self.val(s.op, env), self.val(s.old, env), self.val(s.new, env)
        if not isinstance(op, Op):
            raise EvalError(f"rewire needs an op, got {type_name(op)}", s.pos)
        hits = [(slot, i) for slot, names in op.inputs.items()
                for i, n in enumerate(names) if n == old]
        if not hits:
            raise EvalError(f"{op.type} does not read '{old}'", s.pos)
        for slot, i in hits:
            self.program.set_input(op, slot, i, new)
            self.result.rewired += 1

    def _Replace(self, s: A.Replace, env):
        old, new = self.val(s.old, env), self.val(s.new, env)
        where = None
        if s.where is not None:
            def where(op):
                inner = dict(env, op=op)
                inner[SUBJECT] = op
                return self.ev.truth(self.val(s.where, inner), inner)
        self.result.rewired += self.program.replace_uses(old, new, where=where)

    def _Remove(self, s: A.Remove, env):
        op = self.val(s.op, env)
        if not isinstance(op, Op):
            raise EvalError(f"remove needs an op, got {type_name(op)}", s.pos)
        if s.bypass:
            ins = op.input(s.in_slot) if s.in_slot else next(
                (v for v in op.inputs.values() if v), [])
            outs = op.output(s.out_slot) if s.out_slot else (
                op.output("Out") or next((v for v in op.outputs.values() if v), []))
            if len(ins) != 1 or len(outs) != 1:
                raise EvalError(f"cannot bypass {op.type}: it needs exactly one input and one "
                                "output in the chosen slots (write `bypass IN -> OUT`)", s.pos)
            self.result.rewired += self.program.replace_uses(outs[0], ins[0], block=op.block)
        self.program.remove_op(op)
        self.result.ops_removed += 1

    def _Rename(self, s: A.Rename, env):
        old, new = self.val(s.old, env), self.val(s.new, env)
        if not isinstance(new, str) or not new:
            raise EvalError(f"rename needs a new name string, got {show(new)}", s.pos)
        if self.program.var(new) is not None:
            raise EvalError(f"cannot rename '{old}' to '{new}': '{new}' already exists", s.pos)
        self.program.rename_var(old, new)
        self.result.renamed += 1

    def _Fail(self, s: A.Fail, env):
        raise EvalError(self._text(s.message, env, s.pos), s.pos)

    def _Return(self, s: A.Return, env):
        raise _Return

    def _Merge(self, s: A.Merge, env):
        from actc.ir.merge import merge_program

        other = self.val(s.program, env)
        if not isinstance(other, Program):
            raise EvalError(f"merge needs a program, got {type_name(other)}", s.pos)
        prefix = self.val(s.prefix, env)
        keep = self.val(s.keep, env) if s.keep is not None else None
        share = self.val(s.share, env) if s.share is not None else []
        if not isinstance(prefix, str) or not prefix:
            raise EvalError(f"merge prefix must be a non-empty string, got {show(prefix)}",
                            s.pos)
        try:
            added = merge_program(self.program, other, prefix=prefix,
                                  keep=None if keep is None else list(keep),
                                  share=list(share or []))
        except IRError as e:
            raise EvalError(str(e), s.pos) from None
        self.result.ops_added += added.ops
        self.result.vars_added += added.vars

    def _text(self, expr, env, pos) -> str:
        """A message value as text; values nested too deep are refused, not a crash."""
        from actc.dsl.values import ValueTooDeep, show

        value = self.val(expr, env)
        if isinstance(value, str):
            return value
        try:
            return show(value)
        except ValueTooDeep as e:
            raise EvalError(f"cannot print {e}", pos) from None

    def _Note(self, s: A.Note, env):
        text = self._text(s.message, env, s.pos)
        if text not in self.result.notes:
            self.result.notes.append(text)
