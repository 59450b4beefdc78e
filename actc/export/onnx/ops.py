"""One converter per Paddle op kind: ``CONVERTERS[op_type](g, op)`` emits ONNX nodes into the
graph ``g`` (actc.export.onnx.graph.Graph) for one Paddle op.

Converters read inputs with ``g.value(var)`` and name outputs with ``g.define(var)``; an
attribute value with no ONNX equivalent raises ``Unmapped``. Quantizer ops live in
``actc.export.onnx.qdq``; conv2d and matmul fold the batch_norm / bias add that follows them
(``actc.export.onnx.fold``).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from actc.export.onnx.graph import Graph, Unmapped
from actc.export.onnx.types import onnx_code, paddle_dtype
from actc.ir.program import Op

Converter = Callable[[Graph, Op], None]
CONVERTERS: dict[str, Converter] = {}


def converts(*types: str):
    def deco(fn: Converter) -> Converter:
        for t in types:
            CONVERTERS[t] = fn
        return fn
    return deco


def _in(g: Graph, op: Op, slot: str, i: int = 0) -> str:
    args = op.input(slot)
    if len(args) <= i:
        raise Unmapped(f"has no input {slot}")
    return g.value(args[i])


def _out(g: Graph, op: Op, slot: str = "Out", i: int = 0) -> str:
    args = op.output(slot)
    if len(args) <= i:
        raise Unmapped(f"has no output {slot}")
    return g.define(args[i])


def _no_tensor_inputs(op: Op, *slots: str) -> None:
    for s in slots:
        if op.input(s):
            raise Unmapped(f"takes {s} as a tensor; only the attribute form is mapped")


# ------------------------------------------------------------------ feed / fetch / identity
@converts("feed")
def feed(g: Graph, op: Op) -> None:
    var = op.output("Out")[0]
    name = g.define(var)
    shape = g.shape(var) or ()
    g.inputs.append((name, g.dtype(var), list(shape)))


@converts("fetch")
def fetch(g: Graph, op: Op) -> None:
    var = op.input("X")[0]
    value = g.value(var)
    if value in g.consts or any(value == i[0] for i in g.inputs) or \
            any(value == o[0] for o in g.outputs):
        value = g.add1("Identity", [value], g.fresh(var + ".out"))
    g.outputs.append((value, g.dtype(var), list(g.shape(var) or ())))


@converts("assign", "share_data")
def identity(g: Graph, op: Op) -> None:
    g.alias(op.output("Out")[0], _in(g, op, "X"))


@converts("dropout")
def dropout(g: Graph, op: Op) -> None:
    x = _in(g, op, "X")
    out = op.output("Out")[0]
    if op.attr("dropout_implementation", "downgrade_in_infer") == "upscale_in_train":
        g.alias(out, x)
        return
    p = float(op.attr("dropout_prob", 0.5))
    g.add1("Mul", [x, g.const(np.float32(1.0 - p))], g.define(out))


# --------------------------------------------------------------------------- activations
_UNARY = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "exp": "Exp", "sqrt": "Sqrt",
          "abs": "Abs", "floor": "Floor", "ceil": "Ceil", "log": "Log", "erf": "Erf",
          "reciprocal": "Reciprocal", "softsign": "Softsign", "sin": "Sin", "cos": "Cos",
          "logical_not": "Not", "round": "Round", "rsqrt": None, "square": None}


@converts(*_UNARY)
def unary(g: Graph, op: Op) -> None:
    x = _in(g, op, "X")
    out = _out(g, op)
    if op.type == "rsqrt":
        g.add1("Reciprocal", [g.add1("Sqrt", [x])], out)
    elif op.type == "square":
        g.add1("Mul", [x, x], out)
    else:
        g.add1(_UNARY[op.type], [x], out)


@converts("relu6")
def relu6(g: Graph, op: Op) -> None:
    x = _in(g, op, "X")
    hi = float(op.attr("threshold", 6.0))
    g.add1("Clip", [x, g.const(np.float32(0.0)), g.const(np.float32(hi))], _out(g, op))


@converts("clip")
def clip(g: Graph, op: Op) -> None:
    _no_tensor_inputs(op, "Min", "Max")
    x = _in(g, op, "X")
    g.add1("Clip", [x, g.const(np.float32(op.attr("min", -3.4e38))),
                    g.const(np.float32(op.attr("max", 3.4e38)))], _out(g, op))


@converts("leaky_relu")
def leaky_relu(g: Graph, op: Op) -> None:
    g.add1("LeakyRelu", [_in(g, op, "X")], _out(g, op), alpha=float(op.attr("alpha", 0.02)))


@converts("hard_swish")
def hard_swish(g: Graph, op: Op) -> None:
    x = _in(g, op, "X")
    t, s, o = (float(op.attr(k, d)) for k, d in
               (("threshold", 6.0), ("scale", 6.0), ("offset", 3.0)))
    if (t, s, o) == (6.0, 6.0, 3.0):
        g.add1("HardSwish", [x], _out(g, op))
        return
    # x * min(max(x + offset, 0), threshold) / scale
    a = g.add1("Add", [x, g.const(np.float32(o))])
    c = g.add1("Clip", [a, g.const(np.float32(0.0)), g.const(np.float32(t))])
    m = g.add1("Mul", [x, c])
    g.add1("Div", [m, g.const(np.float32(s))], _out(g, op))


@converts("hard_sigmoid")
def hard_sigmoid(g: Graph, op: Op) -> None:
    g.add1("HardSigmoid", [_in(g, op, "X")], _out(g, op),
           alpha=float(op.attr("slope", 0.1666667)), beta=float(op.attr("offset", 0.5)))


@converts("swish", "silu")
def swish(g: Graph, op: Op) -> None:
    x = _in(g, op, "X")
    beta = float(op.attr("beta", 1.0)) if op.type == "swish" else 1.0
    sx = x if beta == 1.0 else g.add1("Mul", [x, g.const(np.float32(beta))])
    g.add1("Mul", [x, g.add1("Sigmoid", [sx])], _out(g, op))


@converts("gelu")
def gelu(g: Graph, op: Op) -> None:
    x = _in(g, op, "X")
    f = lambda v: g.const(np.float32(v))  # noqa: E731
    if op.attr("approximate", False):  # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        x3 = g.add1("Mul", [g.add1("Mul", [x, x]), x])
        inner = g.add1("Add", [x, g.add1("Mul", [x3, f(0.044715)])])
        t = g.add1("Tanh", [g.add1("Mul", [inner, f(np.sqrt(2.0 / np.pi))])])
    else:  # 0.5 x (1 + erf(x / sqrt 2))
        t = g.add1("Erf", [g.add1("Div", [x, f(np.sqrt(2.0))])])
    g.add1("Mul", [g.add1("Mul", [x, f(0.5)]), g.add1("Add", [t, f(1.0)])], _out(g, op))


@converts("softmax", "log_softmax")
def softmax(g: Graph, op: Op) -> None:
    kind = "Softmax" if op.type == "softmax" else "LogSoftmax"
    g.add1(kind, [_in(g, op, "X")], _out(g, op), axis=int(op.attr("axis", -1)))


@converts("scale")
def scale(g: Graph, op: Op) -> None:
    _no_tensor_inputs(op, "ScaleTensor")
    x = _in(g, op, "X")
    dt = g.dtype(op.input("X")[0])
    s, b = float(op.attr("scale", 1.0)), float(op.attr("bias", 0.0))
    after = bool(op.attr("bias_after_scale", True))
    out = op.output("Out")[0]
    if s == 1.0 and b == 0.0:
        g.alias(out, x)
        return
    c = lambda v: g.const(np.asarray(v, dtype=dt))  # noqa: E731
    if after:
        y = x if s == 1.0 else g.add1("Mul", [x, c(s)])
        y = y if b == 0.0 else g.add1("Add", [y, c(b)])
    else:
        y = x if b == 0.0 else g.add1("Add", [x, c(b)])
        y = y if s == 1.0 else g.add1("Mul", [y, c(s)])
    g.alias(out, y)


@converts("cast")
def cast(g: Graph, op: Op) -> None:
    g.add1("Cast", [_in(g, op, "X")], _out(g, op),
           to=onnx_code(paddle_dtype(op.attr("out_dtype", 5))))


# ----------------------------------------------------------------------------- elementwise
_BINARY = {"elementwise_add": "Add", "elementwise_sub": "Sub", "elementwise_mul": "Mul",
           "elementwise_div": "Div", "elementwise_pow": "Pow", "elementwise_max": "Max",
           "elementwise_min": "Min", "greater_than": "Greater", "less_than": "Less",
           "equal": "Equal", "greater_equal": "GreaterOrEqual", "less_equal": "LessOrEqual",
           "logical_and": "And", "logical_or": "Or"}


def paddle_broadcast(g: Graph, op: Op, x_var: str, y_var: str, x: str, y: str):
    """Paddle's ``axis``: the smaller operand lines up with the larger from dim ``axis`` on;
    ONNX broadcasts from the right, so the smaller one gets trailing 1-dims."""
    axis = int(op.attr("axis", -1))
    if axis == -1:
        return x, y
    rx, ry = g.rank(x_var), g.rank(y_var)
    if rx == ry:
        return x, y
    small, small_rank, big_rank = (y, ry, rx) if ry < rx else (x, rx, ry)
    trailing = big_rank - axis - small_rank
    if trailing < 0:
        raise Unmapped(f"has axis {axis} that does not fit ranks {rx} and {ry}")
    if trailing:
        c = g.const_of(small)
        if c is not None:
            small = g.const(c.reshape(c.shape + (1,) * trailing), base=small + ".bcast")
        else:
            small = g.add1("Unsqueeze", [small, g.ints(range(small_rank,
                                                             small_rank + trailing))])
    return (x, small) if ry < rx else (small, y)


@converts(*_BINARY)
def binary(g: Graph, op: Op) -> None:
    xv, yv = op.input("X")[0], op.input("Y")[0]
    x, y = paddle_broadcast(g, op, xv, yv, g.value(xv), g.value(yv))
    g.add1(_BINARY[op.type], [x, y], _out(g, op))


@converts("sum")
def sum_(g: Graph, op: Op) -> None:
    g.add1("Sum", [g.value(v) for v in op.input("X")], _out(g, op))


# ----------------------------------------------------------------------------- conv / pool
def onnx_pads(paddings: list[int]) -> list[int]:
    """Paddle [h, w] or [top, bottom, left, right] -> ONNX [top, left, bottom, right]."""
    p = [int(v) for v in paddings]
    if len(p) == 2:
        return [p[0], p[1], p[0], p[1]]
    if len(p) == 4:
        return [p[0], p[2], p[1], p[3]]
    raise Unmapped(f"has paddings {p}")


def _layout(op: Op) -> None:
    fmt = op.attr("data_format", op.attr("data_layout", "NCHW"))
    if fmt not in ("NCHW", "AnyLayout"):
        raise Unmapped(f"has data_format {fmt}; only NCHW is mapped")


def conv_attrs(op: Op) -> dict:
    _layout(op)
    algo = op.attr("padding_algorithm", "EXPLICIT")
    attrs = {"strides": [int(s) for s in op.attr("strides", [1, 1])],
             "dilations": [int(d) for d in op.attr("dilations", [1, 1])],
             "group": int(op.attr("groups", 1) or 1)}
    if algo == "SAME":
        attrs["auto_pad"] = "SAME_UPPER"
    elif algo == "VALID":
        attrs["pads"] = [0, 0, 0, 0]
    else:
        attrs["pads"] = onnx_pads(op.attr("paddings", [0, 0]))
    return attrs


@converts("conv2d", "depthwise_conv2d")
def conv2d(g: Graph, op: Op) -> None:
    from actc.export.onnx.fold import emit_conv

    emit_conv(g, op)


@converts("pool2d")
def pool2d(g: Graph, op: Op) -> None:
    _layout(op)
    xv = op.input("X")[0]
    x = g.value(xv)
    kind = op.attr("pooling_type", "max")
    if kind not in ("max", "avg"):
        raise Unmapped(f"has pooling_type {kind}")
    ksize = [int(k) for k in op.attr("ksize", [1, 1])]
    out = _out(g, op)
    shape = g.shape(xv) or ()
    if op.attr("global_pooling", False) or (op.attr("adaptive", False) and ksize == [1, 1]):
        g.add1("GlobalMaxPool" if kind == "max" else "GlobalAveragePool", [x], out)
        return
    if op.attr("adaptive", False):
        hw = shape[2:4] if len(shape) == 4 else ()
        if len(hw) != 2 or any(d <= 0 or d % k for d, k in zip(hw, ksize)):
            raise Unmapped(f"is adaptive to {ksize} on input {list(shape)}: only output sizes "
                           "that divide a known input size map to ONNX")
        kernel = [d // k for d, k in zip(hw, ksize)]
        attrs = {"kernel_shape": kernel, "strides": kernel}
    else:
        algo = op.attr("padding_algorithm", "EXPLICIT")
        attrs = {"kernel_shape": ksize,
                 "strides": [int(s) for s in op.attr("strides", [1, 1])],
                 "ceil_mode": int(bool(op.attr("ceil_mode", False)))}
        if algo == "SAME":
            attrs["auto_pad"] = "SAME_UPPER"
        elif algo == "VALID":
            attrs["pads"] = [0, 0, 0, 0]
        else:
            attrs["pads"] = onnx_pads(op.attr("paddings", [0, 0]))
        if kind == "avg":
            attrs["count_include_pad"] = int(not op.attr("exclusive", True))
    g.add1("MaxPool" if kind == "max" else "AveragePool", [x], out, **attrs)


@converts("batch_norm")
def batch_norm(g: Graph, op: Op) -> None:
    _layout(op)
    x = _in(g, op, "X")
    params = [g.value(op.input(s)[0]) for s in ("Scale", "Bias", "Mean", "Variance")]
    g.add1("BatchNormalization", [x] + params, _out(g, op, "Y"),
           epsilon=float(op.attr("epsilon", 1e-5)))


@converts("layer_norm")
def layer_norm(g: Graph, op: Op) -> None:
    xv = op.input("X")[0]
    x = g.value(xv)
    axis = int(op.attr("begin_norm_axis", 1))
    shape = g.shape(xv)
    rank = len(shape) if shape is not None else g.rank(xv)
    norm = [int(d) for d in shape[axis:]] if shape is not None else []
    if any(d <= 0 for d in norm):
        raise Unmapped("normalises dims of unknown size")
    ins = [x]
    for slot, fill in (("Scale", 1.0), ("Bias", 0.0)):
        arr = g.program.params[op.input(slot)[0]].array if op.input(slot) else \
            np.full(int(np.prod(norm)), fill, np.float32)
        ins.append(g.const(np.asarray(arr, np.float32).reshape(norm), base=f"ln_{slot}"))
    g.add1("LayerNormalization", ins, _out(g, op, "Y"), axis=axis - rank if axis else 0,
           epsilon=float(op.attr("epsilon", 1e-5)))


# ---------------------------------------------------------------------------- matmul family
@converts("matmul_v2", "matmul")
def matmul(g: Graph, op: Op) -> None:
    from actc.export.onnx.fold import emit_matmul

    emit_matmul(g, op)


@converts("mul")
def mul(g: Graph, op: Op) -> None:
    xv, yv = op.input("X")[0], op.input("Y")[0]
    xn, yn = int(op.attr("x_num_col_dims", 1)), int(op.attr("y_num_col_dims", 1))
    rx, ry = g.rank(xv), g.rank(yv)
    x, y = g.value(xv), g.value(yv)
    if ry != 2 or yn != 1:
        y = g.add1("Flatten", [y], axis=yn)
    if rx == 2 and xn == 1:
        g.add1("MatMul", [x, y], _out(g, op))
        return
    # flatten X to [prod(:xn), prod(xn:)], multiply, restore the leading dims
    shape = g.add1("Shape", [x])
    lead = g.add1("Slice", [shape, g.ints([0]), g.ints([xn])])
    x2 = g.add1("Flatten", [x], axis=xn)
    m = g.add1("MatMul", [x2, y])
    n = g.add1("Slice", [g.add1("Shape", [m]), g.ints([1]), g.ints([2])])
    g.add1("Reshape", [m, g.add1("Concat", [lead, n], axis=0)], _out(g, op))


@converts("fc")
def fc(g: Graph, op: Op) -> None:
    xv = op.input("Input")[0]
    if int(op.attr("in_num_col_dims", 1)) != g.rank(xv) - 1:
        x = g.add1("Flatten", [g.value(xv)], axis=int(op.attr("in_num_col_dims", 1)))
    else:
        x = g.value(xv)
    y = g.add1("MatMul", [x, g.value(op.input("W")[0])])
    if op.input("Bias"):
        y = g.add1("Add", [y, g.value(op.input("Bias")[0])])
    act = op.attr("activation_type", "") or ""
    if act == "relu":
        y = g.add1("Relu", [y])
    elif act:
        raise Unmapped(f"has activation_type {act}")
    g.alias(op.output("Out")[0], y)


@converts("einsum")
def einsum(g: Graph, op: Op) -> None:
    g.add1("Einsum", [g.value(v) for v in op.input("Operands")], _out(g, op),
           equation=str(op.attr("equation")).replace(" ", ""))


# ------------------------------------------------------------------------------ shape ops
@converts("reshape2", "reshape")
def reshape(g: Graph, op: Op) -> None:
    _no_tensor_inputs(op, "Shape", "ShapeTensor")
    g.add1("Reshape", [_in(g, op, "X"), g.ints(op.attr("shape", []))], _out(g, op))


@converts("flatten_contiguous_range")
def flatten(g: Graph, op: Op) -> None:
    xv = op.input("X")[0]
    rank = g.rank(xv)
    start = int(op.attr("start_axis", 1)) % max(rank, 1)
    stop = int(op.attr("stop_axis", -1)) % max(rank, 1)
    x = g.value(xv)
    if stop == rank - 1 and start <= 1:
        if start == 1:
            g.add1("Flatten", [x], _out(g, op), axis=1)
        else:
            g.add1("Reshape", [x, g.ints([-1])], _out(g, op))
        return
    shape = [0] * start + [-1] + [0] * (rank - 1 - stop)
    g.add1("Reshape", [x, g.ints(shape)], _out(g, op))


@converts("flatten2", "flatten")
def flatten2(g: Graph, op: Op) -> None:
    g.add1("Flatten", [_in(g, op, "X")], _out(g, op), axis=int(op.attr("axis", 1)))


@converts("transpose2", "transpose")
def transpose(g: Graph, op: Op) -> None:
    g.add1("Transpose", [_in(g, op, "X")], _out(g, op),
           perm=[int(a) for a in op.attr("axis", [])])


@converts("squeeze2", "squeeze")
def squeeze(g: Graph, op: Op) -> None:
    axes = [int(a) for a in op.attr("axes", [])]
    xv = op.input("X")[0]
    x = g.value(xv)
    if axes:
        shape = g.shape(xv) or ()
        if shape:  # Paddle leaves dims that are not 1; ONNX would fail on them
            axes = [a for a in axes if shape[a] in (1, -1)]
        g.add1("Squeeze", [x, g.ints(axes)], _out(g, op))
    else:
        g.add1("Squeeze", [x], _out(g, op))


@converts("unsqueeze2", "unsqueeze")
def unsqueeze(g: Graph, op: Op) -> None:
    _no_tensor_inputs(op, "AxesTensor", "AxesTensorList")
    g.add1("Unsqueeze", [_in(g, op, "X"), g.ints(op.attr("axes", []))], _out(g, op))


@converts("concat")
def concat(g: Graph, op: Op) -> None:
    _no_tensor_inputs(op, "AxisTensor")
    g.add1("Concat", [g.value(v) for v in op.input("X")], _out(g, op),
           axis=int(op.attr("axis", 0)))


@converts("split")
def split(g: Graph, op: Op) -> None:
    _no_tensor_inputs(op, "AxisTensor", "SectionsTensorList")
    xv = op.input("X")[0]
    axis = int(op.attr("axis", 0))
    outs = op.output("Out")
    sections = [int(s) for s in op.attr("sections", []) or []]
    shape = g.shape(xv) or ()
    dim = shape[axis] if shape else -1
    if not sections:
        if dim <= 0:
            raise Unmapped("splits a dim of unknown size")
        sections = [dim // len(outs)] * len(outs)
    if -1 in sections:
        if dim <= 0:
            raise Unmapped("splits a dim of unknown size")
        sections[sections.index(-1)] = dim - sum(s for s in sections if s != -1)
    x = g.value(xv)
    g.add("Split", [x, g.ints(sections)], [g.define(o) for o in outs], axis=axis)


@converts("slice")
def slice_(g: Graph, op: Op) -> None:
    _no_tensor_inputs(op, "StartsTensor", "EndsTensor", "StartsTensorList", "EndsTensorList")
    x = _in(g, op, "Input")
    axes = [int(a) for a in op.attr("axes", [])]
    starts = [int(s) for s in op.attr("starts", [])]
    ends = [min(int(e), 2 ** 62) for e in op.attr("ends", [])]
    y = g.add1("Slice", [x, g.ints(starts), g.ints(ends), g.ints(axes)])
    dec = [int(a) for a in op.attr("decrease_axis", []) or []]
    if dec:
        y = g.add1("Squeeze", [y, g.ints(dec)])
    g.alias(op.output("Out")[0], y)


@converts("shape")
def shape_(g: Graph, op: Op) -> None:  # Paddle's shape is int32
    s = g.add1("Shape", [_in(g, op, "Input")])
    g.add1("Cast", [s], _out(g, op), to=onnx_code("int32"))


@converts("fill_constant")
def fill_constant(g: Graph, op: Op) -> None:
    _no_tensor_inputs(op, "ShapeTensor", "ShapeTensorList", "ValueTensor")
    dt = paddle_dtype(op.attr("dtype", 5))
    s = op.attr("str_value", "") or ""
    value = float(s) if s else float(op.attr("value", 0.0))
    shape = [int(d) for d in op.attr("shape", [])]
    g.alias(op.output("Out")[0], g.const(np.full(shape, value, dtype=dt), base="fill"))


@converts("shuffle_channel")
def shuffle_channel(g: Graph, op: Op) -> None:
    xv = op.input("X")[0]
    shape = g.shape(xv) or ()
    group = int(op.attr("group", 1))
    if len(shape) != 4 or shape[1] <= 0:
        raise Unmapped("needs a known channel count")
    c = shape[1]
    x = g.value(xv)
    a = g.add1("Reshape", [x, g.ints([0, group, c // group, -1])])
    t = g.add1("Transpose", [a], perm=[0, 2, 1, 3])
    shp = g.add1("Shape", [x])
    g.add1("Reshape", [t, shp], _out(g, op))


@converts("lookup_table_v2", "lookup_table")
def lookup_table(g: Graph, op: Op) -> None:
    wv = op.input("W")[0]
    pad = op.attr("padding_idx", -1)
    w = g.value(wv)
    if pad is not None and int(pad) >= 0 and g.const_of(w) is not None:
        arr = np.array(g.const_of(w))
        arr[int(pad)] = 0  # Paddle returns zeros for padding_idx
        w = g.const(arr, base=wv + ".padded")
    ids = _in(g, op, "Ids")
    if op.type == "lookup_table":  # ids [..., 1]
        ids = g.add1("Squeeze", [ids, g.ints([-1])])
    g.add1("Gather", [w, ids], _out(g, op), axis=0)


_REDUCE = {"reduce_mean": "ReduceMean", "reduce_sum": "ReduceSum", "reduce_max": "ReduceMax",
           "reduce_min": "ReduceMin", "reduce_prod": "ReduceProd"}


@converts(*_REDUCE)
def reduce(g: Graph, op: Op) -> None:
    xv = op.input("X")[0]
    x = g.value(xv)
    keep = int(bool(op.attr("keep_dim", False)))
    dims = [int(d) for d in op.attr("dim", []) or []]
    if op.attr("reduce_all", False) or not dims:
        dims = list(range(g.rank(xv)))
    out = _out(g, op)
    if op.type == "reduce_sum":  # axes is an input from opset 13
        g.add1("ReduceSum", [x, g.ints(dims)], out, keepdims=keep)
    else:
        g.add1(_REDUCE[op.type], [x], out, axes=dims, keepdims=keep)
    if not keep and len(dims) == g.rank(xv) and (g.shape(op.output("Out")[0]) or ()) == (1,):
        # Paddle 2.x kept a [1] result where ONNX gives a scalar
        y = g.define(op.output("Out")[0])
        g.add1("Reshape", [out, g.ints([1])], y)


@converts("arg_max")
def arg_max(g: Graph, op: Op) -> None:
    g.add1("ArgMax", [_in(g, op, "X")], _out(g, op), axis=int(op.attr("axis", -1)),
           keepdims=int(bool(op.attr("keepdims", False))))
