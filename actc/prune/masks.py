"""Sparsity masks as numpy: which weights become zero, and how many.

Ratio masks are exact: a ratio r over n values zeroes exactly round(r * n) of them (the
smallest |w|, ties broken by position), per tensor (local) or over all selected tensors
(global). 2:4 masks keep the two largest |w| of every four consecutive weights along the
input (K) dimension, as Paddle's ASP does.
"""
from __future__ import annotations

import json

import numpy as np

from actc.errors import ActcError

# Weight slot and its input (K) axis per op type; matmul_v2 with trans_y keeps K on axis 1.
K_AXIS = {"conv2d": 1, "depthwise_conv2d": 1, "conv2d_transpose": 0, "mul": 0, "matmul": 0,
          "matmul_v2": 0}


def _keep_largest(values: list[np.ndarray], count: int) -> list[np.ndarray]:
    """Masks zeroing the ``count`` smallest |v| over all arrays together."""
    flat = np.concatenate([np.abs(v).ravel() for v in values]) if values else np.zeros(0)
    mask = np.ones(flat.size, dtype=np.float32)
    if count > 0:
        order = np.argsort(flat, kind="stable")
        mask[order[:count]] = 0.0
    out, at = [], 0
    for v in values:
        out.append(mask[at:at + v.size].reshape(v.shape))
        at += v.size
    return out


def magnitude_masks(weights: list[np.ndarray], mode: str, ratio: float, threshold: float,
                    local: bool) -> list[np.ndarray]:
    if mode == "threshold":
        return [(np.abs(w) >= threshold).astype(np.float32) for w in weights]
    if not 0.0 <= ratio < 1.0:
        raise ActcError(f"sparsify: ratio must be in [0, 1), got {ratio}")
    if local:
        return [_keep_largest([w], int(round(ratio * w.size)))[0] for w in weights]
    total = sum(w.size for w in weights)
    return _keep_largest(list(weights), int(round(ratio * total)))


def _to_groups(w: np.ndarray, k_axis: int) -> tuple[np.ndarray, tuple, tuple]:
    moved = np.moveaxis(w, k_axis, -1)
    return moved.reshape(-1, moved.shape[-1] // 4, 4), moved.shape, k_axis


def two_four_mask(w: np.ndarray, k_axis: int) -> np.ndarray:
    """Keep the 2 largest |w| of every 4 consecutive weights along ``k_axis``."""
    groups, moved_shape, _ = _to_groups(np.asarray(w, dtype=np.float32), k_axis)
    order = np.argsort(-np.abs(groups), axis=-1, kind="stable")
    mask = np.zeros_like(groups)
    np.put_along_axis(mask, order[..., :2], 1.0, axis=-1)
    return np.moveaxis(mask.reshape(moved_shape), -1, k_axis).astype(np.float32)


def is_two_four(w: np.ndarray, k_axis: int) -> bool:
    """Does every group of 4 along ``k_axis`` hold at least 2 zeros?"""
    if w.ndim <= k_axis or w.shape[k_axis] % 4:
        return False
    groups, _, _ = _to_groups(np.asarray(w), k_axis)
    return bool(np.all(np.sum(groups == 0, axis=-1) >= 2))


# ------------------------------------------------------------------ GMP
GMP_KEYS = ("stable_iterations", "pruning_iterations", "tunning_iterations",
            "resume_iteration", "pruning_steps", "initial_ratio")


def gmp_config(gmp: dict) -> dict:
    unknown = [k for k in gmp if k not in GMP_KEYS]
    if unknown:
        from actc.errors import did_you_mean
        raise ActcError(f"sparsify: unknown gmp key '{unknown[0]}'"
                        f"{did_you_mean(unknown[0], GMP_KEYS)}; keys: {', '.join(GMP_KEYS)}")
    return {k: gmp.get(k) for k in GMP_KEYS}


def gmp_schedule(cfg: dict, total_iters: int) -> dict:
    """The whole schedule with ACT's defaults for what the config leaves out:
    pruning = tunning = max(0.45 * total, 30) iterations, 100 steps when pruning is long
    (> 1000 iterations) else 1, initial ratio 0.15."""
    default_span = max(int(0.45 * total_iters), 30)
    pruning = cfg.get("pruning_iterations") or default_span
    return {
        "stable": int(cfg.get("stable_iterations") or 0),
        "pruning": int(pruning),
        "tunning": int(cfg.get("tunning_iterations") or default_span),
        "steps": int(cfg.get("pruning_steps") or (100 if pruning > 1000 else 1)),
        "initial": float(0.15 if cfg.get("initial_ratio") is None else cfg["initial_ratio"]),
        "resume": int(-1 if cfg.get("resume_iteration") is None else cfg["resume_iteration"]),
    }


def gmp_ratio(iteration: int, target: float, sched: dict) -> float:
    """Cubic GMP: 0 while stable, then r0 + (r - r0) * (1 - (1 - i/S)^3) at step i of S
    (one step every pruning/S iterations), then the target."""
    it = iteration + max(sched["resume"], 0)
    if it < sched["stable"]:
        return 0.0
    it -= sched["stable"]
    if it >= sched["pruning"]:
        return target
    steps = max(sched["steps"], 1)
    per_step = max(sched["pruning"] / steps, 1e-9)
    i = min(int(it // per_step), steps)
    r0 = sched["initial"]
    return r0 + (target - r0) * (1.0 - (1.0 - i / steps) ** 3)


def encode(config: dict) -> str:
    return json.dumps(config, sort_keys=True)


def decode(text: str) -> dict:
    return json.loads(text)
