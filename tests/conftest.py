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
