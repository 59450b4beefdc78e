"""Atomic output: an output appears whole or not at all.

A new output directory is built as a hidden temporary directory beside it and renamed into
place; files into an existing directory are written to temporaries beside their targets and
renamed. SIGINT and SIGTERM are held back across the renames, so an interruption lands before
(nothing new) or after (all of it), never between. ``WRITTEN`` records what was completed, so
an interruption can be reported truthfully."""
from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from actc.errors import ActcError

Writer = Callable[[BinaryIO], object]


@dataclass(frozen=True)
class Written:
    """One completed output: what it is (``the model``) and where."""

    what: str
    where: Path


# Outputs completed by this process, in order (read by the CLI when it is interrupted).
WRITTEN: list[Written] = []

_HELD = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def signals_held() -> Iterator[None]:
    """Delay SIGINT/SIGTERM until the block is done (they are delivered right after)."""
    if threading.current_thread() is not threading.main_thread() or \
            not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@contextmanager
def signals_restored() -> Iterator[None]:
    """Re-install this process's SIGINT/SIGTERM handlers after the block: Paddle's import puts
    its own C-level SIGTERM handler in place, which would kill actc without any cleanup."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {sig: signal.getsignal(sig) for sig in _HELD}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            if handler is not None:
                signal.signal(sig, handler)


class _Staging:
    """Temporaries for one write: a hidden directory per new target directory, a hidden file
    per target in an existing one; ``commit`` renames them all, ``discard`` removes them."""

    def __init__(self, umask: int):
        self.umask = umask
        self.fresh_dirs: dict[Path, Path] = {}   # target dir -> its temporary directory
        self.made: list[Path] = []               # ancestors created for a new directory
        self.files: list[tuple[str, Path]] = []  # (temporary file, target) in existing dirs
        self.committed = False

    def path_for(self, target: Path) -> Path:
        """Where to write ``target`` now."""
        parent = target.parent
        if parent in self.fresh_dirs:
            return self.fresh_dirs[parent] / target.name
        if not parent.exists():
            self._make_ancestors(parent.parent)
            tmp = Path(tempfile.mkdtemp(prefix=f".{parent.name}.", suffix=".tmp",
                                        dir=parent.parent))
            os.chmod(tmp, 0o777 & ~self.umask)
            self.fresh_dirs[parent] = tmp
            return tmp / target.name
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent)
        os.close(fd)
        self.files.append((tmp, target))
        return Path(tmp)

    def _make_ancestors(self, directory: Path) -> None:
        missing = []
        while not directory.exists():
            missing.append(directory)
            directory = directory.parent
        for d in reversed(missing):
            d.mkdir()
            self.made.append(d)

    def commit(self) -> None:
        for target, tmp in self.fresh_dirs.items():
            os.rename(tmp, target)  # fails if something appeared there meanwhile
        for tmp, target in self.files:
            os.replace(tmp, target)
        self.committed = True

    def discard(self) -> None:
        if self.committed:
            return
        for tmp, _ in self.files:
            if os.path.exists(tmp):
                os.unlink(tmp)
        for tmp in self.fresh_dirs.values():
            shutil.rmtree(tmp, ignore_errors=True)
        for d in reversed(self.made):
            try:
                d.rmdir()
            except OSError:
                pass


def write_files(files: list[tuple[Path, Writer]], *, error_path: str | Path,
                what: str = "the output") -> None:
    """Write each (target, writer) pair; all targets appear together or none does."""
    umask = os.umask(0)  # mkstemp makes 0600 files; give outputs the usual umask mode
    os.umask(umask)
    staging = _Staging(umask)
    try:
        for target, write in files:
            path = staging.path_for(Path(target))
            with open(path, "wb") as fh:
                write(fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(path, 0o666 & ~umask)
        with signals_held():
            staging.commit()
            wheres = [Path(files[0][0])] if len(files) == 1 else \
                dict.fromkeys(Path(t).parent for t, _ in files)
            WRITTEN.extend(Written(what, where) for where in wheres)
    except OSError as e:
        raise ActcError(f"cannot write {what}: {e.strerror or e}", path=error_path) from None
    finally:
        staging.discard()


def write_atomic(out: str | Path, data: bytes) -> None:
    """One file, atomically."""
    out = Path(out)
    write_files([(out, lambda fh: fh.write(data))], error_path=out)
