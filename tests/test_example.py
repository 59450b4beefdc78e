"""The embedded digits example: package data present and consistent, and the
model reaches its recorded accuracy in Paddle."""
import json
import os

import numpy as np
import pytest

REQUIRED = ("model.pdmodel", "model.pdiparams", "calib.npz", "test.npz", "meta.json")


@pytest.fixture(scope="module")
def meta(example_dir):
    return json.loads((example_dir / "meta.json").read_text())


def test_files_present(example_dir):
    assert example_dir.is_dir()
    for f in REQUIRED:
        assert (example_dir / f).is_file(), f


def test_meta(meta):
    assert meta["feed"] == ["image"]
    assert len(meta["fetch"]) == 1
    assert 0.95 <= meta["fp32_test_accuracy"] <= 1.0
    assert isinstance(meta["seed"], int)
    assert meta["paddle_version"]


def test_data_arrays(example_dir, meta):
    for fn, lo, hi in (("calib.npz", 400, 600), ("test.npz", 300, 400)):
        with np.load(example_dir / fn) as z:
            assert set(z.files) == {"image", "label"}
            x, y = z["image"], z["label"]
        assert x.dtype == np.float32 and x.shape[1:] == (1, 8, 8)
        assert y.dtype == np.int64 and y.shape == (x.shape[0],)
        assert lo <= x.shape[0] <= hi
        assert 0.0 <= x.min() and x.max() <= 1.0  # pixel / 16
        assert set(np.unique(y)) == set(range(10))
    with np.load(example_dir / "test.npz") as z:
        assert z["image"].shape[0] == meta["n_test"]


def test_pdmodel_parses_without_paddle(example_dir):
    """The program is a plain legacy ProgramDesc (actc's own proto schema reads it)."""
    from actc.proto import framework_pb2

    prog = framework_pb2.ProgramDesc()
    prog.ParseFromString((example_dir / "model.pdmodel").read_bytes())
    ops = {op.type for b in prog.blocks for op in b.ops}
    assert {"conv2d", "depthwise_conv2d", "batch_norm", "relu", "pool2d", "elementwise_add",
            "matmul_v2", "feed", "fetch"} <= ops
    assert len(prog.blocks) == 1


@pytest.mark.paddle
def test_accuracy_in_paddle(example_dir, meta):
    pytest.importorskip("paddle")
    assert os.environ.get("FLAGS_enable_pir_api") == "0"
    import paddle

    with np.load(example_dir / "test.npz") as z:
        x, y = z["image"], z["label"]
    paddle.enable_static()
    try:
        exe = paddle.static.Executor(paddle.CPUPlace())
        scope = paddle.static.Scope()
        with paddle.static.scope_guard(scope):
            prog, feeds, fetches = paddle.static.load_inference_model(
                str(example_dir / "model"), exe
            )
            assert list(feeds) == meta["feed"]
            assert [v.name for v in fetches] == meta["fetch"]
            (logits,) = exe.run(prog, feed={"image": x}, fetch_list=fetches)
    finally:
        paddle.disable_static()
    logits = np.asarray(logits)
    assert logits.shape == (len(y), 10)
    acc = float((logits.argmax(-1) == y).mean())
    assert acc >= 0.95
    # same program, same data, same CPU kernels: identical predictions
    assert acc == pytest.approx(meta["fp32_test_accuracy"], abs=1e-9)
