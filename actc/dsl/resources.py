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


def bundled_recipe(name: str | Path) -> Path:
    """``ptq`` -> the packaged configs/ptq.actc when no file of that name exists here."""
    path = Path(name)
    if path.exists() or path.suffix or len(path.parts) != 1:
        return path
    candidate = data_dir("actc.configs") / f"{name}.actc"
    return Path(str(candidate)) if candidate.is_file() else path
