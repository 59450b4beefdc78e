"""ONNX export of actc's IR, with no Paddle (numpy reads the params) and ``onnx`` imported
only when a model is written.

- ``ops``: one converter per Paddle op kind (``CONVERTERS``); ``types``: dtype tables;
- ``fold``: conv/matmul with the batch_norm and bias add after them folded in;
- ``qdq``: quantize_linear/dequantize_linear -> QuantizeLinear/DequantizeLinear;
- ``build``: program -> graph; ``writer``: graph -> checked ModelProto.
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


def export_model(program, out: str | Path, *, activations: str = "uint8",
                 model_path: str | Path | None = None) -> ExportSummary:
    """Convert ``program`` (with its params) and write ``out`` atomically."""
    from actc import __version__
    from actc.export.onnx.build import build_graph
    from actc.export.onnx.writer import check, import_onnx, serialize, to_model
    from actc.io.atomic import write_atomic

    import_onnx()
    out = Path(out)
    g = build_graph(program, activations=activations, model_path=model_path)
    model = to_model(g, producer_version=__version__)
    check(model)
    data = serialize(model)
    write_atomic(out, data)
    return ExportSummary(out, Counter(n.op_type for n in model.graph.node),
                         len(model.graph.initializer), len(data), activations)


def to_onnx_bytes(program, *, activations: str = "uint8") -> bytes:
    """The checked model's bytes, nothing written (tests, actc bench)."""
    from actc.export.onnx.build import build_graph
    from actc.export.onnx.writer import check, serialize, to_model

    model = to_model(build_graph(program, activations=activations))
    check(model)
    return serialize(model)
