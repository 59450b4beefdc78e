"""Attention heads in the IR, and the plan that removes some of them (ACT TransformerPrune).

Multi-head attention as paddle.nn.MultiHeadAttention exports it: three projections
(matmul_v2 + bias add) each reshaped to [N, L, H, D] and transposed to [N, H, L, D]; scores
= matmul_v2(q, k, trans_y) (q scaled first), softmax (and dropout) over the last axis, context
= matmul_v2(probs, v), transposed back, reshaped to [N, L, H*D] and projected out. Removing head
h removes columns h*D .. h*D+D-1 of the q/k/v projections and their biases, the same rows of
the output projection, and shrinks H in every var and reshape between them. The feed-forward
blocks are ordinary channel groups (actc.prune.groups): fc1's output neurons.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from actc.errors import ActcError
from actc.ir.program import Op, Program


@dataclass
class Attention:
    softmax: Op
    heads: int
    head_dim: int
    proj: dict = field(default_factory=dict)   # "q"/"k"/"v" -> (weight, bias or None)
    out_weight: str = ""
    head_vars: list = field(default_factory=list)   # (var, axis) whose size is H
    embed_vars: list = field(default_factory=list)  # (var, axis) whose size is H*D
    split_reshapes: list = field(default_factory=list)
    merge_reshape: Op | None = None


def _prod(p: Program, var: str):
    prods = p.producers(var)
    return prods[0][0] if prods else None


def _only_consumer(p: Program, var: str):
    users = p.consumers(var)
    return users[0][0] if len(users) == 1 else None


def _projection(p: Program, a: Attention, var: str, name: str) -> bool:
    """var = transpose2(reshape2(bias_add(matmul_v2(x, W)))) -> records it; False if not."""
    tr = _prod(p, var)
    if tr is None or tr.type != "transpose2" or list(tr.attr("axis", [])) != [0, 2, 1, 3]:
        return False
    rs = _prod(p, tr.input("X")[0])
    if rs is None or rs.type != "reshape2":
        return False
    shape = list(rs.attr("shape", []))
    if len(shape) != 4 or shape[2] != a.heads or shape[3] != a.head_dim:
        return False
    src = rs.input("X")[0]
    add = _prod(p, src)
    bias, lin_out = None, src
    if add is not None and add.type == "elementwise_add" and p.is_weight(add.input("Y")[0]):
        bias, lin_out = add.input("Y")[0], add.input("X")[0]
        a.embed_vars.append((src, 2))
    mm = _prod(p, lin_out)
    if mm is None or mm.type != "matmul_v2" or not p.is_weight(mm.input("Y")[0]) or \
            mm.attr("trans_y", False):
        return False
    a.proj[name] = (mm.input("Y")[0], bias)
    a.embed_vars.append((lin_out, 2))
    a.head_vars += [(rs.output("Out")[0], 2), (var, 1)]
    a.split_reshapes.append(rs)
    return True


def find_attention(program: Program) -> list[Attention]:
    found = []
    for sm in program.ops("softmax"):
        scores = sm.input("X")[0]
        mm = _prod(program, scores)
        if mm is None or mm.type != "matmul_v2" or not mm.attr("trans_y", False):
            continue
        shape = program.var(scores).shape or ()
        if len(shape) != 4:
            continue
        q_in, k_in = mm.input("X")[0], mm.input("Y")[0]
        qv = q_in
        scale = _prod(program, q_in)
        extra = []
        if scale is not None and scale.type == "scale":
            qv = scale.input("X")[0]
            extra.append((q_in, 1))
        kdims = program.var(k_in).shape or ()
        a = Attention(sm, int(shape[1]), int(kdims[3]) if len(kdims) == 4 else -1)
        probs = sm.output("Out")[0]
        nxt = _only_consumer(program, probs)
        chain = [(probs, 1)]
        if nxt is not None and nxt.type == "dropout":
            probs = nxt.output("Out")[0]
            chain.append((probs, 1))
            nxt = _only_consumer(program, probs)
        if nxt is None or nxt.type != "matmul_v2" or nxt.input("X")[0] != probs:
            continue
        ctx = nxt.output("Out")[0]
        tr = _only_consumer(program, ctx)
        if tr is None or tr.type != "transpose2" or list(tr.attr("axis", [])) != [0, 2, 1, 3]:
            continue
        rs = _only_consumer(program, tr.output("Out")[0])
        if rs is None or rs.type != "reshape2" or len(list(rs.attr("shape", []))) != 3:
            continue
        out_mm = _only_consumer(program, rs.output("Out")[0])
        if out_mm is None or out_mm.type != "matmul_v2" or not program.is_weight(
                out_mm.input("Y")[0]):
            continue
        if not (_projection(program, a, qv, "q") and _projection(program, a, k_in, "k") and
                _projection(program, a, nxt.input("Y")[0], "v")):
            continue
        a.out_weight = out_mm.input("Y")[0]
        a.head_vars += extra + [(scores, 1)] + chain + [(ctx, 1), (tr.output("Out")[0], 2)]
        a.embed_vars.append((rs.output("Out")[0], 2))
        a.merge_reshape = rs
        found.append(a)
    return found


def head_importance(program: Program, a: Attention) -> np.ndarray:
    """Label-free: the L1 norm of each head's slice of the four projection matrices."""
    d = a.head_dim
    score = np.zeros(a.heads)
    for w, _ in a.proj.values():
        cols = np.abs(np.asarray(program.params[w].array)).reshape(-1, a.heads, d)
        score += cols.sum(axis=(0, 2))
    rows = np.abs(np.asarray(program.params[a.out_weight].array)).reshape(a.heads, d, -1)
    return score + rows.sum(axis=(1, 2))


def head_plan(program: Program, ratio: float, scores: list | None = None,
              how: str = "weight magnitude") -> dict:
    """Edits removing round(ratio * H) heads (at least one stays) in every attention block;
    ``scores`` (one array per block, as find_attention orders them) override the magnitude."""
    if not 0.0 <= ratio < 1.0:
        raise ActcError(f"prune_transformer: ratio must be in [0, 1), got {ratio}")
    blocks = find_attention(program)
    params, shapes, attrs, report, masked = [], [], [], [], []
    for k, a in enumerate(blocks):
        n = min(a.heads - 1, int(round(a.heads * ratio)))
        if n == 0:
            continue
        score = scores[k] if scores is not None else head_importance(program, a)
        gone = np.sort(np.argsort(score, kind="stable")[:n])
        cols = sorted(int(h * a.head_dim + j) for h in gone for j in range(a.head_dim))
        for w, b in a.proj.values():
            params.append([w, 1, cols])
            if b is not None:
                params.append([b, 0, cols])
        params.append([a.out_weight, 0, cols])
        masked.append([a.out_weight, 0, cols])  # a head whose output rows are zero is gone
        keep_h = a.heads - n
        for var, axis in dict.fromkeys(a.head_vars):
            shape = list(program.var(var).shape)
            shape[axis] = keep_h
            shapes.append([var, shape])
        for var, axis in dict.fromkeys(a.embed_vars):
            shape = list(program.var(var).shape)
            shape[axis] = keep_h * a.head_dim
            shapes.append([var, shape])
        for rs in a.split_reshapes:
            target = list(rs.attr("shape"))
            target[2] = keep_h
            attrs.append([rs, "shape", target])
        target = list(a.merge_reshape.attr("shape"))
        target[2] = keep_h * a.head_dim
        attrs.append([a.merge_reshape, "shape", target])
        report.append(f"attention at {a.softmax.output('Out')[0]}: {a.heads} -> {keep_h} heads "
                      f"(dropped {', '.join(str(int(h)) for h in gone)}; by {how})")
    return {"params": params, "vars": shapes, "attrs": attrs, "report": report,
            "masked": masked, "blocks": len(blocks)}


# ------------------------------------------------------------------ data-driven importance
def head_units(a: Attention) -> list[list]:
    """Per head, the slices whose zeroing removes it from the model: its rows of the output
    projection (exactly what the pruned model computes, see head_plan's "masked")."""
    d = a.head_dim
    return [[[a.out_weight, 0, list(range(h * d, h * d + d))]] for h in range(a.heads)]


def neuron_units(g) -> list[list]:
    """Per channel of a feed-forward group, the consumers' input slices that carry it."""
    ins = [m for m in g.params("in")]
    return [[[m.name, m.axis, [int(i) for i in m.map[c] if i >= 0]] for m in ins]
            for c in range(g.size)]


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


class AblationLoss:
    """Forward-only importance: the loss increase when one unit (a head, a neuron) is zeroed.

    ``task=True``: the task's cross-entropy on the labels of the first output (ACT ranks heads
    by the task loss's sensitivity to a head mask, through its gradient; this measures the
    sensitivity itself). Otherwise the distillation loss against the unpruned model's output:
    soft-label KL(teacher || student) when the output is [batch, classes], else the mean
    squared error (ACT's l2), so no labels are needed. Each trial zeroes slices of weights in
    the scope of one Paddle program (no graph change, no backward), which computes exactly
    what the pruned model computes."""

    def __init__(self, program: Program, dataset, batch_size: int, batch_nums: int,
                 device: str | None = None, task: bool = False):
        from actc.runtime.executor import Runner

        self.program = program
        self.runner = Runner(program, device)
        self.output = program.fetch_names()[0]
        self.batches = list(dataset.batches(batch_size, batch_nums))
        if not self.batches:
            raise ActcError("prune_transformer: the data holds no batch to rank heads on")
        self.samples = sum(len(b) for b in self.batches)
        self.reference = [self._forward(b) for b in self.batches]
        first = self.reference[0]
        self.labels = task and first.ndim == 2 and all(
            b.label is not None and b.label.reshape(-1).shape[0] == r.shape[0] and
            0 <= int(b.label.min()) and int(b.label.max()) < r.shape[1]
            for b, r in zip(self.batches, self.reference))
        self.soft = not self.labels and first.ndim == 2
        self.kind = "task loss (cross-entropy)" if self.labels else \
            "distillation loss (soft-label KL to the unpruned output)" if self.soft else \
            "distillation loss (l2 to the unpruned output)"
        self.base = self.loss()

    def _forward(self, batch) -> np.ndarray:
        (out,) = self.runner.run(batch.feed, [self.output])
        return np.asarray(out, dtype=np.float64)

    def loss(self) -> float:
        total = 0.0
        for b, ref in zip(self.batches, self.reference):
            out = self._forward(b)
            if self.labels:
                lab = b.label.reshape(-1).astype(np.int64)
                total += float(-_log_softmax(out)[np.arange(len(lab)), lab].sum())
            elif self.soft:
                t = _log_softmax(ref)
                total += float((np.exp(t) * (t - _log_softmax(out))).sum())
            else:
                total += float(((out - ref) ** 2).mean()) * len(b)
        return total / self.samples

    def increase(self, unit: list) -> float:
        """Loss with the unit's slices zeroed, minus the unpruned loss."""
        saved = {name: np.asarray(self.program.params[name].array) for name, _, _ in unit}
        arrays = {n: a.copy() for n, a in saved.items()}
        for name, axis, idx in unit:
            np.moveaxis(arrays[name], axis, 0)[idx] = 0
        for n, a in arrays.items():
            self.runner.set_param(n, a)
        try:
            return self.loss() - self.base
        finally:
            for n, a in saved.items():
                self.runner.set_param(n, a)


def gradient_scores(program: Program, dataset, unit_sets: list[list], batch_size: int,
                    batch_nums: int, device: str | None = None) -> tuple[list, int]:
    """ACT's TransformerPrune criterion: per unit, the sum over batches of |dL/dm|, where m
    would multiply the unit's output and L is the task's cross-entropy on the labels. A
    unit's output enters the model only through its slices of the next projection, so
    dL/dm = sum over those slices of W * dL/dW: the gradients of the projection weights
    (Paddle's backward through the program as the train stage prepares it, dropout off).
    Returns the scores (one array per unit set) and the number of samples."""
    from actc.dsl.compiler import compile_source
    from actc.dsl.pipeline import PipelineContext, run_pipeline
    from actc.runtime.paddle_env import import_paddle, onednn_off, resolve_place
    from actc.train.prepare import prepare

    copy = program.clone()
    ctx = PipelineContext(program=copy)
    run_pipeline(compile_source("recipe g() { task_loss() }", "<head gradients>",
                                program=copy), ctx)
    spec = prepare(ctx.program)
    for op in spec.program.ops("dropout"):
        op.set_attr("is_test", True)
    paddle = import_paddle()
    from paddle.base import unique_name

    main = paddle.static.Program.parse_from_string(spec.program.to_bytes())
    for op in main.global_block().ops:
        op.desc.check_attrs()
    names = sorted({name for units in unit_sets for u in units for name, _, _ in u})
    with paddle.static.program_guard(main), \
            unique_name.guard(unique_name.UniqueNameGenerator("actc_")):
        block = main.global_block()
        loss = block.var(spec.losses[0])
        grads = dict(paddle.static.append_backward(
            loss, parameter_list=[block.var(n) for n in names]))
    fetch = [grads[block.var(n)] for n in names]
    place = resolve_place(device)
    scope = paddle.static.Scope()
    for name, tensor in ctx.program.params.items():
        scope.var(name).get_tensor().set(np.asarray(tensor.array), place)
    exe = paddle.static.Executor(place)
    weights = {n: np.asarray(program.params[n].array, dtype=np.float64) for n in names}
    with onednn_off():  # oneDNN breaks grad kernels (PADDLE_NOTES)
        return _accumulate(paddle, exe, main, scope, spec.label, fetch, names, weights,
                           dataset, unit_sets, batch_size, batch_nums)


def _accumulate(paddle, exe, main, scope, label, fetch, names, weights, dataset, unit_sets,
                batch_size, batch_nums):
    scores = [np.zeros(len(units)) for units in unit_sets]
    seen = 0
    for batch in dataset.batches(batch_size, batch_nums):
        if batch.label is None:
            raise ActcError("prune_transformer: criterion gradient needs labels in the data")
        feed = dict(batch.feed)
        feed[label] = batch.label.reshape(-1, 1).astype("int64")
        with paddle.static.scope_guard(scope):
            got = exe.run(main, feed=feed, fetch_list=fetch, scope=scope)
        prod = {n: weights[n] * np.asarray(g, dtype=np.float64) for n, g in zip(names, got)}
        for k, units in enumerate(unit_sets):
            for i, unit in enumerate(units):
                d = sum(float(np.moveaxis(prod[n], axis, 0)[idx].sum()) for n, axis, idx in unit)
                scores[k][i] += abs(d)
        seen += len(batch)
    if not seen:
        raise ActcError("prune_transformer: criterion gradient: the data holds no batch")
    return scores, seen
