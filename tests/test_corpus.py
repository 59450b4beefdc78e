"""The exported corpus loads in Paddle, holds the op types the compiler is
tested against, and runs."""
import os
import time

import numpy as np
import pytest

import corpus as C

pytestmark = pytest.mark.paddle

# op types each model's program must contain (a subset, not the full histogram)
CONV_NET = {"feed", "fetch", "conv2d", "batch_norm", "pool2d", "matmul_v2"}
EXPECTED_OPS = {
    "resnet18": CONV_NET | {"relu", "elementwise_add", "flatten_contiguous_range"},
    "resnet50": CONV_NET | {"relu", "elementwise_add"},
    "mobilenet_v1": CONV_NET | {"depthwise_conv2d", "relu"},
    "mobilenet_v2": CONV_NET | {"depthwise_conv2d", "relu6", "elementwise_add"},
    "mobilenet_v3_small": CONV_NET
    | {"depthwise_conv2d", "hard_swish", "hard_sigmoid", "elementwise_mul"},
    "shufflenet_v2_x0_25": CONV_NET
    | {"depthwise_conv2d", "concat", "split", "transpose2", "reshape2"},
    "densenet121": CONV_NET | {"concat", "relu"},
    "vgg11": {"conv2d", "pool2d", "relu", "matmul_v2", "dropout"},
    "transformer": {"lookup_table_v2", "layer_norm", "matmul_v2", "softmax", "einsum",
                    "elementwise_add", "transpose2", "reshape2"},
    "lstm": {"lookup_table_v2", "rnn", "matmul_v2"},
    "control_flow": {"while", "conditional_block", "select_input", "logical_not", "mul"},
    "digits": {"conv2d", "depthwise_conv2d", "batch_norm", "relu", "pool2d",
               "elementwise_add", "matmul_v2", "flatten_contiguous_range"},
}
OUT_DIM = {n: 1000 for n in C.VISION} | {"transformer": 4, "lstm": 5, "control_flow": 10,
                                          "digits": 10}


def test_expectations_cover_corpus():
    assert list(EXPECTED_OPS) == list(C.CORPUS)


@pytest.fixture(scope="module")
def static_paddle():
    assert os.environ.get("FLAGS_enable_pir_api") == "0"
    import paddle

    paddle.enable_static()
    yield paddle
    paddle.disable_static()


def _load(paddle, model_dir):
    exe = paddle.static.Executor(paddle.CPUPlace())
    scope = paddle.static.Scope()
    with paddle.static.scope_guard(scope):
        prog, feeds, fetches = paddle.static.load_inference_model(str(model_dir / "model"), exe)
    return exe, scope, prog, feeds, fetches


@pytest.mark.parametrize("name", C.CORPUS)
def test_model_loads_and_has_ops(corpus, static_paddle, name):
    paddle = static_paddle
    d = corpus[name]
    assert (d / "model.pdmodel").stat().st_size > 0
    assert (d / "model.pdiparams").stat().st_size > 0
    exe, scope, prog, feeds, fetches = _load(paddle, d)
    ops = [op.type for b in prog.blocks for op in b.ops]
    missing = EXPECTED_OPS[name] - set(ops)
    assert not missing, f"{name}: missing ops {sorted(missing)}; has {sorted(set(ops))}"
    if name == "control_flow":
        assert prog.num_blocks > 1
    else:
        assert prog.num_blocks == 1
    for op in prog.global_block().ops:
        if op.type == "batch_norm":
            assert op.attr("is_test") is True
    meta = C.load_meta(d)
    names = [f["name"] for f in meta["feeds"]] if "feeds" in meta else meta["feed"]
    assert list(feeds) == names


@pytest.mark.parametrize("name", C.CORPUS)
def test_model_runs(corpus, static_paddle, name):
    paddle = static_paddle
    d = corpus[name]
    exe, scope, prog, feeds, fetches = _load(paddle, d)
    gb = prog.global_block()
    rng = np.random.default_rng(0)
    feed = {}
    for n in feeds:
        v = gb.var(n)
        shape = [2 if s is None or s < 0 else s for s in v.shape]
        if v.dtype == paddle.int64:
            feed[n] = rng.integers(0, 100, size=shape).astype("int64")
        else:
            feed[n] = rng.standard_normal(shape).astype("float32")
    with paddle.static.scope_guard(scope):
        (out,) = exe.run(prog, feed=feed, fetch_list=fetches)
    out = np.asarray(out)
    assert out.shape == (2, OUT_DIM[name])
    assert np.isfinite(out).all()


def test_corpus_is_cached(corpus):
    """A second export_corpus call reuses the cache (no re-export)."""
    d = corpus["resnet18"] / "model.pdiparams"
    mtime = d.stat().st_mtime_ns
    t0 = time.time()
    again = C.export_corpus(corpus["resnet18"].parent)
    assert time.time() - t0 < 5
    assert again == corpus
    assert d.stat().st_mtime_ns == mtime


def test_unknown_name_rejected(tmp_path):
    with pytest.raises(ValueError):
        C.export_corpus(tmp_path, ["no_such_model"])


def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("ACTC_CORPUS_DIR", str(tmp_path))
    assert C.default_cache_dir() == tmp_path
    monkeypatch.delenv("ACTC_CORPUS_DIR")
    assert C.default_cache_dir().name.startswith("paddle-")
