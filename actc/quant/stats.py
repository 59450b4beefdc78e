"""One-pass streaming activation statistics for calibration.

Why: PaddleSlim runs the calibration set twice for KL/hist (one pass to learn
the abs-max, one to fill a fixed-range histogram) and keeps per-algorithm
state, so trying another algorithm means re-running the model.  An
:class:`ActivationStats` sees every batch once and keeps everything every
calibration algorithm in :mod:`actc.quant.calibration` needs; it pickles (or
``copy()``-es) so a hyper-parameter search can reuse one collection across
trials.

The histogram is of ``|x|`` over ``[0, R)`` with a fixed number of bins.  R is
not known in advance: it starts at the first non-zero batch's abs-max (or at
``range_hint``) and, when a batch exceeds it, is multiplied by ``2**k`` while
each group of ``2**k`` old bins is merged into one new bin.  Old bin edges are
new bin edges, so earlier counts stay exact (no re-splitting); the price is
that the data occupies between half and all of the bins.  Cost per batch: one
``abs``, one per-sample max, signed min/max and one ``bincount``.
"""

from __future__ import annotations

import copy as _copy
import math

import numpy as np

__all__ = ["ActivationStats", "DEFAULT_BINS"]

#: Paddle's PTQ uses 2048 histogram bins for KL/hist.
DEFAULT_BINS = 2048
#: elements histogrammed at a time: bounds update()'s temporaries (|x| and its bin indices)
#: to a few MB however large the activation is.
CHUNK = 1 << 20


class ActivationStats:
    """Streaming statistics of one tensor, fed with :meth:`update` per batch.

    Attributes (all plain data, hence picklable):
      bins: number of histogram bins (fixed).
      hist: int64 counts of ``|x|`` per bin; bin j covers ``[j*w, (j+1)*w)``
        with ``w = hist_range / bins`` (the top bin also holds ``|x| == R``).
      hist_range: current upper edge R (0.0 until a non-zero value is seen).
      batch_absmax: abs-max of each batch, in feed order.
      batch_sample_absmax_mean: per batch, the mean over samples (axis 0) of
        each sample's abs-max -- what Paddle's ``avg`` algorithm averages.
      min, max: running signed extrema (tell e.g. post-ReLU tensors apart).
      count: finite elements seen; nonfinite: NaN/inf elements skipped.
    """

    def __init__(self, bins: int = DEFAULT_BINS, range_hint: float | None = None,
                 histogram: bool = True):
        self.histogram_enabled = histogram   # off: maxima only (abs_max/min_max/avg)
        bins = int(bins)
        if bins < 2:
            raise ValueError(f"need at least 2 histogram bins, got {bins}")
        self.bins = bins
        self.hist = np.zeros(bins, dtype=np.int64)
        self.hist_range = 0.0
        if range_hint is not None and range_hint > 0 and math.isfinite(range_hint):
            self.hist_range = float(range_hint)
        self.batch_absmax: list[float] = []
        self.batch_sample_absmax_mean: list[float] = []
        self.min = math.inf
        self.max = -math.inf
        self.count = 0
        self.nonfinite = 0
        self._zeros_pending = 0   # exact zeros seen before any range exists

    # ------------------------------------------------------------------ feed
    def update(self, x) -> None:
        """Add one batch (axis 0 = samples).  Empty tensors are ignored.  Nothing of the
        batch is kept, and no temporary larger than :data:`CHUNK` elements is made."""
        x = np.asarray(x)
        if x.size == 0:
            return
        if x.dtype.kind not in "fiub":
            raise TypeError(f"activation statistics need numbers, got {x.dtype}")
        if x.dtype.kind != "f":
            x = x.astype(np.float32)
        rows = x.reshape(x.shape[0] if x.ndim else 1, -1)
        lo, hi = rows.min(axis=1), rows.max(axis=1)   # reductions: no copy of the batch
        per_sample = np.abs(np.maximum(hi, -lo))       # = |x|.max(axis=1), no -0.0
        bmax = float(per_sample.max())
        if not math.isfinite(bmax):                    # rare path: drop NaN/inf
            self._update_nonfinite(x)
            return
        self._add_maxima(bmax, per_sample, float(lo.min()), float(hi.max()), x.size)
        if self.histogram_enabled:
            self._add_histogram(rows.reshape(-1), bmax)

    def _update_nonfinite(self, x: np.ndarray) -> None:
        """Statistics of the finite values only (copies the batch; NaN/inf are rare)."""
        a = np.abs(x).reshape(x.shape[0] if x.ndim else 1, -1)
        finite = np.isfinite(a)
        self.nonfinite += int(a.size - np.count_nonzero(finite))
        kept = x[np.isfinite(x)]
        if kept.size == 0:
            return
        per_sample = np.where(finite, a, 0).max(axis=1)
        bmax = float(per_sample.max())
        self._add_maxima(bmax, per_sample, float(kept.min()), float(kept.max()), kept.size)
        if self.histogram_enabled:
            self._add_histogram(kept, bmax)

    def _add_maxima(self, bmax: float, per_sample: np.ndarray, lo: float, hi: float,
                    size: int) -> None:
        self.batch_absmax.append(bmax)
        self.batch_sample_absmax_mean.append(float(per_sample.mean()))
        self.min = min(self.min, lo)
        self.max = max(self.max, hi)
        self.count += int(size)

    def _add_histogram(self, flat: np.ndarray, bmax: float) -> None:
        """Count |flat| into the bins (growing the range first if bmax exceeds it)."""
        if bmax == 0.0:
            if self.hist_range == 0.0:
                self._zeros_pending += int(flat.size)
            else:
                self.hist[0] += flat.size
            return
        if self.hist_range == 0.0:
            self.hist_range = bmax
        elif bmax > self.hist_range:
            self._grow(bmax)
        if self._zeros_pending:
            self.hist[0] += self._zeros_pending
            self._zeros_pending = 0
        scale = flat.dtype.type(self.bins / self.hist_range)
        top = flat.dtype.type(self.bins - 1)
        for i in range(0, flat.size, CHUNK):
            # scale and clip |x| in place, in float (cheaper than clipping the ints), then
            # one cast and one bincount per chunk; integer counts add up exactly
            a = np.abs(flat[i:i + CHUNK])
            np.multiply(a, scale, out=a)
            np.minimum(a, top, out=a)
            self.hist += np.bincount(a.astype(np.intp), minlength=self.bins)

    def _grow(self, needed: float) -> None:
        """Multiply the range by 2**k (k minimal) and merge bins in groups of 2**k."""
        k = max(1, math.ceil(math.log2(needed / self.hist_range)))
        while self.hist_range * 2.0 ** k < needed:   # guard log2 rounding
            k += 1
        factor = 2 ** k
        if factor >= self.bins:
            merged = np.zeros(self.bins, dtype=np.int64)
            merged[0] = self.hist.sum()
        else:
            merged = np.bincount(np.arange(self.bins) // factor, weights=self.hist,
                                 minlength=self.bins).astype(np.int64)
        self.hist = merged
        self.hist_range *= factor

    # ------------------------------------------------------------ read back
    @property
    def empty(self) -> bool:
        return self.count == 0

    @property
    def abs_max(self) -> float:
        """Largest finite |x| seen (0.0 if nothing was seen)."""
        return max(self.batch_absmax) if self.batch_absmax else 0.0

    @property
    def bin_width(self) -> float:
        return self.hist_range / self.bins

    def edges(self) -> np.ndarray:
        """Bin edges, length bins+1."""
        return np.linspace(0.0, self.hist_range, self.bins + 1)

    def histogram(self) -> tuple[np.ndarray, float]:
        """(counts trimmed after the last non-empty bin, bin width).

        Why: growth leaves up to half the bins empty at the top; calibration
        searches should range over where the data is.
        """
        if self.hist_range == 0.0:
            return np.array([self.count], dtype=np.int64), 0.0
        nz = np.flatnonzero(self.hist)
        last = int(nz[-1]) + 1 if nz.size else 1
        return self.hist[:last].copy(), self.bin_width

    def copy(self) -> "ActivationStats":
        """Independent snapshot (e.g. before feeding more data in a search)."""
        return _copy.deepcopy(self)

    def __repr__(self) -> str:
        return (f"ActivationStats(bins={self.bins}, batches={len(self.batch_absmax)}, "
                f"count={self.count}, abs_max={self.abs_max:g}, range={self.hist_range:g})")
