"""Progress bars for long work (calibration, search, reconstruction), one style everywhere.

Bars go to stderr only when it is a terminal, so logs and CI output stay clean.
"""
from __future__ import annotations

from tqdm import tqdm


def progress(iterable=None, *, desc: str, unit: str = "batch", total=None,
             enabled: bool = True):
    """A tqdm bar over ``iterable`` (or a manual one with ``total``)."""
    return tqdm(iterable, desc=desc, unit=unit, total=total, leave=False,
                disable=None if enabled else True, dynamic_ncols=True)
