"""The readable text IR: one op per line, MLIR-like.

    // 1 block, 71 ops (13 types), 62 weights: 11.69M values, 44.6 MiB
    // inputs:  %image<?x3x224x224 f32>
    // outputs: %linear_1.tmp_1<?x1000 f32>
    ^block0 {
      %image<?x3x224x224 f32> = feed(X: %feed) {col=0}
      %conv2d_0.tmp_0<?x64x112x112 f32> = conv2d(Input: %image, Filter: @conv2d_0.w_0<64x3x7x7 f32>) {paddings=[3,3], strides=[2,2]}
      ...
    }

Rules:

- ``%name`` is an activation, ``@name`` a weight (persistable data shipped in the params file).
- A var's type ``<shape dtype>`` is written where an op defines it; weights are defined by the
  params file, so each use of a weight carries its type (read from the stored tensor). ``?`` is
  an unknown (batch) dimension.
- An op with one output writes ``%out = op(...)``; with several output slots,
  ``(Y: %y, MeanOut: @m) = op(...)``. Inputs are always ``Slot: value`` (``Slot: [a, b]`` for
  several); empty slots are left out. The main data slot (X, Input) comes first.
- Attrs are ``{name=value}``, sorted by name; attrs at their default (actc.dump.defaults) are
  hidden unless ``show_attrs='all'``. Block attrs read ``^blockN``; dtype codes read as dtypes.
- A name scope other than ``/`` is written ``loc("/scope/")`` at the end of the line.
- The sub-blocks of control flow (while, conditional_block ...) follow their op, indented.
"""
from __future__ import annotations

import numpy as np

import json
from typing import Literal

from actc.dump.common import (OpPredicate, block_owners, float_str, human_bytes, human_count,
                              name_scope, short_dtype, var_type_str, visible_ops, weight_type_str,
                              weights)
from actc.dump.defaults import is_default
from actc.io.dtypes import dtype_name, VARTYPE_DTYPES
from actc.ir.attrs import A, attr_value
from actc.ir.program import Block, Op, Program
from actc.proto import framework_pb2 as fpb

INDENT = "  "
PRIMARY_INPUTS = ("X", "Input", "Condition", "Cond")
PRIMARY_OUTPUTS = ("Out", "Output", "Y")
DTYPE_ATTRS = frozenset({"dtype", "in_dtype", "out_dtype"})


def _q(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def _scalar_str(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, complex):
        return f"{float_str(v.real, False)}{'+' if v.imag >= 0 else '-'}{float_str(abs(v.imag), False)}j"
    if isinstance(v, float):
        return float_str(v, False)
    return str(v)


def _list(fmt, sep=","):
    return lambda v: "[" + sep.join(fmt(x) for x in v) + "]"


def _bool(v) -> str:
    return "true" if v else "false"


# AttrType -> formatter of the attr's Python value (a dict: protobuf enum lookups are slow).
_FORMAT = {
    A.FLOAT: float_str,
    A.FLOAT64: lambda v: float_str(v, False),
    A.STRING: _q,
    A.BOOLEAN: _bool,
    A.INTS: _list(str),
    A.LONGS: _list(str),
    A.FLOATS: _list(float_str),
    A.FLOAT64S: _list(lambda x: float_str(x, False)),
    A.STRINGS: _list(_q, ", "),
    A.BOOLEANS: _list(_bool),
    A.BLOCK: lambda v: f"^block{v}",
    A.BLOCKS: _list(lambda x: f"^block{x}"),
    A.VAR: lambda v: f"%{v}",
    A.VARS: _list(lambda x: f"%{x}", ", "),
    A.SCALAR: _scalar_str,
    A.SCALARS: _list(_scalar_str),
}
_INT_TYPES = frozenset({A.INT, A.LONG})


def attr_str(attr: fpb.OpDesc.Attr) -> str:
    """One attr value as dump text."""
    v = attr_value(attr)
    if attr.type in _INT_TYPES:
        if attr.name in DTYPE_ATTRS and v in VARTYPE_DTYPES:
            return short_dtype(dtype_name(v))
        return str(v)
    fmt = _FORMAT.get(attr.type)
    return fmt(v) if fmt is not None else repr(v)


def _ordered(slots, primary) -> list:
    slots = [s for s in slots]
    first = [s for p in primary for s in slots if s.parameter == p]
    return first + [s for s in slots if s not in first]


class _Renderer:
    def __init__(self, program: Program, pred: OpPredicate | None, show_attrs: str):
        self.p = program
        self.shown = visible_ops(program, pred)
        self.pred = pred
        self.all_attrs = show_attrs == "all"
        self.lines: list[str] = []

    # ------------------------------------------------------------- values
    def _is_weight(self, name: str, block: int) -> bool:
        return self.p.is_weight(name, block)

    def use(self, name: str, block: int) -> str:
        if self._is_weight(name, block):
            t = weight_type_str(self.p, name, block)
            return f"@{name}<{t}>" if t else f"@{name}"
        return f"%{name}"

    def define(self, name: str, block: int) -> str:
        if self._is_weight(name, block):
            return f"@{name}"
        var = self.p.var(name, block)
        if var is None or var.is_feed_fetch:
            return f"%{name}"
        return f"%{name}<{var_type_str(var)}>"

    def _args(self, names: list[str], block: int, fn) -> str:
        if len(names) == 1:
            return fn(names[0], block)
        return "[" + ", ".join(fn(n, block) for n in names) + "]"

    # --------------------------------------------------------------- ops
    def op_line(self, op: Op) -> str:
        b = op.block
        outs = [s for s in _ordered(op.desc.outputs, PRIMARY_OUTPUTS)
                if s.arguments or self.all_attrs]
        ins = [s for s in _ordered(op.desc.inputs, PRIMARY_INPUTS) if s.arguments or self.all_attrs]
        if not outs:
            lhs = ""
        elif len(outs) == 1 and not self.all_attrs:
            lhs = ", ".join(self.define(n, b) for n in outs[0].arguments) + " = "
        else:
            lhs = "(" + ", ".join(f"{s.parameter}: {self._args(list(s.arguments), b, self.define)}"
                                  for s in outs) + ") = "
        args = ", ".join(f"{s.parameter}: {self._args(list(s.arguments), b, self.use)}"
                         for s in ins)
        attrs = []
        for a in sorted(op.desc.attrs, key=lambda a: a.name):
            if not self.all_attrs:
                try:
                    value = attr_value(a)
                except Exception:
                    value = None
                if is_default(op.type, a.name, value):
                    continue
            attrs.append(f"{a.name}={attr_str(a)}")
        line = f"{lhs}{op.type}({args})"
        if attrs:
            line += " {" + ", ".join(attrs) + "}"
        scope = name_scope(op)
        if scope and scope != "/" and not self.all_attrs:
            line += f" loc({_q(scope)})"
        if self.pred is not None and not self.pred(op):
            line += "  // holds matches"
        return line

    # ------------------------------------------------------------ blocks
    def block(self, block: Block, depth: int, visiting: set[int], note: str = "") -> None:
        pad = INDENT * depth
        self.lines.append(f"{pad}^block{block.idx} {{{note}")
        visiting = visiting | {block.idx}
        for op in block.ops:
            if self.shown is not None and op.uid not in self.shown:
                continue
            self.lines.append(pad + INDENT + self.op_line(op))
            for idx in op.sub_block_ids:
                if not 0 <= idx < len(self.p.blocks):
                    self.lines.append(f"{pad}{INDENT * 2}^block{idx} {{}}  // no such block")
                elif idx in visiting:
                    self.lines.append(f"{pad}{INDENT * 2}^block{idx} {{...}}  // recursive")
                elif self.owners.get(idx) is op:
                    sub = self.p.blocks[idx]
                    sub_note = ""
                    if sub.parent_idx != block.idx:
                        sub_note = f"  // parent ^block{sub.parent_idx}"
                    self.block(sub, depth + 2, visiting, sub_note)
                else:
                    self.lines.append(f"{pad}{INDENT * 2}^block{idx} {{...}}  // shown above")
        self.lines.append(pad + "}")

    def header(self, title: str | None) -> None:
        p = self.p
        n_ops = p.op_count()
        types = {op.type for op in p.ops(block=None)}
        rows = weights(p)
        total = sum(r[3] for r in rows)
        values = sum(self.p.params[r[0]].array.size if r[0] in self.p.params else
                     (int(np.prod(r[1])) if r[3] else 0) for r in rows)
        if title:
            self.lines.append(f"// {title}")
        nb = len(p.blocks)
        self.lines.append(
            f"// {nb} block{'s' if nb != 1 else ''}, {n_ops} ops ({len(types)} types), "
            f"{len(rows)} weights: {human_count(values)} values, {human_bytes(total)}")
        feeds = ", ".join(self.define(n, 0) for n in p.feed_names())
        fetches = ", ".join(self.define(n, 0) for n in p.fetch_names())
        self.lines.append(f"// inputs:  {feeds or '(none)'}")
        self.lines.append(f"// outputs: {fetches or '(none)'}")
        if self.shown is not None:
            matched = sum(1 for op in p.ops(block=None) if self.pred(op))
            desc = getattr(self.pred, "describe", lambda: "")()
            self.lines.append(f"// filter: {matched} of {n_ops} ops" + (f" ({desc})" if desc else ""))

    def render(self, title: str | None) -> str:
        self.owners = block_owners(self.p)
        self.header(title)
        if self.p.blocks:
            self.block(self.p.blocks[0], 0, set())
        for block in self.p.blocks[1:]:
            if block.idx not in self.owners:
                if self.shown is not None and not any(op.uid in self.shown for op in block.ops):
                    continue
                self.block(block, 0, set(), f"  // parent ^block{block.parent_idx}, "
                                            "run by no op")
        return "\n".join(self.lines) + "\n"


def render(program: Program, *, ops: OpPredicate | None = None,
           show_attrs: Literal["nondefault", "all"] = "nondefault",
           title: str | None = None) -> str:
    """The whole program (or the ops ``ops`` accepts, with their enclosing control flow)."""
    if show_attrs not in ("nondefault", "all"):
        raise ValueError(f"show_attrs must be 'nondefault' or 'all', not {show_attrs!r}")
    return _Renderer(program, ops, show_attrs).render(title)
