"""Where the packaged data folders are: ``actc.grammar`` (grammar/) and ``actc.stdlib``
(passes/) when installed, else the folders beside the ``actc`` package in a source checkout."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

_FOLDERS = {"actc.grammar": "grammar", "actc.stdlib": "passes", "actc.configs": "configs"}


def data_dir(package: str):
    """A Traversable for the package's files (installed or source tree)."""
    try:
        return resources.files(package)
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[2] / _FOLDERS[package]
