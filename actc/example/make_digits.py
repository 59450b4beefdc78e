"""Build the embedded example model: a tiny CNN trained on scikit-learn's digits.

Run as ``python -m actc.example.make_digits`` (or directly).  Deterministic:
fixed seeds, single-threaded CPU training.  Writes into ``actc/example/digits/``:

* ``model.pdmodel`` / ``model.pdiparams`` -- legacy (non-PIR) inference program,
  feed ``image`` float32 [N, 1, 8, 8], fetch = logits [N, 10];
* ``calib.npz`` -- 500 training samples (``image`` float32, ``label`` int64);
* ``test.npz`` -- the held-out split, same keys;
* ``meta.json`` -- feed/fetch names, fp32 test accuracy of the *saved* model,
  seed, paddle version.

Preprocessing (must be reproduced by anyone feeding the model): pixel values
0..16 are divided by 16 -> float32 in [0, 1], shape (N, 1, 8, 8).
"""
from __future__ import annotations

import os

# The legacy .pdmodel format is only written when PIR is off, and the flag has
# to be in the environment before paddle is imported.
os.environ["FLAGS_enable_pir_api"] = "0"
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import json
import random
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

SEED = 2024
N_CALIB = 500
TEST_SIZE = 0.2
EPOCHS = 30
BATCH = 64
LR = 3e-3

DEFAULT_OUT = Path(__file__).resolve().parent / "digits"


def load_data(seed: int = SEED):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    ds = load_digits()
    x = (ds.images.astype(np.float32) / np.float32(16.0)).reshape(-1, 1, 8, 8)
    y = ds.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=TEST_SIZE, random_state=seed, stratify=y
    )
    return (np.ascontiguousarray(x_tr), y_tr), (np.ascontiguousarray(x_te), y_te)


def build_model():
    import paddle.nn as nn
    import paddle

    class DigitsNet(nn.Layer):
        """conv-bn-relu -> residual depthwise-separable block -> pool -> conv -> pool -> MLP."""

        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(
                nn.Conv2D(1, 16, 3, padding=1, bias_attr=False), nn.BatchNorm2D(16), nn.ReLU()
            )
            # depthwise (groups == channels -> depthwise_conv2d op) + pointwise
            self.dw = nn.Conv2D(16, 16, 3, padding=1, groups=16, bias_attr=False)
            self.dw_bn = nn.BatchNorm2D(16)
            self.pw = nn.Conv2D(16, 16, 1, bias_attr=False)
            self.pw_bn = nn.BatchNorm2D(16)
            self.relu = nn.ReLU()
            self.pool1 = nn.MaxPool2D(2, 2)  # 8x8 -> 4x4
            self.conv2 = nn.Sequential(
                nn.Conv2D(16, 32, 3, padding=1, bias_attr=False), nn.BatchNorm2D(32), nn.ReLU()
            )
            self.pool2 = nn.AvgPool2D(2, 2)  # 4x4 -> 2x2
            self.fc1 = nn.Linear(32 * 2 * 2, 64)
            self.fc2 = nn.Linear(64, 10)

        def forward(self, x):
            x = self.stem(x)
            y = self.relu(self.dw_bn(self.dw(x)))
            y = self.pw_bn(self.pw(y))
            x = self.relu(x + y)  # residual elementwise_add
            x = self.pool1(x)
            x = self.pool2(self.conv2(x))
            x = paddle.flatten(x, 1)
            x = self.relu(self.fc1(x))
            return self.fc2(x)

    return DigitsNet()


def train(model, x_tr, y_tr, seed: int = SEED, epochs: int = EPOCHS, log=print,
          weight_decay: float | None = None, log_every: int = 5, lr: float = LR):
    import paddle
    import paddle.nn.functional as F

    rng = np.random.default_rng(seed)
    opt = paddle.optimizer.Adam(
        learning_rate=paddle.optimizer.lr.CosineAnnealingDecay(lr, T_max=epochs),
        parameters=model.parameters(), weight_decay=weight_decay,
    )
    model.train()
    n = len(x_tr)
    for ep in range(epochs):
        perm = rng.permutation(n)
        tot = 0.0
        for i in range(0, n, BATCH):
            idx = perm[i : i + BATCH]
            xb = paddle.to_tensor(x_tr[idx])
            yb = paddle.to_tensor(y_tr[idx])
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            opt.clear_grad()
            tot += float(loss) * len(idx)
        opt._learning_rate.step()
        if log and (ep % log_every == log_every - 1 or ep == epochs - 1):
            log(f"epoch {ep + 1:3d}  loss {tot / n:.4f}")
    model.eval()
    return model


def eval_saved(out_dir: Path, x: np.ndarray, y: np.ndarray, batch: int | None = None):
    """Accuracy of the saved legacy program, loaded back with load_inference_model (in
    batches of ``batch``, default all at once)."""
    import paddle

    paddle.enable_static()
    try:
        exe = paddle.static.Executor(paddle.CPUPlace())
        scope = paddle.static.Scope()
        with paddle.static.scope_guard(scope):
            prog, feeds, fetches = paddle.static.load_inference_model(
                str(out_dir / "model"), exe
            )
            step = batch or len(x)
            logits = np.concatenate([exe.run(prog, feed={feeds[0]: x[i:i + step]},
                                             fetch_list=fetches)[0]
                                     for i in range(0, len(x), step)])
        ops = sorted({op.type for b in prog.blocks for op in b.ops})
        fetch_names = [v.name if hasattr(v, "name") else str(v) for v in fetches]
    finally:
        paddle.disable_static()
    acc = float((np.asarray(logits).argmax(-1) == y).mean())
    return acc, list(feeds), fetch_names, ops


def strip_callstacks(path: Path) -> int:
    """Drop every op's ``op_callstack`` attr: it records the builder's file paths (a
    developer's machine), which a shipped model must not carry. Returns how many were cut."""
    from actc.proto import framework_pb2 as fpb

    desc = fpb.ProgramDesc.FromString(path.read_bytes())
    cut = 0
    for block in desc.blocks:
        for op in block.ops:
            keep = [a for a in op.attrs if a.name != "op_callstack"]
            cut += len(op.attrs) - len(keep)
            del op.attrs[:]
            op.attrs.extend(keep)
    path.write_bytes(desc.SerializeToString())
    return cut


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    args = ap.parse_args(argv)

    import paddle

    t0 = time.time()
    random.seed(args.seed)
    np.random.seed(args.seed)
    paddle.seed(args.seed)
    paddle.set_device("cpu")

    (x_tr, y_tr), (x_te, y_te) = load_data(args.seed)
    model = train(build_model(), x_tr, y_tr, args.seed, args.epochs)

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        spec = paddle.static.InputSpec(shape=[None, 1, 8, 8], dtype="float32", name="image")
        paddle.jit.save(model, os.path.join(tmp, "model"), input_spec=[spec])
        produced = sorted(os.listdir(tmp))
        for suffix in (".pdmodel", ".pdiparams"):
            src = Path(tmp) / f"model{suffix}"
            if not src.exists():
                raise RuntimeError(
                    f"paddle.jit.save did not write model{suffix} (got {produced}); "
                    "is FLAGS_enable_pir_api=0 set before importing paddle?"
                )
            shutil.copyfile(src, out / f"model{suffix}")
    strip_callstacks(out / "model.pdmodel")

    rng = np.random.default_rng(args.seed)
    calib_idx = np.sort(rng.choice(len(x_tr), size=min(N_CALIB, len(x_tr)), replace=False))
    np.savez(out / "calib.npz", image=x_tr[calib_idx], label=y_tr[calib_idx])
    np.savez(out / "test.npz", image=x_te, label=y_te)

    acc, feeds, fetches, ops = eval_saved(out, x_te, y_te)
    meta = {
        "name": "digits",
        "description": "Tiny CNN on scikit-learn load_digits (8x8, 10 classes)",
        "feed": feeds,
        "fetch": fetches,
        "input_shape": [None, 1, 8, 8],
        "input_dtype": "float32",
        "preprocess": "pixel / 16.0 (sklearn digits are 0..16)",
        "num_classes": 10,
        "n_calib": int(len(calib_idx)),
        "n_test": int(len(y_te)),
        "fp32_test_accuracy": acc,
        "seed": args.seed,
        "epochs": args.epochs,
        "paddle_version": paddle.__version__,
        "ops": ops,
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"saved {out}  test acc {acc:.4f}  ({time.time() - t0:.1f}s)")
    print("files:", {p.name: p.stat().st_size for p in sorted(out.iterdir())})
    return meta


if __name__ == "__main__":
    main()
