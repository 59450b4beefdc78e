"""The IR: a Paddle ProgramDesc as a networkx graph of op and var nodes.

The protobuf messages stay the storage of every op and var, so fields actc does not model
survive untouched and an unmodified program serialises to the exact input bytes. The graph
(edges carry slot and argument index) answers producer/consumer questions; ``Block.ops``
keeps program order. Every mutation goes through ``Program`` so both stay in step.
"""
from __future__ import annotations

import itertools
from typing import Callable, Iterable, Iterator

import networkx as nx
import numpy as np

from actc.io.dtypes import code_for, dtype_name
from actc.io.params import Tensor
from actc.ir.attrs import A, attr_value, fill_attr
from actc.proto import framework_pb2 as fpb

VT = fpb.VarType
DENSE = VT.DENSE_TENSOR
FEED_FETCH_TYPES = frozenset({VT.FEED_MINIBATCH, VT.FETCH_LIST})


class Var:
    """A declared variable; ``desc`` is its VarDesc."""

    __slots__ = ("desc", "block")

    def __init__(self, desc: fpb.VarDesc, block: int):
        self.desc = desc
        self.block = block

    @property
    def name(self) -> str:
        return self.desc.name

    @property
    def type(self) -> int:
        return self.desc.type.type

    def _tensor_desc(self):
        t = self.desc.type
        if t.HasField("dense_tensor"):
            return t.dense_tensor.tensor
        if t.HasField("tensor_array"):
            return t.tensor_array.tensor
        if t.HasField("selected_rows"):
            return t.selected_rows
        return None

    @property
    def shape(self) -> tuple[int, ...] | None:
        td = self._tensor_desc()
        return None if td is None else tuple(int(d) for d in td.dims)

    @property
    def dtype_code(self) -> int | None:
        td = self._tensor_desc()
        return None if td is None else int(td.data_type)

    @property
    def dtype(self) -> str | None:
        code = self.dtype_code
        return None if code is None else dtype_name(code)

    @property
    def persistable(self) -> bool:
        return self.desc.persistable

    @property
    def is_feed_fetch(self) -> bool:
        return self.type in FEED_FETCH_TYPES

    def __repr__(self) -> str:
        return f"Var({self.name!r}, shape={self.shape}, dtype={self.dtype})"


class Op:
    """An operator; ``desc`` is its OpDesc, ``uid`` its stable graph node id."""

    # _prev/_next link the op into its block's order; _key is its order key there
    __slots__ = ("desc", "block", "uid", "_prev", "_next", "_key")

    def __init__(self, desc: fpb.OpDesc, block: int, uid: int):
        self.desc = desc
        self.block = block
        self.uid = uid
        self._prev: Op | None = None
        self._next: Op | None = None
        self._key = 0

    @property
    def type(self) -> str:
        return self.desc.type

    @property
    def inputs(self) -> dict[str, list[str]]:
        return {v.parameter: list(v.arguments) for v in self.desc.inputs}

    @property
    def outputs(self) -> dict[str, list[str]]:
        return {v.parameter: list(v.arguments) for v in self.desc.outputs}

    def input(self, slot: str) -> list[str]:
        return next((list(v.arguments) for v in self.desc.inputs if v.parameter == slot), [])

    def output(self, slot: str) -> list[str]:
        return next((list(v.arguments) for v in self.desc.outputs if v.parameter == slot), [])

    @property
    def input_names(self) -> list[str]:
        return [a for v in self.desc.inputs for a in v.arguments]

    @property
    def output_names(self) -> list[str]:
        return [a for v in self.desc.outputs for a in v.arguments]

    def _attr_msg(self, name: str):
        return next((a for a in self.desc.attrs if a.name == name), None)

    def has_attr(self, name: str) -> bool:
        return self._attr_msg(name) is not None

    def attr(self, name: str, default=None):
        msg = self._attr_msg(name)
        return default if msg is None else attr_value(msg)

    def attr_type(self, name: str) -> int | None:
        msg = self._attr_msg(name)
        return None if msg is None else msg.type

    @property
    def attrs(self) -> dict:
        return {a.name: attr_value(a) for a in self.desc.attrs}

    def set_attr(self, name: str, value, attr_type: int | None = None) -> None:
        """Set an attr, keeping its existing type unless one is given (attrs never carry edges)."""
        msg = self._attr_msg(name)
        if msg is None:
            msg = self.desc.attrs.add()
            msg.name = name
        elif attr_type is None:
            attr_type = msg.type
        fill_attr(msg, value, attr_type)

    def remove_attr(self, name: str) -> None:
        for i, a in enumerate(self.desc.attrs):
            if a.name == name:
                del self.desc.attrs[i]
                return

    @property
    def name_scope(self) -> str:
        return self.attr("op_namescope", "") or ""

    @property
    def sub_block_ids(self) -> list[int]:
        ids: list[int] = []
        for a in self.desc.attrs:
            if a.type == A.BLOCK:
                ids.append(a.block_idx)
            elif a.type == A.BLOCKS:
                ids.extend(a.blocks_idx)
        return ids

    def __repr__(self) -> str:
        return f"Op({self.type}, uid={self.uid}, block={self.block})"


# Spacing of fresh order keys: this many inserts fit between two ops before any relabelling.
KEY_GAP = 1 << 20


class Block:
    """One BlockDesc: its ops in program order and its vars in declaration order.

    Ops form a doubly linked list carrying increasing integer order keys with gaps, so an
    insert or removal anywhere is O(1) and comparing two ops' positions needs no index. A
    gap that runs out is refilled by relabelling a window around it that doubles until it
    has room, amortised O(log n) (in practice a handful of ops, and rare).
    """

    __slots__ = ("idx", "skeleton", "vars", "_first", "_last", "_size", "_list", "counts")

    def __init__(self, skeleton: fpb.BlockDesc):
        self.idx = skeleton.idx
        self.skeleton = skeleton  # the BlockDesc without vars and ops
        self.vars: dict[str, Var] = {}
        self._first: Op | None = None
        self._last: Op | None = None
        self._size = 0
        self._list: list[Op] | None = []
        # how often the order was rebuilt (ops list) or relabelled, and how many ops that touched
        self.counts = {"list_rebuilds": 0, "relabels": 0, "relabeled_ops": 0}

    @property
    def parent_idx(self) -> int:
        return self.skeleton.parent_idx

    @property
    def ops(self) -> list[Op]:
        """The ops in program order. A read-only snapshot: a middle insert or a removal
        makes a new list on the next read (appends extend it), so edit through Program."""
        if self._list is None:
            self._list = list(self._walk())
            self.counts["list_rebuilds"] += 1
        return self._list

    def __len__(self) -> int:
        return self._size

    def _walk(self) -> Iterator[Op]:
        op = self._first
        while op is not None:
            yield op
            op = op._next

    def _place(self, op: Op, prev: Op | None, nxt: Op | None) -> None:
        """Link ``op`` between two neighbours (None: the block's start or end)."""
        if prev is not None and nxt is not None and nxt._key - prev._key < 2:
            self._relabel(prev, nxt)
        op._key = _between(prev, nxt)
        op._prev, op._next = prev, nxt
        if prev is None:
            self._first = op
        else:
            prev._next = op
        if nxt is None:
            self._last = op
        else:
            nxt._prev = op
        self._size += 1
        if nxt is None and self._list is not None:
            self._list.append(op)
        else:
            self._list = None

    def _unlink(self, op: Op) -> None:
        prev, nxt = op._prev, op._next
        if prev is None:
            self._first = nxt
        else:
            prev._next = nxt
        if nxt is None:
            self._last = prev
        else:
            nxt._prev = prev
        op._prev = op._next = None
        self._size -= 1
        self._list = None

    def _relabel(self, lo: Op, hi: Op) -> None:
        """Give the window lo..hi (grown on both sides until it has room) evenly spaced keys;
        a window that reaches an end of the block is unbounded there and always has room."""
        n = 2
        while True:
            left, right = lo._prev, hi._next
            if left is None or right is None:
                spacing = max(KEY_GAP, n + 1)
                break
            spacing = (right._key - left._key) // (n + 1)
            if spacing >= n + 1:  # room for about log2(n) inserts into any gap
                break
            for _ in range(n):  # about triple the window
                if lo._prev is not None:
                    lo, n = lo._prev, n + 1
                if hi._next is not None:
                    hi, n = hi._next, n + 1
        if left is not None:
            base = left._key
        elif right is not None:
            base = right._key - spacing * (n + 1)
        else:
            base = 0
        op = lo
        for j in range(1, n + 1):
            op._key = base + spacing * j
            op = op._next
        self.counts["relabels"] += 1
        self.counts["relabeled_ops"] += n


def _between(prev: Op | None, nxt: Op | None) -> int:
    if prev is None:
        return 0 if nxt is None else nxt._key - KEY_GAP
    if nxt is None:
        return prev._key + KEY_GAP
    return (prev._key + nxt._key) // 2


class IRError(ValueError):
    """A malformed program or a misuse of the IR API (a bug in a pass, or a corrupt file)."""


def var_node(block: int, name: str) -> tuple:
    return ("var", block, name)


class Program:
    """A whole program: blocks, the op/var graph and the persistable tensors."""

    def __init__(self, desc: fpb.ProgramDesc, params: dict[str, Tensor] | None = None):
        self.skeleton = fpb.ProgramDesc()
        self.skeleton.CopyFrom(desc)
        del self.skeleton.blocks[:]
        self.graph = nx.MultiDiGraph()
        self.blocks: list[Block] = []
        self.params: dict[str, Tensor] = dict(params or {})
        self._uids = itertools.count()
        self._taken: set[str] = set()
        self._suffix: dict[str, int] = {}  # base -> last n fresh_name gave out as base_n
        for i, bdesc in enumerate(desc.blocks):
            skel = fpb.BlockDesc()
            skel.CopyFrom(bdesc)
            del skel.vars[:]
            del skel.ops[:]
            if skel.idx != i:
                raise IRError(f"block #{i} says its index is {skel.idx}")
            block = Block(skel)
            self.blocks.append(block)
            for vdesc in bdesc.vars:
                if vdesc.name in block.vars:
                    raise IRError(f"block {i} declares var '{vdesc.name}' twice")
                v = fpb.VarDesc()
                v.CopyFrom(vdesc)
                self._declare(Var(v, i))
        for i, bdesc in enumerate(desc.blocks):
            for odesc in bdesc.ops:
                d = fpb.OpDesc()
                d.CopyFrom(odesc)
                op = Op(d, i, next(self._uids))
                self.blocks[i]._place(op, self.blocks[i]._last, None)
                self._link(op)

    # ----------------------------------------------------------------- lookup
    def _declare(self, var: Var) -> None:
        self.blocks[var.block].vars[var.name] = var
        self._taken.add(var.name)
        node = var_node(var.block, var.name)
        if node in self.graph:
            self.graph.nodes[node].update(kind="var", var=var, declared=True)
        else:
            self.graph.add_node(node, kind="var", var=var, declared=True)

    def resolve(self, name: str, block: int = 0) -> tuple[int, Var | None]:
        """The block that declares ``name`` as seen from ``block`` (walking up parents)."""
        b = block
        seen = set()
        while b >= 0 and b not in seen and b < len(self.blocks):
            seen.add(b)
            var = self.blocks[b].vars.get(name)
            if var is not None:
                return b, var
            b = self.blocks[b].parent_idx
        return block, None

    def var(self, name: str, block: int = 0) -> Var | None:
        return self.resolve(name, block)[1]

    def all_vars(self) -> Iterator[Var]:
        for block in self.blocks:
            yield from block.vars.values()

    def ops(self, type: str | Iterable[str] | None = None, *,
            where: Callable[[Op], bool] | None = None,
            block: int | None = 0) -> list[Op]:
        """Ops in program order (one block, or every block with ``block=None``)."""
        types = {type} if isinstance(type, str) else (set(type) if type is not None else None)
        blocks = self.blocks if block is None else [self.blocks[block]]
        return [op for b in blocks for op in b.ops
                if (types is None or op.type in types) and (where is None or where(op))]

    def _node_of(self, name: str, block: int) -> tuple:
        return var_node(self.resolve(name, block)[0], name)

    def consumers(self, name: str, block: int = 0) -> list[tuple[Op, str, int]]:
        """(op, slot, index) for every use of ``name``, including uses in sub-blocks."""
        return self._uses(name, block, reads=True)

    def producers(self, name: str, block: int = 0) -> list[tuple[Op, str, int]]:
        """(op, slot, index) for every op that writes ``name``."""
        return self._uses(name, block, reads=False)

    def _uses(self, name: str, block: int, reads: bool) -> list[tuple[Op, str, int]]:
        node = self._node_of(name, block)
        if node not in self.graph:
            return []
        edges = self.graph.out_edges(node, data=True) if reads else \
            self.graph.in_edges(node, data=True)
        out = [(self.graph.nodes[dst if reads else src]["op"], data["slot"], data["index"])
               for src, dst, data in edges]
        return sorted(out, key=lambda t: (t[0].block, t[0]._key, t[1], t[2]))

    def is_weight(self, name: str, block: int = 0) -> bool:
        """Persistable data that a model ships (not feed/fetch holders)."""
        var = self.var(name, block)
        return var is not None and var.persistable and not var.is_feed_fetch

    def feed_names(self) -> list[str]:
        feeds = [op for op in self.blocks[0].ops if op.type == "feed"]
        feeds.sort(key=lambda op: op.attr("col", 0))
        return [op.output("Out")[0] for op in feeds]

    def fetch_names(self) -> list[str]:
        fetches = [op for op in self.blocks[0].ops if op.type == "fetch"]
        fetches.sort(key=lambda op: op.attr("col", 0))
        return [op.input("X")[0] for op in fetches]

    def trailing_fetch(self, block: int = 0) -> Op | None:
        """The first of the fetch ops that end ``block`` (None if it ends in another op):
        where an insert "at the end" goes. O(number of fetch ops), not O(ops)."""
        op, first = self.blocks[block]._last, None
        while op is not None and op.type == "fetch":
            first, op = op, op._prev
        return first

    def sub_blocks(self, op: Op) -> list[Block]:
        return [self.blocks[i] for i in op.sub_block_ids]

    def persistable_names(self) -> list[str]:
        """Names save_combine stores, in file order."""
        return sorted({v.name for v in self.all_vars() if v.persistable and not v.is_feed_fetch})

    # ---------------------------------------------------------------- editing
    def _link(self, op: Op) -> None:
        g = self.graph
        g.add_node(op.uid, kind="op", op=op)
        for slot_msg in op.desc.inputs:
            for i, name in enumerate(slot_msg.arguments):
                node = self._ensure_var_node(name, op.block)
                g.add_edge(node, op.uid, key=("in", slot_msg.parameter, i),
                           slot=slot_msg.parameter, index=i)
        for slot_msg in op.desc.outputs:
            for i, name in enumerate(slot_msg.arguments):
                node = self._ensure_var_node(name, op.block)
                g.add_edge(op.uid, node, key=("out", slot_msg.parameter, i),
                           slot=slot_msg.parameter, index=i)

    def _ensure_var_node(self, name: str, block: int) -> tuple:
        node = self._node_of(name, block)
        if node not in self.graph:
            self.graph.add_node(node, kind="var", var=None, declared=False)
            self._taken.add(name)
        return node

    def _relink(self, op: Op) -> None:
        self.graph.remove_node(op.uid)
        self._link(op)

    def fresh_name(self, base: str) -> str:
        """A var name no block uses yet (``base``, else the first free ``base_1``, ``base_2``
        ...). O(1) amortised: names live in a set, and the suffix search resumes where the
        last one for this base stopped (reset whenever a name is freed)."""
        if not self._is_taken(base):
            self._taken.add(base)
            return base
        n = self._suffix.get(base, 0)
        while True:
            n += 1
            cand = f"{base}_{n}"
            if not self._is_taken(cand):
                self._suffix[base] = n
                self._taken.add(cand)
                return cand

    def _is_taken(self, name: str) -> bool:
        return name in self._taken or name in self.params

    def _free_name(self, name: str) -> None:
        self._taken.discard(name)
        self._suffix.clear()  # a lower suffix may be free again

    def add_var(self, name: str, *, shape: Iterable[int] | None = None, dtype="float32",
                persistable: bool = False, block: int = 0, data: np.ndarray | None = None,
                var_type: int = DENSE, stop_gradient: bool | None = None) -> Var:
        """Declare a dense tensor var; with ``data`` it becomes a persistable weight."""
        if name in self.blocks[block].vars:
            raise IRError(f"var '{name}' already exists in block {block}")
        desc = fpb.VarDesc(name=name)
        desc.type.type = var_type
        if var_type == DENSE:
            code = dtype if isinstance(dtype, int) else code_for(dtype)
            if data is not None:
                shape = data.shape if shape is None else shape
            desc.type.dense_tensor.tensor.data_type = code
            desc.type.dense_tensor.tensor.dims.extend(list(shape or []))
        if data is not None:
            persistable = True
            self.params[name] = Tensor.from_array(np.asarray(data),
                                                  desc.type.dense_tensor.tensor.data_type)
        desc.persistable = persistable
        if stop_gradient is not None:
            desc.stop_gradient = stop_gradient
        var = Var(desc, block)
        self._declare(var)
        return var

    def declare_var_desc(self, desc: fpb.VarDesc, block: int = 0) -> Var:
        """Declare a copy of a ready-made VarDesc (from another program)."""
        if desc.name in self.blocks[block].vars:
            raise IRError(f"var '{desc.name}' already exists in block {block}")
        copy = fpb.VarDesc()
        copy.CopyFrom(desc)
        var = Var(copy, block)
        self._declare(var)
        return var

    def set_param(self, name: str, data: np.ndarray, *, keep_var_desc: bool = False) -> None:
        """Replace a weight's data; the VarDesc follows unless ``keep_var_desc`` (as Paddle
        does for int8 weights stored under an fp32 VarDesc)."""
        var = self.var(name)
        if var is None or not var.persistable:
            raise IRError(f"'{name}' is not a persistable var")
        data = np.ascontiguousarray(data)
        self.params[name] = Tensor.from_array(data)
        if not keep_var_desc and var.type == DENSE:
            td = var.desc.type.dense_tensor.tensor
            td.data_type = code_for(data.dtype)
            del td.dims[:]
            td.dims.extend(data.shape)

    def new_op(self, type: str, inputs: dict[str, list[str]] | None = None,
               outputs: dict[str, list[str]] | None = None, attrs: dict | None = None, *,
               before: Op | None = None, after: Op | None = None,
               block: int | None = None) -> Op:
        """Create an op and place it before/after another (default: end of the block)."""
        anchor = before or after
        b = anchor.block if anchor is not None else (block or 0)
        desc = fpb.OpDesc(type=type)
        for slot, names in (inputs or {}).items():
            desc.inputs.add(parameter=slot, arguments=list(names))
        for slot, names in (outputs or {}).items():
            desc.outputs.add(parameter=slot, arguments=list(names))
        for key, value in (attrs or {}).items():
            a = desc.attrs.add()
            a.name = key
            fill_attr(a, value)
        return self.insert_op_desc(desc, before=before, after=after, block=b)

    def insert_op_desc(self, desc: fpb.OpDesc, *, before: Op | None = None,
                       after: Op | None = None, block: int = 0) -> Op:
        """Place a ready-made OpDesc (attr types kept exactly, e.g. when copying ops between
        programs) before/after an op or at the end of ``block``."""
        anchor = before or after
        b = anchor.block if anchor is not None else block
        op = Op(desc, b, next(self._uids))
        block = self.blocks[b]
        if before is not None:
            block._place(op, self._member(before)._prev, before)
        elif after is not None:
            block._place(op, after, self._member(after)._next)
        else:
            block._place(op, block._last, None)
        self._link(op)
        return op

    def _member(self, op: Op) -> Op:
        """``op`` itself, checked to be one of this program's ops (O(1))."""
        node = self.graph.nodes.get(op.uid) if isinstance(op, Op) else None
        if node is None or node.get("op") is not op:
            raise IRError(f"{op!r} is not in the program")
        return op

    def set_input(self, op: Op, slot: str, index: int, name: str) -> None:
        """Point one argument of one op at another var; other users are untouched."""
        self._set_arg(op.desc.inputs, op, slot, index, name)

    def set_output(self, op: Op, slot: str, index: int, name: str) -> None:
        self._set_arg(op.desc.outputs, op, slot, index, name)

    def _set_arg(self, slots, op: Op, slot: str, index: int, name: str) -> None:
        for s in slots:
            if s.parameter == slot:
                if index >= len(s.arguments):
                    break
                s.arguments[index] = name
                self._relink(op)
                return
        raise IRError(f"{op!r} has no argument {slot}[{index}]")

    def set_args(self, op: Op, *, inputs: dict[str, list[str]] | None = None,
                 outputs: dict[str, list[str]] | None = None) -> None:
        """Replace whole slots (adding slots that are missing)."""
        for slots, new in ((op.desc.inputs, inputs), (op.desc.outputs, outputs)):
            for slot, names in (new or {}).items():
                msg = next((s for s in slots if s.parameter == slot), None)
                if msg is None:
                    msg = slots.add(parameter=slot)
                del msg.arguments[:]
                msg.arguments.extend(names)
        self._relink(op)

    def replace_uses(self, old: str, new: str, *, block: int = 0,
                     where: Callable[[Op], bool] | None = None) -> int:
        """Make consumers of ``old`` (those ``where`` accepts) read ``new``; returns the count."""
        count = 0
        for op, slot, index in self.consumers(old, block):
            if where is None or where(op):
                self.set_input(op, slot, index, new)
                count += 1
        return count

    def remove_op(self, op: Op, *, drop_dead_vars: bool = True) -> list[str]:
        """Delete an op; with ``drop_dead_vars`` also the vars it leaves with no user."""
        names = list(dict.fromkeys(op.input_names + op.output_names))
        self.blocks[op.block]._unlink(self._member(op))
        self.graph.remove_node(op.uid)
        dropped = []
        if drop_dead_vars:
            for name in names:
                if self._drop_if_dead(name, op.block):
                    dropped.append(name)
        return dropped

    def _drop_if_dead(self, name: str, block: int) -> bool:
        b, var = self.resolve(name, block)
        node = var_node(b, name)
        if node not in self.graph or self.graph.degree(node) > 0:
            return False
        if var is not None and var.is_feed_fetch:
            return False
        self.graph.remove_node(node)
        if var is not None:
            del self.blocks[b].vars[name]
        self.params.pop(name, None)
        self._free_name(name)
        return True

    def rename_var(self, old: str, new: str, block: int = 0) -> None:
        """Rename a var everywhere it is used (declaration, args, VAR attrs, params)."""
        b, var = self.resolve(old, block)
        if self.var(new, b) is not None:
            raise IRError(f"cannot rename '{old}': '{new}' already exists")
        users = {op.uid: op for op, _, _ in self.consumers(old, b) + self.producers(old, b)}
        if var is not None:
            var.desc.name = new
            decl = self.blocks[b].vars
            self.blocks[b].vars = {(new if k == old else k): v for k, v in decl.items()}
        node = var_node(b, old)
        if node in self.graph:
            self.graph.remove_node(node)
        if var is not None:
            self._declare(var)
        if old in self.params:
            self.params[new] = self.params.pop(old)
        self._free_name(old)
        self._taken.add(new)
        for op in users.values():
            for s in list(op.desc.inputs) + list(op.desc.outputs):
                for i, a in enumerate(s.arguments):
                    if a == old:
                        s.arguments[i] = new
            for a in op.desc.attrs:
                if a.type == A.VAR and a.var_name == old:
                    a.var_name = new
                elif a.type == A.VARS:
                    for i, n in enumerate(a.vars_name):
                        if n == old:
                            a.vars_name[i] = new
            self._relink(op)

    # ------------------------------------------------------------- emitting
    def to_desc(self) -> fpb.ProgramDesc:
        desc = fpb.ProgramDesc()
        desc.CopyFrom(self.skeleton)
        for block in self.blocks:
            b = desc.blocks.add()
            b.CopyFrom(block.skeleton)
            b.vars.extend(v.desc for v in block.vars.values())
            b.ops.extend(op.desc for op in block.ops)
        return desc

    def to_bytes(self) -> bytes:
        return self.to_desc().SerializeToString()

    def clone(self) -> "Program":
        copy = Program(self.to_desc(), self.params)
        return copy

    def op_count(self) -> int:
        return sum(len(b) for b in self.blocks)

    def __repr__(self) -> str:
        return f"Program({len(self.blocks)} blocks, {self.op_count()} ops, {len(self.params)} params)"
