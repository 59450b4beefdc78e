"""Merge another program (a distillation teacher) into this one under a name prefix.

The copied ops keep their exact OpDescs (attr types included); every var they touch is
renamed ``prefix + name`` except the ``share``d ones (feeds both programs read). With ``keep``
only the ops needed to compute those vars are copied, so a teacher costs no more than the
distillation nodes need. Copied ops are marked ``skip_quant`` (quantization and pruning leave
them alone) and ``actc_teacher = prefix`` (training freezes their weights; ``strip_distill``
removes them before export).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from actc.io.params import Tensor
from actc.ir.attrs import A
from actc.ir.program import IRError, Program
from actc.proto import framework_pb2 as fpb

TEACHER_ATTR = "actc_teacher"


@dataclass
class Added:
    ops: int
    vars: int


def needed_ops(other: Program, keep: list[str]) -> list:
    """Block-0 ops (program order) that contribute to ``keep``: a backward slice."""
    ops = [op for op in other.blocks[0].ops if op.type not in ("feed", "fetch")]
    wanted = set(keep)
    picked = []
    for op in reversed(ops):
        if wanted & set(op.output_names):
            picked.append(op)
            wanted |= set(op.input_names)
    return list(reversed(picked))


def merge_program(program: Program, other: Program, *, prefix: str,
                  keep: list[str] | None = None, share: list[str] = ()) -> Added:
    for name in keep or []:
        if other.var(name) is None:
            raise IRError(f"the merged program has no var '{name}'")
    ops = needed_ops(other, keep) if keep is not None else \
        [op for op in other.blocks[0].ops if op.type not in ("feed", "fetch")]
    if any(op.sub_block_ids for op in ops):
        bad = next(op for op in ops if op.sub_block_ids)
        raise IRError(f"cannot merge a program whose needed ops include control flow "
                      f"({bad.type} runs a sub-block)")
    shared = set(share)
    rename = {}
    names = list(dict.fromkeys(n for op in ops for n in op.input_names + op.output_names))
    for n in names:
        if n in shared:
            if program.var(n) is None:
                raise IRError(f"shared var '{n}' does not exist in this program")
            continue
        new = prefix + n
        if program.var(new) is not None:
            raise IRError(f"cannot merge: '{new}' already exists (merged twice, or pick "
                          "another prefix)")
        rename[n] = new
    added_vars = 0
    for n, new in rename.items():
        src = other.var(n)
        if src is None:
            raise IRError(f"the merged program uses '{n}' without declaring it")
        desc = fpb.VarDesc()
        desc.CopyFrom(src.desc)
        desc.name = new
        if src.persistable:
            desc.stop_gradient = True  # teacher weights never train
        program.declare_var_desc(desc)
        if n in other.params:
            t = other.params[n]
            program.params[new] = Tensor(array=np.array(t.array), dtype_code=t.dtype_code,
                                         lod=list(t.lod), desc=t.desc)
        added_vars += 1
    fetch = next((op for op in program.blocks[0].ops if op.type == "fetch"), None)
    count = 0
    # feeds of the other program that are not shared get a feed op of their own
    feed_col = sum(1 for op in program.blocks[0].ops if op.type == "feed")
    first_non_feed = next((op for op in program.blocks[0].ops if op.type != "feed"), None)
    for feed in other.feed_names():
        if feed in rename and any(feed in op.input_names for op in ops):
            holder = next(op.input("X")[0] for op in program.blocks[0].ops if op.type == "feed") \
                if feed_col else "feed"
            d = fpb.OpDesc(type="feed")
            d.inputs.add(parameter="X", arguments=[holder])
            d.outputs.add(parameter="Out", arguments=[rename[feed]])
            a = d.attrs.add(name="col", type=A.INT)
            a.i = feed_col
            feed_col += 1
            _mark(d, prefix)
            program.insert_op_desc(d, before=first_non_feed) if first_non_feed is not None \
                else program.insert_op_desc(d)
            count += 1
    for op in ops:
        d = fpb.OpDesc()
        d.CopyFrom(op.desc)
        for slot in list(d.inputs) + list(d.outputs):
            for i, a in enumerate(slot.arguments):
                slot.arguments[i] = rename.get(a, a)
        for a in d.attrs:
            if a.type == A.VAR:
                a.var_name = rename.get(a.var_name, a.var_name)
            elif a.type == A.VARS:
                for i, v in enumerate(a.vars_name):
                    a.vars_name[i] = rename.get(v, v)
        _mark(d, prefix)
        if fetch is not None:
            program.insert_op_desc(d, before=fetch)
        else:
            program.insert_op_desc(d)
        count += 1
    return Added(count, added_vars)


def _mark(desc: fpb.OpDesc, prefix: str) -> None:
    for name, kind, field, value in (("skip_quant", A.BOOLEAN, "b", True),
                                     (TEACHER_ATTR, A.STRING, "s", prefix)):
        attr = next((a for a in desc.attrs if a.name == name), None)
        if attr is None:
            attr = desc.attrs.add(name=name)
        attr.type = kind
        setattr(attr, field, value)
