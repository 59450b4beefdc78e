"""Paddle's quantizer ops as ONNX QuantizeLinear / DequantizeLinear.

Semantics (actc.quant.reference, Paddle 3.3.1 CPU kernels): Paddle's ``Scale`` is the abs-max
threshold, the grid step is ``Scale / qmax`` with ``qmax`` the op's attribute (127 at 8 bits),
round_type 0 rounds half to even (as ONNX does) and clips to [-qmax-1, qmax].

- Weights (int8 params read by dequantize_linear, or float params read by quantize_linear):
  int8 initializers with per-channel scales on the op's ``quant_axis`` and zero point 0. They
  are emitted lazily, so conv2d can fold the batch_norm after it into the per-channel scales.
- Activations: by default uint8 with zero point 128 and the same step (the int8 grid shifted
  by 128: identical values, and the form onnxruntime's CPU kernels run fastest);
  ``activations="int8"`` keeps Paddle's int8 grid with zero point 0.
- The fake-format ops (``fake_*quantize*``) are training-time ops: refused with a pointer to
  the ONNX-format quantizers.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from actc.export.onnx.graph import Graph, Unmapped
from actc.export.onnx.ops import converts
from actc.ir.program import Op

FAKE_OPS = ("fake_quantize_dequantize_abs_max", "fake_channel_wise_quantize_dequantize_abs_max",
            "fake_quantize_dequantize_moving_average_abs_max",
            "fake_quantize_dequantize_range_abs_max", "fake_quantize_abs_max",
            "fake_quantize_moving_average_abs_max", "fake_quantize_range_abs_max",
            "fake_dequantize_max_abs", "fake_channel_wise_quantize_abs_max",
            "fake_channel_wise_dequantize_max_abs", "moving_average_abs_max_scale")


@dataclass
class QWeight:
    """A constant stored as integer codes: value = codes * step (per channel on ``axis``)."""

    codes: np.ndarray     # int8
    step: np.ndarray      # float32, shape [C] (axis >= 0) or [] (per tensor)
    axis: int | None


def _qmax(op: Op) -> int:
    return int(op.attr("qmax", 127) or 127)


def _step(g: Graph, op: Op) -> np.ndarray:
    scale = g.program.params.get(op.input("Scale")[0])
    if scale is None:
        raise Unmapped("has a Scale that is not a stored constant")
    zp = op.input("ZeroPoint")
    if zp and zp[0] in g.program.params and np.any(np.asarray(g.program.params[zp[0]].array)):
        raise Unmapped("has a non-zero ZeroPoint (actc and Paddle quantize symmetrically)")
    step = np.asarray(scale.array, np.float32).reshape(-1) / np.float32(_qmax(op))
    return np.maximum(step, np.float32(1e-30))


def _axis(op: Op, step: np.ndarray) -> int | None:
    axis = int(op.attr("quant_axis", -1))
    return axis if axis >= 0 and step.size > 1 else None


def emit_weight(g: Graph, qw: QWeight, base: str) -> str:
    """DequantizeLinear(int8 codes, step, 0) for a constant."""
    codes = g.const(qw.codes.astype(np.int8), base=base + ".int8")
    if qw.axis is None:
        step = g.const(np.float32(qw.step.reshape(-1)[0]), base=base + ".scale")
        zp = g.const(np.int8(0), base="zp_i8")
        return g.add1("DequantizeLinear", [codes, step, zp], g.fresh(base))
    step = g.const(qw.step.astype(np.float32), base=base + ".scale")
    zp = g.const(np.zeros(qw.step.shape, np.int8), base=base + ".zp")
    return g.add1("DequantizeLinear", [codes, step, zp], g.fresh(base), axis=qw.axis)


def act_zero_point(g: Graph, size: int = 1):
    if g.activations == "int8":
        return np.zeros(size, np.int8) if size > 1 else np.int8(0)
    return np.full(size, 128, np.uint8) if size > 1 else np.uint8(128)


@converts("quantize_linear")
def quantize_linear(g: Graph, op: Op) -> None:
    xv, yv = op.input("X")[0], op.output("Y")[0]
    step = _step(g, op)
    axis = _axis(op, step)
    qmax = _qmax(op)
    if xv in g.program.params and xv not in g.current:  # a float weight: quantize it now
        w = np.asarray(g.program.params[xv].array, np.float32)
        shape = [1] * w.ndim
        if axis is not None:
            shape[axis] = -1
        codes = np.clip(np.round(w / step.reshape(shape)), -qmax - 1, qmax).astype(np.int8)
        g.qconst[yv] = QWeight(codes, step if axis is not None else step[:1], axis)
        return
    if qmax > 127:
        raise Unmapped(f"quantizes an activation with qmax {qmax}; ONNX QuantizeLinear has "
                       "8-bit codes")
    x = g.value(xv)
    # under 8 bits (qmax < 127) the 8-bit codes are clipped to Paddle's [-qmax-1, qmax]
    out = g.define(yv) if qmax == 127 else g.fresh(yv + ".q8")
    if axis is None and any(x == i[0] for i in g.inputs):
        # a model input often holds discrete values (pixels k/255) that land exactly on
        # rounding ties, where x / (s/qmax) and Paddle's x * (qmax/s) round apart: scale
        # the way Paddle does, then quantize on step 1 (the DequantizeLinear after keeps
        # the real step, so onnxruntime's fusions are unchanged)
        scale = np.asarray(g.program.params[op.input("Scale")[0]].array, np.float32)
        s0 = scale.reshape(-1)[0]
        inv = np.float32(1.0) / (s0 if s0 > 1e-30 else s0 + np.float32(1e-6))
        scaled = g.add1("Mul", [x, g.const(np.float32(qmax) * inv, base=yv + ".qmax_over_s")])
        g.add1("QuantizeLinear", [scaled, g.const(np.float32(1.0)), g.const(act_zero_point(g))],
               out)
    elif axis is None:
        s, zp = g.const(np.float32(step[0]), base=yv + ".scale"), g.const(act_zero_point(g))
        g.add1("QuantizeLinear", [x, s, zp], out)
    else:
        s = g.const(step, base=yv + ".scale")
        zp = g.const(act_zero_point(g, step.size), base=yv + ".zp")
        g.add1("QuantizeLinear", [x, s, zp], out, axis=axis)
    if qmax != 127:
        g.sub8_bits = qmax.bit_length() + 1
        shift = 0 if g.activations == "int8" else 128
        dt = np.int8 if g.activations == "int8" else np.uint8
        g.add1("Clip", [out, g.const(dt(shift - qmax - 1)), g.const(dt(shift + qmax))],
               g.define(yv))
    g.qcodes[yv] = (step, axis)


@converts("dequantize_linear")
def dequantize_linear(g: Graph, op: Op) -> None:
    xv, yv = op.input("X")[0], op.output("Y")[0]
    step = _step(g, op)
    axis = _axis(op, step)
    if xv in g.qconst or (xv in g.program.params and xv not in g.current):
        if xv in g.qconst:
            qw = g.qconst[xv]
        else:
            codes = np.asarray(g.program.params[xv].array)
            if codes.dtype not in (np.int8, np.uint8) and not np.all(codes == np.round(codes)):
                raise Unmapped(f"dequantizes '{xv}', which holds neither integer codes nor "
                               "the output of a quantize_linear")
            qw = QWeight(codes.astype(np.int8), step if axis is not None else step[:1], axis)
        qw = QWeight(qw.codes, step if axis is not None else step[:1], axis)
        g.qweights[yv] = qw
        g.lazy[yv] = lambda: emit_weight(g, g.qweights[yv], yv)
        return
    if xv not in g.qcodes:
        raise Unmapped(f"dequantizes '{xv}', which no quantize_linear wrote")
    q = g.value(xv)
    if axis is None:
        s, zp = g.const(np.float32(step[0]), base=yv + ".scale"), g.const(act_zero_point(g))
        out = g.add1("DequantizeLinear", [q, s, zp], g.define(yv))
        g.dq_values.add(out)
        if _qmax(op) == 127:  # under 8 bits a bias on x_step * w_step would be too coarse
            g.qact[out] = float(step[0])
    else:
        s = g.const(step, base=yv + ".scale")
        zp = g.const(act_zero_point(g, step.size), base=yv + ".zp")
        g.add1("DequantizeLinear", [q, s, zp], g.define(yv), axis=axis)


def refuse_fake(g: Graph, op: Op) -> None:
    raise Unmapped("is a fake-format (training) quantizer; export the ONNX-format output "
                   "instead: compile with the quantize pass's format=onnx (the default), or "
                   "run fake_to_onnx after QAT")


for _t in FAKE_OPS:
    converts(_t)(refuse_fake)
