"""Layer-wise reconstruction of quantized weights (ACT ``recon_level: layer_wise``).

After calibration has fixed every scale, the rounding of each quantized weight is learned
so that the layer's output on calibration data matches the float layer's (AdaRound, Nagel et
al. 2020, "Up or Down? Adaptive Rounding for Post-Training Quantization"):

* each weight element is ``step * clip(floor(w/step) + h(V), lo, qmax)`` with the
  rectified sigmoid ``h(V) = clip(sigmoid(V) * 1.2 - 0.1, 0, 1)``; V starts where h(V)
  equals the fractional part, so the soft weight starts equal to the float weight;
* the loss is the normalised squared error between the float layer on its float input and
  the soft-quantized layer on the input the quantized model feeds it, plus
  ``lambda * mean(1 - |2h - 1|^beta)`` which pushes every h to 0 or 1; beta anneals from
  20 to 2 after a 20% warm-up without the regulariser (lambda = 0.01);
* the error is measured after the ops that directly follow the layer when they are
  per-channel affine (inference batch_norm, bias elementwise_add) and/or a relu, i.e. on
  what the next layer sees (the program keeps BN unfolded; AdaRound's "asymmetric
  reconstruction through the activation");
* at the end the hard rounding (h >= 0.5) is compared with round-to-nearest on the cached
  data and the better one is kept, so a layer never gets worse than plain PTQ on the data.

Layers are walked in program order. With ``simulate_activation_quant: true`` the input of a
layer is what the quantized program feeds it (earlier layers already reconstructed,
activation quantizers active), computed by one dygraph forward of the program that moves
along as layers are done (:class:`actc.runtime.interp.Stream`, each op first checked against
the executor on a batch; the executor per layer when an op cannot run there). With ``false``
both sides use the float model's input (weight rounding only, as PaddleSlim does). The float
targets of all layers come from one executor pass (:class:`FloatCache`, in several passes
when they would not fit :data:`FLOAT_CACHE_BYTES`). ``epochs`` passes over the cached batches,
one Adam step a batch (default 1: ten steps a layer at ``recon_batches: 10``).

The optimisation runs in Paddle dygraph (``F.conv2d`` / ``paddle.matmul`` with the op's
attributes); nothing is written to the IR until a layer is done. Its weight is then set to
the dequantized chosen codes (``codes * s / qmax``, float32) so the QDQ program and
``convert`` (``rint(w / s * qmax)``) reproduce exactly those codes; this is checked.

``region_wise`` (several layers jointly) is :mod:`actc.runtime.reconstruct_region`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from actc.errors import ActcError
from actc.ir.program import Program
from actc.progress import progress as progress_bar
from actc.quant.quantizers import Quantizer
from actc.quant.reference import dequantize, qmax, quantize, quantize_weight_int8
from actc.runtime.layers import (CONV_TYPES, Layer, attach_epilogue, dygraph, epilogue_fn,
                                 forward)

ZETA, GAMMA = 1.1, -0.1
WARMUP = 0.2
BETA_START, BETA_END = 20.0, 2.0
DEFAULT_LAMBDA = 0.01


@dataclass
class LayerResult:
    output: str
    weight: str
    nearest_loss: float
    learned_loss: float
    kept: str                # "learned" or "nearest"
    changed: int             # codes that differ from round-to-nearest
    size: int


@dataclass
class ReconReport:
    layers: list[LayerResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0
    unit: str = "layers"

    def summary(self) -> str:
        learned = sum(1 for r in self.layers if r.kept == "learned")
        if self.layers:
            gain = np.mean([1 - r.learned_loss / r.nearest_loss if r.nearest_loss > 0 else 0.0
                            for r in self.layers if r.kept == "learned"] or [0.0])
        else:
            gain = 0.0
        text = (f"{len(self.layers)} {self.unit} reconstructed ({learned} with learned rounding, "
                f"output error -{100 * gain:.0f}% on average vs round-to-nearest) in "
                f"{self.seconds:.1f} s")
        if self.skipped:
            text += f"; skipped: {'; '.join(self.skipped)}"
        return text


# --------------------------------------------------------------------------- layers

def find_layers(program: Program, float_prog: Program, quantizers: list[Quantizer]
                ) -> tuple[list[Layer], list[str]]:
    """Quantized conv/FC layers in program order, and why others were skipped."""
    order = {op.uid: i for i, op in enumerate(program.ops())}
    act_out = {q.output: q.tensor for q in quantizers if not q.is_weight}
    layers: list[tuple[int, Layer]] = []
    skipped: list[str] = []
    for q in quantizers:
        if not q.is_weight:
            continue
        users = [(op, slot) for op, slot, _ in program.consumers(q.output) if op.block == 0]
        if q.format != "onnx" or q.quant_op is None or q.scale is None:
            skipped.append(f"{q.tensor} (not an onnx-format weight quantizer before convert)")
            continue
        if len(users) != 1:
            skipped.append(f"{q.tensor} (read by {len(users)} ops)")
            continue
        op, slot = users[0]
        if op.type in CONV_TYPES and slot == "Filter":
            in_name, out_name = op.input("Input")[0], op.output("Output")[0]
        elif op.type == "mul" and slot == "Y":
            in_name, out_name = op.input("X")[0], op.output("Out")[0]
        elif op.type == "matmul_v2" and slot == "Y":
            in_name, out_name = op.input("X")[0], op.output("Out")[0]
        else:
            skipped.append(f"{q.tensor} ({op.type}.{slot} is not supported)")
            continue
        layer = Layer(op=op, quantizer=q, input=in_name,
                      float_input=act_out.get(in_name, in_name), output=out_name,
                      weight_slot=slot)
        if float_prog.var(layer.float_input) is None:
            skipped.append(f"{q.tensor} (its float input is not in the float program)")
            continue
        attach_epilogue(program, layer)
        layers.append((order[op.uid], layer))
    layers.sort(key=lambda t: t[0])
    return [layer for _, layer in layers], skipped


# --------------------------------------------------------------------------- cached data

#: float-model tensors fetched in one executor pass at most (bytes over all cached batches);
#: above it, the layers' or regions' targets are fetched in several passes.
FLOAT_CACHE_BYTES = 512 << 20


class FloatCache:
    """The float model's tensors that each layer or region (in order) needs, on the cached
    batches, fetched in as few executor passes as :data:`FLOAT_CACHE_BYTES` allows (one for
    small models) instead of one pass per layer and batch. ``take(k)`` hands over consumer
    ``k``'s tensors and drops those no later consumer needs."""

    def __init__(self, runner, program: Program, batches: list[dict], needs: list[list[str]]):
        self.runner, self.program, self.batches = runner, program, batches
        self.needs = [list(dict.fromkeys(n)) for n in needs]
        self.sizes = [len(next(iter(b.values()))) for b in batches]
        self.samples = sum(self.sizes)
        self.values: dict[str, list[np.ndarray]] = {}
        self.fetched_upto = 0

    def _bytes(self, name: str) -> int:
        var = self.program.var(name)
        shape = var.shape if var is not None else None
        if not shape:
            return 0
        return 4 * int(np.prod([abs(d) for d in shape[1:]] or [1])) * self.samples

    def take(self, k: int) -> dict[str, list[np.ndarray]]:
        if k >= self.fetched_upto:
            self._fetch_from(k)
        out = {n: self.values[n] for n in self.needs[k]}
        later = {n for need in self.needs[k + 1:] for n in need}
        for n in self.needs[k]:
            if n not in later:
                self.values.pop(n, None)
        return out

    def _fetch_from(self, k: int) -> None:
        names: list[str] = []
        size, j = 0, k
        while j < len(self.needs):
            new = [n for n in self.needs[j] if n not in self.values and n not in names]
            more = sum(self._bytes(n) for n in new)
            if names and size + more > FLOAT_CACHE_BYTES:
                break
            names += new
            size += more
            j += 1
        if names:
            runs = [self.runner.run(feed, names) for feed in self._chunks()]
            for i, n in enumerate(names):
                self.values[n] = _split([r[i] for r in runs], self.sizes)
        self.fetched_upto = j

    def _chunks(self) -> list[dict]:
        """The batches joined into runs of up to CHUNK_BYTES for the widest activation (one
        executor run for small models instead of one a batch)."""
        from actc.runtime.interp import CHUNK_BYTES, _per_sample_bytes

        widest = max([_per_sample_bytes(self.program, v.name) for v in self.program.all_vars()
                      if not self.program.is_weight(v.name)] or [0])
        groups: list[list[dict]] = []
        rows = 0
        for feed, size in zip(self.batches, self.sizes):
            if not groups or (rows + size) * widest > CHUNK_BYTES:
                groups.append([])
                rows = 0
            groups[-1].append(feed)
            rows += size
        return [g[0] if len(g) == 1 else {k: np.concatenate([f[k] for f in g]) for k in g[0]}
                for g in groups]


def _split(parts: list[np.ndarray], sizes: list[int]) -> list[np.ndarray]:
    """Arrays for chunks of batches, back into one array a batch (views)."""
    whole = parts[0] if len(parts) == 1 else np.concatenate(parts)
    bounds = np.cumsum([0] + list(sizes))
    return [whole[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


# --------------------------------------------------------------------------- main loop

def reconstruct(program: Program, quantizers: list[Quantizer], dataset, *, batch_size: int,
                recon_batches: int, epochs: int, lr: float, simulate_activation_quant: bool,
                device: str | None, reg_lambda: float = DEFAULT_LAMBDA,
                progress: bool = True) -> ReconReport:
    """Learn the rounding of every quantized conv/FC weight, layer by layer (see module doc).
    Writes the chosen weights into ``program`` (scales untouched)."""
    from actc.runtime.calibrate import float_program
    from actc.runtime.executor import Runner
    from actc.runtime.paddle_env import import_paddle, set_forward_only

    start = time.perf_counter()
    paddle = import_paddle()
    fprog = float_program(program)
    layers, skipped = find_layers(program, fprog, quantizers)
    report = ReconReport(skipped=skipped)
    if not layers:
        report.seconds = time.perf_counter() - start
        return report
    batches = [b.feed for b in dataset.batches(batch_size, recon_batches)]
    if not batches:
        raise ActcError("reconstruction: the calibration data is empty", path=dataset.source)
    sizes = [len(next(iter(b.values()))) for b in batches]
    set_forward_only(True)
    float_runner = Runner(fprog, device, private=True)
    place = float_runner.place
    floats = FloatCache(float_runner, fprog, batches,
                        [[layer.output] + ([] if simulate_activation_quant else
                                           [layer.float_input]) for layer in layers])
    # each layer's dygraph op is checked on the float model's first batch
    probe_names = list(dict.fromkeys(n for layer in layers
                                     for n in (layer.float_input, layer.output)))
    probes = dict(zip(probe_names, float_runner.run(batches[0], probe_names)))
    stream, quant_runner = None, None
    if simulate_activation_quant:
        from actc.runtime import interp

        set_forward_only(False)
        with dygraph(paddle, place):
            try:
                stream = interp.Stream(paddle, program, batches,
                                       keep=[layer.input for layer in layers],
                                       upto=[layer.input for layer in layers])
            except interp.Unsupported as e:
                report.skipped.append(f"inputs from the executor, one pass per layer (the "
                                      f"dygraph forward cannot run {e})")
        set_forward_only(True)
        if stream is not None:   # every op the stream runs must reproduce the program
            names = stream.verify_names()
            reference = dict(zip(names, Runner(program, device).run(batches[0], names)))
            set_forward_only(False)
            with dygraph(paddle, place):
                stream.verify(reference, 1e-3)
            set_forward_only(True)
        else:
            quant_runner = Runner(program, device)
    bar = progress_bar(total=len(layers), desc="reconstruct", unit="layer", enabled=progress)
    try:
        for k, layer in enumerate(layers):
            set_forward_only(True)
            floated = floats.take(k)
            f_out = np.concatenate(floated[layer.output])
            q_in = None
            if not simulate_activation_quant:
                q_in = np.concatenate(floated[layer.float_input])
            elif quant_runner is not None:
                q_in = np.concatenate([quant_runner.run(feed, [layer.input])[0]
                                       for feed in batches])
            set_forward_only(False)
            with dygraph(paddle, place):
                if q_in is None:
                    q_in = stream.values([layer.input])[0]
                codes, result = _reconstruct_layer(
                    paddle, program, layer, q_in, f_out,
                    (probes[layer.float_input], probes[layer.output]), sizes=sizes,
                    epochs=epochs, lr=lr, reg_lambda=reg_lambda, progress=progress)
            name = write_codes(program, layer.quantizer, codes)
            if quant_runner is not None:
                if name == layer.quantizer.tensor:
                    quant_runner.set_param(name, program.params[name].array)
                else:   # the quantizer was rewired to a copy: rebuild
                    set_forward_only(True)
                    quant_runner = Runner(program, device)
            report.layers.append(result)
            bar.update(1)
    finally:
        bar.close()
        set_forward_only(True)
    report.seconds = time.perf_counter() - start
    return report


def weight_grid(program: Program, q: Quantizer, w: np.ndarray):
    """(step broadcast to w, lo, hi) of the weight quantizer's grid."""
    qm = qmax(q.bits)
    scale = np.asarray(program.params[q.scale].array, np.float32).reshape(-1)
    if not np.all(scale > 0):
        raise ActcError(f"reconstruction: weight '{q.tensor}' has a non-positive scale; "
                        "calibrate must set the scales first")
    shape = [1] * w.ndim
    if q.axis >= 0:
        shape[q.axis] = w.shape[q.axis]
    elif scale.size != 1:
        raise ActcError(f"reconstruction: '{q.tensor}' is per-tensor but has {scale.size} scales")
    round_type = int(q.quant_op.attr("round_type", 0) or 0)
    lo = -qm - 1 if round_type == 0 else -qm
    return scale.reshape(shape), float(lo), float(qm)


class SoftRounding:
    """One weight's learnable rounding (AdaRound): ``step * clip(floor(w/step) + h(V), lo, hi)``
    with V starting where h(V) is the fractional part (the soft weight starts at the float
    weight); the grid is exactly the QDQ ops' (quantize: rint(qmax * (1/s) * w))."""

    def __init__(self, paddle, program: Program, q: Quantizer):
        self.paddle, self.q = paddle, q
        w = np.asarray(program.params[q.tensor].array, np.float32)
        scale, self.lo, self.hi = weight_grid(program, q, w)
        self.nearest = quantize(w, scale.reshape(-1), q.bits, q.axis if q.axis >= 0 else -1,
                                int(q.quant_op.attr("round_type", 0) or 0))
        self.step = (scale / np.float32(qmax(q.bits))).astype(np.float32)
        ratio = w / self.step
        self.floor = np.floor(ratio)
        rest = np.clip(ratio - self.floor, 0.0, 1.0)
        v0 = -np.log((ZETA - GAMMA) / (rest - GAMMA) - 1.0)
        self.float_weight = w
        self._scale = np.asarray(program.params[q.scale].array, np.float32).reshape(-1)
        self.floor_t, self.step_t = _tensor(paddle, self.floor), _tensor(paddle, self.step)
        self.V = paddle.create_parameter(list(w.shape), "float32",
                                         default_initializer=paddle.nn.initializer.Assign(
                                             v0.astype(np.float32)))

    def _h(self):
        p = self.paddle
        return p.clip(p.nn.functional.sigmoid(self.V) * (ZETA - GAMMA) + GAMMA, 0.0, 1.0)

    def weight(self):
        """The soft-quantized weight (differentiable in V); its h is reused by the
        regulariser of the same step."""
        self._step_h = self._h()
        return self.paddle.clip(self.floor_t + self._step_h, self.lo, self.hi) * self.step_t

    def regularizer(self, beta: float):
        """mean(1 - |2h - 1|^beta): pushes every h to 0 or 1."""
        h, self._step_h = getattr(self, "_step_h", None), None
        h = self._h() if h is None else h
        return (1.0 - (2.0 * h - 1.0).abs().pow(beta)).mean()

    def learned_codes(self) -> np.ndarray:
        return np.clip(self.floor + (self.V.numpy() >= 0).astype(np.float32), self.lo, self.hi)

    def hard_weight(self, codes: np.ndarray):
        """The weight the program holds once ``codes`` are written (``write_codes``)."""
        return _tensor(self.paddle, dequantize(codes, self._scale, self.q.bits,
                                               self.q.axis if self.q.axis >= 0 else -1))


def _tensor(paddle, a):
    return paddle.to_tensor(np.ascontiguousarray(a, dtype=np.float32))


def beta_at(it: int, total: int, warm: int) -> float | None:
    """The regulariser's beta at iteration ``it`` (None during the warm-up: no regulariser)."""
    if it < warm:
        return None
    rel = (it - warm) / max(1, total - warm)
    return BETA_END + (BETA_START - BETA_END) * max(0.0, 1.0 - rel)


class _Adam:
    """Adam (Paddle's update: beta1 0.9, beta2 0.999, epsilon 1e-8) on a few tensors, in
    place: ``paddle.optimizer.Adam`` costs more per step than the step itself on tensors this
    small, and its first use imports Paddle's distributed package (~0.4 s)."""

    B1, B2, EPS = 0.9, 0.999, 1e-8

    def __init__(self, paddle, params, lr: float):
        self.paddle, self.params, self.lr = paddle, list(params), float(lr)
        self.m = [paddle.zeros_like(p) for p in self.params]
        self.v = [paddle.zeros_like(p) for p in self.params]
        self.t = 0

    def step(self) -> None:
        self.t += 1
        b1t, b2t = self.B1 ** self.t, self.B2 ** self.t
        lr = self.lr * (1.0 - b2t) ** 0.5 / (1.0 - b1t)
        eps = self.EPS * (1.0 - b2t) ** 0.5
        with self.paddle.no_grad():
            for p, m, v in zip(self.params, self.m, self.v):
                g = p.grad
                if g is None:
                    continue
                m.scale_(self.B1).add_(g * (1.0 - self.B1))
                v.scale_(self.B2).add_(g * g * (1.0 - self.B2))
                p.subtract_(m / (v.sqrt() + eps) * lr)
                p.clear_gradient()


def learn_rounding(paddle, params, xs, ys, loss_fn, regularizer, *, epochs: int, lr: float,
                   reg_lambda: float, desc: str, progress: bool) -> None:
    """Adam on the rounding variables: ``epochs`` passes over the cached batches, the
    rounding regulariser joining after the warm-up with beta annealed (AdaRound's schedule)."""
    opt = _Adam(paddle, params, lr)
    total = max(1, epochs * len(xs))
    warm = int(WARMUP * total)
    it = 0
    with progress_bar(total=total, desc=desc, unit="it", enabled=progress) as bar:
        for _ in range(epochs):
            for x, y in zip(xs, ys):
                loss = loss_fn(x, y)
                beta = beta_at(it, total, warm)
                if beta is not None:
                    loss = loss + reg_lambda * regularizer(beta)
                loss.backward()
                opt.step()
                it += 1
                bar.update(1)
                if it % 10 == 0 or it == total:
                    bar.set_postfix(loss=f"{float(loss):.4g}")


#: no-gradient passes over the cached samples run in chunks of up to this many input bytes.
EVAL_BYTES = 16 << 20


def slices(sizes: list[int], rows: int | None = None) -> list[tuple[int, int]]:
    """[start, end) rows of each batch (``sizes``), or of chunks of ``rows`` rows."""
    total = int(sum(sizes))
    if rows is None:
        bounds = np.cumsum([0] + list(sizes))
        return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]
    return [(a, min(a + rows, total)) for a in range(0, total, rows)]


def eval_rows(sizes: list[int], per_row_bytes: int) -> int:
    return max(max(sizes), EVAL_BYTES // max(per_row_bytes, 1))


def _reconstruct_layer(paddle, program: Program, layer: Layer, q_in, f_out, probe, *,
                       sizes: list[int], epochs: int, lr: float, reg_lambda: float,
                       progress: bool):
    """``q_in``/``f_out``: the layer's input and float output on all cached samples;
    ``probe``: (float input, float output) on the first batch."""
    q = layer.quantizer
    soft = SoftRounding(paddle, program, q)
    T = lambda a: _tensor(paddle, a) if isinstance(a, np.ndarray) else a  # noqa: E731
    full_x = T(q_in)
    epi = epilogue_fn(paddle, layer, f_out.ndim, T)
    full_y = epi(T(f_out))
    batches = slices(sizes)
    xs = [full_x[a:b] for a, b in batches]
    ys = [full_y[a:b] for a, b in batches]
    chunks = slices(sizes, eval_rows(sizes, 4 * int(np.prod(full_x.shape[1:]))))

    def sq_err(out, y):
        return ((epi(out) - y) ** 2).sum()

    # check that the dygraph layer is the op: float weight on float input gives the target
    try:
        check = forward(paddle, layer, T(probe[0]), T(soft.float_weight))
    except (ValueError, RuntimeError, TypeError) as e:
        raise ActcError(f"reconstruction: {layer.op.type} for '{layer.output}' cannot be re-run "
                        f"in dygraph: {str(e).splitlines()[0]}") from None
    ref = T(probe[1])
    rel = float(((check - ref) ** 2).sum()) / max(float((ref ** 2).sum()), 1e-30)
    if not rel < 1e-6:
        raise ActcError(f"reconstruction: re-running {layer.op.type} for '{layer.output}' in "
                        f"dygraph does not reproduce the program (relative error {rel:.2e}); "
                        "its attributes are not handled")
    norm = float((full_y ** 2).sum()) / len(ys)
    norm = norm if norm > 0 else 1.0

    def hard_loss(codes: np.ndarray) -> float:
        wq = soft.hard_weight(codes)
        with paddle.no_grad():
            return sum(float(sq_err(forward(paddle, layer, full_x[a:b], wq), full_y[a:b]))
                       for a, b in chunks) / len(ys) / norm

    learn_rounding(paddle, [soft.V], xs, ys,
                   lambda x, y: sq_err(forward(paddle, layer, x, soft.weight()), y) / norm,
                   soft.regularizer, epochs=epochs, lr=lr, reg_lambda=reg_lambda,
                   desc=f"reconstruct {layer.output}", progress=progress)
    learned = soft.learned_codes()
    nearest = soft.nearest
    near_loss, learned_loss = hard_loss(nearest), hard_loss(learned)
    kept = "learned" if learned_loss <= near_loss else "nearest"
    codes = learned if kept == "learned" else nearest
    result = LayerResult(output=layer.output, weight=q.tensor, nearest_loss=near_loss,
                         learned_loss=learned_loss, kept=kept,
                         changed=int((codes != nearest).sum()), size=int(codes.size))
    return codes.astype(np.float32), result


def write_codes(program: Program, q: Quantizer, codes: np.ndarray) -> str:
    """Store ``codes * s / qmax`` as the weight the quantize op reads; check that the QDQ op
    and convert read back exactly ``codes``. Returns the param written."""
    axis = q.axis if q.axis >= 0 else -1
    scale = np.asarray(program.params[q.scale].array, np.float32).reshape(-1)
    value = dequantize(codes, scale, q.bits, axis).astype(np.float32)
    round_type = int(q.quant_op.attr("round_type", 0) or 0)
    back_op = quantize(value, scale, q.bits, axis, round_type)
    back_convert = quantize_weight_int8(value, scale, q.bits, axis)
    if not (np.array_equal(back_op, codes) and np.array_equal(back_convert, codes)):
        raise ActcError(f"reconstruction: the codes of '{q.tensor}' do not survive "
                        "dequantize -> quantize (internal error)")
    name = q.tensor
    others = [c for c, _, _ in program.consumers(name) if c is not q.quant_op]
    if others:  # the float weight is read elsewhere too: give the quantizer its own copy
        name = program.fresh_name(q.tensor + ".recon")
        program.add_var(name, data=value)
        program.set_input(q.quant_op, "X", 0, name)
    else:
        program.set_param(name, value)
    return name
