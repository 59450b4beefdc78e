"""Progress bars for long work (calibration, search, evaluation), one style everywhere.

Bars go to stderr only when it is a terminal, so logs and CI output stay clean.
"""
from __future__ import annotations

from tqdm import tqdm


def progress(iterable, *, desc: str, unit: str = "batch", total=None):
    return tqdm(iterable, desc=desc, unit=unit, total=total, leave=False, disable=None,
                dynamic_ncols=True)
