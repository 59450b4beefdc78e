"""Write actc/ir/opdefs.json: Paddle's operator definitions (slots and attr types) as data.

actc checks every input program against them on load without importing Paddle, so a broken
program is refused with one line instead of reaching Paddle's C++ (where some crash it). The
data comes from Paddle's own registry (``core.get_all_op_protos()``), read with actc's copy of
the schema; regenerate it when the supported Paddle version changes:

    python tools/make_opdefs.py            # needs paddlepaddle installed

Format (kept small: no comments, flags as letters):
  {"paddle": VERSION, "ops": {TYPE: {"in": {SLOT: FLAGS}, "out": {SLOT: FLAGS},
                                     "attrs": {NAME: "TYPE[:FLAGS]"}}},
   "common_attrs": {NAME: "TYPE[:FLAGS]"}, "overrides": {TYPE: {SLOT: REASON}}}
Slot flags: d duplicable, o dispensable, x extra, i intermediate. Attr flags: x extra,
t support_tensor (a VAR/VARS may stand in), n must not be an empty list. ``common_attrs`` are
those every op declares alike, stored once. ``overrides`` records, with the reason, what
running Paddle showed beyond its protos: slots it calls dispensable that a kernel needs anyway
(stored without the ``o`` flag), required slots its own API leaves empty (stored with it), and
list attrs a kernel indexes unchecked (flag ``n``).
"""
from __future__ import annotations

import json
import os
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "actc" / "ir" / "opdefs.json"

# Slots the proto marks dispensable but Paddle 3.3.1's CPU oneDNN kernel (used for calibration
# and evaluation) dereferences: a program without them segfaults the process.
_BN = "the oneDNN batch_norm kernel reads it (segfault when absent)"
KERNEL_REQUIRED = {"batch_norm": {"Scale": _BN, "Bias": _BN}}
# Required slots that Paddle's own Python API leaves empty (py_func with out=None), which its
# kernel handles: stored with the ``o`` flag so an empty slot is accepted.
KERNEL_OPTIONAL = {"py_func": {"X": "paddle.static.py_func writes an empty slot for None",
                               "Out": "paddle.static.py_func writes an empty slot for None"}}
# List attrs that Paddle 3.3.1's kernels index without checking: empty, they segfault it.
_EMPTY = "an empty list segfaults Paddle's oneDNN kernel"
KERNEL_NONEMPTY = {"conv2d": {"dilations": _EMPTY}, "depthwise_conv2d": {"dilations": _EMPTY},
                   "pool2d": {"ksize": _EMPTY}}


def _protos():
    """Every registered OpProto, parsed with actc's schema (same messages as Paddle's)."""
    os.environ.setdefault("FLAGS_enable_pir_api", "0")
    os.environ.setdefault("GLOG_minloglevel", "2")
    import paddle
    from paddle.base import core

    from actc.proto import framework_pb2 as fpb

    protos = [fpb.OpProto.FromString(b) for b in core.get_all_op_protos()]
    return paddle.__version__, sorted(protos, key=lambda p: p.type)


def _slot_flags(v) -> str:
    return "".join(c for c, on in (("d", v.duplicable), ("o", v.dispensable), ("x", v.extra),
                                   ("i", v.intermediate)) if on)


def _attr_code(a, type_names, nonempty=False) -> str:
    flags = "".join(c for c, on in (("x", a.extra), ("t", a.support_tensor), ("n", nonempty))
                    if on)
    name = type_names[a.type]
    return f"{name}:{flags}" if flags else name


def _override(proto_type: str, slot: str, flags: str) -> str:
    if slot in KERNEL_REQUIRED.get(proto_type, {}):
        return flags.replace("o", "")
    if slot in KERNEL_OPTIONAL.get(proto_type, {}) and "o" not in flags:
        return flags + "o"
    return flags


def _op_entry(proto, type_names) -> dict:
    ins = {v.name: _override(proto.type, v.name, _slot_flags(v)) for v in proto.inputs}
    outs = {v.name: _override(proto.type, v.name, _slot_flags(v)) for v in proto.outputs}
    nonempty = KERNEL_NONEMPTY.get(proto.type, {})
    attrs = {a.name: _attr_code(a, type_names, a.name in nonempty) for a in proto.attrs}
    return {"in": ins, "out": outs, "attrs": attrs}


def _factor_common(ops: dict) -> dict:
    """Attrs that every op declares with the same code, removed from each op."""
    counts = Counter((n, c) for e in ops.values() for n, c in e["attrs"].items())
    common = {n: c for (n, c), k in counts.items() if k == len(ops)}
    for e in ops.values():
        for n in common:
            del e["attrs"][n]
    return common


def build() -> dict:
    from actc.proto import framework_pb2 as fpb

    type_names = {v: k for k, v in fpb.AttrType.items()}
    version, protos = _protos()
    ops = {p.type: _op_entry(p, type_names) for p in protos}
    common = _factor_common(ops)
    for e in ops.values():
        for key in ("in", "out", "attrs"):
            if not e[key]:
                del e[key]
    tables = (KERNEL_REQUIRED, KERNEL_OPTIONAL, KERNEL_NONEMPTY)
    overrides = {t: {k: v for table in tables for k, v in table.get(t, {}).items()}
                 for t in sorted(set().union(*tables))}
    return {"paddle": version, "common_attrs": common, "overrides": overrides, "ops": ops}


def main() -> int:
    data = build()
    text = json.dumps(data, separators=(",", ":"), sort_keys=True)
    OUT.write_text(text + "\n")
    print(f"wrote {OUT}: {len(data['ops'])} ops from Paddle {data['paddle']}, "
          f"{len(text) / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
