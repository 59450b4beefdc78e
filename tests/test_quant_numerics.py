"""Numerics of actc.quant: reference ops vs brute force and vs Paddle's own
kernels, streaming statistics, calibration algorithms, bias correction."""

import importlib.util
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from actc.quant import calibration as C
from actc.quant import reference as R
from actc.quant.stats import ActivationStats

HAS_PADDLE = importlib.util.find_spec("paddle") is not None
needs_paddle = pytest.mark.skipif(not HAS_PADDLE, reason="paddle not installed")


# ----------------------------------------------------------------- helpers
def _brute_quant(x, s, bits, round_type):
    """Element-by-element model of Paddle's kernel: float32 (qmax*(1/s))*x,
    then exact rounding in float64 (float32 values + 0.5 are exact there)."""
    qm = (1 << (bits - 1)) - 1
    out = np.empty(x.shape, np.float32)
    for idx, v in np.ndenumerate(x):
        si = np.float32(s[idx] if np.ndim(s) else s)
        m = np.float32(qm) * (np.float32(1) / si)
        if round_type == 0:
            r = min(max(round(float(m * np.float32(v))), -qm - 1), qm)   # half to even
        else:
            v = np.float32(min(max(float(v), -float(si)), float(si)))
            y = float(m * v)
            r = np.copysign(np.floor(abs(y) + 0.5), y)                     # half away
        out[idx] = r
    return out


def _data(seed=0, shape=(4, 5, 3)):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * 2).astype(np.float32)


# ---------------------------------------------------------- reference ops
@pytest.mark.parametrize("bits", [2, 3, 4, 8, 16])
@pytest.mark.parametrize("round_type", [0, 1])
def test_quantize_matches_brute_force(bits, round_type):
    x = _data(bits)
    s = np.float32(2.5)
    qm = R.qmax(bits)
    x.flat[:8] = ((np.arange(8) - 4 + 0.5) / qm * s).astype(np.float32)   # ties
    np.testing.assert_array_equal(R.quantize(x, s, bits, -1, round_type),
                                  _brute_quant(x, s, bits, round_type))
    sc = (np.abs(x).max(axis=(0, 2)) * 0.7).astype(np.float32)
    sb = np.broadcast_to(sc[None, :, None], x.shape)
    np.testing.assert_array_equal(R.quantize(x, sc, bits, 1, round_type),
                                  _brute_quant(x, sb, bits, round_type))


def test_round_type_ranges_and_dequant():
    x = np.array([-10, -2.51, -0.5, 0.5, 1.5, 2.5, 10], np.float32)
    q0 = R.quantize(x, 2.0, 3, round_type=0)          # qmax 3, step 2/3
    q1 = R.quantize(x, 2.0, 3, round_type=1)
    assert q0.min() == -4 and q0.max() == 3
    assert q1.min() == -3 and q1.max() == 3
    assert R.quantize(np.float32([0.5, 1.5, 2.5, -2.5]), 127.0, 8, round_type=0).tolist() == [0, 2, 2, -2]
    assert R.quantize(np.float32([0.5, 1.5, 2.5, -2.5]), 127.0, 8, round_type=1).tolist() == [1, 2, 3, -3]
    np.testing.assert_allclose(R.dequantize(q1, 2.0, 3), q1 * 2.0 / 3, rtol=1e-6)
    fq = R.fake_quant_dequant(x, 2.0, 3, round_type=1)
    assert np.abs(fq).max() <= 2.0 + 1e-6


def test_weight_scales_and_int8():
    w = _data(3, (6, 4, 3, 3))
    s0 = R.weight_scales(w, "channel_wise_abs_max", 0)
    np.testing.assert_array_equal(s0, [np.abs(w[i]).max() for i in range(6)])
    assert R.weight_scales(w, "abs_max").shape == (1,)
    q = R.quantize_weight_int8(w, s0, 8, 0)
    assert q.dtype == np.int8 and q.min() >= -128 and q.max() <= 127
    assert (np.abs(q).reshape(6, -1).max(1) == 127).all()     # each channel hits qmax
    assert R.quantize_weight_int8(w, s0, 12, 0).dtype == np.int16
    assert R.channel_axis("conv2d") == 0 and R.channel_axis("matmul_v2") == 1
    assert R.channel_axis("matmul_v2", trans_y=True) == 0
    assert R.PADDLE_PTQ_ROUND_TYPE == 0


# ------------------------------------------------------ against paddle ops
_PADDLE_SCRIPT = r"""
import os, sys, pickle
os.environ['FLAGS_enable_pir_api'] = '0'
import numpy as np, paddle
paddle.enable_static()
exe = paddle.static.Executor(paddle.CPUPlace())
def run(op_type, inputs, outputs, attrs):
    prog = paddle.static.Program(); b = prog.global_block(); ins = {}; feed = {}
    for k, a in inputs.items():
        ins[k] = b.create_var(name='in_' + k, shape=a.shape, dtype=str(a.dtype)); feed['in_' + k] = a
    outs = {k: b.create_var(name='out_' + k, dtype='float32') for k in outputs}
    b.append_op(type=op_type, inputs=ins, outputs=outs, attrs=attrs)
    return exe.run(prog, feed=feed, fetch_list=['out_' + k for k in outputs])
cases = pickle.load(open(sys.argv[1], 'rb')); res = []
for op_type, inputs, outputs, attrs in cases:
    res.append(run(op_type, inputs, outputs, attrs))
pickle.dump(res, open(sys.argv[2], 'wb'))
"""


def _run_paddle_ops(tmp_path, cases):
    """Run legacy ops in a subprocess (legacy mode needs the flag before import)."""
    script = tmp_path / "run_ops.py"
    script.write_text(_PADDLE_SCRIPT)
    cin, cout = tmp_path / "in.pkl", tmp_path / "out.pkl"
    cin.write_bytes(pickle.dumps(cases))
    env = dict(os.environ, FLAGS_enable_pir_api="0")
    subprocess.run([sys.executable, str(script), str(cin), str(cout)], check=True,
                   env=env, capture_output=True)
    return pickle.loads(cout.read_bytes())


@needs_paddle
def test_matches_paddle_kernels(tmp_path):
    rng = np.random.default_rng(7)
    cases, expect = [], []
    for bits in [1, 2, 4, 8, 12, 16]:
        qm = R.qmax(bits)
        for rt in [0, 1]:
            x = (rng.standard_normal((6, 5, 7)) * 3).astype(np.float32)
            s = np.float32(3.7)
            x.flat[:20] = ((np.arange(20) - 10 + 0.5) / max(qm, 1) * s).astype(np.float32)
            sc = (np.abs(x).max(axis=(0, 2)) * rng.uniform(0.5, 1, 5)).astype(np.float32)
            # Paddle 3.3.1 quantize_linear takes levels from `qmax`, not bit_length
            lin = {"bit_length": bits, "qmax": qm, "qmin": -qm - 1, "round_type": rt, "is_test": True}
            z1, z5 = np.zeros(1, np.float32), np.zeros(5, np.float32)
            q = R.quantize(x, s, bits, -1, rt)
            qc = R.quantize(x, sc, bits, 1, rt)
            cases += [
                ("quantize_linear", {"X": x, "Scale": np.array([s]), "ZeroPoint": z1}, ["Y"], {**lin, "quant_axis": -1}),
                ("dequantize_linear", {"X": q, "Scale": np.array([s]), "ZeroPoint": z1}, ["Y"], {**lin, "quant_axis": -1}),
                ("quantize_linear", {"X": x, "Scale": sc, "ZeroPoint": z5}, ["Y"], {**lin, "quant_axis": 1}),
                ("dequantize_linear", {"X": qc, "Scale": sc, "ZeroPoint": z5}, ["Y"], {**lin, "quant_axis": 1}),
                ("fake_quantize_dequantize_abs_max", {"X": x}, ["Out", "OutScale"],
                 {"bit_length": bits, "round_type": rt}),
                ("fake_channel_wise_quantize_dequantize_abs_max", {"X": x}, ["Out", "OutScale"],
                 {"bit_length": bits, "round_type": rt, "quant_axis": 1}),
            ]
            expect += [
                [q], [R.dequantize(q, s, bits, -1)], [qc], [R.dequantize(qc, sc, bits, 1)],
                [R.fake_quant_dequant(x, R.abs_max(x), bits, -1, rt), R.abs_max(x)],
                [R.fake_quant_dequant(x, R.abs_max(x, 1), bits, 1, rt), R.abs_max(x, 1)],
            ]
    got = _run_paddle_ops(tmp_path, cases)
    for case, g, e in zip(cases, got, expect):
        for gi, ei in zip(g, e):
            np.testing.assert_array_equal(gi, ei, err_msg=f"{case[0]} {case[3]}")


@needs_paddle
def test_kl_matches_paddle_cal_kl_threshold():
    from paddle.static.quantization.cal_kl_threshold import cal_kl_threshold
    rng = np.random.default_rng(3)
    for bits, trial in [(8, 0), (8, 1), (6, 2), (4, 3)]:
        a = np.abs(np.concatenate([rng.standard_normal(200_000) * (1 + trial),
                                   rng.uniform(5, 30, 50)]))
        h = np.histogram(a, bins=512)[0]
        idx = int(round(cal_kl_threshold(h, 1.0, bits) - 0.5))
        start = int((h.size - 1) * 0.5)
        cand = np.arange(start, h.size)
        kl = C.kl_divergences(h, bits, cand)
        assert kl[idx - start] <= kl.min() + 1e-12


@needs_paddle
def test_adaptive_histogram_percentile_with_growing_range():
    rng = np.random.default_rng(11)
    st = ActivationStats(bins=2048)
    chunks = []
    for b in range(8):
        x = rng.standard_normal((16, 300)).astype(np.float32) * (0.5 * 1.7 ** b)
        chunks.append(x)
        st.update(x)
    allx = np.abs(np.concatenate([c.ravel() for c in chunks]))
    assert st.count == allx.size and st.hist.sum() == allx.size
    assert st.abs_max == pytest.approx(allx.max())
    assert st.hist_range >= allx.max() and st.hist_range < 2 * allx.max() * 1.7
    for p in (0.5, 0.9, 0.99, 0.999):
        t = C.threshold(st, "hist", hist_percent=p)
        # the sample of rank ceil(p*n) lies in the bin where the cdf crosses p
        assert abs(t - np.percentile(allx, 100 * p, method="inverted_cdf")) <= st.bin_width
    # merged counts equal a direct histogram on the final grid
    direct = np.histogram(allx, bins=st.bins, range=(0, st.hist_range))[0]
    assert np.abs(direct - st.hist).sum() <= 0.001 * allx.size


def test_stats_edge_cases_and_pickle():
    st = ActivationStats(bins=64)
    st.update(np.zeros((2, 3), np.float32))           # zeros before any range
    st.update(np.array([[1.0, -4.0, np.inf, np.nan]], np.float32))
    st.update(np.empty((0, 3), np.float32))
    assert st.nonfinite == 2 and st.count == 8
    assert st.min == -4.0 and st.max == 1.0 and st.abs_max == 4.0
    assert st.hist.sum() == 8 and st.hist[0] >= 6
    st2 = pickle.loads(pickle.dumps(st))
    snap = st.copy()
    st.update(np.full((1, 2), 100.0, np.float32))
    assert st2.count == 8 and snap.count == 8 and st.count == 10
    assert C.threshold(st2, "abs_max") == 4.0


# ------------------------------------------------------------ calibration
def _outlier_stats(seed=5):
    rng = np.random.default_rng(seed)
    st = ActivationStats()
    data = []
    for _ in range(6):
        x = rng.standard_normal((64, 512)).astype(np.float32)
        x[0, :2] = rng.uniform(25, 40, 2)               # rare large outliers
        st.update(x)
        data.append(np.abs(x).ravel())
    return st, np.concatenate(data)


def test_kl_mse_sensible_on_gaussian_with_outliers():
    st, a = _outlier_stats()
    p99, top = np.percentile(a, 99), a.max()
    for algo in ("KL", "mse", "emd"):
        t = C.threshold(st, algo, 8)
        assert p99 < t < top, (algo, t, p99, top)
    # lower bits -> tighter MSE threshold
    assert C.threshold(st, "mse", 4) < C.threshold(st, "mse", 8)
    # Paddle's KL start (half the histogram) can't cut below abs_max/2
    assert C.threshold(st, "KL", 8, start=0.5) >= 0.5 * top - st.bin_width


def test_expected_error_matches_sampled_error():
    rng = np.random.default_rng(9)
    x = np.abs(rng.standard_normal(400_000))
    st = ActivationStats(bins=2048)
    st.update(x.astype(np.float32))
    h, w = st.histogram()
    for bits, t in [(8, 3.0), (4, 2.5), (2, 1.5)]:
        qdq = R.fake_quant_dequant(x, t, bits, round_type=1)
        for p in (1, 2):
            exact = np.mean(np.abs(x - qdq) ** p)
            est = C.expected_error(h, w, [t], bits, p)[0]
            assert est == pytest.approx(exact, rel=0.02)


@pytest.mark.parametrize("bits", range(2, 9))
def test_every_registered_algo_runs(bits):
    st, _ = _outlier_stats(bits)
    assert set(C.algo_names()) >= {"abs_max", "min_max", "avg", "hist", "KL", "mse", "emd", "ptf"}
    for name, algo in C.ALGOS.items():
        t = C.threshold(st, name, bits)
        assert 0 < t <= st.abs_max, name
        assert C.threshold(st, name.lower(), bits, **algo.defaults) == t


def test_registry_errors_and_simple_algos():
    st, a = _outlier_stats()
    assert C.threshold(st, "abs_max") == C.threshold(st, "min_max") == pytest.approx(a.max())
    assert C.threshold(st, "avg") <= C.threshold(st, "avg", per_sample=False)
    with pytest.raises(ValueError):
        C.threshold(st, "nope")
    with pytest.raises(TypeError):
        C.threshold(st, "KL", hist_percent=0.9)
    with pytest.raises(ValueError):
        C.threshold(ActivationStats(), "abs_max")
    zeros = ActivationStats()
    zeros.update(np.zeros((2, 2), np.float32))
    for name in C.ALGOS:
        assert C.threshold(zeros, name) == C.MIN_THRESHOLD
