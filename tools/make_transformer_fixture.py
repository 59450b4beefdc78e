"""Build tests/fixtures/tfm_encoder: a small paddle.nn.TransformerEncoder classifier trained
on a synthetic token task, exported in the legacy .pdmodel format.

Paddle 3.3.1 cannot export nn.TransformerEncoder in the legacy format (its matmul builder
fails in legacy static mode); Paddle 2.6.2 can, and the program it writes runs under 3.3.1.
So this runs in its own environment:

    python3 -m venv /tmp/pd26 && /tmp/pd26/bin/pip install "paddlepaddle==2.6.2" "numpy<2"
    /tmp/pd26/bin/python tools/make_transformer_fixture.py

Task: 16 tokens from a vocabulary of 24; the label is which of the tokens 1..4 occurs most
often (ties to the smallest). Deterministic (fixed seeds, CPU).

``--task digits --out DIR`` builds a second model on a real task instead, for
benchmarks/prune_vs_act.py (``--model tfm_digits``): scikit-learn's handwritten digits, each
8x8 image read as a sequence of its 8 pixel rows (8 values each, pixel / 16), a linear row
embedding plus a learned position embedding, the same 2-layer encoder (d_model 32, 4 heads,
feed-forward 64, dropout 0.1, relu), mean pooling and a 10-way linear head. Split and
preprocessing are those of actc/example/make_digits.py (20 % test, seed 2024, stratified:
1437 / 360). Feed ``image`` float32 [N, 8, 8]; DIR gets model.*, train.npz (the whole training
split, image + label), test.npz and meta.json. Needs scikit-learn in the 2.6.2 environment:

    /tmp/pd26/bin/pip install scikit-learn
    /tmp/pd26/bin/python tools/make_transformer_fixture.py --task digits --out /tmp/actc_bench/tfm_digits
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "tfm_encoder"
VOCAB, SEQ, D, HEADS, FF, LAYERS, CLASSES = 24, 16, 32, 4, 64, 2, 4
SEED, EPOCHS, BATCH = 7, 30, 64


def make_data(n: int, rng: np.random.RandomState):
    tokens = rng.randint(0, VOCAB, size=(n, SEQ)).astype("int64")
    counts = np.stack([(tokens == t).sum(1) for t in range(1, CLASSES + 1)], 1)
    return tokens, counts.argmax(1).astype("int64")


def fit(paddle, model, opt, epochs: int, rng, train, test, sched=None) -> float:
    """Cross-entropy training in shuffled batches (the LR schedule steps per batch);
    returns the test accuracy."""
    (x_tr, y_tr), (x_te, y_te) = train, test
    for _ in range(epochs):
        model.train()
        perm = rng.permutation(len(x_tr))
        for i in range(0, len(perm), BATCH):
            idx = perm[i:i + BATCH]
            loss = paddle.nn.functional.cross_entropy(model(paddle.to_tensor(x_tr[idx])),
                                                      paddle.to_tensor(y_tr[idx]))
            loss.backward()
            opt.step()
            opt.clear_grad()
            if sched is not None:
                sched.step()
    model.eval()
    return float((model(paddle.to_tensor(x_te)).numpy().argmax(1) == y_te).mean())


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", choices=["count", "digits"], default="count")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.task == "digits":
        return main_digits(args.out or OUT.parent / "tfm_digits")
    import paddle
    import paddle.nn as nn

    paddle.seed(SEED)
    rng = np.random.RandomState(SEED)
    x_tr, y_tr = make_data(3000, rng)
    x_te, y_te = make_data(400, rng)

    class Classifier(nn.Layer):
        def __init__(self):
            super().__init__()
            self.tok = nn.Embedding(VOCAB, D)
            layer = nn.TransformerEncoderLayer(D, HEADS, FF, dropout=0.1, activation="relu")
            self.encoder = nn.TransformerEncoder(layer, LAYERS)
            self.head = nn.Linear(D, CLASSES)

        def forward(self, tokens):
            h = self.encoder(self.tok(tokens))
            return self.head(h.mean(axis=1))

    model = Classifier()
    opt = paddle.optimizer.Adam(learning_rate=2e-3, parameters=model.parameters())
    acc = fit(paddle, model, opt, EPOCHS, rng, (x_tr, y_tr), (x_te, y_te))
    OUT.mkdir(parents=True, exist_ok=True)
    spec = [paddle.static.InputSpec([None, SEQ], "int64", "tokens")]
    paddle.jit.save(model, str(OUT / "model"), input_spec=spec)
    from actc.example.make_digits import strip_callstacks

    strip_callstacks(OUT / "model.pdmodel")  # no builder paths in a committed fixture
    np.savez(OUT / "train.npz", tokens=x_tr[:1000], label=y_tr[:1000])
    np.savez(OUT / "test.npz", tokens=x_te, label=y_te)
    (OUT / "meta.json").write_text(json.dumps({
        "paddle": paddle.__version__, "accuracy": acc, "vocab": VOCAB, "seq": SEQ,
        "d_model": D, "heads": HEADS, "dim_feedforward": FF, "layers": LAYERS}, indent=1))
    for f in ("model.pdiparams.info",):
        (OUT / f).unlink(missing_ok=True)
    print(f"test accuracy {acc:.4f}; wrote {OUT}")
    return 0


DIGITS_EPOCHS, DIGITS_LR = 60, 2e-3


def main_digits(out: Path) -> int:
    import paddle
    import paddle.nn as nn

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from digits_models import load_digits_split   # the example's split; numpy + sklearn only

    (x_tr, y_tr), (x_te, y_te) = load_digits_split()
    x_tr, x_te = x_tr.reshape(-1, 8, 8), x_te.reshape(-1, 8, 8)
    paddle.seed(SEED)
    rng = np.random.RandomState(SEED)

    class RowTransformer(nn.Layer):
        def __init__(self):
            super().__init__()
            self.embed = nn.Linear(8, D)
            self.pos = self.create_parameter([1, 8, D], default_initializer=nn.initializer.Normal(std=0.02))
            layer = nn.TransformerEncoderLayer(D, HEADS, FF, dropout=0.1, activation="relu")
            self.encoder = nn.TransformerEncoder(layer, LAYERS)
            self.head = nn.Linear(D, 10)

        def forward(self, image):
            h = self.encoder(self.embed(image) + self.pos)
            return self.head(h.mean(axis=1))

    model = RowTransformer()
    sched = paddle.optimizer.lr.CosineAnnealingDecay(DIGITS_LR, DIGITS_EPOCHS * ((len(x_tr) + BATCH - 1) // BATCH))
    opt = paddle.optimizer.Adam(learning_rate=sched, parameters=model.parameters())
    acc = fit(paddle, model, opt, DIGITS_EPOCHS, rng, (x_tr, y_tr), (x_te, y_te), sched)
    out.mkdir(parents=True, exist_ok=True)
    spec = [paddle.static.InputSpec([None, 8, 8], "float32", "image")]
    paddle.jit.save(model, str(out / "model"), input_spec=spec)
    try:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from actc.example.make_digits import strip_callstacks

        strip_callstacks(out / "model.pdmodel")
    except ImportError:   # actc's own protobuf module not importable here: leave them
        pass
    np.savez(out / "train.npz", image=x_tr, label=y_tr)
    np.savez(out / "test.npz", image=x_te, label=y_te)
    (out / "meta.json").write_text(json.dumps({
        "paddle": paddle.__version__, "task": "digits rows", "accuracy": acc, "seq": 8,
        "d_model": D, "heads": HEADS, "dim_feedforward": FF, "layers": LAYERS,
        "epochs": DIGITS_EPOCHS}, indent=1))
    (out / "model.pdiparams.info").unlink(missing_ok=True)
    print(f"test accuracy {acc:.4f}; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
