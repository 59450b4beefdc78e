"""One quantized layer (a conv or FC op and the per-channel affine ops and relu after it) as
numerics can re-run it: in Paddle dygraph with the op's own attributes.

Why: layer-wise reconstruction, region boundaries and the per-tensor ``auto`` calibration all
measure a layer's output error for a candidate weight or input, without running the program.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np

from actc.ir.program import Op, Program
from actc.quant.quantizers import Quantizer

CONV_TYPES = ("conv2d", "depthwise_conv2d")
FC_TYPES = ("mul", "matmul_v2")


@dataclass
class Layer:
    op: Op
    quantizer: Quantizer     # the weight's
    input: str               # activation the quantized program feeds the layer
    float_input: str         # the same activation in the float program
    output: str
    weight_slot: str
    channel_axis: int = 1    # of the output
    affine: tuple[np.ndarray, np.ndarray] | None = None   # per-channel a*y+b after the layer
    relu: bool = False       # then a relu
    through: list[str] = field(default_factory=list)      # epilogue ops, for reports


def attach_epilogue(program: Program, layer: Layer) -> None:
    """The per-channel affine ops (inference batch_norm, bias add) and relu that follow the
    layer, each the single reader of the previous output: the error is measured after them,
    as the next layer sees it (AdaRound's asymmetric reconstruction through the activation
    function; the program keeps batch_norm unfolded)."""
    op = layer.op
    if op.type in CONV_TYPES:
        if op.attr("data_format", "NCHW") == "NHWC":
            return
        axis = 1
    else:
        axis = -1
    var = program.var(layer.output)
    if var is None or var.shape is None or len(var.shape) < 2 or var.shape[axis] <= 0:
        return
    size, ndim = var.shape[axis], len(var.shape)
    layer.channel_axis = axis % ndim
    a = np.ones(size, np.float64)
    b = np.zeros(size, np.float64)
    name = layer.output
    while not layer.relu:
        users = program.consumers(name)
        if len(users) != 1:
            break
        user, slot, _ = users[0]
        if user.type == "batch_norm" and slot == "X" and layer.channel_axis == 1:
            try:
                p = {k: np.asarray(program.params[user.input(k)[0]].array, np.float64)
                     for k in ("Scale", "Bias", "Mean", "Variance")}
            except (KeyError, IndexError):
                break
            if any(v.shape != (size,) for v in p.values()):
                break
            k = p["Scale"] / np.sqrt(p["Variance"] + float(user.attr("epsilon", 1e-5)))
            a, b = a * k, (b - p["Mean"]) * k + p["Bias"]
            name = user.output("Y")[0]
        elif user.type == "elementwise_add" and slot == "X":
            y = user.input("Y")[0]
            bax = int(user.attr("axis", -1))
            ok_axis = bax == layer.channel_axis or (bax == -1 and layer.channel_axis == ndim - 1)
            if (y not in program.params or not program.is_weight(y) or not ok_axis
                    or tuple(program.params[y].shape) != (size,)):
                break
            b = b + np.asarray(program.params[y].array, np.float64)
            name = user.output("Out")[0]
        elif user.type == "relu":
            layer.relu = True
            name = user.output("Out")[0]
        else:
            break
        layer.through.append(user.type)
    if layer.through:
        layer.affine = (a.astype(np.float32), b.astype(np.float32))


# --------------------------------------------------------------------------- dygraph

@contextlib.contextmanager
def dygraph(paddle, place):
    """Paddle dygraph for the optimisation, back to static mode afterwards (always)."""
    paddle.disable_static(place)
    try:
        yield
    finally:
        paddle.enable_static()


def forward(paddle, layer: Layer, x, w):
    """The layer's op, in dygraph, with its attributes from the IR."""
    from actc.runtime.interp import conv2d, matmul

    if layer.op.type in CONV_TYPES:
        return conv2d(paddle, layer.op, x, w)
    return matmul(paddle, layer.op, x, w)


def epilogue_fn(paddle, layer: Layer, ndim: int, to_tensor):
    """y -> relu(a * y + b) along the output channel axis (identity without an epilogue)."""
    if layer.affine is None:
        return lambda y: y
    shape = [1] * ndim
    shape[layer.channel_axis] = layer.affine[0].size
    a, b = (to_tensor(v.reshape(shape)) for v in layer.affine)
    act = paddle.nn.functional.relu if layer.relu else (lambda t: t)
    return lambda y: act(y * a + b)


def numpy_epilogue(layer: Layer):
    """epilogue_fn in numpy, in place: where no gradient is needed it is far cheaper (Paddle's
    broadcasting ``y * a + b`` on CPU costs 3x a conv over the same tensor)."""
    if layer.affine is None:
        return lambda y: y

    def apply(y: np.ndarray) -> np.ndarray:
        shape = [1] * y.ndim
        shape[layer.channel_axis] = layer.affine[0].size
        y = np.asarray(y, dtype=np.float32)
        if not y.flags.writeable:
            y = y.copy()
        y *= layer.affine[0].reshape(shape)
        y += layer.affine[1].reshape(shape)
        if layer.relu:
            np.maximum(y, 0, out=y)
        return y
    return apply
