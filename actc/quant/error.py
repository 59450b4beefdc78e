"""How much each quantizer costs: the signal-to-quantization-noise ratio (SQNR) of its tensor
through quantize-dequantize at the scale calibration chose. It tells a user which layer to
``skip_ops`` (no PTQ tool reports this; ORT has it only as a separate debug script).

Numpy only: the runtime fetches the float activations (actc.runtime.quant_report)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from actc.ir.program import Program
from actc.quant.quantizers import Quantizer
from actc.quant.reference import dequantize, quantize


@dataclass
class QuantError:
    tensor: str
    kind: str          # "activation" or "weight"
    consumers: str     # op types reading the quantized tensor
    bits: int
    sqnr_db: float

    def to_json(self) -> dict:
        return asdict(self)


def sqnr_db(x: np.ndarray, xq: np.ndarray) -> float:
    """10 log10(|x|^2 / |x - xq|^2); inf when exact."""
    x = np.asarray(x, np.float64)
    noise = float(np.sum((x - np.asarray(xq, np.float64)) ** 2))
    signal = float(np.sum(x ** 2))
    if noise == 0.0:
        return float("inf")
    return 10.0 * np.log10(max(signal, 1e-30) / noise)


def qdq(program: Program, q: Quantizer, x: np.ndarray) -> np.ndarray:
    """``x`` through the quantizer's quantize-dequantize at its calibrated scale."""
    scale = np.asarray(program.params[q.scale].array, np.float32).reshape(-1)
    axis = q.axis if q.axis >= 0 else -1
    if axis < 0:
        scale = scale.reshape(())
    round_type = int(q.quant_op.attr("round_type", 0) or 0) if q.quant_op is not None else 0
    return dequantize(quantize(x, scale, q.bits, axis, round_type), scale, q.bits, axis)


def consumer_types(program: Program, q: Quantizer) -> str:
    return ",".join(sorted({op.type for op, _, _ in program.consumers(q.output)})) or "-"


def quantizer_errors(program: Program, quantizers: list[Quantizer],
                     activations: dict[str, list[np.ndarray]]) -> list[QuantError]:
    """Every quantizer with a scale, worst (lowest SQNR) first. ``activations``: float
    samples of each activation tensor (a few batches)."""
    rows = []
    seen = set()
    for q in quantizers:
        if q.scale is None or q.scale not in program.params or q.tensor in seen:
            continue
        seen.add(q.tensor)
        if q.is_weight:
            x = [np.asarray(program.params[q.tensor].array, np.float32)]
        else:
            x = activations.get(q.tensor, [])
        if not x:
            continue
        db = sqnr_db(np.concatenate([a.reshape(-1) for a in x]),
                     np.concatenate([qdq(program, q, a).reshape(-1) for a in x]))
        rows.append(QuantError(q.tensor, "weight" if q.is_weight else "activation",
                               consumer_types(program, q), q.bits, db))
    rows.sort(key=lambda r: r.sqnr_db)
    return rows


def worst_table(rows: list[QuantError], most: int = 5, winners: dict | None = None) -> str:
    """The few quantizers that lose most, as the short table compile prints (``winners``:
    the candidate ``algo: auto`` chose per activation)."""
    shown = rows[:most]
    if not shown:
        return ""
    w = max(len(r.tensor) for r in shown)
    lines = [f"worst quantizers by SQNR (of {len(rows)}; skip_ops the op reading one to keep "
             "it float):"]
    winners = winners or {}
    lines += [f"  {r.tensor:<{w}}  {r.kind:<10}  {r.bits}-bit  {r.sqnr_db:6.2f} dB  -> "
              f"{r.consumers}" + (f"  (auto: {winners[r.tensor]})" if r.tensor in winners else "")
              for r in shown]
    return "\n".join(lines)
