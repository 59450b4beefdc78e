"""Post-training quantization on the IR: choose scales, write them, freeze to int8.

Everything here is numpy on the IR; running the model to collect activation statistics is the
runtime's job (``actc.runtime.calibrate``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from actc.errors import ActcError
from actc.ir.program import Program
from actc.quant import calibration
from actc.quant.quantizers import Quantizer
from actc.quant.reference import fake_quant_dequant, qmax, quantize_weight_int8
from actc.quant.stats import ActivationStats

WEIGHT_ALGOS = ("abs_max", "mse")
MOVING_AVERAGE_OPS = ("fake_quantize_dequantize_moving_average_abs_max",)


def _rows(w: np.ndarray, axis: int) -> np.ndarray:
    if axis < 0:
        return w.reshape(1, -1)
    return np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)


def weight_threshold(w: np.ndarray, bits: int, axis: int, algo: str = "abs_max") -> np.ndarray:
    """Per-channel (or per-tensor) abs-max thresholds, optionally MSE-clipped.

    ``mse`` searches a clipping ratio per channel that minimises the weight's own
    quantisation error: at 4 bits and below, clipping the few largest weights keeps far more
    resolution for the rest than plain abs-max.
    """
    rows = _rows(np.asarray(w, dtype=np.float32), axis)
    top = np.abs(rows).max(axis=1)
    top = np.where(top > 0, top, np.float32(1e-8))
    if algo == "abs_max":
        return top.astype(np.float32)
    if algo != "mse":
        raise ActcError(f"unknown weight algo '{algo}' (expected one of {', '.join(WEIGHT_ALGOS)})")
    qm = np.float32(qmax(bits))
    best = top.copy()
    best_err = np.full(top.shape, np.inf, dtype=np.float64)
    for ratio in np.linspace(0.3, 1.0, 36, dtype=np.float32):
        s = (top * ratio)[:, None]
        q = np.clip(np.rint(rows / s * qm), -qm - 1, qm) * s / qm
        err = np.mean((rows - q) ** 2, axis=1, dtype=np.float64)
        better = err < best_err
        best = np.where(better, top * ratio, best)
        best_err = np.where(better, err, best_err)
    return best.astype(np.float32)


@dataclass
class ScaleChoice:
    algo: str = "hist"
    params: dict | None = None      # e.g. {"hist_percent": 0.999}
    weight_algo: str = "abs_max"
    bias_correction: bool = False   # applied by the runtime after scales are set


def activation_thresholds(stats: dict[str, ActivationStats], quantizers: list[Quantizer],
                          choice: ScaleChoice, overrides: dict[str, float] | None = None
                          ) -> dict[str, float]:
    """Threshold per activation tensor under ``choice`` (``overrides`` first: what
    ``algo: auto`` chose per tensor)."""
    out = dict(overrides or {})
    if choice.algo == calibration.AUTO:
        missing = [q.tensor for q in quantizers if not q.is_weight and q.tensor not in out]
        if missing:
            raise ActcError(f"algo auto: no threshold was chosen for '{missing[0]}'")
        return out
    algo = calibration._lookup(choice.algo)
    params = {k: v for k, v in (choice.params or {}).items() if k in algo.defaults}
    for q in quantizers:
        if q.is_weight or q.tensor in out:
            continue
        st = stats[q.tensor]
        out[q.tensor] = calibration.threshold(st, algo.name, q.bits, **params)
    return out


def apply_scales(program: Program, quantizers: list[Quantizer], stats, choice: ScaleChoice,
                 original_weights: dict[str, np.ndarray],
                 cache: dict | None = None,
                 overrides: dict[str, float] | None = None) -> dict[str, np.ndarray]:
    """Write every scale into the IR; returns what it set (name -> array). ``cache`` keeps
    weight thresholds between calls (a search re-uses them across trials); ``overrides``
    are activation thresholds chosen elsewhere (``algo: auto``)."""
    acts = activation_thresholds(stats, quantizers, choice, overrides)
    written: dict[str, np.ndarray] = {}
    for q in quantizers:
        if q.is_weight:
            key = (q.tensor, q.bits, q.axis, choice.weight_algo)
            thr = cache.get(key) if cache is not None else None
            if thr is None:
                thr = weight_threshold(original_weights[q.tensor], q.bits, q.axis,
                                       choice.weight_algo)
                if cache is not None:
                    cache[key] = thr
        else:
            thr = np.array([acts[q.tensor]], dtype=np.float32)
        if q.is_weight and q.scale is None:
            # fake format: the quantize-dequantize op takes its scale from max|w| at run time,
            # so a clipped threshold (weight_algo mse) takes effect by clipping the weight
            written.update(_clip_to(program, q, original_weights[q.tensor], thr))
        if q.scale is not None:
            written[q.scale] = _set_like(program, q.scale, thr)
            if q.quant_op is not None and q.quant_op.type in MOVING_AVERAGE_OPS:
                # training continues the moving average from the calibrated scale
                # (scale = accum / state)
                for slot, value in (("InState", np.ones_like(thr)), ("InAccum", thr)):
                    names = q.quant_op.input(slot)
                    if names and names[0] in program.params:
                        written[names[0]] = _set_like(program, names[0], value)
        if q.zero_point is not None:
            written[q.zero_point] = _set_like(program, q.zero_point, np.zeros_like(thr))
    return written


def quantized_weights(quantizers: list[Quantizer], originals: dict[str, np.ndarray],
                      weight_algo: str) -> dict[str, np.ndarray]:
    """Each weight as its quantize-dequantize will compute it (what a layer really multiplies
    by), for scoring activation thresholds against the layers they feed."""
    out = {}
    for q in quantizers:
        if not q.is_weight or q.tensor in out:
            continue
        w = originals[q.tensor]
        axis = q.axis if q.axis >= 0 else -1
        thr = weight_threshold(w, q.bits, axis, weight_algo)
        round_type = int(q.quant_op.attr("round_type", 0) or 0) if q.quant_op is not None else 0
        out[q.tensor] = fake_quant_dequant(w, thr if axis >= 0 else thr.reshape(()), q.bits,
                                           axis, round_type).astype(np.float32)
    return out


def _clip_to(program: Program, q: Quantizer, original: np.ndarray,
             thr: np.ndarray) -> dict[str, np.ndarray]:
    """Store ``original`` clipped to ±thr per channel as the weight the quantizer reads (its
    run-time abs-max is then exactly thr). Unclipped when thr is the abs-max already."""
    axis = q.axis if q.axis >= 0 else None
    shape = [1] * original.ndim
    if axis is not None:
        shape[axis] = -1
    bound = thr.reshape(shape) if axis is not None else thr.reshape(())
    value = np.clip(original, -bound, bound).astype(original.dtype)
    current = np.asarray(program.params[q.tensor].array)
    if np.array_equal(current, value):
        return {}
    if any(c is not q.quant_op for c, _, _ in program.consumers(q.tensor)):
        raise ActcError(f"weight '{q.tensor}' is read by ops other than its quantizer: a "
                        "clipped weight_algo cannot apply in fake format; use weight_algo: "
                        "abs_max or format: onnx")
    program.set_param(q.tensor, value)
    return {q.tensor: value}


def _set_like(program: Program, name: str, values: np.ndarray) -> np.ndarray:
    """Store values in a scale/zero-point var keeping that var's declared dtype."""
    var = program.var(name)
    dtype = var.dtype if var is not None and var.dtype else "float32"
    arr = np.asarray(values).astype(dtype)
    program.set_param(name, arr)
    return arr


def original_weights(program: Program, quantizers: list[Quantizer]) -> dict[str, np.ndarray]:
    """Float copies of the quantized weights, taken before anything rewrites them."""
    return {q.tensor: np.array(program.params[q.tensor].array, dtype=np.float32)
            for q in quantizers if q.is_weight}


def freeze_onnx(program: Program, quantizers: list[Quantizer]) -> int:
    """Store weights as int8 and drop their quantize_linear: only the dequantize remains,
    the layout Paddle Inference and ONNX tooling expect. Returns the number of weights folded."""
    folded = 0
    for q in quantizers:
        if q.format != "onnx" or not q.is_weight or q.quant_op is None:
            continue
        if q.scale is None or q.scale not in program.params:
            raise ActcError(f"weight '{q.tensor}' has no scale yet: run calibrate before convert")
        scale = np.asarray(program.params[q.scale].array, dtype=np.float32)
        if not np.all(scale > 0):
            raise ActcError(f"weight '{q.tensor}' has a zero scale: run calibrate before convert")
        w = np.asarray(program.params[q.tensor].array, dtype=np.float32)
        codes = quantize_weight_int8(w, scale, q.bits, q.axis if q.axis >= 0 else -1)
        target = q.tensor
        others = [c for c, _, _ in program.consumers(q.tensor) if c is not q.quant_op]
        if others:  # the float weight is still read elsewhere: keep it, add an int8 copy
            target = program.fresh_name(q.tensor + ".int8")
            program.add_var(target, shape=w.shape, dtype="float32", persistable=True)
        program.set_param(target, codes, keep_var_desc=True)
        program.set_input(q.dequant_op, "X", 0, target)
        program.remove_op(q.quant_op)
        folded += 1
    return folded


def freeze_fake(program: Program, quantizers: list[Quantizer]) -> int:
    """Fake-format programs keep their simulated quant ops, switched to inference mode."""
    count = 0
    for q in quantizers:
        if q.format == "fake" and q.quant_op is not None and q.quant_op.has_attr("is_test"):
            q.quant_op.set_attr("is_test", True)
            count += 1
    return count
