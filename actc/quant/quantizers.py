"""Find the quantizers a `quantize` pass inserted, in either format, by reading the IR.

Reading them back from the program (rather than from a side table the pass keeps) means
calibration and convert also work on a program that was quantized elsewhere and reloaded.
"""
from __future__ import annotations

from dataclasses import dataclass

from actc.ir.program import Op, Program

# Fake (classic) quantize-dequantize ops: output slot, scale input slot (if any).
FAKE_QDQ_OPS = {
    "fake_quantize_dequantize_abs_max": None,
    "fake_channel_wise_quantize_dequantize_abs_max": None,
    "fake_quantize_dequantize_moving_average_abs_max": "InScale",
    "fake_quantize_dequantize_range_abs_max": "InScale",
}


@dataclass
class Quantizer:
    tensor: str              # the float tensor being quantized
    output: str              # what quantized consumers read (the dequantized tensor)
    is_weight: bool
    bits: int
    axis: int                # -1 = per tensor
    format: str              # "onnx" or "fake"
    scale: str | None        # persistable scale var (Paddle scale = abs-max threshold)
    zero_point: str | None
    quant_op: Op | None      # None once convert has folded a weight's quantize away
    dequant_op: Op | None


def find_quantizers(program: Program) -> list[Quantizer]:
    """Every quantizer in block 0, in program order."""
    found: list[Quantizer] = []
    for op in program.ops():
        if op.type == "quantize_linear":
            y = op.output("Y")[0]
            deq = next((c for c, slot, _ in program.consumers(y)
                        if c.type == "dequantize_linear" and slot == "X"), None)
            x = op.input("X")[0]
            found.append(Quantizer(
                tensor=x, output=deq.output("Y")[0] if deq else y,
                is_weight=program.is_weight(x), bits=int(op.attr("bit_length", 8)),
                axis=int(op.attr("quant_axis", -1)), format="onnx",
                scale=op.input("Scale")[0], zero_point=(op.input("ZeroPoint") or [None])[0],
                quant_op=op, dequant_op=deq))
        elif op.type == "dequantize_linear":
            x = op.input("X")[0]
            producers = program.producers(x)
            if producers and producers[0][0].type == "quantize_linear":
                continue  # found with its quantize_linear
            found.append(Quantizer(
                tensor=x, output=op.output("Y")[0], is_weight=program.is_weight(x),
                bits=int(op.attr("bit_length", 8)), axis=int(op.attr("quant_axis", -1)),
                format="onnx", scale=op.input("Scale")[0],
                zero_point=(op.input("ZeroPoint") or [None])[0], quant_op=None,
                dequant_op=op))
        elif op.type in FAKE_QDQ_OPS:
            x = op.input("X")[0]
            scale_slot = FAKE_QDQ_OPS[op.type]
            scale = op.input(scale_slot)[0] if scale_slot and op.input(scale_slot) else None
            axis = int(op.attr("quant_axis", 0)) if "channel_wise" in op.type else -1
            found.append(Quantizer(
                tensor=x, output=op.output("Out")[0], is_weight=program.is_weight(x),
                bits=int(op.attr("bit_length", 8)), axis=axis, format="fake", scale=scale,
                zero_point=None, quant_op=op, dequant_op=None))
    return found


def bypass(program: Program, quantizers: list[Quantizer]) -> None:
    """Remove ``program``'s own quantizers so consumers read the float tensors again."""
    for q in quantizers:
        program.replace_uses(q.output, q.tensor)
        for op in (q.dequant_op, q.quant_op):
            if op is not None:
                program.remove_op(op)
