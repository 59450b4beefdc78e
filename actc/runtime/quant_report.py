"""The per-quantizer error report after calibration (actc.quant.error), measured on a few
calibration batches through the float program.

Streamed (actc.runtime.calibrate.stream_activations): each batch's activation is reduced at
once to its signal and noise energy, a few samples at a time, so no activation is kept and
the report costs no more memory than calibration itself."""
from __future__ import annotations

import numpy as np

from actc.quant.error import QuantError, consumer_types, qdq, quantizer_errors
from actc.runtime.calibrate import stream_activations

REPORT_BATCHES = 2
CHUNK = 1 << 20  # elements quantized at a time


def measure(program, quantizers, dataset, *, batch_size: int, device) -> list[QuantError]:
    acts = {}  # tensor -> its first quantizer with a scale (as quantizer_errors picks)
    for q in quantizers:
        if not q.is_weight and q.scale is not None and q.scale in program.params:
            acts.setdefault(q.tensor, q)
    energy: dict[str, list[float]] = {}  # tensor -> [signal, noise, batches]

    def start():
        energy.clear()
        energy.update({n: [0.0, 0.0, 0] for n in acts})
        return lambda name, x: _add_energy(energy[name], program, acts[name], x)

    if acts:
        stream_activations(program, list(acts), dataset, start, batch_size=batch_size,
                           batch_nums=REPORT_BATCHES, device=device, desc="error report")
    rows = quantizer_errors(program, [q for q in quantizers if q.is_weight], {})
    rows += [QuantError(n, "activation", consumer_types(program, q), q.bits, _db(*energy[n][:2]))
             for n, q in acts.items() if energy[n][2]]
    order = {q.tensor: i for i, q in reversed(list(enumerate(quantizers)))}
    rows.sort(key=lambda r: (r.sqnr_db, order[r.tensor]))
    return rows


def _add_energy(acc: list[float], program, q, x: np.ndarray) -> None:
    """acc += (sum x^2, sum (x - qdq(x))^2, 1), a few samples at a time."""
    x = np.asarray(x)
    acc[2] += 1
    step = len(x) if q.axis == 0 or x.ndim == 0 else max(1, CHUNK // max(x[0].size, 1))
    for lo in range(0, max(len(x) if x.ndim else 1, 1), step):
        part = x[lo:lo + step] if x.ndim else x
        x64 = np.asarray(part, np.float64)
        acc[0] += float(np.sum(x64 ** 2))
        acc[1] += float(np.sum((x64 - np.asarray(qdq(program, q, part), np.float64)) ** 2))


def _db(signal: float, noise: float) -> float:
    """actc.quant.error.sqnr_db from the two energies."""
    if noise == 0.0:
        return float("inf")
    return 10.0 * np.log10(max(signal, 1e-30) / noise)
