"""actc export: Paddle programs as ONNX, checked against Paddle in onnxruntime.

fp32: every corpus vision model, the transformer models and the example match Paddle to 1e-4
relative; int8 (actc's PTQ output): the QDQ graph's structure, and SNR vs fp32 / top-1 the
same as the Paddle int8 model; pruned programs; unmapped ops and bad outputs are one-line
errors with nothing written."""
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from actc.cli.main import main  # noqa: E402
from actc.example import model_path  # noqa: E402
from actc.export.onnx import build_model, calibration_batches, to_onnx_bytes  # noqa: E402
from actc.io.model import load_model  # noqa: E402
from corpus import VISION  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "tfm_encoder"
EXAMPLE = ROOT / "actc" / "example" / "digits"


def session(data: bytes):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])


def random_feeds(program, batch: int = 1) -> dict:
    rng = np.random.default_rng(0)
    feeds = {}
    for name in program.feed_names():
        var = program.var(name)
        shape = [batch if d < 0 else d for d in var.shape]
        if var.dtype.startswith("int"):
            feeds[name] = rng.integers(0, 20, size=shape).astype(var.dtype)
        else:
            feeds[name] = rng.standard_normal(shape).astype("float32")
    return feeds


def paddle_run(program, feeds):
    pytest.importorskip("paddle")
    from actc.runtime.executor import Runner

    return Runner(program, "cpu").run(feeds)


def assert_matches_paddle(program, rtol=1e-4, batch=1):
    feeds = random_feeds(program, batch)
    want = paddle_run(program, feeds)
    got = session(to_onnx_bytes(program)).run(None, feeds)
    assert len(got) == len(want)
    for w, g in zip(want, got):
        assert g.shape == w.shape
        err = np.abs(w - g).max() / max(np.abs(w).max(), 1e-12)
        assert err <= rtol, err


def snr_db(ref, x):
    return 10 * np.log10((ref ** 2).sum() / ((ref - x) ** 2).sum())


# ---------------------------------------------------------------------------- fp32 numerics
@pytest.mark.paddle
@pytest.mark.parametrize("name", VISION + ("transformer",))
def test_corpus_fp32_matches_paddle(corpus, name):
    program, _ = load_model(corpus[name])
    assert_matches_paddle(program)


@pytest.mark.paddle
@pytest.mark.parametrize("path", [FIXTURE, "example"])
def test_fixture_fp32_matches_paddle(path):
    program, _ = load_model(model_path(str(path)))
    assert_matches_paddle(program, batch=3)


# ------------------------------------------------------------------------------------ int8
@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """The example through ptq, prune_channels, sparsify and qat4 (paddle needed to
    compile)."""
    pytest.importorskip("paddle")
    root = tmp_path_factory.mktemp("export")
    out = {}
    for recipe in ("ptq", "prune_channels", "sparsify", "qat4"):
        out[recipe] = root / recipe
        assert main(["compile", "example", "--recipe", recipe, "-o", str(out[recipe]), "-q",
                     "--no-eval"]) == 0
    return out


@pytest.fixture(scope="module")
def test_data():
    with np.load(EXAMPLE / "test.npz") as z:
        return z["image"], z["label"]


def _onnx(program, **kw):
    model, _ = build_model(program, **kw)
    return model


@pytest.mark.paddle
def test_int8_graph_structure(compiled):
    program, _ = load_model(compiled["ptq"])
    model = _onnx(program)
    types = Counter(n.op_type for n in model.graph.node)
    act_q = [op for op in program.ops("quantize_linear")]
    weight_dq = [op for op in program.ops("dequantize_linear")
                 if op.input("X")[0] in program.params]
    assert types["QuantizeLinear"] == len(act_q) == 6
    assert "BatchNormalization" not in types
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    weights = biases = 0
    for n in model.graph.node:
        if n.op_type == "DequantizeLinear" and n.input[0] in inits:
            codes = inits[n.input[0]]
            axis = next((a.i for a in n.attribute if a.name == "axis"), None)
            if codes.dtype == np.int8:
                weights += 1
                assert axis is not None and inits[n.input[1]].shape == (codes.shape[axis],)
                assert not inits[n.input[2]].any()
            else:
                assert codes.dtype == np.int32  # conv bias on step x_step * w_step
                biases += 1
        if n.op_type in ("QuantizeLinear", "DequantizeLinear") and n.input[0] not in inits:
            zp = inits[n.input[2]]
            assert zp.dtype == np.uint8 and int(zp) == 128
    assert weights == len(weight_dq) == 6
    assert biases == types["Conv"] == 4
    for n in model.graph.node:  # every Conv/MatMul reads dequantized input and weight
        if n.op_type in ("Conv", "MatMul"):
            assert all(producers[i].op_type == "DequantizeLinear" for i in n.input)


@pytest.mark.paddle
def test_int8_accuracy_same_as_paddle(compiled, test_data):
    x, y = test_data
    fp32, _ = load_model(model_path("example"))
    int8, _ = load_model(compiled["ptq"])
    ref = paddle_run(fp32, {"image": x})[0]
    paddle_q = paddle_run(int8, {"image": x})[0]
    exact = session(to_onnx_bytes(int8)).run(None, {"image": x})[0]
    calib = calibration_batches(int8, EXAMPLE / "calib.npz")
    fast = session(to_onnx_bytes(int8, calib=calib)).run(None, {"image": x})[0]
    top1 = lambda out: (out.argmax(1) == y).mean() * 100  # noqa: E731
    assert abs(snr_db(ref, exact) - snr_db(ref, paddle_q)) < 0.5
    assert abs(top1(exact) - top1(paddle_q)) <= 0.1
    assert abs(top1(fast) - top1(paddle_q)) <= 0.1
    assert snr_db(ref, fast) > snr_db(ref, paddle_q) - 2.0  # the added quantizers cost < 2 dB
    int8_act = session(to_onnx_bytes(int8, activations="int8")).run(None, {"image": x})[0]
    np.testing.assert_allclose(int8_act, exact, atol=1e-5)  # the shifted grid is the same


@pytest.mark.paddle
def test_4bit_mirror_same_top1(compiled, test_data, capsys, tmp_path):
    """W4A4: codes clipped to Paddle's [-8, 7] after QuantizeLinear, the input quantizer
    scaled as Paddle does (pixels on rounding ties), biases on a fine int32 step (else
    onnxruntime quantizes them on the coarse x_step * w_step)."""
    x, y = test_data
    int4, _ = load_model(compiled["qat4"])
    paddle_q = paddle_run(int4, {"image": x})[0]
    got = session(to_onnx_bytes(int4)).run(None, {"image": x})[0]
    assert (got.argmax(1) == paddle_q.argmax(1)).all()
    assert snr_db(paddle_q, got) > 30
    out = tmp_path / "x.onnx"
    assert main(["export", str(compiled["qat4"]), "-o", str(out), "--data",
                 str(EXAMPLE / "calib.npz")]) == 2
    assert "4 bits" in capsys.readouterr().err and not out.exists()


@pytest.mark.paddle
def test_completed_qdq_runs_integer_kernels(compiled, tmp_path):
    """With --data every conv but the tiny stem becomes QLinearConv in onnxruntime (what
    makes it fast)."""
    int8, _ = load_model(compiled["ptq"])
    out = tmp_path / "q.onnx"
    assert main(["export", str(compiled["ptq"]), "-o", str(out), "--data",
                 str(EXAMPLE / "calib.npz")]) == 0
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    ort.InferenceSession(str(out), so, providers=["CPUExecutionProvider"])
    types = Counter(n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node)
    # the 1-channel 3x3 stem on the input runs float (int8 does not pay at K = 9)
    assert types["QLinearConv"] == 3 and types["Conv"] == 1, types


@pytest.mark.paddle
@pytest.mark.parametrize("name", ["shufflenet_v2_x0_25", "mobilenet_v3_small", "resnet50"])
def test_corpus_int8_same_snr_as_paddle(corpus, name, tmp_path):
    """PTQ on random data (abs_max: quick), then the exact mirror against Paddle's int8 model
    (concat/split/channel shuffle, hard_swish and the SE multiply, bottleneck residuals), and
    the completed graph builds and stays close."""
    rng = np.random.default_rng(0)
    data = tmp_path / "calib.npz"
    np.savez(data, image=rng.standard_normal((8, 3, 224, 224)).astype("float32"))
    out = tmp_path / "q"
    assert main(["compile", str(corpus[name]), "--recipe", "ptq", "--data", str(data),
                 "--set", "batch_size=4", "--set", "batch_nums=2", "--set", "algo=abs_max",
                 "-o", str(out), "-q", "--no-eval"]) == 0
    fp32, _ = load_model(corpus[name])
    int8, _ = load_model(out)
    x = {"image": np.random.default_rng(5).standard_normal((2, 3, 224, 224)).astype("float32")}
    ref, paddle_q = paddle_run(fp32, x)[0], paddle_run(int8, x)[0]
    exact = session(to_onnx_bytes(int8)).run(None, x)[0]
    assert abs(snr_db(ref, exact) - snr_db(ref, paddle_q)) < 0.5
    completed = session(to_onnx_bytes(int8, calib=calibration_batches(int8, data, 4, 2)))
    assert snr_db(ref, completed.run(None, x)[0]) > snr_db(ref, paddle_q) - 3.0


@pytest.mark.paddle
def test_int8_transformer_same_snr_as_paddle(tmp_path):
    """Quantized matmul_v2 (per-column int8 weights, axis 1, trans_y) on the encoder."""
    out = tmp_path / "tq"
    assert main(["compile", str(FIXTURE), "--recipe", "ptq", "--data",
                 str(FIXTURE / "train.npz"), "-o", str(out), "-q", "--no-eval"]) == 0
    with np.load(FIXTURE / "test.npz") as z:
        x, y = z["tokens"][:200], z["label"][:200]
    fp32, _ = load_model(FIXTURE)
    int8, _ = load_model(out)
    ref = paddle_run(fp32, {"tokens": x})[0]
    paddle_q = paddle_run(int8, {"tokens": x})[0]
    exact = session(to_onnx_bytes(int8)).run(None, {"tokens": x})[0]
    assert abs(snr_db(ref, exact) - snr_db(ref, paddle_q)) < 0.5
    assert (exact.argmax(1) == y).mean() == (paddle_q.argmax(1) == y).mean()


@pytest.mark.paddle
@pytest.mark.parametrize("recipe", ["prune_channels", "sparsify"])
def test_pruned_matches_paddle(compiled, recipe):
    program, _ = load_model(compiled[recipe])
    assert_matches_paddle(program, batch=4)


# ------------------------------------------------------------------------------- the CLI
def test_cli_writes_a_checked_model(tmp_path, capsys):
    out = tmp_path / "sub" / "m.onnx"
    assert main(["export", "example", "-o", str(out)]) == 0
    onnx.checker.check_model(onnx.load(str(out)))
    assert "wrote" in capsys.readouterr().out
    assert [p.name for p in out.parent.iterdir()] == ["m.onnx"]  # no temporaries left


@pytest.mark.paddle
def test_unmapped_op_is_one_line_and_nothing_written(corpus, tmp_path, capsys):
    out = tmp_path / "cf.onnx"
    rc = main(["export", str(corpus["control_flow"]), "-o", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert "has no ONNX mapping" in err and "op #" in err and "model.pdmodel" in err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_unmapped_op_names_type_and_output(tmp_path):
    """A hand-made op type: the error names it, its index and its output var."""
    from actc.errors import ActcError
    from actc.export.onnx.build import build_graph

    program, _ = load_model(model_path("example"))
    op = program.ops("relu")[1]
    op.desc.type = "my_custom_act"
    with pytest.raises(ActcError) as e:
        build_graph(program, model_path="m.pdmodel")
    msg = str(e.value)
    assert "'my_custom_act'" in msg and "relu_1.tmp_0" in msg and msg.startswith("m.pdmodel")


def test_output_checked_before_work(tmp_path, capsys):
    assert main(["export", "example", "-o", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_fake_quant_ops_refused(tmp_path, capsys):
    from actc.errors import ActcError
    from actc.export.onnx.build import build_graph

    program, _ = load_model(model_path("example"))
    op = program.ops("relu")[0]
    op.desc.type = "fake_quantize_dequantize_moving_average_abs_max"
    with pytest.raises(ActcError, match="fake-format"):
        build_graph(program)


def test_core_imports_without_onnx(tmp_path):
    script = ("import sys; sys.modules['onnx'] = None; sys.modules['onnxruntime'] = None\n"
              "import actc.export.onnx, actc.export.onnx.build, actc.export.onnx.complete\n"
              "import actc.cli.export_cmd\n"
              "from actc.cli.main import main\n"
              f"rc = main(['export', 'example', '-o', {str(tmp_path / 'x.onnx')!r}])\n"
              "assert rc == 2, rc\nprint('OK')\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, env=dict(os.environ), timeout=120)
    assert "OK" in proc.stdout, proc.stderr[-2000:]
    assert "actc[onnx]" in proc.stderr
    assert not (tmp_path / "x.onnx").exists()


# ----------------------------------------------------------------------- actc bench --onnx
@pytest.mark.paddle
def test_bench_onnx(compiled, tmp_path, capsys):
    import json

    exported = tmp_path / "fp32.onnx"
    assert main(["export", "example", "-o", str(exported)]) == 0
    capsys.readouterr()
    rc = main(["bench", str(exported), str(compiled["ptq"]), "--onnx", "--data",
               str(EXAMPLE / "calib.npz"), "--batch", "2", "--repeats", "3", "--warmup", "1",
               "--json"])
    out = capsys.readouterr().out
    assert rc == 0, out
    rows = json.loads(out)
    assert [r["error"] for r in rows] == [None, None]
    assert all(r["config"].startswith("onnxruntime CPUExecutionProvider: "
                                      "intra_op_num_threads=1") for r in rows)
    assert "calibrated on" in rows[1]["config"]
    assert 0 < rows[1]["batches"]["2"]["median_ms"] <= rows[1]["batches"]["2"]["p90_ms"]


# ------------------------------------------------------------ converters the corpus lacks
def synthetic():
    """Ops the corpus does not use (or uses with other attrs), chained through the IR API:
    activations, scale before bias, dropout downgrade_in_infer, channel-axis and axis-0
    broadcasts, shuffle_channel, adaptive pooling, transposed matmuls, split with -1, squeeze,
    unsqueeze, concat, slice, reduce_mean, softmax on a middle axis, flatten of a middle range."""
    from actc.ir.program import Program
    from actc.proto import framework_pb2 as fpb

    rng = np.random.default_rng(1)
    desc = fpb.ProgramDesc(); desc.blocks.add(idx=0, parent_idx=-1)
    p = Program(desc)
    p.add_var("feed", var_type=fpb.VarType.FEED_MINIBATCH, persistable=True)
    p.add_var("fetch", var_type=fpb.VarType.FETCH_LIST, persistable=True)
    def v(name, shape): return p.add_var(name, shape=shape).name
    def w(name, arr): return p.add_var(name, data=np.asarray(arr, np.float32)).name
    x = v("x", [-1, 4, 6, 6])
    p.new_op("feed", {"X": ["feed"]}, {"Out": [x]}, {"col": 0})
    chain = [("hard_swish", {}), ("hard_sigmoid", {"slope": 0.2, "offset": 0.5}),
             ("gelu", {"approximate": False}), ("swish", {"beta": 1.0}),
             ("relu6", {"threshold": 6.0}), ("leaky_relu", {"alpha": 0.1}),
             ("scale", {"scale": 2.0, "bias": 0.5, "bias_after_scale": False}),
             ("dropout", {"dropout_prob": 0.25, "dropout_implementation": "downgrade_in_infer",
                          "is_test": True})]
    cur = x
    for i, (t, attrs) in enumerate(chain):
        out = v(f"a{i}", [-1, 4, 6, 6])
        p.new_op(t, {"X": [cur]}, {"Out": [out]}, attrs)
        cur = out
    e = v("e", [-1, 4, 6, 6])
    p.new_op("elementwise_mul", {"X": [cur], "Y": [w("y1", rng.standard_normal(4))]},
             {"Out": [e]}, {"axis": 1})
    sh = v("sh", [-1, 4, 6, 6])
    p.new_op("shuffle_channel", {"X": [e]}, {"Out": [sh]}, {"group": 2})
    pooled = v("pooled", [-1, 4, 3, 3])
    p.new_op("pool2d", {"X": [sh]}, {"Out": [pooled]},
             {"pooling_type": "avg", "ksize": [3, 3], "adaptive": True, "strides": [1, 1],
              "paddings": [0, 0]})
    r = v("r", [-1, 4, 9])
    p.new_op("reshape2", {"X": [pooled]}, {"Out": [r], "XShape": [v("rx", [0, -1, 4, 3, 3])]},
             {"shape": [0, 4, 9]})
    t = v("t", [-1, 9, 4])
    p.new_op("transpose2", {"X": [r]}, {"Out": [t], "XShape": [v("tx", [0, -1, 4, 9])]},
             {"axis": [0, 2, 1]})
    m = v("m", [-1, 4, 4])
    p.new_op("matmul_v2", {"X": [t], "Y": [t]}, {"Out": [m]}, {"trans_x": True, "trans_y": False})
    s0, s1 = v("s0", [-1, 4, 1]), v("s1", [-1, 4, 3])
    p.new_op("split", {"X": [m]}, {"Out": [s0, s1]}, {"axis": 2, "sections": [1, -1], "num": 0})
    q = v("q", [-1, 4])
    p.new_op("squeeze2", {"X": [s0]}, {"Out": [q], "XShape": [v("qx", [0, -1, 4, 1])]},
             {"axes": [2]})
    u = v("u", [-1, 4, 1])
    p.new_op("unsqueeze2", {"X": [q]}, {"Out": [u], "XShape": [v("ux", [0, -1, 4])]},
             {"axes": [2]})
    c = v("c", [-1, 4, 4])
    p.new_op("concat", {"X": [u, s1]}, {"Out": [c]}, {"axis": 2})
    sl = v("sl", [-1, 2, 4])
    p.new_op("slice", {"Input": [c]}, {"Out": [sl]},
             {"axes": [1], "starts": [1], "ends": [3], "decrease_axis": [], "infer_flags": [1]})
    rm = v("rm", [-1, 2])
    p.new_op("reduce_mean", {"X": [sl]}, {"Out": [rm]}, {"dim": [2], "keep_dim": False,
                                                        "reduce_all": False})
    d = v("d", [-1, 2, 4])
    p.new_op("elementwise_sub", {"X": [sl], "Y": [rm]}, {"Out": [d]}, {"axis": 0})
    sm = v("sm", [-1, 2, 4])
    p.new_op("softmax", {"X": [d]}, {"Out": [sm]}, {"axis": 1})
    th = v("th", [-1, 2, 4])
    p.new_op("tanh", {"X": [sm]}, {"Out": [th]})
    f = v("f", [-1, 8])
    p.new_op("flatten_contiguous_range", {"X": [th]}, {"Out": [f], "XShape": [v("fx", [0, -1, 2, 4])]},
             {"start_axis": 1, "stop_axis": 2})
    o = v("o", [-1, 3])
    p.new_op("matmul", {"X": [f], "Y": [w("w2", rng.standard_normal((3, 8)))]}, {"Out": [o]},
             {"transpose_X": False, "transpose_Y": True, "alpha": 0.5})
    o2 = v("o2", [-1, 3])
    p.new_op("sigmoid", {"X": [o]}, {"Out": [o2]})
    p.new_op("fetch", {"X": [o2]}, {"Out": ["fetch"]}, {"col": 0})
    p.new_op("fetch", {"X": [sl]}, {"Out": ["fetch"]}, {"col": 1})
    return p


@pytest.mark.paddle
def test_synthetic_ops_match_paddle():
    pytest.importorskip("paddle")
    p = synthetic()
    x = np.random.default_rng(0).standard_normal((2, 4, 6, 6)).astype("float32") * 2
    want = paddle_run(p, {"x": x})
    got = session(to_onnx_bytes(p)).run(None, {"x": x})
    for w, g in zip(want, got):
        assert g.shape == w.shape
        assert np.abs(w - g).max() / np.abs(w).max() < 1e-4
