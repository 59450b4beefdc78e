"""Shared fixtures.  Paddle must see FLAGS_enable_pir_api=0 before it is first
imported, or it reads and writes PIR JSON instead of the legacy .pdmodel."""
import os

os.environ.setdefault("FLAGS_enable_pir_api", "0")

import importlib.util
from pathlib import Path

import pytest

import corpus as _corpus


def paddle_available() -> bool:
    return importlib.util.find_spec("paddle") is not None


@pytest.fixture(scope="session")
def corpus() -> dict[str, Path]:
    """``{name: model_dir}`` for every model in ``corpus.CORPUS`` (exported once, cached).

    Cache: ``$ACTC_CORPUS_DIR`` or ``~/.cache/actc/corpus/paddle-<version>``.
    """
    if not paddle_available():
        pytest.skip("paddlepaddle is not installed: the test model corpus cannot be exported "
                    "(pip install 'actc[paddle]')")
    return _corpus.export_corpus(_corpus.default_cache_dir())


@pytest.fixture(scope="session")
def example_dir() -> Path:
    """The embedded digits example (model.pdmodel/.pdiparams, calib.npz, test.npz, meta.json)."""
    from actc.example import EXAMPLE_DIR

    return Path(EXAMPLE_DIR)


@pytest.fixture(scope="session")
def test_set(example_dir):
    """The example's held-out images and labels."""
    import numpy as np

    with np.load(example_dir / "test.npz") as z:
        return z["image"], z["label"]


#: epochs the tests train the MobileNetV2-style digits model for (about 97-98% top-1; the
#: benchmarks train 40).
MBV2_TEST_EPOCHS = 6


@pytest.fixture(scope="session")
def mbv2_digits() -> Path:
    """A MobileNetV2-style model trained on digits by ``benchmarks/digits_models.py`` (in a
    subprocess: it trains in dygraph), with train.npz / test.npz; cached like the corpus."""
    if not paddle_available():
        pytest.skip("paddlepaddle is not installed: the MobileNetV2-style model cannot be trained")
    import subprocess
    import sys

    cache = _corpus.default_cache_dir()
    work = cache.with_name(f"{cache.name}-mbv2-e{MBV2_TEST_EPOCHS}")
    out = work / "mbv2_digits"
    if not (out / "meta.json").exists():
        script = Path(__file__).resolve().parent.parent / "benchmarks" / "digits_models.py"
        subprocess.run([sys.executable, str(script), "--work", str(work), "--epochs",
                        str(MBV2_TEST_EPOCHS)], check=True, capture_output=True, timeout=900)
    return out
