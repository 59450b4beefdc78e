"""Shared pieces of the dump formats: op filters, type strings, sizes, block nesting."""
from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np

from actc.ir.program import Op, Program, Var
from actc.proto import framework_pb2 as fpb

OpPredicate = Callable[[Op], bool]

SHORT_DTYPES = {
    "bool": "bool", "int8": "i8", "int16": "i16", "int32": "i32", "int64": "i64",
    "uint8": "u8", "uint16": "u16", "uint32": "u32", "uint64": "u64",
    "float16": "f16", "bfloat16": "bf16", "float32": "f32", "float64": "f64",
    "complex64": "c64", "complex128": "c128", "float8_e4m3fn": "f8e4m3", "float8_e5m2": "f8e5m2",
}
_VT_NAMES = {v: k.lower() for k, v in fpb.VarType.Type.items()}


def short_dtype(name: str | None) -> str:
    return "?" if name is None else SHORT_DTYPES.get(name, name)


def shape_str(shape) -> str:
    """``?x3x224x224``; ``scalar`` for rank 0."""
    if shape is None:
        return "?"
    if len(shape) == 0:
        return "scalar"
    return "x".join("?" if d < 0 else str(d) for d in shape)


def var_type_str(var: Var | None) -> str | None:
    """The ``<...>`` annotation of a var: ``?x64 f32``, ``array<?x10 f32>``, ``step_scopes``."""
    if var is None:
        return None
    t = var.type
    if t == fpb.VarType.DENSE_TENSOR:
        return f"{shape_str(var.shape)} {short_dtype(var.dtype)}"
    if t == fpb.VarType.DENSE_TENSOR_ARRAY:
        return f"array<{shape_str(var.shape)} {short_dtype(var.dtype)}>"
    if t == fpb.VarType.SELECTED_ROWS:
        return f"rows<{shape_str(var.shape)} {short_dtype(var.dtype)}>"
    return _VT_NAMES.get(t, f"vartype{t}")


def weight_type_str(program: Program, name: str, block: int = 0) -> str | None:
    """A weight's type from its stored tensor (the file is authoritative), else its VarDesc."""
    t = program.params.get(name)
    if t is not None:
        return f"{shape_str(t.shape)} {short_dtype(t.dtype)}"
    return var_type_str(program.var(name, block))


def human_bytes(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        n /= 1024.0
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}"
    raise AssertionError("unreachable")


def human_count(n: int) -> str:
    if n < 10_000:
        return str(n)
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


def float_str(v: float, float32: bool = True) -> str:
    """Shortest text that reads back to the same float32 (or float64) value."""
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    s = str(np.float32(v)) if float32 else repr(float(v))
    return s


def weights(program: Program) -> list[tuple[str, tuple, str, int]]:
    """(name, shape, dtype, nbytes) of every persistable var the model ships, in file order."""
    rows = []
    for name in program.persistable_names():
        t = program.params.get(name)
        if t is not None:
            rows.append((name, tuple(t.shape), t.dtype, t.nbytes))
        else:  # no params file (inspecting a program only): sizes from the VarDesc
            var = next((b.vars[name] for b in program.blocks if name in b.vars), None)
            shape = var.shape if var is not None and var.shape is not None else ()
            dtype = (var.dtype if var else None) or "?"
            rows.append((name, tuple(shape), dtype, _declared_bytes(shape, dtype)))
    return rows


def _declared_bytes(shape, dtype) -> int:
    """Bytes a VarDesc declares, 0 where its shape or dtype is unknown."""
    if not shape or any(d is None or d < 0 for d in shape):
        return 0
    try:
        return int(np.prod(shape)) * np.dtype(str(dtype)).itemsize
    except TypeError:
        return 0


def name_scope(op: Op) -> str:
    """The op's name scope, or "" when it has none (or a corrupt, non-string one)."""
    scope = op.name_scope
    return scope if isinstance(scope, str) else ""


# ------------------------------------------------------------------- filters
@dataclass
class OpFilter:
    """Op filters from the command line; every given criterion must hold."""

    op_types: set[str] = field(default_factory=set)
    var_globs: list[str] = field(default_factory=list)
    name_scopes: list[str] = field(default_factory=list)

    @classmethod
    def from_strings(cls, op_types: Iterable[str] = (), var_globs: Iterable[str] = (),
                     name_scopes: Iterable[str] = ()) -> "OpFilter":
        types = {t.strip() for s in op_types for t in s.split(",") if t.strip()}
        return cls(types, [g for g in var_globs if g], [s for s in name_scopes if s])

    def __bool__(self) -> bool:
        return bool(self.op_types or self.var_globs or self.name_scopes)

    def _var_ok(self, op: Op) -> bool:
        names = op.input_names + op.output_names
        for glob in self.var_globs:
            magic = any(c in glob for c in "*?[")
            if any((fnmatch.fnmatchcase(n, glob) if magic else n == glob) for n in names):
                return True
        return False

    def __call__(self, op: Op) -> bool:
        if self.op_types and op.type not in self.op_types:
            return False
        if self.var_globs and not self._var_ok(op):
            return False
        if self.name_scopes and not any(s in name_scope(op) for s in self.name_scopes):
            return False
        return True

    def describe(self) -> str:
        parts = []
        if self.op_types:
            parts.append("op type in {" + ", ".join(sorted(self.op_types)) + "}")
        if self.var_globs:
            parts.append("touches " + " or ".join(self.var_globs))
        if self.name_scopes:
            parts.append("name scope contains " + " or ".join(repr(s) for s in self.name_scopes))
        return " and ".join(parts)


# ----------------------------------------------------------- block nesting
def block_owners(program: Program) -> dict[int, Op]:
    """Sub-block index -> the first op that runs it (a block with no owner is top level)."""
    owners: dict[int, Op] = {}
    for block in program.blocks:
        for op in block.ops:
            for idx in op.sub_block_ids:
                if 0 < idx < len(program.blocks) and idx != block.idx and idx not in owners:
                    owners[idx] = op
    return owners


def visible_ops(program: Program, pred: OpPredicate | None) -> set[int] | None:
    """uids of the ops to show: those ``pred`` accepts and the control-flow ops that (transitively)
    own a block holding one. None when everything is shown."""
    if pred is None:
        return None
    shown = {op.uid for op in program.ops(block=None) if pred(op)}
    owners = block_owners(program)
    for block in program.blocks:
        if any(op.uid in shown for op in block.ops):
            seen = set()
            b = block.idx
            while b in owners and b not in seen:
                seen.add(b)
                shown.add(owners[b].uid)
                b = owners[b].block
    return shown
