"""Benchmark models on scikit-learn's digits: a MobileNetV2-style net built and cached on demand.

    python benchmarks/digits_models.py --work /tmp/actc_bench          # build (or reuse) mbv2_digits
    python benchmarks/digits_models.py --work /tmp/actc_bench --force  # rebuild

Writes ``WORK/mbv2_digits/``: ``model.pdmodel`` / ``model.pdiparams`` (legacy, non-PIR program, feed
``image`` float32 [N, 1, 8, 8], fetch logits [N, 10]), ``train.npz`` (the whole training split,
``image`` + ``label``), ``test.npz`` (the held-out split, 360 samples) and ``meta.json``.
The split and preprocessing are those of ``actc/example/make_digits.py`` (pixel / 16, 20 % test,
seed 2024, stratified), so the test split is the same 360 images as the embedded example's.

The net: conv3x3-BN-ReLU6 stem, MobileNetV2 inverted residual blocks (1x1 expand, 3x3 depthwise,
1x1 linear projection, residual add when shapes match), 1x1 head conv, global average pool,
dropout, linear classifier.  Ops in the saved program: conv2d, depthwise_conv2d, batch_norm,
relu6 (or relu, see ``--act``), elementwise_add, pool2d, flatten_contiguous_range, dropout,
matmul_v2.  Deterministic: fixed seeds, single-threaded CPU training.

Needs paddlepaddle (3.x) and scikit-learn; it does not import actc.
"""
from __future__ import annotations

import os

# Legacy .pdmodel is only written with PIR off, and the flag must be set before paddle is imported.
os.environ["FLAGS_enable_pir_api"] = "0"
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("GLOG_minloglevel", "2")

import argparse  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import sys  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # actc.example, uninstalled

SEED = 2024
TEST_SIZE = 0.2
EPOCHS = 40
BATCH = 64
LR = 5e-3
DEFAULT_WORK = Path(os.environ.get("ACTC_BENCH_WORK", "/tmp/actc_bench"))

# (expand ratio t, output channels c, repeats n, first stride s), as in MobileNetV2's table.
MBV2_SETTINGS = [(1, 16, 1, 1), (4, 24, 2, 2), (4, 32, 3, 1), (4, 48, 2, 2)]


def load_digits_split(seed: int = SEED):
    """The split of actc/example/make_digits.py: ((x_train, y_train), (x_test, y_test))."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    ds = load_digits()
    x = (ds.images.astype(np.float32) / np.float32(16.0)).reshape(-1, 1, 8, 8)
    y = ds.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=TEST_SIZE, random_state=seed,
                                              stratify=y)
    return (np.ascontiguousarray(x_tr), y_tr), (np.ascontiguousarray(x_te), y_te)


def build_mbv2(act: str = "relu6", width: int = 16, dropout: float = 0.2):
    import paddle
    import paddle.nn as nn

    def make_act():
        return nn.ReLU6() if act == "relu6" else nn.ReLU()

    def conv_bn(cin, cout, k, stride=1, groups=1, with_act=True):
        layers = [nn.Conv2D(cin, cout, k, stride=stride, padding=k // 2, groups=groups,
                            bias_attr=False), nn.BatchNorm2D(cout)]
        if with_act:
            layers.append(make_act())
        return nn.Sequential(*layers)

    class InvertedResidual(nn.Layer):
        def __init__(self, cin, cout, stride, t):
            super().__init__()
            hidden = cin * t
            self.use_res = stride == 1 and cin == cout
            layers = []
            if t != 1:
                layers.append(conv_bn(cin, hidden, 1))                        # expand
            layers.append(conv_bn(hidden, hidden, 3, stride, groups=hidden))  # depthwise
            layers.append(conv_bn(hidden, cout, 1, with_act=False))           # linear project
            self.conv = nn.Sequential(*layers)

        def forward(self, x):
            return x + self.conv(x) if self.use_res else self.conv(x)

    class MobileNetV2Digits(nn.Layer):
        def __init__(self):
            super().__init__()
            blocks = [conv_bn(1, width, 3)]
            cin = width
            for t, c, n, s in MBV2_SETTINGS:
                for i in range(n):
                    blocks.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                    cin = c
            blocks.append(conv_bn(cin, 96, 1))
            self.features = nn.Sequential(*blocks)
            self.pool = nn.AdaptiveAvgPool2D(1)
            self.dropout = nn.Dropout(dropout)
            self.fc = nn.Linear(96, 10)

        def forward(self, x):
            x = self.pool(self.features(x))
            x = paddle.flatten(x, 1)
            return self.fc(self.dropout(x))

    return MobileNetV2Digits()


def _train(model, x_tr, y_tr, seed, epochs, log=print):
    """The example's own training loop (Adam, cosine LR), with a little weight decay."""
    from actc.example.make_digits import train

    return train(model, x_tr, y_tr, seed=seed, epochs=epochs, log=log, weight_decay=1e-4,
                 log_every=10, lr=LR)


def eval_saved(model_dir: Path, x: np.ndarray, y: np.ndarray, batch: int = 128):
    """Top-1 of the saved legacy program loaded back with paddle.static.load_inference_model."""
    from actc.example.make_digits import eval_saved as evaluate

    return evaluate(model_dir, x, y, batch=batch)


def build_mbv2_digits(out: Path, seed: int = SEED, epochs: int = EPOCHS, act: str = "relu6",
                      log=print) -> dict:
    """Train the MobileNetV2-style net and write it (legacy format) plus train/test npz to OUT."""
    import paddle

    t0 = time.time()
    random.seed(seed)
    np.random.seed(seed)
    paddle.seed(seed)
    paddle.set_device("cpu")
    paddle.disable_static()

    (x_tr, y_tr), (x_te, y_te) = load_digits_split(seed)
    log(f"training mbv2_digits ({act}) on {len(x_tr)} images, {epochs} epochs")
    model = _train(build_mbv2(act), x_tr, y_tr, seed, epochs, log)

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        spec = paddle.static.InputSpec(shape=[None, 1, 8, 8], dtype="float32", name="image")
        paddle.jit.save(model, os.path.join(tmp, "model"), input_spec=[spec])
        for suffix in (".pdmodel", ".pdiparams"):
            src = Path(tmp) / f"model{suffix}"
            if not src.exists():
                raise RuntimeError(f"paddle.jit.save did not write model{suffix} "
                                   f"(got {sorted(os.listdir(tmp))}); is FLAGS_enable_pir_api=0 "
                                   "set before importing paddle?")
            shutil.copyfile(src, out / f"model{suffix}")
    np.savez(out / "train.npz", image=x_tr, label=y_tr)
    np.savez(out / "test.npz", image=x_te, label=y_te)

    acc, feeds, fetches, ops = eval_saved(out, x_te, y_te)
    meta = {"name": "mbv2_digits", "description": "MobileNetV2-style net on sklearn digits",
            "feed": feeds, "fetch": fetches, "input_shape": [None, 1, 8, 8],
            "input_dtype": "float32", "preprocess": "pixel / 16.0", "num_classes": 10,
            "n_train": int(len(y_tr)), "n_test": int(len(y_te)), "fp32_test_accuracy": acc,
            "seed": seed, "epochs": epochs, "activation": act,
            "paddle_version": paddle.__version__, "ops": ops,
            "n_params": int(sum(int(np.prod(p.shape)) for p in model.parameters()))}
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    log(f"saved {out}  fp32 test top-1 {acc:.4f}  ({time.time() - t0:.1f}s)")
    return meta


def ensure_mbv2_digits(work: Path = DEFAULT_WORK, force: bool = False, log=print) -> Path:
    """WORK/mbv2_digits, built on first use (cached afterwards)."""
    out = Path(work) / "mbv2_digits"
    needed = ("model.pdmodel", "model.pdiparams", "train.npz", "test.npz", "meta.json")
    if force or not all((out / f).exists() for f in needed):
        build_mbv2_digits(out, log=log)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK)
    ap.add_argument("--force", action="store_true", help="rebuild even if cached")
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    ap.add_argument("--act", choices=["relu6", "relu"], default="relu6")
    args = ap.parse_args(argv)
    out = args.work / "mbv2_digits"
    if args.force or not (out / "meta.json").exists():
        build_mbv2_digits(out, epochs=args.epochs, act=args.act)
    print((out / "meta.json").read_text())


if __name__ == "__main__":
    main()
