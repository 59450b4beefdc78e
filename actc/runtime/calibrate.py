"""Collect activation statistics by running the float program once over the data.

Statistics stream: each activation reaches its :class:`ActivationStats` while the forward
pass runs, through an observer op placed right after the op that writes it, and Paddle frees
it as in a plain forward. Fetching them all instead would keep every one alive to the end
of the batch, twice over (Paddle's fetch list and its numpy copy): 3.5x the memory of the
forward itself on MobileNetV2 at batch 32. Tensors an observer cannot see (more than one
writer, another device, a layout it cannot read) are fetched as before.
"""
from __future__ import annotations

import ctypes
import time
from typing import Callable

import numpy as np

from actc.progress import progress

from actc.data import Dataset
from actc.errors import ActcError
from actc.ir.program import Program
from actc.quant.quantizers import Quantizer, bypass, find_quantizers
from actc.quant.stats import ActivationStats
from actc.runtime.executor import Runner
from actc.runtime.paddle_env import import_paddle, resolve_place, set_forward_only

# Tensors an observer reads in place (no copy), by Paddle dtype name.
_VIEW_DTYPES = {"paddle.float32": np.float32, "paddle.float16": np.float16,
                "paddle.float64": np.float64}
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


Consume = Callable[[str, np.ndarray], None]


class Observers:
    """py_func ops that hand tensors to ``consume(name, array)`` during the forward pass.

    Each observed tensor gets ``assign`` (without oneDNN, so Paddle hands over a plain
    layout) and a ``py_func`` calling back here, right after its only writer. The array is
    a view of Paddle's buffer, valid during the call only: consumers keep no tensor. Errors
    raised in a callback are kept and raised after the run (inside Paddle they would become
    a C++ error)."""

    def __init__(self, consume: Consume):
        self.consume: Consume | None = consume
        self.error: BaseException | None = None
        self.calls = 0
        self.muted = False

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
        if self.consume is None or self.muted or self.error is not None:
            return
        layout = str(tensor._layout())
        if layout not in PLAIN_LAYOUTS:
            raise _Unreadable(f"'{name}' arrived in layout {layout}")
        self.consume(name, _array(tensor))

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        """Paddle keeps every registered callback for good: let them drop the consumer."""
        self.consume = None


def _array(tensor) -> np.ndarray:
    """A CPU float tensor as a numpy view of Paddle's own buffer, valid during the callback
    only (saves copying every activation once more); anything else as a copy."""
    dtype = _VIEW_DTYPES.get(str(tensor._dtype()))
    n = tensor._numel()
    if dtype is None or n == 0 or not str(tensor._place()).startswith("Place(cpu"):
        return np.asarray(tensor)
    raw = (ctypes.c_char * (n * np.dtype(dtype).itemsize)).from_address(tensor._ptr())
    return np.frombuffer(raw, dtype=dtype).reshape(tensor.shape())


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


def stream_activations(program: Program, names: list[str], dataset: Dataset,
                       start: Callable[[], Consume], *, batch_size: int,
                       batch_nums: int | None, device: str | None,
                       observe: bool | None = None,
                       after_batch: Callable[[int], None] | None = None,
                       desc: str = "calibrate") -> int:
    """Run the float program over the data and give each batch's value of every tensor in
    ``names`` to the consumer ``start()`` returns, one tensor at a time, keeping none;
    ``after_batch(k)`` runs after the k-th batch. Returns the number of batches. ``observe``
    (default: on the CPU) streams through observer ops; should one be handed a tensor it
    cannot read, the whole pass reruns fetching, with a fresh consumer from ``start()``."""
    set_forward_only(True)
    if observe is None:
        observe = _observable(device)
    args = (program, names, dataset, batch_size, batch_nums, device, after_batch, desc)
    try:
        return _stream(*args, start(), observe)
    except _Unreadable:
        return _stream(*args, start(), False)


def _stream(program, names, dataset, batch_size, batch_nums, device, after_batch, desc,
            consume, observe) -> int:
    copy = float_program(program)
    observers = Observers(consume)
    fetched = observers.attach(copy, names) if observe else list(names)
    runner = Runner(copy, device, private=True)
    seen = 0
    total = dataset.num_batches(batch_size, batch_nums)
    try:
        for batch in progress(dataset.batches(batch_size, batch_nums), total=total,
                              desc=desc):
            if seen == 0 and len(fetched) < len(names):
                _warm_up(runner, observers, batch.feed)
            _run_batch(runner, observers, batch.feed, fetched, consume)
            _trim()
            seen += 1
            if after_batch is not None:
                after_batch(seen)
    finally:
        observers.close()
    return seen


def _libc():
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to trim
        return None


_LIBC = _libc()


def _trim() -> None:
    """Hand the heap pages a batch freed back to the OS (glibc keeps them otherwise, and
    fragmentation lets the resident size creep up batch after batch)."""
    if _LIBC is not None and hasattr(_LIBC, "malloc_trim"):
        _LIBC.malloc_trim(0)


def _warm_up(runner: Runner, observers: Observers, feed) -> None:
    """Run one sample first, observers muted. Paddle's executor frees tensors only from its
    second run on: in the first one every observed copy would stay alive to the end."""
    observers.muted = True
    try:
        runner.run({k: v[:1] for k, v in feed.items()})
    finally:
        observers.muted = False
    observers.check()


def _run_batch(runner: Runner, observers: Observers, feed, fetched: list[str],
               consume: Consume) -> None:
    """One forward pass; observed tensors are consumed during it, the others are fetched
    and consumed one at a time after it."""
    outs = runner.run(feed, fetched or None)
    observers.check()
    if not fetched:
        return
    for i, name in enumerate(fetched):
        consume(name, outs[i])
        outs[i] = None  # drop each one as soon as it is counted


def _keep_samples(samples: dict, name: str, x: np.ndarray, most: int, elements: int) -> None:
    """Copy the first samples of a batch until the tensor has ``most`` (or ``elements``
    values) kept: the observer's array is Paddle's buffer, valid during the call only."""
    kept = samples.setdefault(name, [])
    have = sum(a.shape[0] for a in kept)
    per = max(1, int(np.prod(x.shape[1:])) if x.ndim > 1 else 1)
    room = min(most, max(1, elements // per)) - have
    if room > 0 and x.ndim >= 1 and x.shape[0] > 0:
        kept.append(np.array(x[:room], dtype=np.float32, copy=True))


def collect_stats(program: Program, quantizers: list[Quantizer], dataset: Dataset, *,
                  batch_size: int, batch_nums: int | None, device: str | None,
                  snapshots_at: tuple[int, ...] = (), histogram: bool = True,
                  observe: bool | None = None, samples: dict | None = None,
                  keep_samples: int = 0, sample_elements: int = 1 << 21):
    """One pass over the data. Returns (stats, snapshots, batches_seen, seconds) where
    snapshots[k] is a copy of the stats after k batches (for search trials). Without
    ``histogram`` only per-batch maxima are kept (enough for abs_max, min_max, avg).
    With ``keep_samples``, ``samples[name]`` receives copies of the first samples of each
    tensor (at most that many, and at most ``sample_elements`` values), for ``algo: auto``."""
    names = activation_tensors(quantizers)
    stats: dict[str, ActivationStats] = {}
    snapshots: dict[int, dict[str, ActivationStats]] = {}
    if not names:
        return stats, snapshots, 0, 0.0

    def fresh() -> Consume:
        stats.clear()
        snapshots.clear()
        stats.update({n: ActivationStats(histogram=histogram) for n in names})
        if samples is None or keep_samples <= 0:
            return lambda name, x: stats[name].update(x)
        samples.clear()

        def consume(name, x):
            stats[name].update(x)
            _keep_samples(samples, name, x, keep_samples, sample_elements)
        return consume

    def after_batch(k: int) -> None:
        if k in snapshots_at:
            snapshots[k] = {n: s.copy() for n, s in stats.items()}

    import_paddle()   # the first import (about 1 s) is not part of the pass's time
    begin = time.perf_counter()
    seen = stream_activations(program, names, dataset, fresh, batch_size=batch_size,
                              batch_nums=batch_nums, device=device, observe=observe,
                              after_batch=after_batch)
    if seen == 0:
        raise ActcError("calibration data is empty", path=dataset.source)
    for name, st in stats.items():
        if st.nonfinite:
            raise ActcError(f"activation '{name}' has {st.nonfinite} NaN/inf values on the "
                            "calibration data; the model or the data is broken",
                            path=dataset.source)
    for k in snapshots_at:
        snapshots.setdefault(k, {n: s.copy() for n, s in stats.items()})
    return stats, snapshots, seen, time.perf_counter() - begin
