"""Run a few IR ops in Paddle dygraph, differentiably: one function per op kind.

Why: region-wise reconstruction learns the rounding of every weight in a region jointly, so
gradients must flow through everything between the region's input and output (batch_norm,
activations, pools, residual adds, activation quantizers). Each op kind maps onto Paddle's
own functional API with the op's attributes from the IR; an op kind not in :data:`OPS` is a
clear error naming the op. Activation quantize/dequantize use the straight-through estimator.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from actc.errors import ActcError
from actc.ir.program import Op, Program
from actc.quant.reference import qmax

Env = dict   # var name -> paddle Tensor
OpFn = Callable[..., dict]   # fn(paddle, op, env) -> {var name: tensor}

OPS: dict[str, OpFn] = {}


def _op(*types: str):
    def deco(fn):
        for t in types:
            OPS[t] = fn
        return fn
    return deco


def _in(env: Env, op: Op, slot: str):
    names = op.input(slot)
    if not names or names[0] not in env:
        raise ActcError(f"region_wise: {op.type} reads '{names[0] if names else slot}', which "
                        "the region does not provide")
    return env[names[0]]


def _out(op: Op, slot: str, value) -> dict:
    return {op.output(slot)[0]: value}


def conv2d(paddle, op: Op, x, w):
    """conv2d / depthwise_conv2d with the op's strides, paddings, dilations and groups."""
    import paddle.nn.functional as F

    algo = str(op.attr("padding_algorithm", "EXPLICIT") or "EXPLICIT").upper()
    padding = algo if algo in ("SAME", "VALID") else list(op.attr("paddings", [0, 0]))
    fmt = str(op.attr("data_format", "NCHW") or "NCHW")
    fmt = "NCHW" if fmt == "AnyLayout" else fmt
    stride = list(op.attr("strides", [1, 1]))
    dilation = list(op.attr("dilations", [1, 1]))
    groups = int(op.attr("groups", 1) or 1)
    if _folds(x, w, padding, fmt, stride, dilation, groups):
        return _depthwise(paddle).apply(x, w, stride[0], int(padding[0]))
    return F.conv2d(x, w, stride=stride, padding=padding, dilation=dilation, groups=groups,
                    data_format=fmt)


# Depthwise convolution with the batch folded into the rows. Why: Paddle's CPU kernel runs
# one small GEMM per (sample, channel), so a depthwise conv on small feature maps costs far
# more than its arithmetic (measured 4-5x a folded one at 320 x 192 x 2 x 2); stacking the
# zero-padded samples along the height leaves one GEMM per channel. The forward is the same
# kernel on the same padded windows (bit-identical outputs); the gradients are convolutions
# of the same folded kind (input: the flipped kernel over the dilated output gradient;
# kernel: each channel's input correlated with its output gradient, summed over samples).

#: fold only feature maps up to this many pixels, and only when samples x channels (the
#: kernel's GEMM count) is at least FOLD_MIN_GEMMS. fwd+bwd measured on 2 CPU cores, Paddle
#: kernel vs folded, ms: 320x192x2x2 166 vs 30; 32x96x4x4 8.7 vs 6.2; 320x64x8x8 103 vs 91;
#: 320x96x8x8 stride 2 95 vs 69; but 32x64x16x16 22 vs 41 and 32x32x32x32 27 vs 73.
FOLD_PIXELS = 64
FOLD_MIN_GEMMS = 256


def _folds(x, w, padding, fmt, stride, dilation, groups) -> bool:
    if fmt != "NCHW" or len(x.shape) != 4 or not isinstance(padding, list):
        return False
    if x.shape[2] * x.shape[3] > FOLD_PIXELS or x.shape[0] * x.shape[1] < FOLD_MIN_GEMMS:
        return False
    c, k = x.shape[1], w.shape[2]
    return (groups == c and groups > 1 and list(w.shape) == [c, 1, k, k]
            and len(set(padding)) == 1 and 0 <= int(padding[0]) <= k - 1
            and list(dilation) == [1, 1] and stride[0] == stride[1] and stride[0] in (1, 2)
            and x.shape[2] + 2 * int(padding[0]) >= k and x.shape[3] + 2 * int(padding[0]) >= k)


def _rows(paddle, x, top: int, bottom: int):
    """x with zero rows above and below (concat: Paddle's pad3d costs ~2 ms a call here)."""
    parts = []
    n, c, _, wd = x.shape
    if top:
        parts.append(paddle.zeros([n, c, top, wd], x.dtype))
    parts.append(x)
    if bottom:
        parts.append(paddle.zeros([n, c, bottom, wd], x.dtype))
    return paddle.concat(parts, axis=2) if len(parts) > 1 else x


def _folded_conv(paddle, x, w, s: int, top: int, bottom: int, left: int, right: int,
                 rows: int, cols: int):
    """Per channel c (groups = C): sum_ij w[c, i, j] x_pad[n, c, s*h + i, s*v + j] for
    ``rows`` x ``cols`` outputs per sample, x padded by the given zeros, the samples stacked
    along the height."""
    import paddle.nn.functional as F

    n, c, h, _ = x.shape
    hp = h + top + bottom
    extra = (-hp) % s
    z = _rows(paddle, x, top, bottom + extra)
    hp += extra
    z = z.transpose([1, 0, 2, 3]).reshape([1, c, n * hp, z.shape[3]])
    y = F.conv2d(z, w, stride=s, padding=[0, 0, left, right], groups=c)   # [1, c, R, cols']
    per = hp // s
    if y.shape[2] < n * per:
        y = paddle.concat([y, paddle.zeros([1, c, n * per - y.shape[2], y.shape[3]],
                                           y.dtype)], axis=2)
    return y.reshape([c, n, per, y.shape[3]])[:, :, :rows, :cols].transpose([1, 0, 2, 3])


_DEPTHWISE = {}


def _depthwise(paddle):
    if "fn" in _DEPTHWISE:
        return _DEPTHWISE["fn"]
    import paddle.nn.functional as F
    from paddle.autograd import PyLayer

    class Depthwise(PyLayer):
        @staticmethod
        def forward(ctx, x, w, s, p):
            ctx.save_for_backward(x, w)
            ctx.s, ctx.p = s, p
            k = w.shape[2]
            rows = (x.shape[2] + 2 * p - k) // s + 1
            cols = (x.shape[3] + 2 * p - k) // s + 1
            return _folded_conv(paddle, x, w, s, p, p, p, p, rows, cols)

        @staticmethod
        def backward(ctx, gy):
            x, w = ctx.saved_tensor()
            s, p = ctx.s, ctx.p
            n, c, h, wd = x.shape
            k = w.shape[2]
            ho, wo = gy.shape[2], gy.shape[3]
            gx = None
            if not x.stop_gradient:
                g = gy
                if s > 1:   # zeros between the output gradient's rows and columns
                    g = paddle.stack([g] + [paddle.zeros_like(g)] * (s - 1), axis=-1)
                    g = g.reshape([n, c, ho, wo * s])[:, :, :, :(wo - 1) * s + 1]
                    g = paddle.stack([g] + [paddle.zeros_like(g)] * (s - 1), axis=3)
                    g = g.reshape([n, c, ho * s, (wo - 1) * s + 1])[:, :, :(ho - 1) * s + 1]
                q = k - 1 - p
                eh = h + 2 * p - k - (ho - 1) * s
                ew = wd + 2 * p - k - (wo - 1) * s
                gx = _folded_conv(paddle, g, w.flip([2, 3]), 1, q, q + eh, q, q + ew, h, wd)
            z = x.transpose([1, 0, 2, 3]).reshape([1, c * n, h, wd])
            f = gy.transpose([1, 0, 2, 3])                            # [c, n, ho, wo]
            gw = F.conv2d(z, f, padding=p, dilation=s, groups=c)[:, :, :k, :k]
            return gx, gw.reshape([c, 1, k, k])

    _DEPTHWISE["fn"] = Depthwise
    return Depthwise


def matmul(paddle, op: Op, x, w):
    """matmul_v2 (transpose flags) or mul (flattened at x/y_num_col_dims)."""
    if op.type == "matmul_v2":
        return paddle.matmul(x, w, transpose_x=bool(op.attr("trans_x", False)),
                             transpose_y=bool(op.attr("trans_y", False)))
    xd, yd = int(op.attr("x_num_col_dims", 1)), int(op.attr("y_num_col_dims", 1))
    xs, ws = x.shape, w.shape
    x2 = x.reshape([int(np.prod(xs[:xd])), int(np.prod(xs[xd:]))])
    w2 = w.reshape([int(np.prod(ws[:yd])), int(np.prod(ws[yd:]))])
    return paddle.matmul(x2, w2).reshape(list(xs[:xd]) + list(ws[yd:]))


@_op("conv2d", "depthwise_conv2d")
def _conv(paddle, op, env):
    return _out(op, "Output", conv2d(paddle, op, _in(env, op, "Input"), _in(env, op, "Filter")))


@_op("matmul_v2", "mul")
def _matmul(paddle, op, env):
    return _out(op, "Out", matmul(paddle, op, _in(env, op, "X"), _in(env, op, "Y")))


@_op("batch_norm")
def _batch_norm(paddle, op, env):
    import paddle.nn.functional as F

    fmt = str(op.attr("data_layout", "NCHW") or "NCHW")
    y = F.batch_norm(_in(env, op, "X"), _in(env, op, "Mean"), _in(env, op, "Variance"),
                     weight=_in(env, op, "Scale"), bias=_in(env, op, "Bias"), training=False,
                     epsilon=float(op.attr("epsilon", 1e-5)),
                     data_format="NCHW" if fmt == "AnyLayout" else fmt)
    return _out(op, "Y", y)


def _unary(fn):
    def run(paddle, op, env):
        return _out(op, "Out", fn(paddle, op, _in(env, op, "X")))
    return run


_ACTIVATIONS = {
    "relu": lambda p, op, x: p.nn.functional.relu(x),
    "relu6": lambda p, op, x: p.clip(x, 0.0, float(op.attr("threshold", 6.0) or 6.0)),
    "sigmoid": lambda p, op, x: p.nn.functional.sigmoid(x),
    "tanh": lambda p, op, x: p.tanh(x),
    "hard_swish": lambda p, op, x: p.nn.functional.hardswish(x),
    "hardswish": lambda p, op, x: p.nn.functional.hardswish(x),
    "swish": lambda p, op, x: x * p.nn.functional.sigmoid(x * float(op.attr("beta", 1.0))),
    "leaky_relu": lambda p, op, x: p.nn.functional.leaky_relu(x, float(op.attr("alpha", 0.02))),
    "gelu": lambda p, op, x: p.nn.functional.gelu(x, approximate=bool(op.attr("approximate",
                                                                                False))),
    "hard_sigmoid": lambda p, op, x: p.clip(x * float(op.attr("slope", 0.2))
                                            + float(op.attr("offset", 0.5)), 0.0, 1.0),
    "softmax": lambda p, op, x: p.nn.functional.softmax(x, axis=int(op.attr("axis", -1))),
    "scale": lambda p, op, x: (x * float(op.attr("scale", 1.0)) + float(op.attr("bias", 0.0))
                               if op.attr("bias_after_scale", True) else
                               (x + float(op.attr("bias", 0.0))) * float(op.attr("scale", 1.0))),
    "flatten_contiguous_range": lambda p, op, x: p.flatten(
        x, int(op.attr("start_axis", 1)), int(op.attr("stop_axis", -1))),
    "transpose2": lambda p, op, x: p.transpose(x, list(op.attr("axis"))),
    "dropout": lambda p, op, x: (x if str(op.attr("dropout_implementation", "")) ==
                                 "upscale_in_train" else
                                 x * (1.0 - float(op.attr("dropout_prob", 0.5)))),
}
for _name, _fn in _ACTIVATIONS.items():
    OPS[_name] = _unary(_fn)


@_op("reshape2")
def _reshape(paddle, op, env):
    if op.input("Shape") or op.input("ShapeTensor"):
        raise ActcError(f"region_wise: reshape2 -> '{op.output('Out')[0]}' takes its shape from "
                        "a tensor, which region reconstruction does not follow")
    return _out(op, "Out", paddle.reshape(_in(env, op, "X"), list(op.attr("shape"))))


@_op("elementwise_add", "elementwise_sub", "elementwise_mul", "elementwise_div")
def _elementwise(paddle, op, env):
    x, y = _in(env, op, "X"), _in(env, op, "Y")
    axis = int(op.attr("axis", -1))
    if axis != -1 and len(y.shape) < len(x.shape):   # Paddle's axis broadcast
        y = y.reshape([1] * axis + list(y.shape) + [1] * (len(x.shape) - axis - len(y.shape)))
    fn = {"elementwise_add": lambda a, b: a + b, "elementwise_sub": lambda a, b: a - b,
          "elementwise_mul": lambda a, b: a * b, "elementwise_div": lambda a, b: a / b}[op.type]
    return _out(op, "Out", fn(x, y))


@_op("concat")
def _concat(paddle, op, env):
    if op.input("AxisTensor"):
        raise ActcError("region_wise: concat with an AxisTensor is not supported")
    return _out(op, "Out", paddle.concat([env[n] for n in op.input("X")],
                                         axis=int(op.attr("axis", 0))))


@_op("pool2d")
def _pool2d(paddle, op, env):
    import paddle.nn.functional as F

    x = _in(env, op, "X")
    kind = str(op.attr("pooling_type", "max"))
    fmt = str(op.attr("data_format", "NCHW") or "NCHW")
    fmt = "NCHW" if fmt == "AnyLayout" else fmt
    ksize = list(op.attr("ksize", [1, 1]))
    if op.attr("global_pooling", False) or op.attr("adaptive", False):
        size = [1, 1] if op.attr("global_pooling", False) else ksize
        fn = F.adaptive_avg_pool2d if kind == "avg" else F.adaptive_max_pool2d
        return _out(op, "Out", fn(x, size, data_format=fmt) if kind == "avg" else fn(x, size))
    algo = str(op.attr("padding_algorithm", "EXPLICIT") or "EXPLICIT").upper()
    padding = algo if algo in ("SAME", "VALID") else list(op.attr("paddings", [0, 0]))
    common = dict(kernel_size=ksize, stride=list(op.attr("strides", [1, 1])), padding=padding,
                  ceil_mode=bool(op.attr("ceil_mode", False)), data_format=fmt)
    if kind == "avg":
        return _out(op, "Out", F.avg_pool2d(x, exclusive=bool(op.attr("exclusive", True)),
                                            **common))
    return _out(op, "Out", F.max_pool2d(x, **common))


_GRIDS: dict = {}


def _grid(op: Op, env: Env, x):
    """(scale broadcast against x, qmax / scale, qmax, lowest code) of a quantize/dequantize
    op; kept per op and scale tensor (the same every iteration of a reconstruction)."""
    raw = _in(env, op, "Scale")
    key = (op.uid, id(raw), len(x.shape))
    hit = _GRIDS.get(key)
    if hit is not None and hit[0] is raw:
        return hit[1:]
    bits = int(op.attr("bit_length", 8))
    qm = float(op.attr("qmax", qmax(bits)) if op.has_attr("qmax") else qmax(bits))
    lo = float(op.attr("qmin", -qm - 1) if op.has_attr("qmin") else -qm - 1)
    axis = int(op.attr("quant_axis", -1))
    if axis >= 0 and raw.shape and raw.shape[0] > 1:
        shape = [1] * len(x.shape)
        shape[axis] = raw.shape[0]
        scale = raw.reshape(shape)
    else:
        scale = raw.reshape([])
    mult = (1.0 / scale) * qm           # (qmax * 1/s) first, like the kernel: same codes
    if len(_GRIDS) > 4096:
        _GRIDS.clear()
    _GRIDS[key] = (raw, scale, mult, qm, lo)
    return scale, mult, qm, lo


@_op("quantize_linear")
def _quantize(paddle, op, env):
    x = _in(env, op, "X")
    _, mult, qm, lo = _grid(op, env, x)
    y = x * mult
    codes = paddle.clip(paddle.round(y), lo, qm)
    if not x.stop_gradient:
        codes = y + (codes - y).detach()   # straight-through
    return _out(op, "Y", codes)


@_op("dequantize_linear")
def _dequantize(paddle, op, env):
    x = _in(env, op, "X")
    scale, _, qm, _ = _grid(op, env, x)
    return _out(op, "Y", x * scale / qm)


def check_supported(ops: list[Op], where: str) -> None:
    """Every op has a dygraph function (else a one-line error naming the first that has not)."""
    for op in ops:
        if op.type not in OPS:
            outs = ", ".join(op.output_names) or "-"
            raise ActcError(f"region_wise: {where} contains {op.type} (-> {outs}), which region "
                            f"reconstruction cannot run; supported: {', '.join(sorted(OPS))}. "
                            "Choose region boundaries around it, or use recon_level: layer_wise")


def run(paddle, ops: list[Op], env: Env) -> Env:
    """Evaluate ``ops`` in order over ``env`` (inputs, params and soft weights), in place."""
    for op in ops:
        env.update(OPS[op.type](paddle, op, env))
    return env


#: the output slots the functions above write (an op's other outputs are training state).
_RESULT_SLOTS = ("Out", "Y", "Output")


class Unsupported(Exception):
    """The program has an op before the needed tensors that :data:`OPS` cannot run."""


#: the stream runs the cached batches together in chunks up to this many bytes for the
#: program's largest activation (all of them at once for small inputs).
CHUNK_BYTES = 64 << 20


class Stream:
    """The program's forward pass in dygraph (no gradient) over cached batches, a stretch at
    a time: what the quantized model feeds each layer or region, with the weights written
    into ``program`` so far.

    Why: reconstruction needs every layer's quantized input with the earlier layers already
    reconstructed; running the whole program per layer and batch in the executor repeats the
    same forward pass once per layer. Here each op runs once per chunk of batches (all of them
    for small inputs); a region's output computed anyway (its chosen rounding) can be handed
    over instead (:meth:`provide`). Ops whose inputs are all weights (the weights' QDQ pairs)
    run when a reader needs them, from the weights as they are then. A tensor is dropped once
    no later op reads it and no later request (``keep``, a count per name) asks for it.
    :meth:`verify` checks each op against the executor's own values on one batch."""

    def __init__(self, paddle, program: Program, feeds: list[dict], keep, upto):
        self.paddle, self.program = paddle, program
        ops = [op for op in program.ops() if op.block == 0 and op.type not in ("feed", "fetch")]
        self.const_op: dict[str, Op] = {}
        stream_ops = []
        for op in ops:
            ins = op.input_names
            if ins and all(program.is_weight(n) or n in self.const_op for n in ins):
                for n in op.output_names:
                    self.const_op[n] = op
            else:
                stream_ops.append(op)
        produced = {n: i for i, op in enumerate(stream_ops) for n in op.output_names}
        missing = [n for n in upto if n not in produced and n not in feeds[0]]
        if missing:
            raise Unsupported(f"'{missing[0]}' is not computed by block 0")
        end = max((produced[n] + 1 for n in upto if n in produced), default=0)
        self.ops = stream_ops[:end]
        self.index = {n: i for i, op in enumerate(self.ops) for n in op.output_names}
        bad = [op for op in self.ops if op.type not in OPS]
        if bad:
            raise Unsupported(f"{bad[0].type} (-> {', '.join(bad[0].output_names)})")
        self.last_read: dict[str, int] = {}
        for i, op in enumerate(self.ops):
            for n in op.input_names:
                self.last_read[n] = i
        self.keep: dict[str, int] = {}
        for n in keep:
            self.keep[n] = self.keep.get(n, 0) + 1
        self.pos = 0
        widest = max([_per_sample_bytes(program, n) for op in self.ops
                      for n in op.output_names] or [0])
        self.envs, self.sizes = [], []
        group: list[dict] = []
        for f in feeds:
            rows = len(next(iter(f.values())))
            if group and (sum(self.sizes[-1:]) + rows) * widest > CHUNK_BYTES:
                group = []
            if not group:
                self.envs.append({})
                self.sizes.append(0)
            group.append(f)
            self.sizes[-1] += rows
            self.envs[-1] = {k: np.concatenate([g[k] for g in group]) for k in f}
        self.envs = [{k: self._tensor(v) for k, v in env.items()} for env in self.envs]
        self._params: dict[str, tuple] = {}
        self._consts: dict[str, object] = {}

    def _tensor(self, a):
        return self.paddle.to_tensor(np.ascontiguousarray(a, dtype=np.float32))

    def _const(self, name: str):
        """A weight as the program holds it now, or an op on weights only (its QDQ)."""
        if name in self._consts:
            return self._consts[name]
        if name in self.program.params:
            t = self.program.params[name]
            held = self._params.get(name)
            if held is None or held[0] is not t:
                held = (t, self._tensor(np.asarray(t.array)))
                self._params[name] = held
            value = held[1]
        else:
            op = self.const_op[name]
            env = {n: self._const(n) for n in op.input_names}
            with self.paddle.no_grad():
                out = OPS[op.type](self.paddle, op, env)
            self._consts.update(out)
            value = out[name]
        self._consts[name] = value
        return value

    def _run(self, op: Op, env: Env) -> dict:
        local = dict(env)
        for n in op.input_names:
            if n not in local and (n in self.const_op or self.program.is_weight(n)):
                local[n] = self._const(n)
        return OPS[op.type](self.paddle, op, local)

    def _concat(self, parts):
        return parts[0] if len(parts) == 1 else self.paddle.concat(parts, axis=0)

    def _drop_read(self, op: Op, upto: int) -> None:
        for n in op.input_names:
            if self.last_read.get(n, -1) < upto and not self.keep.get(n):
                for env in self.envs:
                    env.pop(n, None)

    def values(self, names: list[str]) -> list:
        """``names`` on all cached samples (one tensor each), running the ops not run yet
        that lie before them."""
        self._consts = {}      # weights may have changed since the last call
        with self.paddle.no_grad():
            while not all(n in self.envs[0] for n in names):
                if self.pos >= len(self.ops):
                    gone = [n for n in names if n not in self.envs[0]]
                    raise ActcError(f"reconstruction: '{gone[0]}' was asked for after the "
                                    "dygraph forward dropped it (internal error)")
                op = self.ops[self.pos]
                for env in self.envs:
                    env.update(self._run(op, env))
                self.pos += 1
                self._drop_read(op, self.pos)
        out = [self._concat([env[n] for env in self.envs]) for n in names]
        for n in names:
            if self.keep.get(n):
                self.keep[n] -= 1
            if not self.keep.get(n) and self.last_read.get(n, -1) < self.pos:
                for env in self.envs:
                    env.pop(n, None)
        return out

    def provide(self, values: dict, computed: set) -> bool:
        """Take ``values`` (all samples; what the ops with uids ``computed`` produce with the
        weights now written) instead of running those ops, when the stream has not run them
        yet and nothing it still needs comes from them otherwise. False: not taken."""
        target = max((self.index[n] for n in values if n in self.index), default=-1)
        if target < self.pos:
            return False
        skipped = self.ops[self.pos:target + 1]
        if any(op.uid not in computed for op in skipped):
            return False
        for op in skipped:
            for n in op.output_names:
                if n not in values and (self.last_read.get(n, -1) > target or self.keep.get(n)):
                    return False
        for n, v in values.items():
            if self.last_read.get(n, -1) > target or self.keep.get(n):
                at = 0
                for env, rows in zip(self.envs, self.sizes):
                    env[n] = v if len(self.envs) == 1 else v[at:at + rows]
                    at += rows
        self.pos = target + 1
        for op in skipped:
            self._drop_read(op, self.pos)
        return True

    def verify_names(self, checked=frozenset()) -> list[str]:
        """The tensors :meth:`verify` needs from the executor (inputs and outputs of the ops
        but those with uids in ``checked``, which the caller checks otherwise)."""
        names = []
        for op in self.ops:
            if op.uid in checked:
                continue
            outs = [op.output(slot)[0] for slot in _RESULT_SLOTS if op.output(slot)]
            for n in op.input_names + outs:
                if n not in self.const_op and not self.program.is_weight(n):
                    names.append(n)
        return list(dict.fromkeys(names))

    def verify(self, fetched: dict[str, np.ndarray], tolerance: float,
               checked=frozenset()) -> None:
        """Each op (but ``checked``), run on the executor's inputs, gives the executor's
        outputs (first batch); a one-line error names the first that does not."""
        self._consts = {}
        with self.paddle.no_grad():
            for op in self.ops:
                if op.uid in checked:
                    continue
                env = {n: self._tensor(fetched[n]) for n in op.input_names if n in fetched}
                try:
                    out = self._run(op, env)
                except (ValueError, RuntimeError, TypeError) as e:
                    raise ActcError(f"reconstruction: {op.type} -> '{op.output_names[0]}' "
                                    f"cannot be re-run in dygraph: {str(e).splitlines()[0]}"
                                    ) from None
                for n, v in out.items():
                    ref = fetched.get(n)
                    if ref is None:
                        continue
                    got = v.numpy()
                    rel = (float(((got - ref) ** 2).sum())
                           / max(float((np.asarray(ref, np.float64) ** 2).sum()), 1e-30))
                    if not rel < tolerance:
                        raise ActcError(f"reconstruction: running {op.type} -> '{n}' in dygraph "
                                        "does not reproduce the program (relative error "
                                        f"{rel:.2e}); its attributes are not handled")


def _per_sample_bytes(program: Program, name: str) -> int:
    var = program.var(name)
    shape = var.shape if var is not None else None
    if not shape:
        return 0
    return 4 * int(np.prod([abs(d) for d in shape[1:]] or [1]))
