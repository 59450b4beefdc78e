"""Graph -> onnx.ModelProto (opset 17), checked with onnx.checker, written atomically."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from actc.errors import ActcError
from actc.export.onnx.graph import Graph
from actc.export.onnx.types import onnx_code

OPSET = 17
IR_VERSION = 8  # the lowest IR that carries opset 17: every onnxruntime >= 1.16 reads it


def import_onnx():
    try:
        import onnx
    except ImportError:
        raise ActcError("ONNX export needs the onnx package: pip install 'actc[onnx]'") \
            from None
    return onnx


def _dims(shape: list) -> list:
    return [d if isinstance(d, int) and d >= 0 else ("N" if i == 0 else f"d{i}")
            for i, d in enumerate(shape)]


def used_nodes(g: Graph) -> list:
    """Nodes something needs (an output, or a node that is needed), in order."""
    need = {o[0] for o in g.outputs}
    keep = []
    for node in reversed(g.nodes):
        if any(o in need for o in node.outputs):
            keep.append(node)
            need.update(i for i in node.inputs if i)
    return keep[::-1]


def to_model(g: Graph, *, producer_version: str = ""):
    import_onnx()
    from onnx import helper, numpy_helper

    nodes = used_nodes(g)
    used = {i for n in nodes for i in n.inputs} | {o[0] for o in g.outputs}
    inits = []
    for name, arr in g.initializers.items():
        if name in used:
            inits.append(numpy_helper.from_array(np.asarray(arr), name))
    graph = helper.make_graph(
        [helper.make_node(n.op_type, n.inputs, n.outputs, name=n.name, **n.attrs)
         for n in nodes],
        "actc", 
        [helper.make_tensor_value_info(n, onnx_code(dt), _dims(s)) for n, dt, s in g.inputs],
        [helper.make_tensor_value_info(n, onnx_code(dt), _dims(s)) for n, dt, s in g.outputs],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="actc", producer_version=producer_version)
    model.ir_version = IR_VERSION
    return model


def check(model, path: str | Path | None = None) -> None:
    onnx = import_onnx()
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as e:  # a converter bug, not the user's input
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise RuntimeError(f"the exported ONNX model fails onnx.checker: {first}") from None


def serialize(model) -> bytes:
    data = model.SerializeToString()
    if len(data) >= 2 ** 31 - 1:
        raise ActcError("the model is over 2 GiB, the limit of a single ONNX file")
    return data
