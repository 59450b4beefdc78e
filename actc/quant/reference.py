"""Numpy reference for Paddle's linear quantisation ops.

Why: actc rewrites programs with ``quantize_linear``/``dequantize_linear`` and
the ``fake_*quantize_dequantize*`` ops and stores int8 weights itself, so it
needs a paddle-free model of exactly what those ops compute (for calibration
search, accuracy estimates and the int8 weights it writes).  Arithmetic below
follows Paddle's CPU kernels (phi ``ClipAndFakeQuantFunctor`` /
``QuantTensorFunctor``): in the input's float precision,
``q = round((qmax * inv_s) * x)`` with ``inv_s = 1/s`` (``1/(s+1e-6)`` when
``s <= 1e-30``) and ``qmax = 2**(bits-1) - 1``.

Paddle's "Scale" is the abs-max threshold, not the ONNX step: the ONNX step is
``scale / qmax``.

round_type (op attribute):
  * 0: round half to even, clip to ``[-qmax-1, qmax]``.
  * 1: clip x to ``[-s, s]`` first, then round half away from zero, so the
    result lies in ``[-qmax, qmax]``.

Level count: the legacy ``fake_*`` ops take it from ``bit_length``; in
Paddle 3.3.1 ``quantize_linear``/``dequantize_linear`` IGNORE ``bit_length``
and use their ``qmax`` attribute (default 127; ``qmin`` is ignored by the CPU
kernel), so an emitted non-8-bit op must carry ``qmax = 2**(bits-1)-1`` (and,
for readability, ``qmin = -qmax-1``).  ``bits`` here always means that qmax.
bits=1 is degenerate in this symmetric scheme (qmax=0: every code is 0 and
dequantisation gives 0/0 = nan, exactly as Paddle does); use bits >= 2.

Defaults observed in paddlepaddle 3.3.1 (op proto defaults, checked by
building the ops): ``quantize_linear``/``dequantize_linear`` default to
round_type 0; every legacy ``fake_*`` op defaults to round_type 1.  Paddle's
PTQ (``PostTrainingQuantization``, which PaddleSlim's ``quant_post_static``
wraps) never sets the attribute, so:

  * ``onnx_format=True`` (what ACT uses, and the format actc emits): the
    inserted ``quantize_linear`` ops run with **round_type 0** and the int8
    weights are written with ``np.round`` (half to even) and clipped to
    ``[-qmax-1, qmax]`` -> :data:`PADDLE_PTQ_ROUND_TYPE` = 0.
  * ``onnx_format=False`` (legacy fake ops): activations are fake-quantised
    with round_type 1; the frozen weights are clipped to ``[-s, s]`` and
    ``np.round``-ed (half to even, range ``[-qmax, qmax]``).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "ROUND_HALF_EVEN",
    "ROUND_HALF_AWAY",
    "PADDLE_PTQ_ROUND_TYPE",
    "qmax",
    "channel_axis",
    "quantize",
    "dequantize",
    "fake_quant_dequant",
    "abs_max",
    "weight_scales",
    "quantize_weight_int8",
]

ROUND_HALF_EVEN = 0
ROUND_HALF_AWAY = 1
#: round_type Paddle's PTQ ends up with in ONNX format (quantize_linear default).
PADDLE_PTQ_ROUND_TYPE = ROUND_HALF_EVEN

#: weight channel axis 1 for these op types (Paddle's _channelwise_quant_axis1_ops);
#: every other op (conv2d, depthwise_conv2d, ...) quantises weights on axis 0.
_AXIS1_OPS = frozenset({"conv2d_transpose", "mul", "matmul", "matmul_v2"})


def qmax(bits: int) -> int:
    """Largest positive code, 2**(bits-1)-1: Paddle's ``bin_cnt``."""
    bits = int(bits)
    if not 1 <= bits <= 16:
        raise ValueError(f"bit_length must be in 1..16, got {bits}")
    return (1 << (bits - 1)) - 1


def channel_axis(op_type: str, trans_y: bool = False) -> int:
    """Per-channel weight axis Paddle uses for an op's weight input.

    Why: scales must follow the output-channel axis the runtime expects
    (1 for mul/matmul/matmul_v2/conv2d_transpose, 0 for conv; matmul_v2
    with ``trans_y`` stores ``[out, in]`` so its channel axis is 0).
    """
    if op_type == "matmul_v2" and trans_y:
        return 0
    return 1 if op_type in _AXIS1_OPS else 0


def _float_dtype(x: np.ndarray) -> np.dtype:
    """Compute in the input's float precision (Paddle kernels run in T)."""
    return np.result_type(x.dtype, np.float32) if x.dtype.kind == "f" else np.dtype(np.float32)


def _bcast_scale(scale, x: np.ndarray, axis: int, dtype) -> np.ndarray:
    """Scale as an array broadcastable against x (per-tensor or along axis)."""
    s = np.asarray(scale, dtype=dtype)
    if axis is None or axis == -1 or s.size == 1:
        if s.size != 1:
            raise ValueError(f"per-tensor quantisation needs one scale, got {s.size}")
        return s.reshape(())
    ax = axis % x.ndim
    if s.size != x.shape[ax]:
        raise ValueError(
            f"{s.size} scales for axis {axis} of a tensor shaped {x.shape}")
    shape = [1] * x.ndim
    shape[ax] = x.shape[ax]
    return s.reshape(shape)


def _inverse(s: np.ndarray) -> np.ndarray:
    """Paddle's ``inverse``: guards zero scales with a 1e-6 epsilon."""
    one = s.dtype.type(1)
    eps = s.dtype.type(1e-6)
    with np.errstate(divide="ignore"):
        return np.where(s <= s.dtype.type(1e-30), one / (s + eps), one / s)


def quantize(x, scale, bits: int = 8, axis: int = -1,
             round_type: int = ROUND_HALF_EVEN) -> np.ndarray:
    """Integer codes (as floats) exactly as ``quantize_linear`` outputs them.

    ``axis=-1`` is per-tensor (Paddle's quant_axis -1); otherwise ``scale``
    holds one abs-max per index of ``axis``.
    """
    x = np.asarray(x)
    dt = _float_dtype(x)
    x = x.astype(dt, copy=False)
    s = _bcast_scale(scale, x, axis, dt)
    qm = dt.type(qmax(bits))
    mult = qm * _inverse(s)               # (bin_cnt * inv_s) first, like the kernel
    if round_type == ROUND_HALF_EVEN:
        return np.clip(np.rint(mult * x), -qm - dt.type(1), qm)
    if round_type == ROUND_HALF_AWAY:
        xc = np.minimum(np.maximum(x, -s), s)
        y = mult * xc
        t = np.trunc(y)                    # y - trunc(y) is exact, unlike |y|+0.5
        return np.where(np.abs(y - t) >= dt.type(0.5), t + np.sign(y), t)
    raise ValueError(f"round_type must be 0 or 1, got {round_type}")


def dequantize(q, scale, bits: int = 8, axis: int = -1) -> np.ndarray:
    """Float values as ``dequantize_linear`` returns them: ``q * s / qmax``."""
    q = np.asarray(q)
    dt = _float_dtype(q)
    q = q.astype(dt, copy=False)
    s = _bcast_scale(scale, q, axis, dt)
    with np.errstate(invalid="ignore", divide="ignore"):   # bits=1: 0/0 -> nan, as Paddle
        return q * s / dt.type(qmax(bits))


def fake_quant_dequant(x, scale, bits: int = 8, axis: int = -1,
                       round_type: int = ROUND_HALF_EVEN) -> np.ndarray:
    """quantize then dequantize: what the float graph sees after a QDQ pair.

    Default round_type 0 models the ONNX-format graph Paddle's PTQ emits;
    pass 1 to model the legacy ``fake_*quantize_dequantize*`` ops.
    """
    return dequantize(quantize(x, scale, bits, axis, round_type), scale, bits, axis)


def abs_max(x, axis: int = -1) -> np.ndarray:
    """max|x| per tensor (axis=-1, shape (1,)) or per index of ``axis``."""
    a = np.abs(np.asarray(x))
    if axis is None or axis == -1:
        return np.array([a.max()], dtype=_float_dtype(a))
    ax = axis % a.ndim
    red = tuple(i for i in range(a.ndim) if i != ax)
    return a.max(axis=red) if red else a.copy()


def weight_scales(w, method: str = "channel_wise_abs_max", axis: int = 0) -> np.ndarray:
    """Paddle's weight thresholds: ``abs_max`` (one) or ``channel_wise_abs_max``."""
    if method == "abs_max":
        return abs_max(w, -1)
    if method == "channel_wise_abs_max":
        return abs_max(w, axis)
    raise ValueError(f"unknown weight quantize method {method!r}; "
                     "expected 'abs_max' or 'channel_wise_abs_max'")


def quantize_weight_int8(w, scale, bits: int = 8, axis: int = 0) -> np.ndarray:
    """Integer weights exactly as Paddle's ONNX-format PTQ stores them.

    Mirrors ``QuantWeightPass`` (utils.quant_tensor with onnx_format): a zero
    scale becomes 1e-8, codes are ``rint(w / s * qmax)`` computed in the
    weight's float precision, clipped to ``[-qmax-1, qmax]``.  Returns int8
    for bits <= 8 (Paddle only writes int8) and int16 for 9..16 bits.
    """
    w = np.asarray(w)
    dt = _float_dtype(w)
    w = w.astype(dt, copy=False)
    s = _bcast_scale(scale, w, axis, dt)
    s = np.where(s == 0, dt.type(1e-8), s)
    qm = dt.type(qmax(bits))
    q = np.clip(np.rint(w / s * qm), -qm - dt.type(1), qm)
    return q.astype(np.int8 if bits <= 8 else np.int16)
