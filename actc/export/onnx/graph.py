"""The ONNX graph under construction: nodes, initializers, and the map from Paddle var names
to ONNX value names (a Paddle program may write one var twice; ONNX values are written once).

Plain Python and numpy only: ``onnx`` is imported by the writer, so building (and every
converter) is testable and importable without it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from actc.ir.program import Op, Program


@dataclass
class Node:
    op_type: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict = field(default_factory=dict)
    name: str = ""
    domain: str = ""


class Unmapped(Exception):
    """An op (or an attribute value of one) with no ONNX mapping; the exporter turns it into a
    one-line user error naming the op and where it is."""


class Graph:
    """Nodes in topological order, constant tensors, and Paddle -> ONNX names."""

    def __init__(self, program: Program):
        self.program = program
        self.nodes: list[Node] = []
        self.initializers: dict[str, np.ndarray] = {}
        self.inputs: list[tuple[str, str, list]] = []   # (name, numpy dtype, shape)
        self.outputs: list[tuple[str, str, list]] = []
        self.current: dict[str, str] = {}               # Paddle var -> ONNX value now
        self.taken: set[str] = set()
        self.consts: dict[str, np.ndarray] = {}         # ONNX value -> constant it holds
        self.absorbed: set[int] = set()                 # op uids emitted by another converter
        self.qinfo: dict[str, tuple] = {}               # ONNX value -> (scale, zp) it was DQ'd with
        self._const_cache: dict[tuple, str] = {}
        self.notes: list[str] = []
        self.activations = "uint8"                      # activation grid of QuantizeLinear
        # quantizer bookkeeping (actc.export.onnx.qdq)
        self.qweights: dict = {}    # Paddle var (a dequantized weight) -> QWeight, not emitted yet
        self.qconst: dict = {}      # Paddle var (quantized codes of a constant) -> QWeight
        self.qcodes: dict = {}      # Paddle var (quantized activation) -> (step, zero point)
        self.qact: dict = {}        # ONNX value (a dequantized activation) -> (step, zp value)
        self.lazy: dict = {}        # Paddle var -> emits its value on first read
        self.dq_values: set = set() # ONNX values written by an activation DequantizeLinear
        self.sub8_bits: int | None = None  # bits of an activation quantizer under 8, if any

    # ------------------------------------------------------------------ names
    def fresh(self, base: str) -> str:
        name, i = base, 1
        while name in self.taken:
            name, i = f"{base}__{i}", i + 1
        self.taken.add(name)
        return name

    def value(self, var: str) -> str:
        """The ONNX value holding Paddle var ``var`` now (a weight becomes an initializer)."""
        if var in self.current:
            return self.current[var]
        if var in self.lazy:
            self.current[var] = self.lazy.pop(var)()
            return self.current[var]
        tensor = self.program.params.get(var)
        if tensor is None:
            raise Unmapped(f"reads '{var}', which nothing before it writes")
        name = self.fresh(var)
        self.initializers[name] = np.asarray(tensor.array)
        self.consts[name] = self.initializers[name]
        self.current[var] = name
        return name

    def define(self, var: str) -> str:
        """A new ONNX value for Paddle var ``var`` (written by the op being converted)."""
        name = self.fresh(var)
        self.current[var] = name
        return name

    def alias(self, var: str, onnx_value: str) -> None:
        """Paddle var ``var`` is the existing ONNX value (identity ops emit nothing)."""
        self.current[var] = onnx_value

    # -------------------------------------------------------------- constants
    def const(self, array, dtype=None, base: str = "const") -> str:
        """An initializer holding ``array`` (small equal constants are shared)."""
        arr = np.asarray(array, dtype=dtype)
        key = None
        if arr.size <= 16:
            key = (arr.dtype.str, arr.shape, arr.tobytes())
            if key in self._const_cache:
                return self._const_cache[key]
        name = self.fresh(base)
        self.initializers[name] = arr
        self.consts[name] = arr
        if key is not None:
            self._const_cache[key] = name
        return name

    def const_of(self, value: str) -> np.ndarray | None:
        return self.consts.get(value)

    def ints(self, values, base: str = "shape") -> str:
        return self.const(np.asarray(list(values), dtype=np.int64), base=base)

    # ------------------------------------------------------------------ nodes
    def add(self, op_type: str, inputs: list[str], outputs: list[str] | None = None,
            *, base: str | None = None, **attrs) -> list[str]:
        """Append a node; ``outputs`` None: one fresh temporary named after ``base``."""
        if outputs is None:
            outputs = [self.fresh(base or op_type.lower())]
        self.nodes.append(Node(op_type, list(inputs), list(outputs),
                               {k: v for k, v in attrs.items() if v is not None},
                               name=self.fresh("n_" + op_type + "_" + outputs[0])))
        return outputs

    def add1(self, op_type: str, inputs: list[str], output: str | None = None,
             **attrs) -> str:
        return self.add(op_type, inputs, None if output is None else [output], **attrs)[0]

    # ------------------------------------------------------------ program info
    def shape(self, var: str) -> tuple | None:
        """The Paddle var's declared shape (-1: unknown), or a weight's real shape."""
        t = self.program.params.get(var)
        if t is not None:
            return tuple(t.shape)
        v = self.program.var(var)
        return None if v is None else v.shape

    def rank(self, var: str) -> int:
        s = self.shape(var)
        if s is None:
            raise Unmapped(f"needs the rank of '{var}', which the program does not declare")
        return len(s)

    def dtype(self, var: str) -> str:
        t = self.program.params.get(var)
        if t is not None:
            return str(np.asarray(t.array).dtype)
        v = self.program.var(var)
        return (v.dtype if v is not None and v.dtype else "float32")

    def only_reader(self, var: str) -> Op | None:
        """The op that alone reads ``var`` (None: several, none, or a fetch of it)."""
        users = self.program.consumers(var)
        ops = {u[0].uid: u[0] for u in users}
        if len(ops) != 1:
            return None
        return next(iter(ops.values()))
