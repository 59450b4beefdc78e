"""The Python primitives rules may call: numerics and analyses the DSL does not express.

This is the one place they are registered. Each is a plain function taking the evaluator
(which holds the program) and typed arguments; ``@primitive`` records its signature and doc so
the compiler can check calls and ``actc passes`` can list them.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from actc.act.optypes import ACT_QUANT_OP_TYPES, WEIGHT_QUANT_OP_TYPES
from actc.ir.program import Op
from actc.quant.reference import qmax as reference_qmax

# Which input slots of each op type carry tensors quantization may rewrite. Weight ops list
# both the activation and the weight slot; activation-only ops read "X" unless listed here.
# (Data learned from Paddle's quant_config.py op dictionaries.)
QUANT_SLOTS: dict[str, tuple[str, ...]] = {
    "conv2d": ("Input", "Filter"), "depthwise_conv2d": ("Input", "Filter"),
    "conv2d_transpose": ("Input", "Filter"), "mul": ("X", "Y"), "matmul": ("X", "Y"),
    "matmul_v2": ("X", "Y"),
    "elementwise_add": ("X", "Y"), "elementwise_sub": ("X", "Y"),
    "elementwise_mul": ("X", "Y"), "elementwise_pow": ("X", "Y"), "equal": ("X", "Y"),
    "not_equal": ("X", "Y"), "greater_equal": ("X", "Y"), "greater_than": ("X", "Y"),
    "less_equal": ("X", "Y"), "less_than": ("X", "Y"), "logical_and": ("X", "Y"),
    "prelu": ("X", "Alpha"), "gru": ("Input", "Weight"), "lstm": ("Input", "Weight"),
    "slice": ("Input",), "strided_slice": ("Input",), "fill_constant_batch_size_like": ("Input",),
    "box_coder": ("PriorBox",), "lookup_table": ("W",), "lookup_table_v2": ("W",),
    "roi_align": ("X", "ROIs"), "where": ("X", "Y"), "grid_sampler": ("X", "Grid"),
    "fill_constant": (),
}
QUANTIZABLE_TYPES = frozenset(WEIGHT_QUANT_OP_TYPES) | frozenset(ACT_QUANT_OP_TYPES)
# Weight slots quantized per output channel along axis 1 (0 for the rest).
AXIS1_TYPES = frozenset({"conv2d_transpose", "mul", "matmul", "matmul_v2"})
FLOAT_DTYPES = frozenset({"float32", "float16", "bfloat16", "float64"})
# Ops that already are a quantizer: their inputs/outputs are never quantized again.
QUANTIZER_TYPES = frozenset({
    "quantize_linear", "dequantize_linear", "fake_quantize_dequantize_abs_max",
    "fake_channel_wise_quantize_dequantize_abs_max",
    "fake_quantize_dequantize_moving_average_abs_max", "fake_quantize_abs_max",
    "fake_quantize_moving_average_abs_max", "fake_quantize_range_abs_max",
    "fake_channel_wise_quantize_abs_max", "fake_dequantize_max_abs",
    "fake_channel_wise_dequantize_max_abs", "moving_average_abs_max_scale",
})


@dataclass
class Primitive:
    name: str
    fn: Callable
    params: list[tuple[str, str, Any]]  # (name, type, default or inspect.empty)
    returns: str
    doc: str

    def signature(self) -> str:
        ps = []
        for n, t, d in self.params:
            ps.append(f"{n}: {t}" + ("" if d is inspect.Parameter.empty else f" = {d!r}"))
        return f"{self.name}({', '.join(ps)}) -> {self.returns}"

    def call(self, ev, args: list, kwargs: dict, pos=None):
        from actc.dsl.evaluate import EvalError
        names = [p[0] for p in self.params]
        for k in kwargs:
            if k not in names:
                raise EvalError(f"{self.name}() has no parameter '{k}'", pos)
        required = sum(1 for p in self.params if p[2] is inspect.Parameter.empty)
        if not (len(args) + len(kwargs) >= required and len(args) <= len(self.params)):
            raise EvalError(f"{self.name}() takes {self.signature()}; got {len(args)} "
                            "argument(s)", pos)
        try:
            return self.fn(ev, *args, **kwargs)
        except EvalError:
            raise
        except (ValueError, TypeError, KeyError, IndexError) as err:
            raise EvalError(f"{self.name}(): {err}", pos) from None


PRIMITIVES: dict[str, Primitive] = {}


def _tname(ann) -> str:
    if ann is inspect.Parameter.empty:
        return "any"
    return ann if isinstance(ann, str) else getattr(ann, "__name__", str(ann))


def primitive(fn: Callable) -> Callable:
    """Register ``fn`` (first parameter: the evaluator) under its own name."""
    sig = inspect.signature(fn)
    params = [(p.name, _tname(p.annotation), p.default)
              for p in list(sig.parameters.values())[1:]]
    name = fn.__name__.rstrip("_")
    PRIMITIVES[name] = Primitive(name, fn, params, _tname(sig.return_annotation),
                                 (fn.__doc__ or "").strip().splitlines()[0])
    return fn


def _program(ev):
    if ev.program is None:
        raise ValueError("needs a model")
    return ev.program


def _op(x) -> Op:
    if not isinstance(x, Op):
        raise TypeError(f"expected an op, got {type(x).__name__}")
    return x


# ------------------------------------------------------------------ quantization analyses
def quant_slot_names(op_type: str) -> tuple[str, ...]:
    if op_type not in QUANTIZABLE_TYPES:
        return ()
    return QUANT_SLOTS.get(op_type, ("X",))


@primitive
def quant_slots(ev, op: "op") -> "list":
    """Input slots of this op's type that quantization rewrites ([] if the type has none)."""
    return list(quant_slot_names(_op(op).type))


def quant_input_reasons(program, op: Op) -> list[tuple[str, str | None]]:
    """(var, reason-not-quantized or None) for each argument of the op's quantizable slots."""
    out: list[tuple[str, str | None]] = []
    seen = set()
    for slot in quant_slot_names(op.type):
        for name in op.input(slot):
            if name in seen:
                continue
            seen.add(name)
            var = program.var(name, op.block)
            producers = program.producers(name, op.block)
            if var is None:
                out.append((name, "undeclared var"))
            elif var.dtype not in FLOAT_DTYPES:
                out.append((name, f"{var.dtype} tensor"))
            elif any(p.type in QUANTIZER_TYPES for p, _, _ in producers):
                out.append((name, "already quantized"))
            else:
                out.append((name, None))
    return out


@primitive
def quant_inputs(ev, op: "op") -> "list":
    """Var names this op reads through quantizable slots: float, not already a quantizer's
    output, each once."""
    return [n for n, why in quant_input_reasons(_program(ev), _op(op)) if why is None]


def axis_for(op: Op, slot: str) -> int:
    if op.type == "matmul_v2" and op.attr("trans_y"):
        return 0
    if op.type == "matmul" and op.attr("transpose_Y"):
        return 0
    return 1 if op.type in AXIS1_TYPES else 0


@primitive
def quant_axis(ev, op: "op", var: "str") -> "int":
    """Channel axis of a weight read by this op (0 conv filters, 1 mul/matmul/conv-transpose
    weights, 0 for matmul_v2 with trans_y)."""
    op = _op(op)
    slot = next((s for s, names in op.inputs.items() if var in names), None)
    if slot is None:
        raise ValueError(f"{op.type} does not read '{var}'")
    return axis_for(op, slot)


@primitive
def qmax(ev, bits: "int") -> "int":
    """Largest code of a signed ``bits``-wide grid, 2^(bits-1)-1. Paddle 3.x quantize ops read
    their grid from the qmin/qmax attrs (default -128/127), not from bit_length."""
    return reference_qmax(int(bits))


@primitive
def dequantized(ev, var: "str") -> "str":
    """The dequantized copy of ``var`` a quantizer already produces (null if none): lets every
    consumer share one quantize/dequantize pair."""
    program = _program(ev)
    for op, slot, _ in program.consumers(var):
        if slot != "X" or op.type not in QUANTIZER_TYPES:
            continue
        if op.type == "quantize_linear":
            q = op.output("Y")[0]
            for dq, _, _ in program.consumers(q):
                if dq.type == "dequantize_linear":
                    return dq.output("Y")[0]
        elif "dequantize" in op.type:
            return op.output("Out")[0]
    return None


# ------------------------------------------------------------------ vars and ops
@primitive
def is_weight(ev, var: "str") -> "bool":
    """True for persistable data the model ships (not feed/fetch holders), and for a weight
    seen through its sparsity mask (quantize treats it as the weight it is)."""
    program = _program(ev)
    return program.is_weight(var) or _masked_source(program, var) is not None


@primitive
def shape(ev, var: "str") -> "list":
    """The declared shape of a var."""
    v = _program(ev).var(var)
    if v is None or v.shape is None:
        raise ValueError(f"'{var}' has no shape")
    return list(v.shape)


@primitive
def dim(ev, var: "str", axis: "int") -> "int":
    """One dimension of a var's declared shape."""
    return shape(ev, var)[axis]


@primitive
def dtype(ev, var: "str") -> "str":
    """The dtype name of a var (float32, int64 ...)."""
    v = _program(ev).var(var)
    if v is None or v.dtype is None:
        raise ValueError(f"'{var}' has no dtype")
    return v.dtype


@primitive
def zeros(ev, shape: "list", dtype: "str" = "float32") -> "array":
    """A zero-filled array (initial data for scales and zero points)."""
    return np.zeros(_array_shape(shape), dtype=str(dtype))


@primitive
def ones(ev, shape: "list", dtype: "str" = "float32") -> "array":
    """A one-filled array."""
    return np.ones(_array_shape(shape), dtype=str(dtype))


def _array_shape(shape) -> list[int]:
    """A shape whose array a recipe may build (limits.MAX_ARRAY elements)."""
    from actc.dsl.limits import MAX_ARRAY

    dims = [int(d) for d in shape]
    size = int(np.prod(dims, dtype=object)) if dims else 1
    if any(d < 0 for d in dims) or size > MAX_ARRAY:
        raise ValueError(f"an array of {size} elements is over the limit of {MAX_ARRAY}")
    return dims


@primitive
def full(ev, shape: "list", value: "float", dtype: "str" = "float32") -> "array":
    """An array filled with one value."""
    with np.errstate(all="ignore"):
        out = np.full(_array_shape(shape), value, dtype=str(dtype))
    if out.dtype.kind == "f" and out.size and not np.isfinite(out.flat[0]):
        raise ValueError(f"{value} does not fit in {out.dtype} (not finite)")
    return out


@primitive
def input(ev, op: "op", slot: "str") -> "list":
    """Argument names of one input slot."""
    return _op(op).input(slot)


@primitive
def output(ev, op: "op", slot: "str") -> "list":
    """Argument names of one output slot."""
    return _op(op).output(slot)


@primitive
def producer(ev, var: "str") -> "op":
    """The op that writes ``var`` (null for weights and feeds)."""
    prods = _program(ev).producers(var)
    return prods[0][0] if prods else None


@primitive
def consumers(ev, var: "str") -> "list":
    """The ops that read ``var``, in program order, each once."""
    seen, out = set(), []
    for op, _, _ in _program(ev).consumers(var):
        if op.uid not in seen:
            seen.add(op.uid)
            out.append(op)
    return out


@primitive
def len_(ev, value: "any") -> "int":
    """Length of a list, string or mapping."""
    return len(value)


@primitive
def str_(ev, value: "any") -> "str":
    """A value as a string."""
    return str(value)


@primitive
def abs_max(ev, var: "str") -> "float":
    """max |w| of a weight."""
    t = _program(ev).params.get(var)
    if t is None:
        raise ValueError(f"'{var}' has no data")
    return float(np.abs(np.asarray(t.array if hasattr(t, "array") else t)).max())


# ------------------------------------------------------------------ distillation and training
def _ctx_cache(ev) -> dict:
    """Per-pipeline cache (a teacher loaded by one rule is reused by the next)."""
    return getattr(ev.ctx, "cache", {}) if ev.ctx is not None else {}


@primitive
def teacher_program(ev, path: "str" = None, model_filename: "str" = None,
                    params_filename: "str" = None) -> "program":
    """A teacher model: a model directory, or (null) the input model as it was loaded."""
    from actc.errors import ActcError
    from actc.io.model import load_model

    key = ("teacher", path, model_filename, params_filename)
    cache = _ctx_cache(ev)
    if key in cache:
        return cache[key]
    ctx = ev.ctx
    if path is None:
        original = getattr(ctx, "original", None)
        if original is not None:
            program = original
        elif getattr(ctx, "source", None) is not None:
            program = load_model(ctx.source.program, ctx.source.params)[0]
        else:
            raise ActcError("distill: no teacher given and the input model is not known; "
                            "pass teacher: DIR")
    else:
        from actc.example import model_path

        program = load_model(model_path(path), model_filename=model_filename,
                             params_filename=params_filename)[0]
    cache[key] = program
    return program


@primitive
def distill_pairs(ev, nodes: "list", teacher: "program", prefix: "str") -> "list":
    """[[teacher var (unprefixed), student var], ...] from any of ACT's three node spellings
    (none: ACT's default node); checks names (with did-you-mean) and shapes."""
    from actc.distill.nodes import resolve_pairs
    return resolve_pairs(_program(ev), teacher, nodes, prefix)


@primitive
def shared_feeds(ev, teacher: "program") -> "list":
    """The teacher's feeds, checked to match the student's in name, shape and dtype."""
    from actc.distill.nodes import shared_feeds as check
    return check(_program(ev), teacher)


@primitive
def column(ev, rows: "list", index: "int") -> "list":
    """The index-th entry of every row (e.g. the teacher names of the pairs)."""
    return [r[int(index)] for r in rows]


@primitive
def indices(ev, items: "list") -> "list":
    """0, 1, ... len(items) - 1."""
    return list(range(len(items)))


@primitive
def pick(ev, value: "any", i: "int", n: "int", what: "str" = "value") -> "any":
    """``value`` itself, or its i-th entry when it is a list of n (one per node pair)."""
    from actc.distill.nodes import pick as choose
    return choose(value, int(i), int(n), what)


@primitive
def feeds(ev) -> "list":
    """The program's feed var names, in column order."""
    return _program(ev).feed_names()


@primitive
def feed_holder(ev) -> "str":
    """The var feed ops read from (Paddle's 'feed' list)."""
    program = _program(ev)
    op = next((o for o in program.ops("feed")), None)
    return op.input("X")[0] if op is not None else "feed"


@primitive
def model_output(ev, index: "int" = 0) -> "str":
    """The index-th fetch target of the program (its outputs)."""
    names = _program(ev).fetch_names()
    if not names:
        raise ValueError("the program has no fetch targets")
    return names[int(index)]


@primitive
def has_var(ev, name: "str") -> "bool":
    """Does the program declare a var of this name?"""
    return _program(ev).var(name) is not None


@primitive
def xshape_ops(ev) -> "list":
    """The reshape-like op types with an XShape output (reshape2, transpose2, squeeze2 ...)."""
    from actc.ir.opdefs import XSHAPE_OPS
    return list(XSHAPE_OPS)


@primitive
def dead_ops(ev) -> "list":
    """Ops nothing fetched depends on that write no persistable var of the model
    (training-only ops: the teacher, losses and the label feed), in program order."""
    from actc.ir.dead import dead_ops as find
    return find(_program(ev))


@primitive
def weight_abs_max(ev, var: "str", axis: "int" = -1) -> "array":
    """Per-channel (axis >= 0) or per-tensor max |w| of a weight, as float32 (> 0)."""
    from actc.quant.ptq import weight_threshold
    t = _program(ev).params.get(var)
    if t is None:
        raise ValueError(f"'{var}' has no data")
    return weight_threshold(np.asarray(t.array, dtype=np.float32), 8, int(axis), "abs_max")


@primitive
def param_value(ev, var: "str") -> "array":
    """The stored data of a persistable var (a copy)."""
    t = _program(ev).params.get(var)
    if t is None:
        raise ValueError(f"'{var}' has no data")
    return np.array(t.array)


@primitive
def shape_of(ev, value: "array") -> "list":
    """The shape of an array value."""
    return list(np.shape(value))


@primitive
def pact_output(ev, var: "str") -> "str":
    """The PACT-clipped copy of ``var`` an earlier consumer got (null if none)."""
    for op in _program(ev).ops():
        if op.has_attr("actc_pact_of") and op.attr("actc_pact_of") == var:
            return op.output("Out")[0]
    return None


@primitive
def step_counter(ev) -> "str":
    """The iteration counter var range_abs_max observers share (null until one is made)."""
    for op in _program(ev).ops():
        if op.has_attr("actc_step_counter"):
            return op.output("Out")[0]
    return None


@primitive
def first_op(ev) -> "op":
    """The first op of the main block after its feeds."""
    return next(op for op in _program(ev).blocks[0].ops if op.type != "feed")


# ------------------------------------------------------------------ sparsity masks
MASK_ATTR = "actc_mask"


def _masked_source(program, var: str):
    """The weight behind a mask op's output (None if ``var`` is not one)."""
    prods = program.producers(var)
    if prods and prods[0][0].has_attr(MASK_ATTR):
        return prods[0][0].input("X")[0]
    return None


@primitive
def prunable_weights(ev, ops: "selector") -> "list":
    """[[op, weight], ...]: each selected op's weights of rank >= 2 (biases and norm scales
    are 1-D and stay dense), once per weight, teacher ops excluded."""
    program = _program(ev)
    out, seen = [], set()
    for op in program.ops():
        if op.has_attr("actc_teacher") or op.has_attr(MASK_ATTR) or not ev.test(ops, op):
            continue
        for name in op.input_names:
            v = program.var(name)
            if name in seen or v is None or not program.is_weight(name) or \
                    v.dtype not in FLOAT_DTYPES or len(v.shape or ()) < 2:
                continue
            seen.add(name)
            out.append([op, name])
    return out


def _weights(program, names):
    return [np.asarray(program.params[n].array, dtype=np.float32) for n in names]


@primitive
def magnitude_masks(ev, weights: "list", mode: "str", ratio: "float", threshold: "float",
                    local: "bool") -> "list":
    """0/1 masks zeroing the smallest |w|: exactly round(ratio * n) per tensor (local) or over
    all of them (global); or |w| < threshold."""
    from actc.prune.masks import magnitude_masks as masks
    return masks(_weights(_program(ev), weights), str(mode), float(ratio), float(threshold),
                 bool(local))


@primitive
def two_four_mask(ev, op: "op", weight: "str") -> "array":
    """The 2:4 mask of a weight along its op's input (K) axis (null if K is not a multiple of 4)."""
    from actc.prune.masks import K_AXIS, two_four_mask as mask
    k = k_axis(ev, op, weight)
    w = _weights(_program(ev), [weight])[0]
    if k is None or w.shape[k] % 4:
        return None
    return mask(w, k)


@primitive
def k_axis(ev, op: "op", weight: "str") -> "int":
    """The input (K) axis of ``weight`` in ``op`` (null for op types without one)."""
    from actc.prune.masks import K_AXIS
    op = _op(op)
    if op.type not in K_AXIS:
        return None
    if op.type == "matmul_v2" and op.attr("trans_y", False):
        return 1
    if op.type == "matmul" and op.attr("transpose_Y", False):
        return 1
    return K_AXIS[op.type]


@primitive
def gmp_settings(ev, gmp: "mapping", ratio: "float", local: "bool") -> "str":
    """The GMP schedule the train stage follows, as a JSON attr (ACT's keys, checked)."""
    from actc.prune.masks import encode, gmp_config
    return encode({"gmp": gmp_config(dict(gmp or {})), "ratio": float(ratio),
                   "local": bool(local)})


@primitive
def sparsity(ev, weights: "list") -> "str":
    """'name 75.00%, ...; overall x%' for the given masks or weights (fraction zero)."""
    program = _program(ev)
    parts, zeros, total = [], 0, 0
    for n in weights:
        a = np.asarray(program.params[n].array)
        z = int(np.sum(a == 0))
        zeros, total = zeros + z, total + a.size
        parts.append(f"{n.removesuffix('@mask')} {100.0 * z / max(a.size, 1):.2f}%")
    return f"{', '.join(parts)}; overall {100.0 * zeros / max(total, 1):.2f}% of {total}"


@primitive
def fold_mask(ev, weight: "str", mask: "str") -> "str":
    """weight := weight * mask (the exported weights are truly zero); returns the weight."""
    program = _program(ev)
    w = np.asarray(program.params[weight].array)
    m = np.asarray(program.params[mask].array)
    program.set_param(weight, (w * m).astype(w.dtype))
    return weight


@primitive
def ops_with_attr(ev, name: "str") -> "list":
    """The ops (program order, main block) that carry attribute ``name``."""
    return [op for op in _program(ev).ops() if op.has_attr(name)]


@primitive
def training_labels(ev) -> "bool":
    """Does the training data (--data, else calib.npz beside the model) carry labels?"""
    from actc.data import open_dataset

    source = _pass_data(ev)
    if source is None:
        return False
    data = open_dataset(source, _program(ev))
    if data.num_samples() is not None:
        return data.has_labels
    return next(iter(data.batches(1, 1)), None) is not None and \
        next(iter(data.batches(1, 1))).label is not None


@primitive
def named_weights(ev, ops: "selector") -> "list":
    """The names a selector spells out in ``op.input in [...]`` / ``op.input == "..."``
    (ACT prune_params_name), in order."""
    from actc.dsl import ast as A
    from actc.dsl.selectors import _walk

    names = []
    for e in _walk(ops.expr):
        if isinstance(e, A.Compare) and e.op in ("in", "==") and isinstance(e.left, A.Attr) \
                and e.left.name in ("input", "inputs") and isinstance(e.left.obj, A.Name) \
                and e.left.obj.id == "op":
            value = ev.eval(e.right, dict(ops.env))
            for n in ([value] if isinstance(value, str) else
                      value if isinstance(value, (list, tuple, set, frozenset)) else []):
                if isinstance(n, str) and n not in names:
                    names.append(n)
    return names


@primitive
def check_named_weights(ev, step: "str", ops: "selector", targets: "list") -> "list":
    """Fails naming the first weight the selector spells out that is none of ``targets``
    (the weights the step found), with a did-you-mean among the model's weights; returns
    the names it checked."""
    from actc.errors import ActcError, did_you_mean

    program = _program(ev)
    found = set(targets)
    names = named_weights(ev, ops)
    for n in names:
        if n in found:
            continue
        weights = [v for v in program.params if program.is_weight(v)]
        if n in program.params:
            why = "is a weight, but not one this step can prune"
        elif program.var(n) is not None:
            why = "is not a weight"
        else:
            why = "is not in the model"
        raise ActcError(f"{step}: '{n}' (prune_params_name / op.input in [...]) {why}"
                        f"{did_you_mean(n, weights)}; the step found: "
                        f"{', '.join(sorted(found)[:8]) or 'nothing'}"
                        f"{' ...' if len(found) > 8 else ''}")
    return names


# ------------------------------------------------------------------ channel pruning
@primitive
def channel_prune_plan(ev, ops: "selector", ratio: "any", criterion: "str", round_to: "int",
                       master_only: "bool") -> "mapping":
    """Dependency groups of the selected layers, ranked by the criterion over each whole
    group: {params: [[weight, axis, removed]], vars: [[var, shape]], attrs: [[op, name,
    value]], report: [...]} (actc/prune/channels.py)."""
    from actc.prune.channels import plan
    from actc.prune.groups import creates_channels

    program = _program(ev)
    selected = set()
    for op in program.ops():
        made = creates_channels(program, op)
        if made is not None and not op.has_attr("actc_teacher") and ev.test(ops, op):
            selected.add(made[0])
    r = dict(ratio) if isinstance(ratio, dict) else ratio
    # a weight the user names (ACT prune_params_name) must be one the step prunes
    named = named_weights(ev, ops)
    found = set(selected)
    if named:  # a depthwise conv's or second branch's weight goes with its group's root
        from actc.prune.groups import channel_groups
        for g in channel_groups(program):
            if g.root_param in selected:
                found.update(m.name for m in g.params("out") + g.params("dw"))
    insist = check_named_weights(ev, "prune_channels", ops, sorted(found))
    return plan(program, selected, r, str(criterion), int(round_to), bool(master_only),
                insist=set(insist))


@primitive
def slice_weight(ev, weight: "str", axis: "int", removed: "list") -> "str":
    """Delete the given indices of a weight along an axis (its var's shape follows)."""
    program = _program(ev)
    a = np.asarray(program.params[weight].array)
    program.set_param(weight, np.ascontiguousarray(np.delete(a, list(removed), axis=int(axis))))
    return weight


@primitive
def model_size(ev) -> "str":
    """'N params bytes, M MFLOPs' of the program (one sample, declared shapes)."""
    from actc.prune.channels import flops, param_bytes
    program = _program(ev)
    return f"{param_bytes(program)} bytes of weights, {flops(program) / 1e6:.3f} MFLOPs"


def _pass_data(ev):
    """The data a pass may read: --data, else calib.npz beside the model (None if neither)."""
    from pathlib import Path

    ctx = ev.ctx
    source = getattr(ctx, "data", None)
    if source is None and getattr(ctx, "source", None) is not None:
        candidate = Path(ctx.source.directory) / "calib.npz"
        source = str(candidate) if candidate.is_file() else None
    return source


def _head_rankings(blocks, scores, what: str, sign: str) -> list[str]:
    """One line per attention block: its heads, most important first, with their scores."""
    lines = []
    for a, s in zip(blocks, scores):
        ranked = np.argsort(-s, kind="stable")
        lines.append(f"head ranking at {a.softmax.output('Out')[0]} ({what}): " +
                     ", ".join(f"{int(h)} {s[h]:{sign}.4g}" for h in ranked))
    return lines


MAX_ABLATED_NEURONS = 4096  # distill_loss/task_loss: one forward pass per neuron and batch


@primitive
def transformer_prune_plan(ev, ratio: "float", criterion: "str" = "magnitude",
                           batches: "int" = None) -> "mapping":
    """Attention heads and feed-forward neurons (channel groups of the linear layers) removed
    at ``ratio``, ranked by ``criterion``: magnitude (weight L1, no data); distill_loss / task_loss
    (forward only: the increase of the distillation loss to the unpruned output, or of the
    task's cross-entropy on the labels, when each head / neuron alone is removed, measured on
    ``batches`` batches of 32); gradient (ACT's: |d task loss / d mask| summed over the
    batches, one backward per batch); auto (distill_loss when there is data, else
    magnitude). The same edit plan as channel_prune_plan."""
    from actc.data import open_dataset
    from actc.errors import ActcError
    from actc.prune.channels import plan
    from actc.prune.groups import channel_groups
    from actc.prune.heads import AblationLoss, find_attention, gradient_scores, head_plan, \
        head_units, neuron_units

    program = _program(ev)
    if ratio is None:
        raise ActcError("prune_transformer: give ratio (e.g. prune_transformer(ratio: 0.25))")
    criterion, r = str(criterion), float(ratio)
    if batches is None:
        batches = 32 if criterion == "gradient" else 4
    blocks = find_attention(program)
    if not blocks:
        raise ActcError("prune_transformer: no multi-head attention found (softmax between "
                        "two matmul_v2 of projected, reshaped and transposed inputs)")
    ffn_groups = [g for g in channel_groups(program)
                  if not g.problem and g.root_op.type in ("matmul_v2", "mul", "matmul")]
    ffn = {g.root_param for g in ffn_groups}
    source = _pass_data(ev) if criterion != "magnitude" else None
    notes = []
    if criterion in ("distill_loss", "task_loss", "gradient") and source is None:
        raise ActcError(f"prune_transformer: criterion {criterion} needs data: pass --data "
                        "FILE.npz (or use criterion: magnitude)")
    if criterion == "auto" and source is None:
        notes.append("no data (--data): heads and neurons ranked by weight magnitude")
    head_scores = ffn_scores = None
    how, ffn_how = "weight magnitude", None
    if source is not None:
        data = open_dataset(source, program)
        if criterion in ("task_loss", "gradient") and not data.has_labels:
            raise ActcError(f"prune_transformer: criterion {criterion} needs labels in the "
                            "data (a 'label' array); criterion distill_loss needs none")
    if source is not None and criterion == "gradient":
        units = [head_units(a) for a in blocks] + [neuron_units(g) for g in ffn_groups]
        scores, samples = gradient_scores(program, data, units, 32, int(batches),
                                          getattr(ev.ctx, "device", None))
        head_scores = scores[:len(blocks)]
        ffn_scores = {g.root_param: s for g, s in zip(ffn_groups, scores[len(blocks):])}
        how = ffn_how = f"|task loss gradient of a mask| on {samples} samples"
        notes += _head_rankings(blocks, head_scores, "|dL/dmask| of the task loss, ACT's "
                                "criterion", "")
    elif source is not None:
        loss = AblationLoss(program, data, 32, int(batches), getattr(ev.ctx, "device", None),
                            task=criterion == "task_loss")
        if criterion == "task_loss" and not loss.labels:
            raise ActcError("prune_transformer: criterion task_loss: the first output is not "
                            "[batch, classes] logits matching the labels")
        head_scores = [np.array([loss.increase(u) for u in head_units(a)]) for a in blocks]
        how = ffn_how = f"{loss.kind} on {loss.samples} samples"
        neurons = sum(g.size for g in ffn_groups)
        if neurons <= MAX_ABLATED_NEURONS:
            ffn_scores = {g.root_param: np.array([loss.increase(u) for u in neuron_units(g)])
                          for g in ffn_groups}
        else:  # one forward per neuron would take too long: FFN widths by weight magnitude
            ffn_how = None
            notes.append(f"{neurons} feed-forward neurons are more than {MAX_ABLATED_NEURONS} "
                         "to remove one at a time: they are ranked by l1_norm (criterion "
                         "gradient ranks them from data in one backward per batch)")
        notes += _head_rankings(blocks, head_scores, f"{loss.kind} increase when removed "
                                "alone", "+")
    heads = head_plan(program, r, head_scores, how)
    edits = plan(program, ffn, r, "l1_norm", 1, False, ffn_scores, ffn_how) if ffn else \
        {"params": [], "vars": [], "attrs": [], "report": ["no feed-forward block to prune"],
         "masked": []}
    out = {k: heads[k] + edits[k] for k in ("params", "vars", "attrs", "report", "masked")}
    out["report"] = notes + out["report"]
    return out
