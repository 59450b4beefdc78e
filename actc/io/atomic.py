"""Atomic output: every file is written to a temporary beside it and renamed into place only
once all of them are complete, so an error or Ctrl-C never leaves a half-written output."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

from actc.errors import ActcError

Writer = Callable[[BinaryIO], object]


def write_files(files: list[tuple[Path, Writer]], *, error_path: str | Path,
                what: str = "the output") -> None:
    """Write each (target, writer) pair; all targets appear together or none does."""
    umask = os.umask(0)  # mkstemp makes 0600 files; give outputs the usual umask mode
    os.umask(umask)
    tmps: list[str] = []
    try:
        for target, write in files:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                                       dir=target.parent)
            tmps.append(tmp)
            with os.fdopen(fd, "wb") as fh:
                write(fh)
            os.chmod(tmp, 0o666 & ~umask)
        for tmp, (target, _) in zip(tmps, files):
            os.replace(tmp, target)
    except OSError as e:
        raise ActcError(f"cannot write {what}: {e.strerror or e}", path=error_path) from None
    finally:
        for tmp in tmps:
            if os.path.exists(tmp):
                os.unlink(tmp)


def write_atomic(out: str | Path, data: bytes) -> None:
    """One file, atomically."""
    out = Path(out)
    write_files([(out, lambda fh: fh.write(data))], error_path=out)
