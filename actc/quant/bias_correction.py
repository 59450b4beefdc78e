"""Weight "bias correction" as Paddle's PTQ applies it (``bias_correction=True``).

What Paddle does (``paddle.static.quantization.utils.bias_correction_w``,
called by QuantizationFreezePass and, for onnx_format, QuantWeightPass; the
docstring cites Banner et al., arXiv:1810.05723), per output channel c (or
per tensor):

    w_dq      = q * s_c / qmax                      # dequantised codes
    mean_bias = mean(w - w_dq)                      # over the channel
    std_ratio = std(w) / (std(w_dq) + 1e-8)
    w_corr    = (w_dq + mean_bias) * std_ratio      # shift, then rescale
    q'        = requantise(w_corr)  with the SAME scales: clip to [-s_c, s_c],
                * qmax / s_c, then round

Why: rounding shifts each channel's mean and shrinks/grows its spread; the
correction nudges codes so the dequantised channel keeps the float mean/std.
Note the shift is applied before the rescale, so the corrected mean is
``mean(w) * std_ratio``, not exactly ``mean(w)`` -- kept as Paddle does.

Paddle bugs this module does NOT reproduce unless ``paddle_compat=True``:
  * the per-channel mean/ratio vectors are broadcast with ``np.resize`` to the
    weight shape, which tiles them in C order: correct for 2-D weights on
    axis 1 (mul/matmul), scrambled across channels for conv weights on axis 0
    (and conv2d_transpose on axis 1) whenever the kernel has more than one
    element per channel;
  * in the ONNX-format path (QuantWeightPass) the corrected values are never
    rounded: ``astype(int8)`` truncates toward zero.
"""

from __future__ import annotations

import numpy as np

from .reference import _bcast_scale, qmax as _qmax, quantize_weight_int8

__all__ = ["bias_correct_weight", "channel_moments_correction"]

_EPS = 1e-8


def channel_moments_correction(w, w_dq, axis: int | None = 0, paddle_compat: bool = False):
    """Float corrected weights ``(w_dq + mean(w - w_dq)) * std(w)/std(w_dq)``.

    Statistics are per index of ``axis`` (per tensor for axis -1/None).  By
    default they are computed in float64 and broadcast along ``axis``;
    ``paddle_compat`` computes them in w's float precision per channel row
    and tiles them with np.resize, exactly like Paddle.
    """
    w = np.asarray(w)
    out_dt = w.dtype if w.dtype.kind == "f" else np.dtype(np.float32)
    work = out_dt if paddle_compat else np.dtype(np.float64)
    x = w.astype(work)
    d = np.asarray(w_dq).astype(work)
    if axis is None or axis == -1 or x.ndim == 0:
        mean_bias = (x - d).mean()
        ratio = x.std() / (d.std() + work.type(_EPS))
        return ((d + mean_bias) * ratio).astype(out_dt)
    ax = axis % x.ndim
    rows = lambda a: np.moveaxis(a, ax, 0).reshape(a.shape[ax], -1)
    mean_bias = rows(x - d).mean(-1)
    ratio = rows(x).std(-1) / (rows(d).std(-1) + work.type(_EPS))
    if paddle_compat:   # Paddle tiles the per-channel vector in C order
        mean_bias = np.resize(mean_bias, x.shape)
        ratio = np.resize(ratio, x.shape)
    else:
        shape = [1] * x.ndim
        shape[ax] = x.shape[ax]
        mean_bias = mean_bias.reshape(shape)
        ratio = ratio.reshape(shape)
    return ((d + mean_bias) * ratio).astype(out_dt)


def bias_correct_weight(w, scale, bits: int = 8, axis: int = 0,
                        paddle_compat: bool = False) -> np.ndarray:
    """Integer weight codes after Paddle's bias correction (int8; int16 > 8 bits).

    Starts from the ONNX-format codes (:func:`quantize_weight_int8`), corrects
    per-channel mean/std, and requantises with the same scales, rounding half
    to even (as the legacy freeze pass does) into ``[-qmax, qmax]``.
    ``paddle_compat=True`` reproduces Paddle's ONNX-format output exactly,
    including the np.resize channel mix-up and truncation toward zero.
    """
    w = np.asarray(w)
    dt = np.result_type(w.dtype, np.float32) if w.dtype.kind == "f" else np.dtype(np.float32)
    w = w.astype(dt, copy=False)
    s = _bcast_scale(scale, w, axis, dt)
    s = np.where(s == 0, dt.type(1e-8), s)
    qm = dt.type(_qmax(bits))
    q = quantize_weight_int8(w, scale, bits, axis).astype(dt)
    w_dq = q * s / qm
    corr = channel_moments_correction(w, w_dq, axis, paddle_compat).astype(dt)
    corr = np.minimum(np.maximum(corr, -s), s) / s * qm
    codes = np.trunc(corr) if paddle_compat else np.rint(corr)
    return codes.astype(np.int8 if bits <= 8 else np.int16)
