"""The embedded example: a tiny CNN trained on scikit-learn's digits.

``EXAMPLE_DIR`` is the folder holding ``model.pdmodel``, ``model.pdiparams``,
``calib.npz``, ``test.npz`` and ``meta.json`` (package data; regenerate with
``python -m actc.example.make_digits``).
"""
from __future__ import annotations

from importlib.resources import files
from pathlib import Path

__all__ = ["EXAMPLE_DIR"]

# The package is installed as ordinary files (never zipped), so the resource
# Traversable is a real filesystem path.
EXAMPLE_DIR: Path = Path(str(files(__name__).joinpath("digits")))


ALIAS = "example"


def model_path(arg: str) -> str:
    """'example' names the model shipped with the package, unless a path of that name exists."""
    from pathlib import Path

    if arg == ALIAS and not Path(arg).exists():
        return str(EXAMPLE_DIR)
    return arg
