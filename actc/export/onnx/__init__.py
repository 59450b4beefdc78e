"""ONNX export of actc's IR, with no Paddle (numpy reads the params) and ``onnx`` imported
only when a model is written.

- ``ops``: one converter per Paddle op kind (``CONVERTERS``); ``types``: dtype tables;
- ``fold``: conv/matmul with the batch_norm and bias add after them folded in;
- ``qdq``: quantize_linear/dequantize_linear -> QuantizeLinear/DequantizeLinear;
- ``build``: program -> graph; ``writer``: graph -> checked ModelProto;
- ``complete``: with calibration data, quantize the outputs of convs/adds of a QDQ model so
  onnxruntime runs QLinearConv/QLinearAdd (the fast form).
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from actc.errors import ActcError


@dataclass
class ExportSummary:
    path: Path
    nodes: Counter
    initializers: int
    size_bytes: int
    activations: str
    completed: dict | None = None

    @property
    def quantized(self) -> bool:
        return bool(self.nodes.get("QuantizeLinear") or self.nodes.get("DequantizeLinear"))

    def describe(self) -> str:
        top = ", ".join(f"{t} x{n}" for t, n in self.nodes.most_common(8))
        return (f"{sum(self.nodes.values())} nodes ({top}), {self.initializers} initializers, "
                f"opset 17")


def check_output_file(out: str | Path, inputs: list[Path] = ()) -> Path:
    """Before any work: the output is a file path we can write and not the input."""
    out = Path(out)
    if out.is_dir():
        raise ActcError("the output is a directory; give a file name such as model.onnx",
                        path=out)
    for p in inputs:
        try:
            if p is not None and out.exists() and os.path.samefile(out, p):
                raise ActcError("refusing to write over the input model", path=out)
        except OSError:
            pass
    parent = out.parent if str(out.parent) else Path(".")
    anc = next((p for p in [parent, *parent.parents] if p.exists()), Path("."))
    if not anc.is_dir() or not os.access(anc, os.W_OK):
        raise ActcError(f"cannot write here ({anc} is not a writable directory)", path=out)
    return out


def calibration_batches(program, data: str | Path, batch_size: int = 8,
                        max_batches: int = 8) -> list[dict]:
    """Feed dicts from an .npz whose arrays are named after the program's feeds (or one array
    for a single-feed program)."""
    import numpy as np

    feeds = program.feed_names()
    try:
        z = np.load(data)
    except (OSError, ValueError) as e:
        raise ActcError(f"cannot read calibration data: {e}", path=data) from None
    with z:
        names = list(z.files)
        if all(f in names for f in feeds):
            arrays = {f: z[f] for f in feeds}
        elif len(feeds) == 1 and names:
            arrays = {feeds[0]: z[names[0]]}
        else:
            raise ActcError(f"needs arrays named after the feeds {feeds}, has {names}",
                            path=data)
    n = min(len(a) for a in arrays.values())
    out = []
    for i in range(0, min(n, batch_size * max_batches), batch_size):
        out.append({f: np.ascontiguousarray(a[i:i + batch_size]).astype(
            program.var(f).dtype if program.var(f) is not None and program.var(f).dtype
            else a.dtype) for f, a in arrays.items()})
    if not out:
        raise ActcError("holds no samples", path=data)
    return out


def build_model(program, *, activations: str = "uint8", calib: list[dict] | None = None,
                model_path: str | Path | None = None):
    """(checked ModelProto, what completion did or None)."""
    from actc import __version__
    from actc.export.onnx.build import build_graph
    from actc.export.onnx.writer import check, import_onnx, to_model

    import_onnx()
    g = build_graph(program, activations=activations, model_path=model_path)
    model = to_model(g, producer_version=__version__)
    check(model)
    done = None
    if calib and any(n.op_type == "DequantizeLinear" for n in model.graph.node):
        from actc.export.onnx.complete import complete

        if g.sub8_bits is not None:
            raise ActcError(f"--data: the model quantizes activations to {g.sub8_bits} bits; "
                            "onnxruntime's integer kernels are 8-bit, so there is nothing to "
                            "complete: export it without --data", path=model_path)

        if activations != "uint8":
            raise ActcError("completing the QDQ graph (--data) needs uint8 activations")
        done = complete(model, calib)
        check(model)
    return model, done


def export_model(program, out: str | Path, *, activations: str = "uint8",
                 calib: list[dict] | None = None,
                 model_path: str | Path | None = None) -> ExportSummary:
    """Convert ``program`` (with its params) and write ``out`` atomically; with ``calib``
    (feed dicts) a quantized model is completed for onnxruntime's integer kernels."""
    from actc.export.onnx.writer import serialize
    from actc.io.atomic import write_atomic

    out = Path(out)
    model, done = build_model(program, activations=activations, calib=calib,
                              model_path=model_path)
    data = serialize(model)
    write_atomic(out, data)
    return ExportSummary(out, Counter(n.op_type for n in model.graph.node),
                         len(model.graph.initializer), len(data), activations, done)


def to_onnx_bytes(program, *, activations: str = "uint8",
                  calib: list[dict] | None = None) -> bytes:
    """The checked model's bytes, nothing written (tests, actc bench)."""
    from actc.export.onnx.writer import serialize

    return serialize(build_model(program, activations=activations, calib=calib)[0])
