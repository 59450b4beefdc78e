"""Channel dependency groups over the IR, as DepGraph does for PyTorch.

A *space* is one channel dimension of one var (var name, axis). Starting from the output
channels a conv or linear layer creates (the *root*), the walk follows every op that couples
channels: batch_norm and activations carry them through, a residual `elementwise_add` ties both
branches (so both producing convs join the group), depthwise convs pass them through (and their
`groups` attr shrinks), `concat` maps them by offset, `flatten` into a matmul maps each channel
to a block of rows, a channel shuffle (reshape/transpose/reshape, `channel_shuffle`,
`shuffle_channel`) ties channel j of every shuffled group together, and every consumer's
weight loses the matching input slices. Each member
records, per root channel, which indices of its own axis belong to it (an index map), so a
removal chosen in the root's index space lands on every member.

One rule per op kind (``RULES``); an op without a rule, a model input or output, or anything
that would need a different channel count on both sides of a fixed-size op ends the group with
a *problem* naming the op and the reason: such a group is reported, never silently skipped.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from actc.ir.program import Op, Program

UNARY = frozenset("""
relu relu6 sigmoid tanh swish silu hard_swish hard_sigmoid leaky_relu gelu elu selu mish
softplus softsign clip scale dropout cast abs exp log sqrt square pow assign logsigmoid
tanh_shrink thresholded_relu brelu stanh hard_shrink softshrink celu
""".split())
POOLS = frozenset({"pool2d", "pool3d", "max_pool2d_with_index"})
ELEMENTWISE = frozenset({"elementwise_add", "elementwise_sub", "elementwise_mul",
                         "elementwise_div", "elementwise_max", "elementwise_min"})
NORMS = frozenset({"batch_norm", "sync_batch_norm"})
PER_TENSOR_QUANTIZERS = frozenset({"fake_quantize_dequantize_moving_average_abs_max",
                                   "fake_quantize_dequantize_abs_max"})


@dataclass
class Member:
    kind: str       # "param" or "var"
    name: str
    axis: int
    map: np.ndarray  # [root channels, k]: indices of this axis per root channel, -1 = none
    role: str       # out, in, dw, norm, bn_scale, bias, act
    op: Op | None = None


@dataclass
class Group:
    root_op: Op
    root_param: str
    size: int
    members: list[Member] = field(default_factory=list)
    attrs: list[tuple] = field(default_factory=list)  # (op, attr name, kind, member index)
    problem: str | None = None

    def params(self, role: str | None = None) -> list[Member]:
        return [m for m in self.members if m.kind == "param" and (role is None or m.role == role)]

    def describe(self) -> str:
        outs = ", ".join(m.name for m in self.params("out") + self.params("dw"))
        ins = ", ".join(m.name for m in self.params("in"))
        head = f"{self.root_param} ({self.root_op.type}, {self.size} channels)"
        if self.problem:
            return f"{head}: cannot prune: {self.problem}"
        return f"{head}: out {outs}; in {ins or '-'}; {len(self.params())} weights"


class _Walk:
    def __init__(self, program: Program, group: Group):
        self.p = program
        self.g = group
        self.seen: dict[tuple[str, int], np.ndarray] = {}
        self.queue: deque = deque()

    def fail(self, op: Op | None, why: str) -> None:
        if self.g.problem is None:
            where = f"{op.type} writing {op.output_names[0]}" if op is not None and \
                op.output_names else (op.type if op is not None else "")
            self.g.problem = f"{where}: {why}" if where else why

    def space(self, var: str, axis: int, m: np.ndarray, via: Op | None) -> None:
        """Record that root channel r lives at indices m[r] of var's axis. Reached again
        (another path, e.g. a channel shuffle pairing two branches), the indices are joined
        per root channel and only the new ones walk on; one index claimed by two root
        channels cannot be pruned."""
        key = (var, axis)
        if key in self.seen:
            merged, delta = _join(self.seen[key], m)
            if merged is None:
                self.fail(via, f"'{var}' is reached with two different channel mappings")
                return
            if delta is None:
                return
            self.seen[key] = merged
            for x in self.g.members:
                if x.kind == "var" and x.name == var and x.axis == axis:
                    x.map = merged
            self.queue.append((var, axis, delta, via.uid if via is not None else None))
            return
        self.seen[key] = m
        self.g.members.append(Member("var", var, axis, m, "act", via))
        self.queue.append((var, axis, m, via.uid if via is not None else None))

    def param(self, name: str, axis: int, m: np.ndarray, role: str, op: Op) -> None:
        for x in self.g.members:
            if x.kind == "param" and x.name == name and x.axis == axis:
                merged, _ = _join(x.map, m)
                if merged is None:
                    self.fail(op, f"'{name}' is reached with two different channel mappings")
                else:
                    x.map = merged
                return
        self.g.members.append(Member("param", name, axis, m, role, op))

    def run(self) -> None:
        while self.queue and self.g.problem is None:
            var, axis, m, came_from = self.queue.popleft()
            v = self.p.var(var)
            if var in self.p.feed_names():
                self.fail(None, f"reaches the model input '{var}'")
                return
            if var in self.p.fetch_names():
                self.fail(None, f"reaches the model output '{var}'")
                return
            prods = self.p.producers(var)
            for op, slot, _ in prods:
                if op.uid != came_from:  # the op that led here has done its part
                    self.visit(op, slot, var, axis, m, from_output=True)
            for op, slot, _ in self.p.consumers(var):
                if op.uid == came_from:
                    continue
                if op.type == "fetch":
                    self.fail(None, f"reaches the model output '{var}'")
                    return
                self.visit(op, slot, var, axis, m, from_output=False)
            if v is None:
                self.fail(None, f"'{var}' is not declared")

    def visit(self, op: Op, slot: str, var: str, axis: int, m: np.ndarray,
              from_output: bool) -> None:
        if op.has_attr("actc_teacher") or op.has_attr("actc_loss"):
            self.fail(op, "reaches distillation ops (prune before distill)")
            return
        rule = RULES.get(op.type)
        if rule is None:
            self.fail(op, "no channel rule for this op type")
            return
        rule(self, op, slot, var, axis, m, from_output)


# ------------------------------------------------------------------ helpers
def _join(a: np.ndarray, b: np.ndarray):
    """(a joined with b per root channel, what b adds) -- (a, None) when b adds nothing,
    (None, None) when an index would belong to two root channels."""
    if np.array_equal(a, b):
        return a, None
    owner: dict[int, int] = {}
    rows = []
    for r in range(a.shape[0]):
        row = [int(i) for i in a[r] if i >= 0]
        rows.append(row)
        for i in row:
            if owner.setdefault(i, r) != r:
                return None, None
    new = [[] for _ in rows]
    for r in range(b.shape[0]):
        for i in (int(i) for i in b[r] if i >= 0):
            if owner.setdefault(i, r) != r:
                return None, None
            if i not in rows[r] and i not in new[r]:
                new[r].append(i)
    if not any(new):
        return a, None
    return _pad([x + y for x, y in zip(rows, new)]), _pad(new)


def _pad(rows: list[list[int]]) -> np.ndarray:
    width = max(1, max(len(r) for r in rows))
    out = np.full((len(rows), width), -1, dtype=np.int64)
    for k, r in enumerate(rows):
        out[k, :len(r)] = r
    return out


def _rank(p: Program, var: str) -> int:
    v = p.var(var)
    return len(v.shape) if v is not None and v.shape is not None else 0


def _dim(p: Program, var: str, axis: int) -> int:
    return int(p.var(var).shape[axis])


def _is_param(p: Program, name: str) -> bool:
    return p.is_weight(name) and name in p.params


def _out(op: Op) -> str:
    return (op.output("Out") or op.output("Output") or op.output("Y"))[0]


def _channel_axis(p: Program, op: Op, var: str) -> int:
    layout = op.attr("data_layout", op.attr("data_format", "NCHW")) or "NCHW"
    return _rank(p, var) - 1 if str(layout) in ("NHWC", "NLC", "NDHWC") else 1


# ------------------------------------------------------------------ rules (one per op kind)
def conv_rule(w: _Walk, op, slot, var, axis, m, from_output):
    p = w.p
    filt = op.input("Filter")[0]
    x, out = op.input("Input")[0], op.output("Output")[0]
    if not _is_param(p, filt):
        w.fail(op, "its filter is not a float weight (prune before quantize or fold_masks)")
        return
    if axis != _channel_axis(p, op, var):
        w.fail(op, f"channels on axis {axis}, not the conv's channel axis")
        return
    cin, cout = _dim(p, x, axis), _dim(p, out, axis)
    groups = int(op.attr("groups", 1) or 1)
    transpose = op.type == "conv2d_transpose"
    if op.type == "depthwise_conv2d" or (groups > 1 and groups == cin):
        if cout != cin or groups != cin:
            w.fail(op, f"depthwise conv with a channel multiplier ({cin} -> {cout})")
            return
        w.param(filt, 0, m, "dw", op)
        w.g.attrs.append((op, "groups", "count", (x, axis)))
        w.space(out if slot == "Input" else x, axis, m, op)
        return
    if groups != 1:
        w.fail(op, f"grouped conv (groups={groups})")
        return
    if from_output:
        w.param(filt, 1 if transpose else 0, m, "out", op)
    else:
        w.param(filt, 0 if transpose else 1, m, "in", op)


def norm_rule(w: _Walk, op, slot, var, axis, m, from_output):
    p = w.p
    if axis != _channel_axis(p, op, op.input("X")[0]):
        w.fail(op, "channels on an axis batch_norm does not normalise over")
        return
    for s in ("Scale", "Bias", "Mean", "Variance"):
        for n in op.input(s):
            w.param(n, 0, m, "bn_scale" if s == "Scale" else "norm", op)
    other = op.output("Y")[0] if slot == "X" else op.input("X")[0]
    w.space(other, axis, m, op)


def elementwise_rule(w: _Walk, op, slot, var, axis, m, from_output):
    p = w.p
    x, y, out = op.input("X")[0], op.input("Y")[0], op.output("Out")[0]
    if _is_param(p, y) or _is_param(p, x):
        act, wt = (x, y) if _is_param(p, y) else (y, x)
        wshape = p.var(wt).shape or ()
        rank = _rank(p, act)
        a = int(op.attr("axis", -1))
        start = rank - len(wshape) if a == -1 else a
        k = axis - start
        if 0 <= k < len(wshape) and wshape[k] == _dim(p, act, axis):
            if len(wshape) == 1:
                w.param(wt, k, m, "bias", op)
            else:
                w.fail(op, f"{len(wshape)}-D weight operand")
                return
        elif 0 <= k < len(wshape) and wshape[k] != 1:
            w.fail(op, "weight operand does not broadcast along the channel axis")
            return
        for v in (act, out):
            if v != var:
                w.space(v, axis, m, op)
        return
    # both activations: coupled where both have the channel dimension (not broadcast)
    rank = _rank(p, out)
    for v in (x, y, out):
        if v == var:
            continue
        r = _rank(p, v)
        ax = axis - (_rank(p, var) - r) if v != out else axis + (rank - _rank(p, var))
        if 0 <= ax < r and _dim(p, v, ax) == _dim(p, var, axis):
            w.space(v, ax, m, op)
        elif 0 <= ax < r and _dim(p, v, ax) != 1:
            w.fail(op, "operands disagree on the channel count")
            return


def unary_rule(w: _Walk, op, slot, var, axis, m, from_output):
    if op.type == "scale" and op.input("ScaleTensor"):
        w.fail(op, "scale by a tensor")
        return
    ins = [n for s, names in op.inputs.items() for n in names if s == "X"]
    outs = [n for s, names in op.outputs.items() for n in names if s in ("Out", "Y")]
    for v in ins + outs:
        if v != var:
            w.space(v, axis, m, op)


def pool_rule(w: _Walk, op, slot, var, axis, m, from_output):
    if axis != _channel_axis(w.p, op, op.input("X")[0]):
        w.fail(op, "pooling over the channel axis")
        return
    other = _out(op) if slot == "X" else op.input("X")[0]
    w.space(other, axis, m, op)


def quant_rule(w: _Walk, op, slot, var, axis, m, from_output):
    if int(op.attr("quant_axis", -1)) >= 0 and op.type not in PER_TENSOR_QUANTIZERS:
        w.fail(op, "channel-wise quantizer on an activation")
        return
    x = op.input("X")[0]
    out = (op.output("Out") or op.output("Y"))[0]
    w.space(out if var == x else x, axis, m, op)


def concat_rule(w: _Walk, op, slot, var, axis, m, from_output):
    p = w.p
    ins, out = op.input("X"), op.output("Out")[0]
    cat = int(op.attr("axis", 0))
    cat = cat + _rank(p, out) if cat < 0 else cat
    if axis != cat:  # channels are not what concat joins: every operand carries them
        for v in ins + [out]:
            if v != var:
                w.space(v, axis, m, op)
        return
    offsets = np.cumsum([0] + [_dim(p, v, axis) for v in ins])
    if slot == "X":
        k = ins.index(var)
        w.space(out, axis, np.where(m >= 0, m + offsets[k], -1), op)
        return
    for k, v in enumerate(ins):  # from the output: the channels of each operand, by offset
        local = np.where((m >= offsets[k]) & (m < offsets[k + 1]), m - offsets[k], -1)
        if (local >= 0).any():
            w.space(v, axis, local, op)


def split_rule(w: _Walk, op, slot, var, axis, m, from_output):
    p = w.p
    x, outs = op.input("X")[0], op.output("Out")
    if op.input("AxisTensor") or op.input("SectionsTensorList"):
        w.fail(op, "split sizes given by tensors")
        return
    ax = int(op.attr("axis", 0))
    ax = ax + _rank(p, x) if ax < 0 else ax
    if axis != ax:
        for v in [x] + outs:
            if v != var:
                w.space(v, axis, m, op)
        return
    offsets = np.cumsum([0] + [_dim(p, v, axis) for v in outs])
    if slot == "X":  # each output holds its range of the input's channels
        for k, v in enumerate(outs):
            local = np.where((m >= offsets[k]) & (m < offsets[k + 1]), m - offsets[k], -1)
            if (local >= 0).any():
                w.space(v, axis, local, op)
        w.g.attrs.append((op, "sections", "sections", tuple((v, axis) for v in outs)))
        return
    k = outs.index(var)
    w.space(x, axis, np.where(m >= 0, m + offsets[k], -1), op)
    w.g.attrs.append((op, "sections", "sections", tuple((v, axis) for v in outs)))


def slice_rule(w: _Walk, op, slot, var, axis, m, from_output):
    p = w.p
    x, out = op.input("Input")[0], op.output("Out")[0]
    axes = list(op.attr("axes", []))
    if op.input("StartsTensor") or op.input("EndsTensor") or op.input("StartsTensorList") or \
            op.attr("decrease_axis"):
        w.fail(op, "slice bounds given by tensors, or a slice that drops axes")
        return
    if axis not in axes:
        w.space(out if slot == "Input" else x, axis, m, op)
        return
    w.fail(op, "a slice of the channel axis (the kept range would change)")


def _only_user(p: Program, var: str):
    users = p.consumers(var)
    return users[0][0] if len(users) == 1 else None


def _shuffle_of(p: Program, op: Op):
    """(split reshape, transpose, merge reshape, groups) when ``op`` is one of the three ops
    of a channel shuffle as Paddle exports ShuffleNet's: x [N, C, H, W] -> reshape2 [N, G,
    C/G, H, W] -> transpose2 [0, 2, 1, 3, 4] -> reshape2 [N, C, H, W]; else None."""
    def rank(v):
        return _rank(p, v)
    if op.type == "reshape2" and rank(op.input("X")[0]) == 4 and rank(op.output("Out")[0]) == 5:
        r1 = op
        tr = _only_user(p, r1.output("Out")[0])
        r2 = _only_user(p, tr.output("Out")[0]) if tr is not None and \
            tr.type == "transpose2" else None
    elif op.type == "reshape2" and rank(op.input("X")[0]) == 5 and \
            rank(op.output("Out")[0]) == 4:
        r2 = op
        prods = p.producers(r2.input("X")[0])
        tr = prods[0][0] if prods else None
        prods = p.producers(tr.input("X")[0]) if tr is not None and \
            tr.type == "transpose2" else []
        r1 = prods[0][0] if prods else None
    else:
        return None
    if tr is None or r1 is None or r2 is None or r1.type != "reshape2" or \
            r2.type != "reshape2" or list(tr.attr("axis", [])) != [0, 2, 1, 3, 4] or \
            _only_user(p, r1.output("Out")[0]) is not tr or \
            _only_user(p, tr.output("Out")[0]) is not r2:
        return None
    x, y = p.var(r1.input("X")[0]).shape, p.var(r2.output("Out")[0]).shape
    mid = p.var(r1.output("Out")[0]).shape
    if not (x and y and mid) or list(x[1:]) != list(y[1:]) or any(d <= 0 for d in x[1:]) or \
            list(mid[1:]) != [mid[1], x[1] // max(mid[1], 1), x[2], x[3]] or \
            mid[1] * mid[2] != x[1]:
        return None
    return r1, tr, r2, int(mid[1])


def _shuffle_spaces(w: _Walk, x: str, y: str, channels: int, groups: int, slot_in: bool,
                    m: np.ndarray, op: Op, mids=()):
    """A shuffle sends input channel g*(C/G) + j to output position j*G + g. The pruned
    model shuffles only what is left, so it computes the masked model's permutation exactly
    when every group keeps the same j: channel j of each group is removed together (the
    closure below joins them; the walk brings in the layers that make them)."""
    per = channels // groups
    pos = m if slot_in else np.where(m >= 0, (m % groups) * per + m // groups, -1)
    rows = []
    for r in range(pos.shape[0]):
        js = sorted({int(i) % per for i in pos[r] if i >= 0})
        rows.append(js)
    j = _pad(rows)
    closed_in = _pad([[g * per + k for g in range(groups) for k in r] for r in rows])
    closed_out = _pad([[k * groups + g for k in r for g in range(groups)] for r in rows])
    w.space(x, 1, closed_in, op)
    for var, ax in mids:
        w.space(var, ax, j, op)
    w.space(y, 1, closed_out, op)


def shuffle_channel_rule(w: _Walk, op, slot, var, axis, m, from_output):
    p = w.p
    x, y = op.input("X")[0], op.output("Out")[0]
    groups = int(op.attr("groups" if op.type == "channel_shuffle" else "group", 1) or 1)
    if str(op.attr("data_format", "NCHW") or "NCHW") != "NCHW":
        w.fail(op, "a channel shuffle in NHWC layout")
        return
    if axis != 1 or _rank(p, x) != 4 or _dim(p, x, 1) % groups:
        w.fail(op, "a channel shuffle on another axis")
        return
    _shuffle_spaces(w, x, y, _dim(p, x, 1), groups, slot == "X", m, op)


def flatten_rule(w: _Walk, op, slot, var, axis, m, from_output):
    p = w.p
    shuffle = _shuffle_of(p, op) if op.type == "reshape2" else None
    if shuffle is not None:
        r1, tr, r2, groups = shuffle
        x, y = r1.input("X")[0], r2.output("Out")[0]
        mid, t = r1.output("Out")[0], tr.output("Out")[0]
        if (var, axis) not in ((x, 1), (mid, 2), (t, 1), (y, 1)):
            w.fail(op, "a channel shuffle reached on its group axis")
            return
        if var in (mid, t):  # j within a group: every group's channel j
            per = _dim(p, x, 1) // groups
            m = np.where(m >= 0, m, -1)
            var_in = True
            m = _pad([[g * per + int(k) for g in range(groups) for k in row if k >= 0]
                      for row in m])
        else:
            var_in = var == x
        _shuffle_spaces(w, x, y, _dim(p, x, 1), groups, var_in, m, op, ((mid, 2), (t, 1)))
        w.g.attrs.append((r1, "shape", "axis2", (mid, 2)))
        w.g.attrs.append((r2, "shape", "axis1", (y, 1)))
        return
    x = op.input("X")[0]
    out = op.output("Out")[0]
    shape = p.var(x).shape or ()
    if op.type == "reshape2" and slot == "Out" and _is_param(p, x) and len(shape) == 1:
        # a conv bias [C] reshaped to [1, C, 1, 1] for its elementwise_add
        target = list(op.attr("shape", []))
        if 0 <= axis < len(target) and target[axis] == shape[0] and \
                all(d == 1 for i, d in enumerate(target) if i != axis):
            w.param(x, 0, m, "bias", op)
            w.g.attrs.append((op, "shape", f"axis{axis}", (out, axis)))
            return
    if op.type == "flatten_contiguous_range":
        ok = op.attr("start_axis", 1) == axis and op.attr("stop_axis", -1) in (-1, len(shape) - 1)
    else:  # reshape2 to [N, C*H*W]
        target = list(op.attr("shape", []))
        block = int(np.prod(shape[axis + 1:])) if shape else 0
        ok = len(target) == 2 and target[0] in (0, -1) and \
            target[1] in (-1, _dim(p, x, axis) * block)
    if op.type == "reshape2" and len(list(op.attr("shape", []))) == len(shape) + 1:
        w.fail(op, "a split into heads or groups (reshape to one more axis): attention "
                   "heads are pruned by prune_transformer")
        return
    if slot != "X" or not ok or any(d <= 0 for d in shape[axis + 1:]):
        w.fail(op, "a reshape whose channel mapping is not provable")
        return
    k = int(np.prod(shape[axis + 1:]))
    expanded = np.where(m[..., None] >= 0, m[..., None] * k + np.arange(k), -1)
    w.space(out, axis, expanded.reshape(m.shape[0], -1), op)
    if op.type == "reshape2" and -1 not in list(op.attr("shape", []))[1:]:
        w.g.attrs.append((op, "shape", "flat", (out, axis)))


def transpose_rule(w: _Walk, op, slot, var, axis, m, from_output):
    perm = list(op.attr("axis", []))
    x, out = op.input("X")[0], op.output("Out")[0]
    if slot == "X":
        w.space(out, perm.index(axis), m, op)
    else:
        w.space(x, perm[axis], m, op)


def matmul_rule(w: _Walk, op, slot, var, axis, m, from_output):
    p = w.p
    x, y = op.input("X")[0], op.input("Y")[0]
    if not _is_param(p, y) or len(p.var(y).shape or ()) != 2:
        w.fail(op, "matmul between activations (attention): not a linear layer")
        return
    trans = bool(op.attr("trans_y", op.attr("transpose_Y", False)))
    if axis != _rank(p, var) - 1:
        w.fail(op, "channels on an axis other than the features")
        return
    if from_output:
        w.param(y, 0 if trans else 1, m, "out", op)
    else:
        w.param(y, 1 if trans else 0, m, "in", op)


RULES = {t: unary_rule for t in UNARY}
RULES.update({t: pool_rule for t in POOLS})
RULES.update({t: elementwise_rule for t in ELEMENTWISE})
RULES.update({t: norm_rule for t in NORMS})
RULES.update({t: quant_rule for t in PER_TENSOR_QUANTIZERS | {"quantize_linear",
                                                               "dequantize_linear"}})
RULES.update({"conv2d": conv_rule, "depthwise_conv2d": conv_rule, "conv2d_transpose": conv_rule,
              "concat": concat_rule, "split": split_rule, "slice": slice_rule,
              "flatten_contiguous_range": flatten_rule, "shuffle_channel": shuffle_channel_rule,
              "channel_shuffle": shuffle_channel_rule,
              "reshape2": flatten_rule, "transpose2": transpose_rule, "matmul_v2": matmul_rule,
              "matmul": matmul_rule, "mul": matmul_rule})


# ------------------------------------------------------------------ enumeration
def creates_channels(program: Program, op: Op) -> tuple[str, str, int] | None:
    """(weight, output var, channel axis) when ``op`` makes output channels of its own."""
    if op.type in ("conv2d", "conv2d_transpose"):
        filt = op.input("Filter")[0]
        x = op.input("Input")[0]
        groups = int(op.attr("groups", 1) or 1)
        if _is_param(program, filt) and (groups == 1 or groups != _dim(program, x, 1)):
            return filt, op.output("Output")[0], _channel_axis(program, op, x)
    if op.type in ("matmul_v2", "matmul", "mul"):
        y = op.input("Y")[0]
        if _is_param(program, y) and len(program.var(y).shape or ()) == 2:
            out = op.output("Out")[0]
            return y, out, _rank(program, out) - 1
    return None


def channel_groups(program: Program) -> list[Group]:
    """Every group, one per set of coupled channel-creating layers, in program order."""
    groups: list[Group] = []
    claimed: set[str] = set()
    for op in program.ops():
        if op.has_attr("actc_teacher"):
            continue
        made = creates_channels(program, op)
        if made is None or made[0] in claimed:
            continue
        weight, out, axis = made
        size = _dim(program, out, axis)
        g = Group(op, weight, size)
        walk = _Walk(program, g)
        ident = np.arange(size)[:, None]
        walk.param(weight, 1 if op.type == "conv2d_transpose" or
                   (op.type != "conv2d" and not op.attr("trans_y", False)) else 0,
                   ident, "out", op)
        walk.space(out, axis, ident, op)
        walk.run()
        claimed.update(m.name for m in g.params("out"))
        groups.append(g)
    return groups
