"""A trainable copy of the IR program (pure IR: no Paddle here).

Inference export strips what training needs; this restores it, following the facts in
PADDLE_NOTES ("Training a loaded inference program"): XShape/Mask/ReserveSpace outputs back,
feed/fetch ops removed, student weights marked as parameters, batch_norm/dropout/fake
quantizers in training mode. Teacher ops (``actc_teacher``) stay in inference mode and their
weights stay frozen.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from actc.errors import ActcError
from actc.ir.attrs import A
from actc.ir.merge import TEACHER_ATTR
from actc.ir.program import Program
from actc.runtime.executor import strip_feed_fetch

NORM_STAT_SLOTS = {"batch_norm": ("Mean", "Variance"), "sync_batch_norm": ("Mean", "Variance")}
FLOAT = ("float32", "float16", "bfloat16", "float64")
MOVING_QUANTIZERS = ("fake_quantize_dequantize_moving_average_abs_max",
                     "fake_quantize_dequantize_range_abs_max")
LOSS_ATTR = "actc_loss"
# Attrs every op of a Paddle-built program carries (op_role 0 = forward).
COMMON_ATTRS = (("op_role", 0, A.INT), ("op_device", "", A.STRING),
                ("op_namescope", "/", A.STRING), ("op_role_var", [], A.STRINGS),
                ("op_callstack", [], A.STRINGS))


@dataclass
class TrainSpec:
    program: Program                 # the trainable copy
    losses: list[str]                # loss terms (summed and minimised)
    loss_kinds: list[str]
    parameters: list[str]            # what the optimizer updates
    state: list[str]                 # every persistable var of the student (written back)
    label: str | None = None         # the label feed, if a task loss reads one
    teacher_feeds: dict[str, str] = field(default_factory=dict)  # teacher feed -> data name
    outputs: list[str] = field(default_factory=list)  # the student's fetch targets


def _is_teacher(op) -> bool:
    return op.has_attr(TEACHER_ATTR)


def find_losses(program: Program) -> tuple[list[str], list[str]]:
    names, kinds = [], []
    for op in program.ops():
        if op.has_attr(LOSS_ATTR):
            names.append(op.output("Out")[0])
            kinds.append(str(op.attr(LOSS_ATTR)))
    return names, kinds


def fill_common_attrs(p: Program) -> Program:
    """Ops actc inserted lack the attrs Paddle's backward pass and clone() read."""
    for op in p.ops():
        for name, value, kind in COMMON_ATTRS:
            if not op.has_attr(name):
                op.set_attr(name, value, kind)
    return p


def restore_xshape(p: Program) -> Program:
    """The XShape (reshape-like ops: the DSL pass restore_xshape, which transformer recipes
    also run before writing) and Mask (dropout) outputs inference export drops; their grad ops
    need them."""
    from actc.dsl.registry import default_registry
    from actc.dsl.rules import RuleRunner

    for op in list(p.ops()):
        if op.type == "dropout" and not op.output("Mask"):
            x = op.input("X")[0]
            name = p.fresh_name(op.output("Out")[0] + "@mask")
            p.add_var(name, shape=list(p.var(x).shape or []), dtype="uint8")
            p.set_args(op, outputs={"Mask": [name]})
    RuleRunner(p, default_registry().get("restore_xshape").passdef, {}).run()
    return p


def prepare(ir: Program, *, freeze_bn: bool = False, freeze_scales: bool = False) -> TrainSpec:
    losses, kinds = find_losses(ir)
    if not losses:
        raise ActcError("train: the program has no loss to minimise; put a distill(...) or "
                        "task_loss(...) step before train")
    if any(op.type == "quantize_linear" for op in ir.ops()):
        raise ActcError("train: quantize_linear has no gradient in Paddle; quantize with "
                        "format: fake for training (convert(format: onnx) exports ONNX-style "
                        "quantize/dequantize afterwards)")
    outputs = ir.fetch_names()
    feeds = ir.feed_names()
    label = None
    teacher_feeds: dict[str, str] = {}
    for op in ir.ops("feed"):
        out = op.output("Out")[0]
        if op.has_attr("actc_label"):
            label = out
        elif _is_teacher(op):
            prefix = str(op.attr(TEACHER_ATTR))
            teacher_feeds[out] = out[len(prefix):]
    p = strip_feed_fetch(ir.clone())
    written = {n for op in p.ops() for n in op.output_names}
    student_reads, teacher_reads = set(), set()
    stats = set()  # never trained: batch-norm statistics and sparsity masks
    for op in p.ops():
        (teacher_reads if _is_teacher(op) else student_reads).update(op.input_names)
        for slot in NORM_STAT_SLOTS.get(op.type, ()):
            stats.update(op.input(slot))
        if op.has_attr("actc_mask"):
            stats.update(op.input("Y"))
    fill_common_attrs(p)
    restore_xshape(p)
    for op in list(p.ops()):
        if _is_teacher(op):  # the teacher stays in inference mode and gets no gradient
            for name in op.output_names:
                if p.var(name) is not None:
                    p.var(name).desc.stop_gradient = True
            continue
        if op.type == "dropout":
            op.set_attr("is_test", False)
        elif op.type in NORM_STAT_SLOTS:
            if not op.output("ReserveSpace"):
                name = p.fresh_name(op.output("Y")[0] + "@reserve")
                p.add_var(name, shape=[-1], dtype="float32")
                p.set_args(op, outputs={"ReserveSpace": [name]})
            op.set_attr("is_test", bool(freeze_bn))
            op.set_attr("use_global_stats", bool(freeze_bn))
            if op.has_attr("trainable_statistics"):
                op.set_attr("trainable_statistics", False)
        elif op.type in MOVING_QUANTIZERS:
            # a QDQ op fed by a range_abs_max observer only quantizes (the observer updates)
            op.set_attr("is_test", bool(freeze_scales) or bool(op.attr("actc_observed")))
        elif op.type == "fake_quantize_range_abs_max":
            op.set_attr("is_test", bool(freeze_scales))
    for name in feeds + list(teacher_feeds) + ([label] if label else []):
        v = p.var(name)
        if v is not None:
            v.desc.need_check_feed = False
    params, state = [], []
    for v in p.all_vars():
        if not v.persistable or v.is_feed_fetch or v.block != 0:
            continue
        teacher_only = v.name in teacher_reads and v.name not in student_reads
        if teacher_only:
            v.desc.is_parameter = False
            v.desc.stop_gradient = True
            continue
        if v.name not in student_reads and v.name not in written:
            continue
        state.append(v.name)
        trainable = v.dtype in FLOAT and v.name not in written and v.name not in stats \
            and not v.name.endswith(("@scale", "@zero_point"))
        v.desc.is_parameter = trainable
        v.desc.stop_gradient = not trainable
        if trainable:
            params.append(v.name)
    if not params:
        raise ActcError("train: the program has no trainable weights")
    return TrainSpec(p, losses, kinds, params, state, label, teacher_feeds, outputs)
