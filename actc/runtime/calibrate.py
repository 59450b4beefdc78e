"""Collect activation statistics by running the float program once over the data."""
from __future__ import annotations

import time

from actc.progress import progress

from actc.data import Dataset
from actc.errors import ActcError
from actc.ir.program import Program
from actc.quant.quantizers import Quantizer, bypass, find_quantizers
from actc.quant.stats import ActivationStats
from actc.runtime.executor import Runner
from actc.runtime.paddle_env import set_forward_only


def float_program(program: Program) -> Program:
    """A copy with every quantizer removed: statistics come from the float model, as in
    PaddleSlim, so one run serves every algorithm."""
    copy = program.clone()
    bypass(copy, find_quantizers(copy))
    return copy


def activation_tensors(quantizers: list[Quantizer]) -> list[str]:
    return list(dict.fromkeys(q.tensor for q in quantizers if not q.is_weight))


def collect_stats(program: Program, quantizers: list[Quantizer], dataset: Dataset, *,
                  batch_size: int, batch_nums: int | None, device: str | None,
                  snapshots_at: tuple[int, ...] = (), histogram: bool = True):
    """One pass over the data. Returns (stats, snapshots, batches_seen, seconds) where
    snapshots[k] is a copy of the stats after k batches (for search trials). Without
    ``histogram`` only per-batch maxima are kept (enough for abs_max, min_max, avg)."""
    names = activation_tensors(quantizers)
    stats = {n: ActivationStats(histogram=histogram) for n in names}
    snapshots: dict[int, dict[str, ActivationStats]] = {}
    if not names:
        return stats, snapshots, 0, 0.0
    set_forward_only(True)
    runner = Runner(float_program(program), device, private=True)
    start = time.perf_counter()
    seen = 0
    total = dataset.num_batches(batch_size, batch_nums)
    for batch in progress(dataset.batches(batch_size, batch_nums), total=total,
                          desc="calibrate"):
        outs = runner.run(batch.feed, names)
        for name, value in zip(names, outs):
            stats[name].update(value)
        seen += 1
        if seen in snapshots_at:
            snapshots[seen] = {n: s.copy() for n, s in stats.items()}
    if seen == 0:
        raise ActcError("calibration data is empty", path=dataset.source)
    for name, st in stats.items():
        if st.nonfinite:
            raise ActcError(f"activation '{name}' has {st.nonfinite} NaN/inf values on the "
                            "calibration data; the model or the data is broken",
                            path=dataset.source)
    for k in snapshots_at:
        snapshots.setdefault(k, {n: s.copy() for n, s in stats.items()})
    return stats, snapshots, seen, time.perf_counter() - start
