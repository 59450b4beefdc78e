"""Which channels to remove: importance over a whole dependency group, the ratio (with
round_to), and the plan of edits the `prune_channels` pass applies (weight slices, var shapes,
attrs). Numerics only: the pass in passes/prune.actc performs the edits."""
from __future__ import annotations

import numpy as np

from actc.errors import ActcError, did_you_mean
from actc.ir.program import Program
from actc.prune.groups import Group, Member, channel_groups

CRITERIA = ("l1_norm", "bn_scale", "geometry_median")


def _rows(program: Program, m: Member) -> list[np.ndarray]:
    """Per root channel, the member's values along its axis at the mapped indices."""
    a = np.asarray(program.params[m.name].array, dtype=np.float32)
    moved = np.moveaxis(a, m.axis, 0)
    return [moved[idx[idx >= 0]].ravel() for idx in m.map]


def importance(program: Program, g: Group, criterion: str, master_only: bool) -> np.ndarray:
    if criterion == "bn_scale":
        scales = g.params("bn_scale")
        if not scales:
            raise ActcError(f"prune_channels: criterion bn_scale needs a batch_norm after "
                            f"'{g.root_param}', and its group has none")
        return sum(np.array([np.abs(r).sum() for r in _rows(program, m)]) for m in scales)
    members = [m for m in g.params() if m.name == g.root_param] if master_only else \
        [m for m in g.params() if m.role in ("out", "in", "dw")]
    rows = [np.concatenate(parts) for parts in zip(*[_rows(program, m) for m in members])]
    if criterion == "l1_norm":
        return np.array([np.abs(r).sum() for r in rows])
    vecs = np.stack(rows)  # geometry median: filters closest to all others are redundant
    d = np.sqrt(((vecs[:, None, :] - vecs[None, :, :]) ** 2).sum(-1))
    return d.sum(1)


def prune_count(size: int, ratio: float, round_to: int) -> int:
    """How many channels go: round(size * ratio), at most size - 1, keeping a multiple of
    round_to (hardware-friendly widths)."""
    if not 0.0 <= ratio < 1.0:
        raise ActcError(f"prune_channels: ratio must be in [0, 1), got {ratio}")
    keep = size - min(size - 1, int(round(size * ratio)))
    if round_to > 1:
        keep = min(size, max(round_to, int(round(keep / round_to)) * round_to))
    return size - keep


def _member_size(program: Program, m: Member) -> int:
    if m.kind == "param":
        return int(np.asarray(program.params[m.name].array).shape[m.axis])
    shape = program.var(m.name).shape
    return int(shape[m.axis]) if shape is not None and shape[m.axis] > 0 else 0


def _choose(program: Program, g: Group, order: np.ndarray, n: int, ratio: float) -> np.ndarray:
    """The n lowest-ranked root channels, except that no member may lose all its channels,
    and where root channels own unequal shares of a member (a channel shuffle joins branches)
    none may lose more than the ratio of its channels: then the next-ranked ones are tried."""
    limits = []
    for k, m in enumerate(g.members):
        size = _member_size(program, m)
        if size <= 0:
            continue
        widths = (m.map >= 0).sum(axis=1)
        cap = size - 1 if widths.min() == widths.max() else \
            min(size - 1, int(np.ceil(ratio * size)))
        limits.append((k, cap))
    if all(cap >= n * int((g.members[k].map >= 0).sum(axis=1).max()) for k, cap in limits):
        return np.sort(order[:n])  # nothing can bind
    lost = {k: set() for k, _ in limits}
    chosen = []
    for r in order:
        if len(chosen) == n:
            break
        adds = {k: {int(i) for i in g.members[k].map[r] if i >= 0} for k, _ in limits}
        if all(len(lost[k] | adds[k]) <= cap for k, cap in limits):
            for k, _ in limits:
                lost[k] |= adds[k]
            chosen.append(int(r))
    return np.sort(np.array(chosen, dtype=np.int64))


def _ratio_for(g: Group, ratio) -> float | None:
    if isinstance(ratio, dict):
        for m in g.params("out"):
            if m.name in ratio:
                return float(ratio[m.name])
        return None
    return None if ratio is None else float(ratio)


def flops(program: Program) -> int:
    """Multiply-adds x 2 of convs and linear layers for one sample (declared shapes)."""
    total = 0
    for op in program.ops():
        if op.type in ("conv2d", "depthwise_conv2d", "conv2d_transpose"):
            f = program.var(op.input("Filter")[0]).shape
            out = program.var(op.output("Output")[0]).shape
            if f and out and all(d > 0 for d in out[1:]):
                total += 2 * int(np.prod(f)) * int(np.prod(out[2:]))
        elif op.type in ("matmul_v2", "mul", "matmul"):
            y = program.var(op.input("Y")[0])
            x = program.var(op.input("X")[0])
            if y is not None and program.is_weight(y.name) and x is not None and x.shape:
                rows = int(np.prod([d for d in x.shape[1:-1] if d > 0])) or 1
                total += 2 * int(np.prod(y.shape)) * rows
    return total


def param_bytes(program: Program) -> int:
    return sum(int(t.array.nbytes) for t in program.params.values())


def plan(program: Program, selected: set[str], ratio, criterion: str, round_to: int,
         master_only: bool, scores: dict | None = None, how: str | None = None,
         insist: set[str] = frozenset()) -> dict:
    """The edits for every selected group: {"params": [[name, axis, removed]], "vars":
    [[name, shape]], "attrs": [[op, name, value]], "report": [lines], "masked": [[name, axis,
    removed]]} where "masked" lists the consumers' input slices whose zeroing in the unpruned
    model computes exactly what the pruned model computes (the equivalence tests use it).
    ``scores`` ({root weight: one score per channel}) replace the criterion for those groups
    (``how`` names them in the report). A group that cannot be pruned is an error when its
    weight is in ``insist`` (named by the user) or in a {weight: ratio} mapping, else
    reported as skipped."""
    if criterion not in CRITERIA:
        raise ActcError(f"prune_channels: unknown criterion '{criterion}'"
                        f"{did_you_mean(criterion, CRITERIA)}")
    if ratio is None:
        raise ActcError("prune_channels: give ratio (a float, or {weight: ratio})")
    if isinstance(ratio, (list, tuple)):
        raise ActcError("prune_channels: a list of ratios needs the weights they belong to: "
                        "write ratio: {weight_name: ratio, ...}")
    groups = channel_groups(program)
    if isinstance(ratio, dict):
        known = {m.name for g in groups for m in g.params("out")}
        for name in ratio:
            if name not in known:
                raise ActcError(f"prune_channels: '{name}' is not the weight of a conv or "
                                f"linear layer{did_you_mean(name, known)}")
    removal: dict[tuple[str, str, int], set[int]] = {}
    consumers: dict[tuple[str, int], set[int]] = {}  # input slices: what masking would zero
    report, edits_attrs = [], []
    touched = 0
    for g in groups:
        wanted = any(m.name in selected for m in g.params("out"))
        r = _ratio_for(g, ratio) if wanted else None
        if r is None:
            continue
        if g.problem:
            if isinstance(ratio, dict) or any(m.name in insist for m in g.params("out")):
                raise ActcError(f"prune_channels: cannot prune '{g.root_param}': {g.problem}")
            report.append(f"skipped {g.describe()}")
            continue
        n = prune_count(g.size, r, round_to)
        if n == 0:
            report.append(f"{g.root_param}: nothing to remove at ratio {r}")
            continue
        external = scores is not None and g.root_param in scores
        score = np.asarray(scores[g.root_param]) if external else \
            importance(program, g, criterion, master_only)
        gone = _choose(program, g, np.argsort(score, kind="stable"), n, r)
        for m in g.members:
            idx = [int(i) for i in m.map[gone].ravel() if i >= 0]
            removal.setdefault((m.kind, m.name, m.axis), set()).update(idx)
            if m.kind == "param" and m.role == "in":
                consumers.setdefault((m.name, m.axis), set()).update(idx)
        for op, attr, kind, where in g.attrs:
            if kind == "sections":
                edits_attrs.append((op, attr, kind, where, None))
            else:
                edits_attrs.append((op, attr, kind, where[0], where[1]))
        touched += 1
        short = f" ({len(gone)} of the {n} asked: more would empty or over-prune a layer " \
            "the channel shuffle ties to them)" if len(gone) < n else ""
        n = len(gone)
        report.append(f"{', '.join(m.name for m in g.params('out') + g.params('dw'))}: "
                      f"{g.size} -> {g.size - n} channels{short} "
                      f"({how if external and how else criterion})")
    if touched == 0 and not report:
        raise ActcError("prune_channels: the selected ops create no prunable channels")
    params, shapes, attrs = [], [], []
    new_dims: dict[tuple[str, int], int] = {}
    for (kind, name, axis), idx in sorted(removal.items()):
        if kind == "param":
            params.append([name, axis, sorted(idx)])
        else:
            shape = list(program.var(name).shape)
            if shape[axis] > 0:
                shape[axis] -= len(idx)
            new_dims[(name, axis)] = shape[axis]
            shapes.append([name, shape])
    for op, attr, kind, var, axis in edits_attrs:
        if kind == "sections":  # split: each output's new size (num becomes explicit)
            sizes = [new_dims.get(va, program.var(va[0]).shape[va[1]]) for va in var]
            if op.attr("num", 0):
                attrs.append([op, "num", 0])
            attrs.append([op, "sections", sizes])
            continue
        dim = new_dims.get((var, axis))
        if dim is None:
            continue
        if kind == "count":
            attrs.append([op, attr, dim])
        elif kind.startswith("axis"):  # a bias reshaped to [1, C, 1, 1]: C shrinks
            target = list(op.attr("shape"))
            target[int(kind[4:])] = dim
            attrs.append([op, attr, target])
        else:  # reshape2 to [N, C*H*W]: the explicit flat size shrinks with the channels
            target = list(op.attr("shape"))
            attrs.append([op, attr, [target[0], dim]])
    masked = [[n, a, sorted(i)] for (n, a), i in sorted(consumers.items())]
    return {"params": params, "vars": shapes, "attrs": attrs, "report": report,
            "masked": masked}
