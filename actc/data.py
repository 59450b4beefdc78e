"""Calibration / evaluation data: ``.npz`` files, a directory of them, or ``module:function``.

Arrays are named after the program's feed vars; an optional ``label`` array is kept apart for
accuracy. Everything is checked against the feeds up front so a mismatch is one clear error,
not a Paddle stack trace in the middle of calibration.

A data function may never stop: without ``batch_nums`` actc reads at most
``MAX_FUNCTION_BATCHES`` of its batches and says so in a note (pass ``batch_nums`` to read
more). Training reads it without that cap, since ``train_iter`` bounds it already.
"""
from __future__ import annotations

import importlib
import itertools
import os
import re
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from actc.errors import ActcError, did_you_mean

LABEL_KEYS = ("label", "labels")
# Batches read from a data function when no batch_nums says how many (it may be endless).
MAX_FUNCTION_BATCHES = 1000

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # an archive with members / an empty one
_NPY_MAGIC = b"\x93NUMPY"
_TOLD: set[str] = set()  # notes already printed: a source is often opened twice


@dataclass
class Batch:
    feed: dict[str, np.ndarray]
    label: np.ndarray | None = None

    def __len__(self) -> int:
        return len(next(iter(self.feed.values())))


@dataclass
class FeedSpec:
    name: str
    shape: tuple[int, ...] | None
    dtype: str | None


def _tell(note: str) -> None:
    """Print a note once per process (callers have no notes list of ours to forward)."""
    if note not in _TOLD:
        _TOLD.add(note)
        print(note, file=sys.stderr)


def _example(feeds: list[FeedSpec]) -> str:
    names = ", ".join(f"{f.name}=..." for f in feeds) or "FEED=..."
    return f"np.savez('data.npz', {names}, label=...)"


def _npz_arrays(path: Path, feeds: list[FeedSpec]) -> dict[str, np.ndarray]:
    """The arrays of one .npz file; a file that is not one is named for what it is, since
    numpy's own errors speak of pickles and context managers."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(_NPY_MAGIC))
    except OSError as e:
        raise ActcError(f"cannot read data: {e.strerror or e}", path=path) from None
    if not head:
        raise ActcError("cannot read data: the file is empty (expected a .npz archive)",
                        path=path)
    if head.startswith(_NPY_MAGIC):
        raise ActcError("cannot read data: a .npy file holds one unnamed array; actc reads .npz "
                        f"archives with arrays named after the model's feeds: {_example(feeds)}",
                        path=path)
    if not head.startswith(_ZIP_MAGIC):
        raise ActcError("cannot read data: not a valid .npz archive (not a zip file; write one "
                        f"with {_example(feeds)})", path=path)
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except ValueError as e:  # object arrays need pickle, which actc never loads
        raise ActcError(f"cannot read data: {e}", path=path) from None
    except Exception as e:
        raise ActcError(f"cannot read data: not a valid .npz archive ({e})", path=path) from None


def _not_regular(path: Path) -> str | None:
    """Why an existing path that is neither a file nor a directory cannot be data."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    return ("not a regular file (a device, FIFO or socket); expected a .npz file, a directory "
            "of .npz, or module:function")


def _directory_files(path: Path) -> tuple[list[Path], list[str]]:
    """(the .npz files, the names of everything else but hidden files) in a directory."""
    try:
        entries = sorted(path.iterdir())
    except OSError as e:
        raise ActcError(f"cannot list the data directory: {e.strerror or e}", path=path) from None
    files = [e for e in entries if e.suffix == ".npz" and e.is_file()]
    others = [e.name + ("/" if e.is_dir() else "") for e in entries
              if e not in files and not e.name.startswith(".")]
    return files, others


def _listing(names: list[str], most: int = 5) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def _split_label(arrays: dict[str, np.ndarray]):
    label = None
    for key in LABEL_KEYS:
        if key in arrays:
            label = arrays.pop(key)
    return arrays, label


def _check(arrays: dict[str, np.ndarray], feeds: list[FeedSpec], source: str) -> None:
    names = [f.name for f in feeds]
    for key, a in arrays.items():
        if np.ndim(a) == 0:
            raise ActcError(f"array '{key}' is a scalar; expected a batch of samples "
                            "(first axis = sample)", path=source)
    for f in feeds:
        if f.name not in arrays:
            raise ActcError(f"no array named '{f.name}' (the model's feed){did_you_mean(f.name, arrays)}; "
                            f"arrays here: {', '.join(sorted(arrays)) or 'none'}", path=source)
    for key in arrays:
        if key not in names:
            raise ActcError(f"array '{key}' is not a feed of the model{did_you_mean(key, names)}; "
                            f"feeds: {', '.join(names)}", path=source)
    counts = {len(a) for a in arrays.values()}
    if len(counts) > 1:
        raise ActcError(f"arrays have different lengths {sorted(counts)}", path=source)
    for f in feeds:
        a = arrays[f.name]
        if a.size == 0 or len(a) == 0:
            raise ActcError(f"array '{f.name}' is empty", path=source)
        if f.shape is not None:
            if a.ndim != len(f.shape) or any(d >= 0 and d != s for d, s in
                                              zip(f.shape[1:], a.shape[1:])):
                raise ActcError(f"array '{f.name}' has shape {list(a.shape)} but the model feeds "
                                f"{list(f.shape)} (-1 = any)", path=source)
        if f.dtype is not None and str(a.dtype) != f.dtype:
            kind_ok = np.dtype(a.dtype).kind == np.dtype(f.dtype).kind
            if not kind_ok:
                raise ActcError(f"array '{f.name}' is {a.dtype} but the model feeds {f.dtype}",
                                path=source)
        if np.dtype(a.dtype).kind == "f" and not np.isfinite(a).all():
            raise ActcError(f"array '{f.name}' contains NaN or inf", path=source)


class Dataset:
    """Samples held as whole arrays (npz) or produced by a user function, cut into batches."""

    def __init__(self, source: str, feeds: list[FeedSpec]):
        self.source = source
        self.feeds = feeds
        self._arrays: dict[str, np.ndarray] | None = None
        self._labels: np.ndarray | None = None
        self._factory = None
        self.notes: list[str] = []  # also printed to stderr as they happen
        path = Path(source)
        if path.is_file():
            arrays, self._labels = _split_label(_npz_arrays(path, feeds))
            self._set_arrays(arrays, source)
        elif path.is_dir():
            files, others = _directory_files(path)
            if not files:
                held = f" (it holds {_listing(others)})" if others else ""
                raise ActcError(f"no .npz files in this directory{held}", path=path)
            if others:
                n = len(others)
                self._note(f"{path}: note: ignored {n} file{'s' if n > 1 else ''} that "
                           f"{'are' if n > 1 else 'is'} not .npz: {_listing(others)}")
            parts = [_split_label(_npz_arrays(f, feeds)) for f in files]
            keys = set(parts[0][0])
            if any(set(p[0]) != keys for p in parts):
                raise ActcError("the .npz files hold different array names", path=path)
            for k in keys:
                if any(np.ndim(p[0][k]) == 0 for p in parts):
                    raise ActcError(f"array '{k}' is a scalar in some .npz file; expected a "
                                    "batch of samples (first axis = sample)", path=path)
                shapes = {p[0][k].shape[1:] for p in parts}
                if len(shapes) > 1:
                    raise ActcError(f"array '{k}' has different sample shapes across the .npz "
                                    f"files: {sorted(list(s) for s in shapes)}", path=path)
            arrays = {k: np.concatenate([p[0][k] for p in parts]) for k in keys}
            labels = [p[1] for p in parts]
            self._labels = np.concatenate(labels) if all(l is not None for l in labels) else None
            self._set_arrays(arrays, source)
        elif why := _not_regular(path):
            raise ActcError(why, path=source)
        elif _FACTORY_SPEC.fullmatch(source):
            self._factory = _import_factory(source)
        else:
            raise ActcError("no such data file or directory (expected .npz, a directory of "
                            ".npz, or module:function)", path=source)

    def _set_arrays(self, arrays, source):
        if self._labels is not None and not arrays:
            raise ActcError("the data holds only labels", path=source)
        _check(arrays, self.feeds, source)
        arrays = _conform(arrays, self.feeds)
        n = len(next(iter(arrays.values())))
        if self._labels is not None and len(self._labels) != n:
            raise ActcError(f"'label' has {len(self._labels)} rows but the inputs have {n}",
                            path=source)
        self._arrays = arrays

    def _note(self, note: str) -> None:
        self.notes.append(note)
        _tell(note)

    @property
    def has_labels(self) -> bool:
        return self._labels is not None

    def num_samples(self) -> int | None:
        return None if self._arrays is None else len(next(iter(self._arrays.values())))

    def batches(self, batch_size: int = 32, batch_nums: int | None = None,
                start: int = 0) -> Iterator[Batch]:
        """Batches in order; ``start`` skips that many batches (for held-out splits)."""
        if self._arrays is not None:
            n = self.num_samples()
            count = 0
            for lo in range(start * batch_size, n, batch_size):
                if batch_nums is not None and count >= batch_nums:
                    return
                hi = min(lo + batch_size, n)
                label = None if self._labels is None else self._labels[lo:hi]
                yield Batch({k: v[lo:hi] for k, v in self._arrays.items()}, label)
                count += 1
            return
        items = itertools.islice(self._factory_items(), start, None)
        limit = MAX_FUNCTION_BATCHES if batch_nums is None else batch_nums
        for item in itertools.islice(items, limit):
            yield self._function_batch(item)
        if batch_nums is None and next(items, _END) is not _END:
            self._note(f"{self.source}: note: read the data function's first {limit} batches "
                       "and stopped (it may never end); pass batch_nums (calibrate(batch_nums: "
                       "N), QuantPost.batch_nums, actc eval --batch-nums N) to read more")

    def _function_batch(self, item) -> Batch:
        if not isinstance(item, dict):
            raise ActcError(f"{self.source} yielded {type(item).__name__}, expected a dict "
                            "of feed name -> array")
        arrays, label = _split_label({k: np.asarray(v) for k, v in item.items()})
        _check(arrays, self.feeds, self.source)
        return Batch(_conform(arrays, self.feeds), label)

    def epoch_batches(self, batch_size: int, *, seed: int, epoch: int) -> Iterator[Batch]:
        """One training epoch: samples shuffled by (seed, epoch), so a resumed run sees the
        same order. Data from a function comes in the order it yields, uncapped: train_iter
        bounds it."""
        if self._arrays is None:
            yield from map(self._function_batch, self._factory_items())
            return
        n = self.num_samples()
        order = np.random.RandomState((seed * 1000003 + epoch) % (2 ** 32)).permutation(n)
        for lo in range(0, n, batch_size):
            idx = order[lo:lo + batch_size]
            label = None if self._labels is None else self._labels[idx]
            yield Batch({k: v[idx] for k, v in self._arrays.items()}, label)

    def _factory_items(self):
        """The user function's items; its own exceptions become one-line errors naming it."""
        try:
            items = self._factory()
        except Exception as e:
            raise ActcError(f"calling the data function failed: {type(e).__name__}: {e}",
                            path=self.source) from None
        try:
            items = iter(items)
        except TypeError:
            raise ActcError(f"the data function returned {type(items).__name__}, expected an "
                            "iterable (e.g. a generator) of dicts of feed name -> array",
                            path=self.source) from None
        while True:
            try:
                item = next(items)
            except StopIteration:
                return
            except Exception as e:
                raise ActcError(f"the data function failed: {type(e).__name__}: {e}",
                                path=self.source) from None
            yield item

    def num_batches(self, batch_size: int, batch_nums: int | None) -> int | None:
        n = self.num_samples()
        if n is None:
            return batch_nums
        total = -(-n // batch_size)
        return total if batch_nums is None else min(total, batch_nums)


_END = object()
# ``pkg.module:function`` (dotted module paths included).
_FACTORY_SPEC = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*")


def _conform(arrays: dict[str, np.ndarray], feeds: list[FeedSpec]) -> dict[str, np.ndarray]:
    """Cast arrays whose dtype differs from the feed's only in width (float64 data for a
    float32 feed, int32 for int64): Paddle rejects them mid-run otherwise. ``_check`` has
    already refused a different kind."""
    out = dict(arrays)
    for f in feeds:
        a = out.get(f.name)
        if a is not None and f.dtype is not None and str(a.dtype) != f.dtype:
            out[f.name] = a.astype(f.dtype)
    return out


def _import_factory(spec: str):
    module_name, _, func_name = spec.partition(":")
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ActcError(f"cannot import data module '{module_name}': {e}", path=spec) from None
    func = getattr(module, func_name, None)
    if not callable(func):
        raise ActcError(f"module '{module_name}' has no function '{func_name}'", path=spec)
    return func


def feed_specs(program) -> list[FeedSpec]:
    """The program's feeds with declared shape and dtype."""
    specs = []
    # feeds a training rewrite added (the label, a teacher's own copy of an input) are not
    # arrays of the data under their own names
    extra = {op.output("Out")[0] for op in program.ops("feed")
             if op.has_attr("actc_label") or op.has_attr("actc_teacher")}
    for name in program.feed_names():
        if name in extra:
            continue
        var = program.var(name)
        specs.append(FeedSpec(name, var.shape if var else None, var.dtype if var else None))
    return specs


def open_dataset(source: str | Path, program) -> Dataset:
    return Dataset(str(source), feed_specs(program))
