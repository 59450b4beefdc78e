"""The test corpus: Paddle inference models in the legacy ``.pdmodel`` format.

``export_corpus(cache_dir)`` makes sure ``cache_dir/<name>/`` holds
``model.pdmodel``, ``model.pdiparams`` and ``meta.json`` for every corpus
model, exporting the missing ones in a subprocess (``tests/_export_models.py``
with ``FLAGS_enable_pir_api=0``) so the calling process never has to import
paddle.  Exports are cached; a model is re-exported when the exporter script
changes (its hash is recorded in each ``meta.json``).

``digits`` is not exported: it is copied from the embedded example
(``actc/example/digits``), together with its ``calib.npz``/``test.npz``.

Cache location: ``$ACTC_CORPUS_DIR`` if set, else
``~/.cache/actc/corpus/paddle-<paddle version>``.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXPORTER = HERE / "_export_models.py"
REPO = HERE.parent

VISION = (
    "resnet18",
    "resnet50",
    "mobilenet_v1",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "shufflenet_v2_x0_25",
    "densenet121",
    "vgg11",
)
CORPUS: tuple[str, ...] = VISION + ("transformer", "lstm", "control_flow", "digits")

MODEL_FILES = ("model.pdmodel", "model.pdiparams")


def paddle_version() -> str | None:
    """Installed paddle version, read from package metadata (paddle is not imported)."""
    for dist in ("paddlepaddle", "paddlepaddle-gpu"):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def default_cache_dir() -> Path:
    env = os.environ.get("ACTC_CORPUS_DIR")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "actc" / "corpus" / f"paddle-{paddle_version() or 'none'}"


def exporter_hash() -> str:
    return hashlib.sha256(EXPORTER.read_bytes()).hexdigest()[:16]


def example_dir() -> Path:
    """The embedded example's folder, without importing actc if it is not importable."""
    try:
        from actc.example import EXAMPLE_DIR

        return Path(EXAMPLE_DIR)
    except ImportError:
        return REPO / "actc" / "example" / "digits"


def _is_current(d: Path, name: str) -> bool:
    if not all((d / f).is_file() for f in MODEL_FILES):
        return False
    if name == "digits":
        src = example_dir()
        return all(
            (d / f).is_file() and (d / f).read_bytes() == (src / f).read_bytes()
            for f in MODEL_FILES + ("meta.json",)
        )
    try:
        meta = json.loads((d / "meta.json").read_text())
    except (OSError, ValueError):
        return False
    return meta.get("exporter") == exporter_hash()


@contextlib.contextmanager
def _locked(cache_dir: Path):
    """Serialise exporters sharing a cache dir (pytest-xdist workers, parallel CI jobs)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        yield
        return
    with open(cache_dir / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _copy_digits(cache_dir: Path) -> None:
    src = example_dir()
    missing = [f for f in MODEL_FILES if not (src / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"embedded example is missing {missing} in {src}; "
            "run `python -m actc.example.make_digits`"
        )
    tmp = cache_dir / f".tmp-digits-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp, ignore=shutil.ignore_patterns("__pycache__"))
    final = cache_dir / "digits"
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)


def _run_exporter(cache_dir: Path, names: list[str], timeout: float) -> None:
    env = dict(os.environ)
    env["FLAGS_enable_pir_api"] = "0"
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("GLOG_minloglevel", "2")
    cmd = [sys.executable, str(EXPORTER), str(cache_dir), *names]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
        raise RuntimeError(
            f"exporting {names} failed (exit {proc.returncode}):\n{tail}"
        )


def export_corpus(
    cache_dir: Path | None = None,
    names=None,
    *,
    timeout: float = 900,
    verbose: bool = False,
) -> dict[str, Path]:
    """Make sure the corpus models exist under *cache_dir*; return ``{name: model_dir}``.

    Each ``model_dir`` holds ``model.pdmodel``, ``model.pdiparams`` and
    ``meta.json`` (feeds with shape/dtype, fetch names, op histogram, number of
    blocks, export seconds, file sizes).  Missing or stale models are exported
    in one subprocess; present ones are reused.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    names = list(CORPUS if names is None else names)
    unknown = sorted(set(names) - set(CORPUS))
    if unknown:
        raise ValueError(f"unknown corpus models {unknown}; known: {list(CORPUS)}")
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _locked(cache_dir):
        todo = [n for n in names if not _is_current(cache_dir / n, n)]
        for n in todo:
            shutil.rmtree(cache_dir / n, ignore_errors=True)
        if "digits" in todo:
            _copy_digits(cache_dir)
        to_export = [n for n in todo if n != "digits"]
        if to_export:
            t0 = time.time()
            _run_exporter(cache_dir, to_export, timeout)
            if verbose:
                print(f"exported {to_export} in {time.time() - t0:.1f}s", file=sys.stderr)
    out = {n: cache_dir / n for n in names}
    for n, d in out.items():
        for f in MODEL_FILES:
            if not (d / f).is_file():
                raise RuntimeError(f"corpus model {n}: {d / f} missing after export")
    return out


def load_meta(model_dir: Path) -> dict:
    return json.loads((Path(model_dir) / "meta.json").read_text())


if __name__ == "__main__":  # python tests/corpus.py [CACHE_DIR] -- export and summarise
    d = Path(sys.argv[1]) if len(sys.argv) > 1 else default_cache_dir()
    t0 = time.time()
    res = export_corpus(d, verbose=True)
    print(f"{d}  ({time.time() - t0:.1f}s)")
    for n, p in res.items():
        sizes = {f: (p / f).stat().st_size for f in MODEL_FILES}
        print(f"{n:22s} {sizes['model.pdmodel']:>9d} {sizes['model.pdiparams']:>11d}")
