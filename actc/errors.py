"""User-facing errors.

Anything a user can fix (a bad file, a bad recipe, bad data) is raised as ``ActcError``: the CLI
prints it as one line and exits with code 2, with a traceback only under ``--debug``.
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Iterable


class ActcError(Exception):
    """A problem in the user's input, reported as ``FILE[:LINE:COL]: error: MESSAGE``."""

    exit_code = 2

    def __init__(self, message: str, *, path: str | Path | None = None,
                 line: int | None = None, col: int | None = None, detail: str | None = None):
        super().__init__(message)
        self.message = message
        self.path = str(path) if path is not None else None
        self.line = line
        self.col = col
        # Extra lines (e.g. the source line with a caret) shown under the one-line message.
        self.detail = detail

    def location(self) -> str:
        if self.path is None:
            return ""
        where = self.path
        if self.line is not None:
            where += f":{self.line}"
            if self.col is not None:
                where += f":{self.col}"
        return where

    def __str__(self) -> str:
        loc = self.location()
        return f"{loc}: error: {self.message}" if loc else f"error: {self.message}"


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A ' (did you mean 'x'?)' suffix, or '' when nothing is close: a case-insensitive
    exact match first (``kl`` -> ``KL``), then difflib."""
    choices = [str(c) for c in choices]
    for c in choices:
        if c.lower() == str(word).lower() and c != str(word):
            return f" (did you mean '{c}'?)"
    close = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
