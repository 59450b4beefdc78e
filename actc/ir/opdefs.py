"""Paddle's operator definitions (slots, attr types), read from data shipped with actc.

``opdefs.json`` is generated from Paddle's registry by ``tools/make_opdefs.py``; reading it
needs no Paddle, so ``actc dump``/``check`` and the load-time verifier work without it. It is the
one source of truth for which slots an op must have and which attr types it accepts.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from actc.ir.attrs import A

DATA = Path(__file__).with_name("opdefs.json")
# Reshape-like ops with an XShape output (the input's shape, [0] + shape(X), which their grad
# ops read and Paddle Inference's oneDNN fuses match on, e.g. matmul_transpose_reshape) that
# inference export drops. The DSL reads it through xshape_ops(): the restore_xshape pass,
# which the training copy (actc.train.prepare) runs too.
XSHAPE_OPS = ("reshape2", "transpose2", "flatten_contiguous_range", "flatten2", "squeeze2",
              "unsqueeze2")
# protobuf enum attribute access is slow; the verifier runs after every pass
BLOCK, BLOCKS, VAR, VARS, INTS = A.BLOCK, A.BLOCKS, A.VAR, A.VARS, A.INTS


@dataclass(frozen=True)
class SlotDef:
    name: str
    duplicable: bool
    dispensable: bool
    extra: bool
    intermediate: bool
    is_input: bool

    @property
    def required(self) -> bool:
        """What Paddle's CheckAllInputOutputSet demands: an input neither dispensable nor
        extra; an output that is not intermediate either."""
        if self.dispensable or self.extra:
            return False
        return self.is_input or not self.intermediate


@dataclass(frozen=True)
class AttrDef:
    name: str
    type: int
    extra: bool
    support_tensor: bool
    nonempty: bool = False  # a kernel indexes the list unchecked (see tools/make_opdefs.py)


@dataclass(frozen=True)
class OpDef:
    type: str
    inputs: dict[str, SlotDef]
    outputs: dict[str, SlotDef]
    attrs: dict[str, AttrDef]
    runs_sub_block: bool  # control flow: its duplicable slots may legitimately be empty
    block_attrs: tuple[str, ...]  # BLOCK attrs it must carry (the block it runs)


def _slot(name: str, flags: str, is_input: bool) -> SlotDef:
    return SlotDef(name, "d" in flags, "o" in flags, "x" in flags, "i" in flags, is_input)


def _attr(name: str, code: str) -> AttrDef:
    type_name, _, flags = code.partition(":")
    return AttrDef(name, A.Value(type_name), "x" in flags, "t" in flags, "n" in flags)


@lru_cache(maxsize=1)
def _data() -> dict:
    return json.loads(DATA.read_text())


def paddle_version() -> str:
    """The Paddle release the definitions were taken from."""
    return _data()["paddle"]


@lru_cache(maxsize=None)
def lookup(op_type: str) -> OpDef | None:
    """The definition of ``op_type``, or None for a type Paddle does not register (a custom
    op, or a typo)."""
    data = _data()
    entry = data["ops"].get(op_type)
    if entry is None:
        return None
    attrs = {n: _attr(n, c) for n, c in {**data["common_attrs"],
                                         **entry.get("attrs", {})}.items()}
    return OpDef(op_type,
                 {n: _slot(n, f, True) for n, f in entry.get("in", {}).items()},
                 {n: _slot(n, f, False) for n, f in entry.get("out", {}).items()},
                 attrs,
                 any(a.type in (BLOCK, BLOCKS) for a in attrs.values()),
                 tuple(n for n, a in attrs.items() if a.type == BLOCK and not a.extra))


# Stored types Paddle 3.3.1 reads as the declared type (its attribute extractors cast these;
# each pair was run through its executor). Types not listed accept only themselves.
_READS_AS = {
    A.LONG: {A.INT, A.FLOAT},
    A.FLOAT: {A.INT, A.LONG},
    A.BOOLEAN: {A.INT, A.FLOAT},
    A.LONGS: {A.INTS, A.FLOATS},
    # not measured (no corpus op uses them); kept lenient within the numeric family
    A.FLOAT64: {A.INT, A.LONG, A.FLOAT},
    A.FLOATS: {A.INTS, A.LONGS, A.FLOAT64S},
    A.FLOAT64S: {A.INTS, A.LONGS, A.FLOATS},
    A.BOOLEANS: {A.INTS},
    A.SCALAR: {A.INT, A.LONG, A.FLOAT, A.FLOAT64, A.BOOLEAN},
    A.SCALARS: {A.INTS, A.LONGS, A.FLOATS, A.FLOAT64S, A.BOOLEANS},
}
_LISTS = frozenset({A.INTS, A.LONGS, A.FLOATS, A.FLOAT64S, A.BOOLEANS, A.SCALARS, A.STRINGS})


def accepts(attr: AttrDef, stored: int, empty_list: bool = False) -> bool:
    """Whether an attr stored with type ``stored`` can be read as ``attr.type``."""
    if stored == attr.type or stored in _READS_AS.get(attr.type, ()):
        return True
    if attr.support_tensor and stored in (VAR, VARS):
        return True
    # An empty Python list is stored as an empty INTS whatever the declared list type.
    return empty_list and stored == INTS and attr.type in _LISTS
