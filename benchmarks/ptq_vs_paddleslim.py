"""actc PTQ vs PaddleSlim 2.6 ``quant_post_static``, side by side on the same model and data.

Run in an environment with both installed (PaddleSlim is NOT an actc dependency):

    pip install "paddleslim==2.6.0" six requests decorator   # beside paddlepaddle 3.3.1
    python benchmarks/ptq_vs_paddleslim.py --model digits --repeats 3
    python benchmarks/ptq_vs_paddleslim.py --model resnet18 --repeats 1 --algos hist KL \
        --settings W8A8 --no-tuned

Both tools get the same float model, calibration batches, op types (conv2d, depthwise_conv2d,
mul, matmul_v2), channel-wise abs-max weights, ONNX-format output and hist_percent. Wall time
covers the whole job (load, rewrite, calibrate, convert, save), medians over ``--repeats``.
Accuracy is top-1 on the held-out test split (digits); for the synthetic large model it is the
SNR of the output logits against the float model on held-out random inputs.

"actc tuned" adds what PaddleSlim's quant_post_static does not do: per-channel MSE weight
clipping and layer-wise reconstruction (AdaRound); `--no-tuned` skips it (slow on big models).
PaddleSlim cannot do unequal bits (W4A8): its cells say so. Its sub-8-bit ONNX-format models
do not set the ``qmin``/``qmax`` attributes that Paddle 3.x's quantize_linear reads, so they
run as 8-bit grids with 4-bit scales; the table shows them as written and, for a fair look at
its scale choice, with those attributes patched in.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("FLAGS_enable_pir_api", "0")
os.environ.setdefault("GLOG_minloglevel", "2")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from actc.data import open_dataset  # noqa: E402
from actc.io.model import load_model, save_model  # noqa: E402
from actc.runtime.evaluate import collect_outputs, fidelity, top1  # noqa: E402
from actc.runtime.paddle_env import import_paddle  # noqa: E402

OP_TYPES = ["conv2d", "depthwise_conv2d", "mul", "matmul_v2"]
SETTINGS = {"W8A8": (8, 8), "W4A4": (4, 4), "W4A8": (4, 8)}


# ------------------------------------------------------------------ models & data
def digits_case(work: Path):
    from actc.example import EXAMPLE_DIR

    calib = np.load(EXAMPLE_DIR / "calib.npz")
    return {"model": EXAMPLE_DIR, "feed": "image", "calib": {"image": calib["image"]},
            "test": str(EXAMPLE_DIR / "test.npz"), "metric": "accuracy", "batch_size": 32}


def resnet18_case(work: Path, calib_samples=64, test_samples=32):
    paddle = import_paddle()
    model_dir = work / "resnet18"
    if not (model_dir / "model.pdmodel").exists():
        import subprocess

        code = ("import os; os.environ['FLAGS_enable_pir_api']='0'; import paddle;"
                "from paddle.vision.models import resnet18; paddle.seed(0);"
                "m=resnet18(pretrained=False); m.eval();"
                f"paddle.jit.save(m, '{model_dir}/model', input_spec=[paddle.static.InputSpec("
                "[None,3,224,224],'float32','x')])")
        subprocess.run([sys.executable, "-c", code], check=True)
    del paddle
    rng = np.random.default_rng(0)
    calib = rng.standard_normal((calib_samples, 3, 224, 224)).astype("float32")
    test = rng.standard_normal((test_samples, 3, 224, 224)).astype("float32")
    np.savez(work / "resnet18_test.npz", x=test)
    return {"model": model_dir, "feed": "x", "calib": {"x": calib},
            "test": str(work / "resnet18_test.npz"), "metric": "snr", "batch_size": 16}


# ------------------------------------------------------------------ the two tools
def run_paddleslim(case, out: Path, algo: str, wb: int, ab: int, hist_percent: float):
    paddle = import_paddle()
    from paddleslim.quant import quant_post_static

    bs = case["batch_size"]
    x = case["calib"][case["feed"]]
    batches = [{case["feed"]: x[i:i + bs]} for i in range(0, len(x), bs)]
    exe = paddle.static.Executor(paddle.CPUPlace())
    start = time.perf_counter()
    quant_post_static(executor=exe, model_dir=str(case["model"]), quantize_model_path=str(out),
                      data_loader=lambda: iter(batches), model_filename="model.pdmodel",
                      params_filename="model.pdiparams", batch_size=bs,
                      batch_nums=len(batches), algo=algo, hist_percent=hist_percent,
                      quantizable_op_type=OP_TYPES, weight_bits=wb, activation_bits=ab,
                      weight_quantize_type="channel_wise_abs_max", onnx_format=True)
    return time.perf_counter() - start


# actc with the same settings as PaddleSlim, and actc "tuned": MSE-clipped weights plus
# layer-wise reconstruction (AdaRound), which PaddleSlim's quant_post_static does not do.
TUNED = {"weight_algo": "mse", "recon_level": "layer_wise"}


def run_actc(case, out: Path, algo: str, wb: int, ab: int, hist_percent: float,
             extra: dict | None = None):
    from actc.dsl.compiler import compile_file
    from actc.dsl.pipeline import Options, PipelineContext, run_pipeline

    bs = case["batch_size"]
    calib_file = out.parent / f"{out.name}_calib.npz"
    np.savez(calib_file, **case["calib"])
    start = time.perf_counter()
    program, files = load_model(case["model"])
    compiled = compile_file(str(ROOT / "configs" / "ptq.actc"), program=program, overrides={
        "weight_bits": str(wb), "activation_bits": str(ab), "algo": algo,
        "hist_percent": str(hist_percent), "batch_size": str(bs), "batch_nums": "null",
        **(extra or {})})
    ctx = PipelineContext(program=program, source=files, data=str(calib_file), device="cpu",
                          out_dir=str(out), params=compiled.params)
    run_pipeline(compiled, ctx, Options(verify=False))
    save_model(ctx.program, out, source=files)
    return time.perf_counter() - start


# ------------------------------------------------------------------ scoring
def patch_qmax(model_dir: Path, bits_by_op: bool = True) -> Path:
    """Copy of a PaddleSlim model with qmin/qmax set from bit_length (what Paddle 3.x reads)."""
    program, files = load_model(model_dir)
    for op in program.ops(("quantize_linear", "dequantize_linear")):
        b = int(op.attr("bit_length", 8))
        op.set_attr("qmin", -(1 << (b - 1)))
        op.set_attr("qmax", (1 << (b - 1)) - 1)
    out = model_dir.parent / (model_dir.name + "_qmax")
    save_model(program, out, source=files)
    return out


def score(case, model_dir: Path, reference: dict):
    program, _ = load_model(model_dir)
    ds = open_dataset(case["test"], program)
    _, outs, labels = collect_outputs(program, ds, device="cpu", batch_size=case["batch_size"])
    if case["metric"] == "accuracy":
        return top1(outs[0], labels)
    return fidelity("out", reference["out"], outs[0]).snr_db


def float_score(case):
    program, _ = load_model(case["model"])
    ds = open_dataset(case["test"], program)
    _, outs, labels = collect_outputs(program, ds, device="cpu", batch_size=case["batch_size"])
    ref = {"out": outs[0]}
    return (top1(outs[0], labels) if case["metric"] == "accuracy" else float("inf")), ref


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=["digits", "resnet18"], default="digits")
    ap.add_argument("--algos", nargs="+", default=["abs_max", "avg", "hist", "KL", "mse"])
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--hist-percent", type=float, default=0.999)
    ap.add_argument("--no-tuned", action="store_true", help="skip the tuned actc column")
    ap.add_argument("--no-paddleslim", action="store_true")
    ap.add_argument("--json", default=None, help="also write the raw results here")
    args = ap.parse_args()
    if not args.no_paddleslim and importlib.util.find_spec("paddleslim") is None:
        print("ptq_vs_paddleslim: PaddleSlim is not installed in this Python; install it beside "
              "paddlepaddle (see the header of this file) or pass --no-paddleslim",
              file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="actc-bench-"))
    case = digits_case(work) if args.model == "digits" else resnet18_case(work)
    fp32, reference = float_score(case)
    metric = "top-1 %" if case["metric"] == "accuracy" else "SNR dB"
    rows = []
    for setting in args.settings:
        wb, ab = SETTINGS[setting]
        for algo in args.algos:
            row = {"setting": setting, "algo": algo}
            for tool in ("paddleslim", "actc", "actc_tuned"):
                if tool == "paddleslim" and (args.no_paddleslim or wb != ab) or \
                        tool == "actc_tuned" and args.no_tuned:
                    row[tool] = None
                    continue
                times, values, patched = [], [], []
                for r in range(args.repeats):
                    out = work / f"{tool}_{setting}_{algo}_{r}"
                    if tool == "paddleslim":
                        t = run_paddleslim(case, out, algo, wb, ab, args.hist_percent)
                    else:
                        t = run_actc(case, out, algo, wb, ab, args.hist_percent,
                                     TUNED if tool == "actc_tuned" else None)
                    times.append(t)
                    values.append(score(case, out, reference))
                    if tool == "paddleslim" and wb < 8:
                        patched.append(score(case, patch_qmax(out), reference))
                    shutil.rmtree(out, ignore_errors=True)
                row[tool] = {"time_s": statistics.median(times), "times": times,
                             "value": statistics.median(values),
                             "patched": statistics.median(patched) if patched else None}
            rows.append(row)
            print(json.dumps(row), flush=True)

    def fmt(v):
        if v is None:
            return "n/a"
        return f"{v * 100:.2f}" if case["metric"] == "accuracy" else f"{v:.2f}"

    print(f"\nmodel: {args.model}; float {metric}: {fmt(fp32)}; repeats: {args.repeats} "
          "(medians)\n")
    print(f"| setting | algo | PaddleSlim {metric} | actc {metric} | actc tuned {metric} | "
          "PaddleSlim s | actc s | speed-up | actc tuned s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        ps, ac, tu = row["paddleslim"], row["actc"], row["actc_tuned"]
        if ps is None:
            ps_v, ps_t, ratio = "cannot (needs W=A bits)", "-", "-"
        else:
            ps_v = fmt(ps["value"])
            if ps["patched"] is not None:
                ps_v += f" ({fmt(ps['patched'])} with qmax patched)"
            ps_t = f"{ps['time_s']:.2f}"
            ratio = f"{ps['time_s'] / ac['time_s']:.1f}x"
        tu_v, tu_t = (fmt(tu["value"]), f"{tu['time_s']:.2f}") if tu else ("-", "-")
        print(f"| {row['setting']} | {row['algo']} | {ps_v} | {fmt(ac['value'])} | {tu_v} | "
              f"{ps_t} | {ac['time_s']:.2f} | {ratio} | {tu_t} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"fp32": fp32, "rows": rows}, indent=1))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
