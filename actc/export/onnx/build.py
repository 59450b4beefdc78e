"""Program -> Graph: every op of block 0 in program order through its converter."""
from __future__ import annotations

from pathlib import Path

from actc.errors import ActcError
from actc.export.onnx import qdq  # noqa: F401  (registers the quantizer converters)
from actc.export.onnx.graph import Graph, Unmapped
from actc.export.onnx.ops import CONVERTERS
from actc.ir.program import Op, Program


def _where(index: int, op: Op) -> str:
    outs = op.output_names
    return f"op #{index} '{op.type}'" + (f" (output '{outs[0]}')" if outs else "")


def build_graph(program: Program, *, activations: str = "uint8",
                model_path: str | Path | None = None) -> Graph:
    """The ONNX graph for ``program``; an op with no mapping is a one-line ActcError naming
    the op, its index and first output, at ``model_path``."""
    if activations not in ("uint8", "int8"):
        raise ActcError(f"activations must be uint8 or int8, not '{activations}'")
    g = Graph(program)
    g.activations = activations
    for index, op in enumerate(program.ops(block=0)):
        if op.uid in g.absorbed:
            continue
        convert = CONVERTERS.get(op.type)
        if convert is None or op.sub_block_ids:
            raise ActcError(f"{_where(index, op)} has no ONNX mapping; nothing was written",
                            path=model_path)
        try:
            convert(g, op)
        except Unmapped as e:
            raise ActcError(f"{_where(index, op)} cannot be exported to ONNX: it {e}; nothing "
                            "was written", path=model_path) from None
    if not g.outputs:
        raise ActcError("the program has no fetch ops: nothing to export as outputs",
                        path=model_path)
    return g
