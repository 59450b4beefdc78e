"""Where the packaged data folders are: ``actc.grammar`` (grammar/) and ``actc.stdlib``
(passes/) when installed, else the folders beside the ``actc`` package in a source checkout."""
from __future__ import annotations

import os
import stat
from importlib import resources
from pathlib import Path

from actc.dsl.limits import MAX_RECIPE_BYTES

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


class FileProblem(Exception):
    """Why a recipe file cannot be read (the caller adds where)."""


def read_recipe(path: str | Path, *, need_suffix: bool) -> str:
    """A recipe file's text, read bounded: a regular file of at most MAX_RECIPE_BYTES, UTF-8.
    With ``need_suffix`` (imports) the file, links resolved, must be ``.actc``: a recipe from
    elsewhere must not make actc read, or echo in an error, a file that is not a recipe."""
    real = Path(os.path.realpath(path))
    if need_suffix and real.suffix != ".actc":
        raise FileProblem("not a .actc file")
    data = _read_regular(real)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise FileProblem("not UTF-8 text") from None


def _read_regular(path: Path) -> bytes:
    """At most MAX_RECIPE_BYTES + 1 bytes of a regular file. O_NONBLOCK and fstat on the open
    descriptor: a FIFO or device put in the file's place neither blocks nor gets read."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise FileProblem(e.strerror or str(e)) from None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise FileProblem("not a regular file")
        try:
            data = fh.read(MAX_RECIPE_BYTES + 1)
        except OSError as e:
            raise FileProblem(e.strerror or str(e)) from None
    if len(data) > MAX_RECIPE_BYTES:
        raise FileProblem(f"larger than {MAX_RECIPE_BYTES} bytes")
    return data
