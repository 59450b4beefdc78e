"""Regions for ``recon_level: region_wise``: the ops between an input and an output var.

Why: BRECQ/QDrop-style reconstruction learns the rounding of several layers jointly, so that
their errors compensate instead of each layer chasing its own float output. ACT's configs name
each region by its input and output vars (``regions: [[in, out], ...]``); with none given, the
program is cut into blocks at the points where a single activation carries everything
forward (the end of every residual block, every plain layer in between). IR only: no Paddle.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from actc.errors import ActcError, did_you_mean
from actc.ir.program import Op, Program
from actc.quant.quantizers import Quantizer

#: weightless ops a cut may not split from the layer before them (the layer's epilogue).
_EPILOGUE = frozenset({"batch_norm", "relu", "relu6", "hard_swish", "hardswish", "swish",
                       "sigmoid", "leaky_relu", "gelu", "tanh"})


@dataclass
class Region:
    """Ops (program order) from ``inputs`` to ``output``, and the weight quantizers inside."""
    name: str
    inputs: list[str]                  # activations read from outside (the first: the given one)
    output: str
    ops: list[Op] = field(default_factory=list)
    weights: list[Quantizer] = field(default_factory=list)


def region_between(program: Program, quantizers: list[Quantizer], source: str, output: str,
                   name: str = "") -> Region:
    """The ops on some path from ``source`` to ``output`` (block 0); every other activation
    they read from outside becomes another input."""
    for var in (source, output):
        if program.var(var) is None:
            names = [v.name for v in program.all_vars() if not program.is_weight(v.name)]
            raise ActcError(f"region_wise: region var '{var}' is not in the program"
                            f"{did_you_mean(var, names)}")
    order = {op.uid: i for i, op in enumerate(program.ops())}
    down = _reachable(program, source, forward=True)
    up = _reachable(program, output, forward=False)
    ops = sorted((op for uid, op in down.items() if uid in up), key=lambda o: order[o.uid])
    if not ops:
        raise ActcError(f"region_wise: no op lies between '{source}' and '{output}' (is "
                        f"'{output}' computed from '{source}'?)")
    produced = {n for op in ops for n in op.output_names}
    produced |= {q.output for q in quantizers if q.is_weight}   # soft weights, not inputs
    inputs = [source]
    for op in ops:
        for n in op.input_names:
            if n not in produced and n not in inputs and not program.is_weight(n):
                inputs.append(n)
    weights = _weights_in(program, quantizers, ops)
    return Region(name or f"{source} -> {output}", inputs, output, ops, weights)


def _reachable(program: Program, start: str, forward: bool) -> dict[int, Op]:
    """Block-0 ops reachable from var ``start`` along data edges (consumers or producers)."""
    seen: dict[int, Op] = {}
    stack = [start]
    visited = {start}
    while stack:
        var = stack.pop()
        edges = program.consumers(var) if forward else program.producers(var)
        for op, _, _ in edges:
            if op.block != 0 or op.uid in seen or op.type in ("feed", "fetch"):
                continue
            seen[op.uid] = op
            for n in (op.output_names if forward else op.input_names):
                if n not in visited:
                    visited.add(n)
                    stack.append(n)
    return seen


def _weights_in(program: Program, quantizers: list[Quantizer], ops: list[Op]) -> list[Quantizer]:
    """The weight quantizers whose quantize op is among ``ops``, or whose dequantized weight
    one of ``ops`` reads (a weight's QDQ pair hangs off the region's data path)."""
    uids = {op.uid for op in ops}
    read = {n for op in ops for n in op.input_names}
    return [q for q in quantizers if q.is_weight and q.quant_op is not None
            and (q.quant_op.uid in uids or q.output in read)]


def regions_from_pairs(program: Program, quantizers: list[Quantizer], pairs) -> list[Region]:
    """ACT's ``regions``: a list of [input, output] var names (or [[inputs], [outputs]] with
    one of each), in the order given."""
    out = []
    for i, pair in enumerate(pairs):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ActcError(f"region_wise: regions[{i}] must be [input var, output var], "
                            f"got {pair!r}")
        src, dst = (p[0] if isinstance(p, (list, tuple)) and len(p) == 1 else p for p in pair)
        if not isinstance(src, str) or not isinstance(dst, str):
            raise ActcError(f"region_wise: regions[{i}] must name one input and one output "
                            f"var, got {pair!r}")
        out.append(region_between(program, quantizers, src, dst, f"regions[{i}]"))
    return out


def auto_regions(program: Program, quantizers: list[Quantizer], max_layers: int = 4
                 ) -> list[Region]:
    """Blocks of the program, cut where one activation alone is live (produced before, read
    after) and is not about to enter its layer's epilogue. Residual blocks have no such point
    inside and stay whole; runs of plain layers are grouped up to ``max_layers`` a region."""
    ops = [op for op in program.ops() if op.block == 0 and op.type not in ("feed", "fetch")]
    feeds, fetches = program.feed_names(), program.fetch_names()
    if not ops or len(feeds) != 1 or len(fetches) != 1:
        raise ActcError("region_wise: automatic regions need a program with one input and one "
                        "output; name the regions ([input var, output var] pairs)")
    weight_outputs = {q.output for q in quantizers if q.is_weight}
    last_use: dict[str, int] = {}
    for i, op in enumerate(ops):
        for n in op.input_names:
            last_use[n] = i
    live = {feeds[0]}
    cuts = [(-1, feeds[0])]
    for i, op in enumerate(ops):
        live |= {n for n in op.output_names if last_use.get(n, -1) > i}
        live = {n for n in live if last_use.get(n, -1) > i}
        if len(live) == 1 and op.type not in _QDQ:     # cut at float tensors, before their QDQ
            var = next(iter(live))
            if not any(_is_epilogue(program, c) for c, _, _ in program.consumers(var)):
                cuts.append((i, var))
    if cuts[-1][1] != fetches[0]:
        cuts.append((len(ops) - 1, fetches[0]))
    layers = [sum(1 for op in ops[a + 1:b + 1] for n in op.input_names if n in weight_outputs)
              for (a, _), (b, _) in zip(cuts, cuts[1:])]
    regions: list[Region] = []
    start, count = cuts[0][1], 0
    for k, n in enumerate(layers):
        end = cuts[k + 1][1]
        nxt = layers[k + 1] if k + 1 < len(layers) else 0
        count += n
        if count and (k + 1 == len(layers) or count + nxt > max_layers):
            regions.append(region_between(program, quantizers, start, end,
                                          f"block {len(regions) + 1}"))
            start, count = end, 0
    return [r for r in regions if r.weights]


_QDQ = frozenset({"quantize_linear", "dequantize_linear"})


def _is_epilogue(program: Program, op: Op) -> bool:
    """An op that belongs to the layer before it: activation, batch_norm, or a bias add."""
    if op.type == "elementwise_add":
        return any(program.is_weight(n) for n in op.input("Y"))
    return op.type in _EPILOGUE
