"""Collect activation statistics by running the float program once over the data.

Statistics stream: each activation reaches its :class:`ActivationStats` while the forward
pass runs, through an observer op placed right after the op that writes it, and Paddle frees
it as in a plain forward. Fetching them all instead would keep every one alive to the end
of the batch, twice over (Paddle's fetch list and its numpy copy): 3.5x the memory of the
forward itself on MobileNetV2 at batch 32. Tensors an observer cannot see (more than one
writer, another device, a layout it cannot read) are fetched as before.
"""
from __future__ import annotations

import time

import numpy as np

from actc.progress import progress

from actc.data import Dataset
from actc.errors import ActcError
from actc.ir.program import Program
from actc.quant.quantizers import Quantizer, bypass, find_quantizers
from actc.quant.stats import ActivationStats
from actc.runtime.executor import Runner
from actc.runtime.paddle_env import import_paddle, resolve_place, set_forward_only

# Layouts whose memory order is the var's declared shape (oneDNN's own ones are not).
PLAIN_LAYOUTS = frozenset({"NCHW", "NHWC", "NCDHW", "NDHWC", "ANY", "UNDEFINED(AnyLayout)"})


def float_program(program: Program) -> Program:
    """A copy with every quantizer removed: statistics come from the float model, as in
    PaddleSlim, so one run serves every algorithm."""
    copy = program.clone()
    bypass(copy, find_quantizers(copy))
    return copy


def activation_tensors(quantizers: list[Quantizer]) -> list[str]:
    return list(dict.fromkeys(q.tensor for q in quantizers if not q.is_weight))


class _Unreadable(Exception):
    """An observer was handed a tensor in a layout it cannot read: fetch instead."""


class Observers:
    """py_func ops that feed tensors to their statistics during the forward pass.

    Each observed tensor gets ``assign`` (without oneDNN, so Paddle hands over a plain
    layout) and a ``py_func`` calling back here, right after its only writer. The callbacks
    keep no tensor: they update the stats and return. Errors raised in a callback are kept
    and raised after the run (inside Paddle they would become a C++ error)."""

    def __init__(self, stats: dict[str, ActivationStats]):
        self.stats = stats
        self.error: BaseException | None = None
        self.calls = 0

    def attach(self, program: Program, names: list[str]) -> list[str]:
        """Insert observers for the tensors that allow one; returns the rest (to fetch)."""
        from paddle.static.nn.common import PyFuncRegistry

        rest = []
        for name in names:
            writer = _only_writer(program, name)
            if writer is None:
                rest.append(name)
                continue
            copy = program.fresh_name(name + "@observed")
            var = program.var(name)
            program.add_var(copy, shape=var.shape, dtype=var.dtype_code)
            assign = program.new_op("assign", {"X": [name]}, {"Out": [copy]},
                                    {"use_mkldnn": False}, after=writer)
            callback = PyFuncRegistry(self._callback(name))
            program.new_op("py_func", {"X": [copy]}, {"Out": []},
                           {"forward_callable_id": callback.id, "backward_callable_id": -1},
                           after=assign)
        return rest

    def _callback(self, name: str):
        def observe(x):
            try:
                self._observe(name, x)
            except BaseException as e:  # noqa: BLE001 - re-raised by check() after the run
                self.error = self.error or e
        return observe

    def _observe(self, name: str, tensor) -> None:
        self.calls += 1
        stats = self.stats.get(name)
        if stats is None or self.error is not None:
            return
        layout = str(tensor._layout())
        if layout not in PLAIN_LAYOUTS:
            raise _Unreadable(f"'{name}' arrived in layout {layout}")
        stats.update(np.asarray(tensor))

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        """Paddle keeps every registered callback for good: let them drop the stats."""
        self.stats = {}


def _only_writer(program: Program, name: str):
    """The single block-0 op writing ``name`` (None if none or several)."""
    writers = program.producers(name)
    if len(writers) != 1 or writers[0][0].block != 0:
        return None
    return writers[0][0]


def _observable(device: str | None) -> bool:
    """Observers run on the CPU executor (a py_func on a GPU tensor is untested)."""
    paddle = import_paddle()
    return isinstance(resolve_place(device), paddle.CPUPlace)


def collect_stats(program: Program, quantizers: list[Quantizer], dataset: Dataset, *,
                  batch_size: int, batch_nums: int | None, device: str | None,
                  snapshots_at: tuple[int, ...] = (), histogram: bool = True,
                  observe: bool | None = None):
    """One pass over the data. Returns (stats, snapshots, batches_seen, seconds) where
    snapshots[k] is a copy of the stats after k batches (for search trials). Without
    ``histogram`` only per-batch maxima are kept (enough for abs_max, min_max, avg).
    ``observe`` (default: on the CPU) streams tensors through observer ops."""
    names = activation_tensors(quantizers)
    if not names:
        return {}, {}, 0, 0.0
    set_forward_only(True)
    if observe is None:
        observe = _observable(device)
    try:
        return _collect(program, names, dataset, batch_size, batch_nums, device,
                        snapshots_at, histogram, observe)
    except _Unreadable:
        return _collect(program, names, dataset, batch_size, batch_nums, device,
                        snapshots_at, histogram, False)


def _collect(program, names, dataset, batch_size, batch_nums, device, snapshots_at,
             histogram, observe):
    stats = {n: ActivationStats(histogram=histogram) for n in names}
    snapshots: dict[int, dict[str, ActivationStats]] = {}
    copy = float_program(program)
    observers = Observers(stats)
    fetched = observers.attach(copy, names) if observe else names
    runner = Runner(copy, device, private=True)
    start = time.perf_counter()
    seen = 0
    total = dataset.num_batches(batch_size, batch_nums)
    try:
        for batch in progress(dataset.batches(batch_size, batch_nums), total=total,
                              desc="calibrate"):
            _run_batch(runner, observers, batch.feed, fetched, stats)
            seen += 1
            if seen in snapshots_at:
                snapshots[seen] = {n: s.copy() for n, s in stats.items()}
    finally:
        observers.close()
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


def _run_batch(runner: Runner, observers: Observers, feed, fetched: list[str],
               stats: dict[str, ActivationStats]) -> None:
    """One forward pass; observed tensors update their stats during it, the others are
    fetched and fed in one at a time."""
    outs = runner.run(feed, fetched or None)
    observers.check()
    if not fetched:
        return
    for i, name in enumerate(fetched):
        stats[name].update(outs[i])
        outs[i] = None  # drop each one as soon as it is counted
