"""Build tests/fixtures/tfm_encoder: a small paddle.nn.TransformerEncoder classifier trained
on a synthetic token task, exported in the legacy .pdmodel format.

Paddle 3.3.1 cannot export nn.TransformerEncoder in the legacy format (its matmul builder
fails in legacy static mode); Paddle 2.6.2 can, and the program it writes runs under 3.3.1.
So this runs in its own environment:

    python3 -m venv /tmp/pd26 && /tmp/pd26/bin/pip install "paddlepaddle==2.6.2" "numpy<2"
    /tmp/pd26/bin/python tools/make_transformer_fixture.py

Task: 16 tokens from a vocabulary of 24; the label is which of the tokens 1..4 occurs most
often (ties to the smallest). Deterministic (fixed seeds, CPU).
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


def main() -> int:
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
    for epoch in range(EPOCHS):
        model.train()
        perm = rng.permutation(len(x_tr))
        for i in range(0, len(perm), BATCH):
            idx = perm[i:i + BATCH]
            loss = nn.functional.cross_entropy(model(paddle.to_tensor(x_tr[idx])),
                                               paddle.to_tensor(y_tr[idx]))
            loss.backward()
            opt.step()
            opt.clear_grad()
    model.eval()
    acc = float((model(paddle.to_tensor(x_te)).numpy().argmax(1) == y_te).mean())
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


if __name__ == "__main__":
    sys.exit(main())
