"""conv2d and matmul with what follows them folded in.

A conv whose output feeds only a bias ``elementwise_add`` (a 1-D constant on axis 1) and/or an
inference ``batch_norm`` becomes one Conv with folded weights and bias. With int8 weights the
codes stay exact: the batch_norm factor goes into the per-channel scales, and the bias is
quantized to int32 on step ``x_step * w_step`` (the QDQ form onnxruntime fuses into
QLinearConv). A matmul with a constant weight absorbs a following bias add the same way.
"""
from __future__ import annotations

import numpy as np

from actc.export.onnx.graph import Graph, Unmapped
from actc.export.onnx.ops import conv_attrs
from actc.export.onnx.qdq import QWeight, emit_weight
from actc.ir.program import Op


def _const_param(g: Graph, var: str) -> np.ndarray | None:
    t = g.program.params.get(var)
    return None if t is None or var in g.current else np.asarray(t.array)


def _weight(g: Graph, var: str, op: Op):
    """(float array | None, QWeight | None) for a weight read only by ``op``."""
    if g.only_reader(var) is not op:
        return None, None
    if var in g.qweights and var in g.lazy:
        return None, g.qweights[var]
    return _const_param(g, var), None


def _bias_add(g: Graph, var: str, channels: int, channel_axis: int):
    """The elementwise_add that adds a [channels] constant to ``var`` on ``channel_axis``."""
    op = g.only_reader(var)
    if op is None or op.type != "elementwise_add" or op.input("X") != [var]:
        return None, None
    b = _const_param(g, op.input("Y")[0])
    rank = len(g.shape(var) or ())
    axis = int(op.attr("axis", -1))
    axis = axis if axis >= 0 else rank - 1
    if b is None or b.size != channels or b.ndim != 1 or axis != channel_axis or \
            var in g.program.fetch_names():
        return None, None
    return op, b.astype(np.float64)


def _batch_norm(g: Graph, var: str, channels: int):
    op = g.only_reader(var)
    if op is None or op.type != "batch_norm" or op.input("X") != [var] or \
            var in g.program.fetch_names():
        return None, None
    arrs = [_const_param(g, op.input(s)[0]) for s in ("Scale", "Bias", "Mean", "Variance")]
    if any(a is None or a.size != channels for a in arrs):
        return None, None
    gamma, beta, mean, variance = (a.astype(np.float64).reshape(-1) for a in arrs)
    factor = gamma / np.sqrt(variance + float(op.attr("epsilon", 1e-5)))
    return op, (factor, beta - mean * factor)


def emit_conv(g: Graph, op: Op) -> None:
    fv = op.input("Filter")[0]
    w, qw = _weight(g, fv, op)
    x = g.value(op.input("Input")[0])
    out_var = op.output("Output")[0]
    attrs = conv_attrs(op)
    if w is None and qw is None:  # a computed filter: nothing to fold
        g.add1("Conv", [x, g.value(fv)], g.define(out_var), **attrs)
        return
    cout = (w if w is not None else qw.codes).shape[0]
    scale = np.ones(cout)
    bias = None
    add_op, b = _bias_add(g, out_var, cout, 1)
    if add_op is not None:
        g.absorbed.add(add_op.uid)
        out_var, bias = add_op.output("Out")[0], b
    bn_op, fold = _batch_norm(g, out_var, cout)
    if bn_op is not None:
        g.absorbed.add(bn_op.uid)
        factor, shift = fold
        scale = factor
        bias = shift + (bias if bias is not None else 0.0) * factor
        out_var = bn_op.output("Y")[0]
    if w is not None:
        wv = g.const((w.astype(np.float64) * scale.reshape(-1, 1, 1, 1)).astype(np.float32),
                     base=fv + (".folded" if bn_op is not None else ""))
        w_step = None
    else:
        qw = _scaled(qw, scale)
        wv = emit_weight(g, qw, fv + ".dequantized")
        w_step = np.broadcast_to(qw.step.reshape(-1), (cout,))
    ins = [x, wv]
    if bias is not None:
        ins.append(_conv_bias(g, x, bias, w_step, fv))
    g.add1("Conv", ins, g.define(out_var), **attrs)


def _scaled(qw: QWeight, scale: np.ndarray) -> QWeight:
    """Per-output-channel factor into an int8 weight: |factor| into the step, its sign into
    the codes (codes stay integers, so the weight is still exactly int8)."""
    if np.all(scale == 1.0):
        return qw
    cout = qw.codes.shape[0]
    if qw.axis not in (0, None) or (qw.axis is None and qw.step.size != 1):
        raise Unmapped("has int8 weights quantized on an axis other than the output channel")
    step = np.broadcast_to(qw.step.reshape(-1).astype(np.float64), (cout,))
    sign = np.where(scale < 0, -1, 1).reshape((-1,) + (1,) * (qw.codes.ndim - 1))
    codes = np.clip(qw.codes.astype(np.int32) * sign, -128, 127).astype(np.int8)
    new_step = np.maximum(step * np.abs(scale), 1e-30).astype(np.float32)
    return QWeight(codes, new_step, 0)


def _conv_bias(g: Graph, x: str, bias: np.ndarray, w_step, base: str) -> str:
    """Float bias, or int32 codes on step x_step * w_step when input and weight are both
    dequantized (onnxruntime's QDQ Conv wants every input from a DequantizeLinear)."""
    x_step = g.qact.get(x)
    if w_step is not None and x_step is None and x in g.dq_values:
        # a sub-8-bit input: onnxruntime would itself quantize a float bias on the coarse
        # x_step * w_step (WeightBiasQuantization); int32 codes on a fine step keep it exact
        fine = np.maximum(np.abs(bias), 1e-30) / float(2 ** 30)
        codes = np.round(bias / fine).astype(np.int32)
        c = g.const(codes, base=base + ".bias_i32")
        s = g.const(fine.astype(np.float32), base=base + ".bias_scale")
        zp = g.const(np.zeros(fine.shape, np.int32), base=base + ".bias_zp")
        return g.add1("DequantizeLinear", [c, s, zp], g.fresh(base + ".bias"), axis=0)
    if w_step is None or x_step is None:
        return g.const(bias.astype(np.float32), base=base + ".bias")
    step = (np.float64(x_step) * w_step.astype(np.float64))
    codes = np.clip(np.round(bias / step), -2 ** 31, 2 ** 31 - 1).astype(np.int32)
    c = g.const(codes, base=base + ".bias_i32")
    s = g.const(step.astype(np.float32), base=base + ".bias_scale")
    zp = g.const(np.zeros(step.shape, np.int32), base=base + ".bias_zp")
    return g.add1("DequantizeLinear", [c, s, zp], g.fresh(base + ".bias"), axis=0)


def _swap_last(rank: int) -> list[int]:
    perm = list(range(rank))
    perm[-2], perm[-1] = perm[-1], perm[-2]
    return perm


def emit_matmul(g: Graph, op: Op) -> None:
    xv, yv = op.input("X")[0], op.input("Y")[0]
    if op.type == "matmul_v2":
        tx, ty, alpha = bool(op.attr("trans_x", False)), bool(op.attr("trans_y", False)), 1.0
    else:
        tx, ty = bool(op.attr("transpose_X", False)), bool(op.attr("transpose_Y", False))
        alpha = float(op.attr("alpha", 1.0))
    x = g.value(xv)
    if tx:
        x = g.add1("Transpose", [x], perm=_swap_last(g.rank(xv)))
    w, qw = _weight(g, yv, op)
    if qw is not None:
        if ty:
            if qw.codes.ndim != 2:
                raise Unmapped("has a transposed int8 weight of rank other than 2")
            axis = None if qw.axis is None else 1 - qw.axis
            qw = QWeight(np.ascontiguousarray(qw.codes.T), qw.step, axis)
        y = emit_weight(g, qw, yv + ".dequantized")
        n = qw.codes.shape[-1]
    elif w is not None:
        if ty:
            w = np.ascontiguousarray(np.swapaxes(w, -1, -2))
        y = g.const(w, base=yv + (".T" if ty else ""))
        n = w.shape[-1]
    else:
        y = g.value(yv)
        if ty:
            y = g.add1("Transpose", [y], perm=_swap_last(g.rank(yv)))
        n = None
    out_var = op.output("Out")[0]
    bias = None
    if n is not None and alpha == 1.0:
        rank = len(g.shape(out_var) or ())
        add_op, b = _bias_add(g, out_var, n, rank - 1)
        if add_op is not None:
            g.absorbed.add(add_op.uid)
            out_var, bias = add_op.output("Out")[0], b
    if alpha != 1.0:
        m = g.add1("MatMul", [x, y])
        g.add1("Mul", [m, g.const(np.float32(alpha))], g.define(out_var))
    elif bias is None:
        g.add1("MatMul", [x, y], g.define(out_var))
    else:
        m = g.add1("MatMul", [x, y], g.fresh(op.output("Out")[0]))
        g.add1("Add", [m, g.const(bias.astype(np.float32), base=yv + ".bias")],
               g.define(out_var))
