"""Training-only ops: what nothing fetched depends on.

After distillation wiring a program also computes a teacher, losses and reads a label feed;
none of it reaches the fetch targets. Ops that write a persistable var of the model (e.g. a
batch_norm's running statistics) are kept: they belong to the model itself.
"""
from __future__ import annotations

from actc.ir.merge import TEACHER_ATTR
from actc.ir.program import Op, Program

LABEL_ATTR = "actc_label"


def dead_ops(program: Program) -> list[Op]:
    """Block-0 ops that no fetch target needs, in program order."""
    live = set(program.fetch_names())
    keep = set()
    for op in reversed(program.blocks[0].ops):
        writes = set(op.output_names)
        model_state = not op.has_attr(TEACHER_ATTR) and any(
            (v := program.var(n)) is not None and v.persistable and not v.is_feed_fetch
            for n in writes)
        student_feed = op.type == "feed" and not op.has_attr(TEACHER_ATTR) and \
            not op.has_attr(LABEL_ATTR)
        if op.type == "fetch" or student_feed or model_state or writes & live \
                or op.sub_block_ids:
            keep.add(op.uid)
            live |= set(op.input_names)
    return [op for op in program.blocks[0].ops if op.uid not in keep]
