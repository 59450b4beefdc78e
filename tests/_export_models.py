"""Export the test corpus as legacy (non-PIR) Paddle inference programs.

Run in a subprocess by ``tests/corpus.py``::

    FLAGS_enable_pir_api=0 python tests/_export_models.py CACHE_DIR NAME [NAME ...]

Each model is written to ``CACHE_DIR/<name>/`` as ``model.pdmodel``,
``model.pdiparams`` and ``meta.json`` (feeds with shape/dtype, fetches, op
histogram, export seconds).  The folder is built under a temporary name and
renamed into place, so a half-written model is never visible.  One JSON line
per exported model goes to stdout.
"""
from __future__ import annotations

import os
import sys

# Legacy ProgramDesc output needs PIR off before paddle is imported.
os.environ["FLAGS_enable_pir_api"] = "0"

import collections
import contextlib
import hashlib
import json
import shutil
import time
from pathlib import Path

import numpy as np

SEED = 1234
IMAGE_SPEC = ([None, 3, 224, 224], "float32", "image")


# --------------------------------------------------------------------------- #
# dygraph builders: return (layer, [InputSpec...])
# --------------------------------------------------------------------------- #
def _spec(shape, dtype, name):
    import paddle

    return paddle.static.InputSpec(shape=shape, dtype=dtype, name=name)


def _vision(fn_name, **kw):
    def build():
        from paddle.vision import models

        return getattr(models, fn_name)(pretrained=False, **kw), [_spec(*IMAGE_SPEC)]

    return build


def build_vgg11():
    """vgg11 with its 25088-4096-4096 classifier shrunk to 25088-128-128-1000.

    The stock head holds 120M of vgg11's 133M parameters (a 530 MB file); the
    shrunk one keeps the same op structure (flatten, 3x Linear, ReLU, Dropout)
    at ~50 MB.
    """
    import paddle.nn as nn
    from paddle.vision import models

    m = models.vgg11(pretrained=False, num_classes=0)  # conv body only
    m.num_classes = 1000
    m.classifier = nn.Sequential(
        nn.Linear(512 * 7 * 7, 128),
        nn.ReLU(),
        nn.Dropout(),
        nn.Linear(128, 128),
        nn.ReLU(),
        nn.Dropout(),
        nn.Linear(128, 1000),
    )
    return m, [_spec(*IMAGE_SPEC)]


def build_transformer():
    """2-layer pre-LN transformer encoder classifier over int64 tokens.

    Attention uses paddle.einsum (paddle.matmul's Python builder is broken in
    legacy static mode in paddle 3.3.1); every projection is nn.Linear ->
    matmul_v2 + elementwise_add.
    """
    import paddle
    import paddle.nn as nn
    import paddle.nn.functional as F

    VOCAB, SEQ, D, HEADS, FF, LAYERS, CLASSES = 1000, 32, 64, 4, 128, 2, 4

    class Attention(nn.Layer):
        def __init__(self):
            super().__init__()
            self.qkv = nn.Linear(D, 3 * D)
            self.proj = nn.Linear(D, D)
            self.scale = (D // HEADS) ** -0.5

        def forward(self, x):
            qkv = self.qkv(x).reshape([-1, SEQ, 3, HEADS, D // HEADS])
            qkv = qkv.transpose([2, 0, 3, 1, 4])  # 3, B, H, S, Dh
            q, k, v = qkv[0], qkv[1], qkv[2]
            att = paddle.einsum("bhqd,bhkd->bhqk", q, k) * self.scale
            att = F.softmax(att, axis=-1)
            out = paddle.einsum("bhqk,bhkd->bhqd", att, v)
            out = out.transpose([0, 2, 1, 3]).reshape([-1, SEQ, D])
            return self.proj(out)

    class Block(nn.Layer):
        def __init__(self):
            super().__init__()
            self.ln1 = nn.LayerNorm(D)
            self.attn = Attention()
            self.ln2 = nn.LayerNorm(D)
            self.fc1 = nn.Linear(D, FF)
            self.fc2 = nn.Linear(FF, D)
            self.drop = nn.Dropout(0.1)

        def forward(self, x):
            x = x + self.drop(self.attn(self.ln1(x)))
            return x + self.drop(self.fc2(F.relu(self.fc1(self.ln2(x)))))

    class Encoder(nn.Layer):
        def __init__(self):
            super().__init__()
            self.tok = nn.Embedding(VOCAB, D)
            self.pos = self.create_parameter([1, SEQ, D])
            self.blocks = nn.LayerList([Block() for _ in range(LAYERS)])
            self.ln = nn.LayerNorm(D)
            self.head = nn.Linear(D, CLASSES)

        def forward(self, tokens):
            x = self.tok(tokens) + self.pos
            for b in self.blocks:
                x = b(x)
            x = self.ln(x).mean(axis=1)
            return self.head(x)

    return Encoder(), [_spec([None, SEQ], "int64", "tokens")]


def _fix_rnn_dropout_state(rnn) -> None:
    """Work around a paddle 3.3.1 legacy-mode jit.save crash in nn.LSTM/GRU.

    RNNBase keeps ``_dropout_state`` as a never-initialised dygraph buffer
    (place ``undefined``); dy2static's ``_to_static_var`` reads its ``.device``
    and raises "Unknown place type: Place(undefined:0)".  Replacing it with an
    empty, initialised uint8 buffer of the same name fixes the export; the
    ``rnn`` op's DropoutState input is only used by cuDNN dropout.
    """
    import paddle

    old = rnn._dropout_state
    new = paddle.zeros([0], dtype="uint8")
    new.name = old.name
    new.stop_gradient = True
    rnn.register_buffer("_dropout_state", new, persistable=False)


def build_lstm():
    """Embedding -> 2-layer bidirectional LSTM -> last step -> Linear."""
    import paddle.nn as nn

    VOCAB, SEQ, E, H, CLASSES = 500, 24, 32, 48, 5

    class LSTMClassifier(nn.Layer):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(VOCAB, E)
            self.lstm = nn.LSTM(E, H, num_layers=2, direction="bidirect")
            self.fc = nn.Linear(2 * H, CLASSES)
            _fix_rnn_dropout_state(self.lstm)

        def forward(self, tokens):
            out, _ = self.lstm(self.emb(tokens))
            return self.fc(out[:, -1, :])

    return LSTMClassifier(), [_spec([None, SEQ], "int64", "tokens")]


DYGRAPH = {
    "resnet18": _vision("resnet18"),
    "resnet50": _vision("resnet50"),
    "mobilenet_v1": _vision("mobilenet_v1"),
    "mobilenet_v2": _vision("mobilenet_v2"),
    "mobilenet_v3_small": _vision("mobilenet_v3_small"),
    "shufflenet_v2_x0_25": _vision("shufflenet_v2_x0_25"),
    "densenet121": _vision("densenet121"),
    "vgg11": build_vgg11,
    "transformer": build_transformer,
    "lstm": build_lstm,
}


def export_dygraph(name: str, out: Path) -> None:
    import paddle

    paddle.disable_static()
    paddle.seed(SEED)
    np.random.seed(SEED)
    layer, specs = DYGRAPH[name]()
    layer.eval()
    paddle.jit.save(layer, str(out / "model"), input_spec=specs)


# --------------------------------------------------------------------------- #
# static-graph builder: multi-block program
# --------------------------------------------------------------------------- #
@contextlib.contextmanager
def _legacy_logical_not():
    """paddle 3.3.1: ``paddle.static.nn.cond`` builds its false branch with
    ``paddle.logical_not(pred)``, whose Python builder only accepts PIR Values
    ("must be Value, but got Variable") in legacy static mode.  Swap in a
    builder that appends the (still registered) ``logical_not`` op.
    """
    import paddle
    from paddle.base.layer_helper import LayerHelper

    def logical_not(x, out=None, name=None):
        helper = LayerHelper("logical_not", name=name)
        if out is None:
            out = helper.create_variable_for_type_inference(dtype=x.dtype)
        out.stop_gradient = True
        helper.append_op(type="logical_not", inputs={"X": [x]}, outputs={"Out": [out]})
        return out

    saved = paddle.logical_not
    paddle.logical_not = logical_not
    try:
        yield
    finally:
        paddle.logical_not = saved


def export_control_flow(out: Path) -> None:
    """fc -> while_loop (3 x fc+relu, sub-block) -> cond (sub-blocks) -> fc."""
    import paddle
    import paddle.nn.functional as F

    paddle.enable_static()
    paddle.seed(SEED)
    main, startup = paddle.static.Program(), paddle.static.Program()
    main.random_seed = startup.random_seed = SEED
    try:
        with paddle.static.program_guard(main, startup):
            x = paddle.static.data("x", [None, 16], "float32")
            h = paddle.static.nn.fc(x, 32, activation="relu")

            def loop_cond(i, h):
                return i < 3

            def loop_body(i, h):
                h = paddle.static.nn.fc(h, 32, activation="relu") + h
                return i + 1, h

            i = paddle.full([1], 0, "int64")
            _, h = paddle.static.nn.while_loop(loop_cond, loop_body, [i, h])

            pred = paddle.mean(h) > 0.5
            with _legacy_logical_not():
                h = paddle.static.nn.cond(
                    pred,
                    lambda: F.relu(h * 2.0),
                    lambda: F.silu(h),
                )
            y = paddle.static.nn.fc(h, 10)

        exe = paddle.static.Executor(paddle.CPUPlace())
        scope = paddle.static.Scope()
        with paddle.static.scope_guard(scope):
            exe.run(startup)
            paddle.static.save_inference_model(
                str(out / "model"), [x], [y], exe, program=main
            )
    finally:
        paddle.disable_static()


# --------------------------------------------------------------------------- #
def describe(out: Path) -> dict:
    """Load the saved program back and record feeds, fetches and the op histogram."""
    import paddle

    paddle.enable_static()
    try:
        exe = paddle.static.Executor(paddle.CPUPlace())
        with paddle.static.scope_guard(paddle.static.Scope()):
            prog, feeds, fetches = paddle.static.load_inference_model(str(out / "model"), exe)
        gb = prog.global_block()
        feed_info = []
        for n in feeds:
            v = gb.var(n)
            feed_info.append(
                {"name": n, "shape": list(v.shape), "dtype": str(v.dtype).replace("paddle.", "")}
            )
        hist = collections.Counter(op.type for b in prog.blocks for op in b.ops)
        return {
            "feeds": feed_info,
            "fetch": [v.name for v in fetches],
            "num_blocks": prog.num_blocks,
            "ops": dict(sorted(hist.items())),
        }
    finally:
        paddle.disable_static()


def export_one(name: str, cache_dir: Path) -> dict:
    final = cache_dir / name
    tmp = cache_dir / f".tmp-{name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    t0 = time.time()
    try:
        if name == "control_flow":
            export_control_flow(tmp)
        else:
            export_dygraph(name, tmp)
        # jit.save may add e.g. model.pdiparams.info; keep only the two files
        for p in tmp.iterdir():
            if p.name not in ("model.pdmodel", "model.pdiparams"):
                p.unlink()
        for fn in ("model.pdmodel", "model.pdiparams"):
            if not (tmp / fn).is_file():
                raise RuntimeError(f"{name}: export did not produce {fn}")
        secs = time.time() - t0
        meta = {"name": name, **describe(tmp), "export_seconds": round(secs, 2)}
        import paddle

        meta["paddle_version"] = paddle.__version__
        # tests/corpus.py re-exports when this script changes
        meta["exporter"] = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
        meta["sizes"] = {p.name: p.stat().st_size for p in sorted(tmp.iterdir())}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        if final.exists():  # someone else won the race
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, final)
        return meta
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cache_dir = Path(argv[0])
    cache_dir.mkdir(parents=True, exist_ok=True)
    import paddle

    paddle.set_device("cpu")
    for name in argv[1:]:
        meta = export_one(name, cache_dir)
        print(json.dumps({"name": name, "export_seconds": meta["export_seconds"],
                          "sizes": meta["sizes"]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
