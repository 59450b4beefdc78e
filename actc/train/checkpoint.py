"""Training checkpoints: every persistable var of the training scope (weights, running
statistics, quantizer state, optimizer accumulators), the schedule and the best weights so
far, written atomically so an interruption never leaves a torn checkpoint."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from actc.errors import ActcError
from actc.io.atomic import write_files

STATE = "state.npz"
BEST = "best.npz"
META = "meta.json"


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **{f"v{i}": a for i, a in enumerate(arrays.values())},
             __names__=np.array(list(arrays), dtype=object))
    return buf.getvalue()


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=True) as z:
        names = list(z["__names__"])
        return {n: z[f"v{i}"] for i, n in enumerate(names)}


def save(directory: Path, state: dict, best: dict | None, meta: dict) -> None:
    files = [(directory / STATE, lambda fh, b=_npz_bytes(state): fh.write(b)),
             (directory / META, lambda fh, b=json.dumps(meta, indent=1).encode(): fh.write(b))]
    if best is not None:
        files.insert(1, (directory / BEST, lambda fh, b=_npz_bytes(best): fh.write(b)))
    write_files(files, error_path=directory, what="the training checkpoint")


def load(directory: Path) -> tuple[dict, dict | None, dict]:
    meta_path = directory / META
    if not meta_path.is_file():
        raise ActcError("--resume: no training checkpoint here (it is written every "
                        "checkpoint_iter iterations and on Ctrl-C)", path=directory)
    try:
        meta = json.loads(meta_path.read_text())
        state = _read_npz(directory / STATE)
        best = _read_npz(directory / BEST) if meta.get("best_iter") is not None and \
            (directory / BEST).is_file() else None
    except (OSError, ValueError, KeyError) as e:
        raise ActcError(f"--resume: the checkpoint cannot be read ({e})", path=directory) \
            from None
    return state, best, meta
