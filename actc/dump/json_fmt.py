"""The JSON dump: a stable, complete, machine-readable view of the program.

Schema (``"schema": "actc.dump/1"``; keys sorted, lists in program order, so the same program
always gives the same bytes)::

    {
      "schema": "actc.dump/1",
      "feeds": ["image"], "fetches": ["linear_0.tmp_1"],
      "program": {
        "version": 0,
        "blocks": [
          {"idx": 0, "parent": -1, "forward_block_idx": -1,
           "vars": [{"name": "conv2d_0.w_0", "type": "DENSE_TENSOR", "shape": [64, 3, 7, 7],
                     "dtype": "float32", "persistable": true, "weight": true,
                     "data": {"shape": [64, 3, 7, 7], "dtype": "float32", "nbytes": 37632}}],
           "ops": [{"index": 1, "type": "conv2d",
                    "inputs": {"Filter": ["conv2d_0.w_0"], "Input": ["image"]},
                    "outputs": {"Output": ["conv2d_0.tmp_0"]},
                    "attrs": {"strides": {"type": "INTS", "value": [2, 2]}, ...}}]}
        ]
      }
    }

Every attr is included (nothing hidden). ``value`` is the attr's Python value: FLOAT attrs are
written as the shortest decimal that reads back to the same float32; non-finite floats are the
strings "nan", "inf", "-inf"; SCALAR complex values are {"real", "imag"}. ``shape``/``dtype``
are null for vars that are not tensors; ``data`` describes the stored tensor (present for
weights only; it can differ from the VarDesc, e.g. int8 data under an fp32 VarDesc). ``index``
is the op's position in its block. With a filter, only the matching ops (and the control-flow
ops enclosing them) are listed, and only the vars they touch.
"""
from __future__ import annotations

import json
import math

import numpy as np

from actc.dump.common import OpPredicate, visible_ops, weights
from actc.ir.attrs import A, TYPE_NAMES, attr_value
from actc.ir.program import Program
from actc.proto import framework_pb2 as fpb

SCHEMA = "actc.dump/1"
_VT_NAMES = {v: k for k, v in fpb.VarType.Type.items()}


def _num(v: float, float32: bool):
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return float(str(np.float32(v))) if float32 else float(v)


def _json_value(v, attr_type: int):
    if isinstance(v, complex):
        return {"real": _num(v.real, False), "imag": _num(v.imag, False)}
    if isinstance(v, list):
        return [_json_value(x, attr_type) for x in v]
    if isinstance(v, float):
        return _num(v, attr_type in (A.FLOAT, A.FLOATS))
    return v


def attr_json(attr: fpb.OpDesc.Attr) -> dict:
    try:
        value = _json_value(attr_value(attr), attr.type)
    except KeyError:
        value = None
    return {"type": TYPE_NAMES.get(attr.type, f"ATTRTYPE{attr.type}"), "value": value}


def _slots(slots) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for s in slots:
        out.setdefault(s.parameter, []).extend(s.arguments)
    return out


def to_dict(program: Program, *, ops: OpPredicate | None = None) -> dict:
    shown = visible_ops(program, ops)
    stored = {name: (list(shape), dtype, nbytes) for name, shape, dtype, nbytes in weights(program)}
    blocks = []
    for block in program.blocks:
        op_list = []
        touched: set[str] = set()
        for i, op in enumerate(block.ops):
            if shown is not None and op.uid not in shown:
                continue
            touched.update(op.input_names)
            touched.update(op.output_names)
            op_list.append({
                "index": i,
                "type": op.type,
                "inputs": _slots(op.desc.inputs),
                "outputs": _slots(op.desc.outputs),
                "attrs": {a.name: attr_json(a) for a in op.desc.attrs},
            })
        var_list = []
        for var in block.vars.values():
            if shown is not None and var.name not in touched:
                continue
            is_weight = var.persistable and not var.is_feed_fetch
            entry = {
                "name": var.name,
                "type": _VT_NAMES.get(var.type, f"VARTYPE{var.type}"),
                "shape": list(var.shape) if var.shape is not None else None,
                "dtype": var.dtype,
                "persistable": var.persistable,
                "weight": is_weight,
            }
            if is_weight and var.name in program.params:
                shape, dtype, nbytes = stored[var.name]
                entry["data"] = {"shape": shape, "dtype": dtype, "nbytes": nbytes}
            var_list.append(entry)
        blocks.append({
            "idx": block.idx,
            "parent": block.parent_idx,
            "forward_block_idx": block.skeleton.forward_block_idx,
            "vars": var_list,
            "ops": op_list,
        })
    version = program.skeleton.version.version if program.skeleton.HasField("version") else None
    return {
        "schema": SCHEMA,
        "feeds": program.feed_names(),
        "fetches": program.fetch_names(),
        "program": {"version": version, "blocks": blocks},
    }


def dumps(obj) -> str:
    return json.dumps(obj, sort_keys=True, indent=1, ensure_ascii=False, allow_nan=False) + "\n"


def render(program: Program, *, ops: OpPredicate | None = None) -> str:
    return dumps(to_dict(program, ops=ops))
