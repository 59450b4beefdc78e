"""What quantization inserted, read back from the IR (``find_quantizers``), and a dry-run
explanation of which ops ``quantize`` would touch and why others are left alone.

``find_quantizers``/``Quantizer`` live in ``actc.quant.quantizers`` (the runtime's reader);
re-exported here so DSL users have one import.
"""
from __future__ import annotations

from dataclasses import dataclass

from actc.dsl.evaluate import Evaluator
from actc.dsl.primitives import QUANTIZABLE_TYPES, quant_input_reasons
from actc.dsl.values import Selector
from actc.ir.program import Program
from actc.quant.quantizers import Quantizer, find_quantizers

__all__ = ["Quantizer", "find_quantizers", "Decision", "explain_quantize"]


@dataclass
class Decision:
    op_type: str
    outputs: list[str]
    quantized: list[str]  # input vars that would get a quantizer
    reason: str            # why not (empty when something is quantized)


def explain_quantize(program: Program, ops: Selector, skipped: Selector | None = None
                     ) -> list[Decision]:
    """One decision per op (block 0 and sub-blocks), in program order."""
    ev = Evaluator(program)
    out = []
    for op in program.ops(block=None):
        if op.type in ("feed", "fetch"):
            continue
        quantized, reason = [], ""
        if not ev.test(ops, op):
            reason = "not selected" if op.type in QUANTIZABLE_TYPES else \
                "type not selected (not quantizable)"
        elif op.attr("skip_quant") or (skipped is not None and ev.test(skipped, op)):
            reason = "skipped (skip_quant)"
        else:
            pairs = quant_input_reasons(program, op)
            quantized = [n for n, why in pairs if why is None]
            if not quantized:
                reason = "no quantizable input" + (
                    f" ({'; '.join(f'{n}: {w}' for n, w in pairs)})" if pairs else "")
        main = [n for slot in ("Out", "Y", "Output") for n in op.output(slot)]
        out.append(Decision(op.type, main or op.output_names, quantized, reason))
    return out


def format_decisions(decisions: list[Decision]) -> str:
    n = sum(1 for d in decisions if d.quantized)
    rows = []
    for d in decisions:
        out = ",".join(d.outputs) or "-"
        if d.quantized:
            rows.append(("+", d.op_type, out, f"quantize {', '.join(d.quantized)}"))
        elif d.reason != "type not selected (not quantizable)":
            rows.append(("-", d.op_type, out, d.reason))
    w_type = max((len(r[1]) for r in rows), default=0)
    w_out = max((len(r[2]) for r in rows), default=0)
    lines = [f"quantize would rewrite {n} of {len(decisions)} ops:"]
    lines += [f"  {m} {t:<{w_type}}  {o:<{w_out}}  {why}" for m, t, o, why in rows]
    return "\n".join(lines)
