"""Complete a QDQ model for onnxruntime's integer kernels.

Paddle's PTQ quantizes only the inputs of convs and matmuls, so in the exported model each
Conv's output is float: onnxruntime then keeps a float Conv fed by DequantizeLinear (slower
than fp32). onnxruntime fuses DQ -> Conv -> Q into QLinearConv (and DQ -> Add -> Q into
QLinearAdd) only when the output goes straight into a QuantizeLinear. This pass gives every
Conv/MatMul/Add whose inputs are all dequantized a quantized output:

- output -> Relu or Clip(0, hi) (relu6) -> QuantizeLinear(s) (Paddle's scale after the
  activation): the activation goes and the output is quantized as uint8 with zero point 0 on
  step min(s, hi/255), so the grid's ends are the activation's bounds (the only difference
  from Paddle: values above Paddle's clip threshold keep up to 2x the threshold, or up to hi,
  instead of being clipped there);
- any other output: a QuantizeLinear/DequantizeLinear pair (uint8, zero point 128) whose
  abs-max step is measured by running the model in onnxruntime on calibration data.

Finally a conv on the model's input with a tiny reduction (3 channels x 3x3) runs in float
(``float_stem``): int8 does not pay there.

Works on the ModelProto from actc.export.onnx.writer; ``onnx`` and ``onnxruntime`` are needed.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

TARGETS = ("Conv", "MatMul", "Add", "Gemm")


class _Index:
    def __init__(self, model):
        g = model.graph
        self.inits = {t.name: t for t in g.initializer}
        self.producer = {o: n for n in g.node for o in n.output}
        self.consumers = defaultdict(list)
        for n in g.node:
            for i in n.input:
                self.consumers[i].append(n)
        self.outputs = {o.name for o in g.output}

    def const(self, name):
        from onnx import numpy_helper

        t = self.inits.get(name)
        return None if t is None else numpy_helper.to_array(t)

    def from_dq(self, value: str) -> bool:
        p = self.producer.get(value)
        return p is not None and p.op_type == "DequantizeLinear"


def _clip_top(ix: _Index, node) -> float | None:
    """The upper bound of a Relu (inf) or a Clip(0, hi); None for anything else."""
    if node.op_type == "Relu":
        return float("inf")
    if node.op_type != "Clip":
        return None
    lo = ix.const(node.input[1]) if len(node.input) > 1 and node.input[1] else None
    hi = ix.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    if lo is None or lo.size != 1 or float(lo) != 0.0:
        return None
    return float("inf") if hi is None else float(hi)


def _per_tensor_q(ix: _Index, node) -> bool:
    c = ix.const(node.input[1]) if node.op_type == "QuantizeLinear" else None
    return c is not None and c.size == 1


def plan(model) -> tuple[list, list, list]:
    """(relu_rewrites [(node, relu, step)], reuse [(node, paddle Q)], to_calibrate [value])."""
    ix = _Index(model)
    relus, reuse, calib = [], [], []
    for n in model.graph.node:
        if n.op_type not in TARGETS or not n.input:
            continue
        ins = [i for i in n.input if i]
        if n.op_type in ("Conv", "Gemm", "MatMul") and not all(
                ix.from_dq(i) for i in ins[:2]):
            continue
        if n.op_type == "Add" and not all(ix.from_dq(i) or ix.const(i) is not None
                                          for i in ins):
            continue
        if n.op_type == "Add" and not any(ix.from_dq(i) for i in ins):
            continue
        out = n.output[0]
        users = ix.consumers.get(out, [])
        if out in ix.outputs or not users:
            continue
        if all(u.op_type == "QuantizeLinear" for u in users):
            continue  # already fused by onnxruntime
        hi = _clip_top(ix, users[0]) if len(users) == 1 else None
        if hi is not None and users[0].output[0] not in ix.outputs:
            relu = users[0]
            qs = [u for u in ix.consumers.get(relu.output[0], [])
                  if u.op_type == "QuantizeLinear"]
            steps = {float(ix.const(q.input[1]).reshape(-1)[0]) for q in qs
                     if ix.const(q.input[1]) is not None and ix.const(q.input[1]).size == 1}
            if qs and len(steps) == 1:
                # the uint8 grid [0, 255 step] must not pass the clip's top
                relus.append((n, relu, min(steps.pop(), hi / 255.0)))
                continue
        qs = [u for u in users if _per_tensor_q(ix, u)]
        if qs:  # Paddle quantizes it for one reader: the float readers share those codes
            reuse.append((n, qs[0]))
            continue
        calib.append(out)
    return relus, reuse, calib


def calibrate(model, values: list[str], batches: list[dict]) -> dict[str, float]:
    """Abs-max of each value over the batches, run in onnxruntime."""
    import onnx
    import onnxruntime as ort

    if not values:
        return {}
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for v in values:
        if v not in have:
            m.graph.output.append(onnx.helper.make_empty_tensor_value_info(v))
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    amax = dict.fromkeys(values, 0.0)
    for feed in batches:
        for name, arr in zip(names, sess.run(None, feed)):
            if name in amax and arr.size:
                amax[name] = max(amax[name], float(np.abs(arr).max()))
    return amax


def complete(model, batches: list[dict], rounds: int = 4) -> dict:
    """Rewrite ``model`` in place until nothing more can be quantized (an Add becomes
    eligible once the Conv before it is); returns counts of what was done."""
    total = {"relu_folded": 0, "reused": 0, "calibrated": 0}
    for _ in range(rounds):
        done = _complete_once(model, batches)
        for key in total:
            total[key] += done[key]
        if not any(done.values()):
            break
    total["float_stem"] = float_stem(model)
    return total


# Below this reduction size (input channels x kernel area) onnxruntime's int8 conv is slower
# than its fp32 one: mobilenet_v2's 3x3 stem on 3 channels (K = 27) took 0.82 of 5.7 ms in
# int8; in fp32 the whole model ran 4.31 -> 3.40 ms. resnet18's 7x7 stem (K = 147) gains from
# int8 and stays.
STEM_MAX_K = 64


def float_stem(model) -> int:
    """Run convs on the model's input in float when their reduction is tiny: weights and
    bias dequantized here, the input quantizer skipped (so these convs see the exact input,
    more accurate than Paddle's int8 model). Returns how many."""
    from onnx import numpy_helper

    g = model.graph
    ix = _Index(model)
    inputs = {i.name for i in g.input}
    count = 0
    for n in g.node:
        if n.op_type != "Conv" or len(n.input) < 2:
            continue
        dq, wdq = ix.producer.get(n.input[0]), ix.producer.get(n.input[1])
        if dq is None or dq.op_type != "DequantizeLinear" or wdq is None or \
                wdq.op_type != "DequantizeLinear":
            continue
        q = ix.producer.get(dq.input[0])
        src = q.input[0] if q is not None and q.op_type == "QuantizeLinear" else None
        mul = ix.producer.get(src) if src is not None else None
        if mul is not None and mul.op_type == "Mul" and mul.input[0] in inputs:
            src = mul.input[0]  # the input quantizer's Paddle-exact scaling
        if src not in inputs:
            continue
        codes, step = ix.const(wdq.input[0]), ix.const(wdq.input[1])
        if codes is None or step is None or codes.ndim != 4 or \
                int(np.prod(codes.shape[1:])) >= STEM_MAX_K:
            continue
        w = codes.astype(np.float32) * step.astype(np.float32).reshape(-1, 1, 1, 1)
        new = [src, f"{n.input[1]}.f32"]
        g.initializer.append(numpy_helper.from_array(w, new[1]))
        if len(n.input) > 2 and n.input[2]:
            bdq = ix.producer.get(n.input[2])
            if bdq is not None and bdq.op_type == "DequantizeLinear":
                b = ix.const(bdq.input[0]).astype(np.float64) * \
                    ix.const(bdq.input[1]).astype(np.float64)
                new.append(f"{n.input[2]}.f32")
                g.initializer.append(numpy_helper.from_array(b.astype(np.float32), new[2]))
            else:
                new.append(n.input[2])
        del n.input[:]
        n.input.extend(new)
        count += 1
    if count:
        nodes = _live(list(g.node), {o.name for o in g.output})
        del g.node[:]
        g.node.extend(nodes)
        used = {i for nd in g.node for i in nd.input}
        keep = [t for t in g.initializer if t.name in used]
        del g.initializer[:]
        g.initializer.extend(keep)
    return count


def _complete_once(model, batches: list[dict]) -> dict:
    from onnx import helper, numpy_helper

    relus, reuse, calib = plan(model)
    amax = calibrate(model, calib, batches)
    g = model.graph
    ix = _Index(model)
    new_inits, order = [], {id(n): i for i, n in enumerate(g.node)}
    inserts: dict[int, list] = defaultdict(list)   # node index -> nodes to add after it
    drop = set()
    k = sum(1 for n in g.node if n.name.startswith(("actc_q_", "actc_dq_")))

    def const(name, arr):
        new_inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    for n, relu, step in relus:
        k += 1
        out = n.output[0]
        s = const(f"{out}.q_scale", np.float32(step))
        zp = const(f"{out}.q_zp", np.uint8(0))
        q = f"{out}.q"
        inserts[order[id(n)]] += [
            helper.make_node("QuantizeLinear", [out, s, zp], [q], name=f"actc_q_{k}"),
            helper.make_node("DequantizeLinear", [q, s, zp], [relu.output[0]],
                             name=f"actc_dq_{k}")]
        drop.add(id(relu))
        # the Paddle quantizers after the Relu now read the uint8 codes directly
        for user in ix.consumers.get(relu.output[0], []):
            if user.op_type != "QuantizeLinear":
                continue
            for dq in ix.consumers.get(user.output[0], []):
                if dq.op_type == "DequantizeLinear":
                    old = ix.const(dq.input[1])
                    dq.input[0], dq.input[1], dq.input[2] = q, s, zp
                    if old is not None and old.size == 1:
                        for conv in ix.consumers.get(dq.output[0], []):
                            _rescale_bias(ix, conv, float(old), step, const)
            if not any(c.op_type != "DequantizeLinear"
                       for c in ix.consumers.get(user.output[0], [])):
                drop.add(id(user))
    moved = {}
    for n, qnode in reuse:
        k += 1
        value = n.output[0]
        dq = f"{value}.dq"
        for user in ix.consumers.get(value, []):
            if user is qnode or user.op_type == "QuantizeLinear":
                continue
            for j, i in enumerate(user.input):
                if i == value:
                    user.input[j] = dq
        drop.add(id(qnode))  # moved to right after the producer, before every reader
        moved[id(qnode)] = qnode
        inserts[order[id(n)]] += [
            qnode, helper.make_node("DequantizeLinear", [qnode.output[0], qnode.input[1],
                                                         qnode.input[2]], [dq],
                                    name=f"actc_dq_{k}")]
    for value in calib:
        k += 1
        step = max(amax.get(value, 0.0), 1e-8) / 127.0
        n = ix.producer[value]
        s = const(f"{value}.q_scale", np.float32(step))
        zp = const(f"{value}.q_zp", np.uint8(128))
        q, dq = f"{value}.q", f"{value}.dq"
        for user in ix.consumers.get(value, []):
            for j, i in enumerate(user.input):
                if i == value:
                    user.input[j] = dq
        inserts[order[id(n)]] += [
            helper.make_node("QuantizeLinear", [value, s, zp], [q], name=f"actc_q_{k}"),
            helper.make_node("DequantizeLinear", [q, s, zp], [dq], name=f"actc_dq_{k}")]
    nodes = []
    for i, n in enumerate(list(g.node)):
        if id(n) not in drop:
            nodes.append(n)
        nodes.extend(inserts.get(i, []))
    del g.node[:]
    g.node.extend(_live(nodes, {o.name for o in g.output}))
    g.initializer.extend(new_inits)
    used = {i for n in g.node for i in n.input}
    keep = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)
    return {"relu_folded": len(relus), "reused": len(reuse), "calibrated": len(calib)}


def _live(nodes: list, outputs: set) -> list:
    """Nodes whose outputs something reads (onnxruntime keeps dead DequantizeLinear nodes,
    and each one's Transpose back to NCHW)."""
    need, keep = set(outputs), []
    for n in reversed(nodes):
        if any(o in need for o in n.output):
            keep.append(n)
            need.update(i for i in n.input if i)
    return keep[::-1]


def _rescale_bias(ix: _Index, conv, old_step: float, new_step: float, const) -> None:
    """onnxruntime's QLinearConv takes the int32 bias codes as they are, on step
    x_step * w_step: when x's step changes, requantize the bias on the new step."""

    if conv.op_type != "Conv" or len(conv.input) < 3 or old_step == new_step:
        return
    bdq = ix.producer.get(conv.input[2])
    if bdq is None or bdq.op_type != "DequantizeLinear":
        return
    codes, bstep = ix.const(bdq.input[0]), ix.const(bdq.input[1])
    if codes is None or bstep is None or codes.dtype != np.int32:
        return
    value = codes.astype(np.float64) * bstep.astype(np.float64)
    nstep = bstep.astype(np.float64) * (new_step / old_step)
    ncodes = np.clip(np.round(value / nstep), -2 ** 31, 2 ** 31 - 1).astype(np.int32)
    base = bdq.output[0]
    bdq.input[0] = const(f"{base}.i32r", ncodes)
    bdq.input[1] = const(f"{base}.scale_r", nstep.astype(np.float32))
