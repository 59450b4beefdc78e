"""Empirical bias correction (Nagel et al., "Data-Free Quantization", sec. 4.2, with data).

Quantized weights shift the mean of each output channel. Running the float and the quantized
program on calibration data measures that shift per channel; it is folded into whatever adds
a per-channel constant right after the layer (batch_norm's Mean, a bias elementwise_add) or,
failing that, into a new bias add. PaddleSlim's ``bias_correction`` only rescales the weights
themselves (and its rounding erases the change); this corrects what the layer outputs.
"""
from __future__ import annotations

import numpy as np
from actc.progress import progress

from actc.errors import ActcError
from actc.ir.program import Op, Program
from actc.quant.quantizers import Quantizer
from actc.runtime.calibrate import float_program
from actc.runtime.executor import Runner

CONV_TYPES = {"conv2d", "depthwise_conv2d", "conv2d_transpose"}
FC_TYPES = {"mul", "matmul", "matmul_v2"}


def corrected_layers(program: Program, quantizers: list[Quantizer]) -> list[tuple[Op, str, int]]:
    """(layer op, its output var, channel axis) for each layer whose weight is quantized."""
    layers = []
    seen = set()
    for q in quantizers:
        if not q.is_weight:
            continue
        for op, _, _ in program.consumers(q.output):
            if op.uid in seen:
                continue
            if op.type in CONV_TYPES and op.attr("data_format", "NCHW") in ("NCHW", "AnyLayout"):
                layers.append((op, op.output("Output")[0], 1))
            elif op.type in FC_TYPES:
                layers.append((op, op.output("Out")[0], -1))
            else:
                continue
            seen.add(op.uid)
    return layers


def _channel_mean(y: np.ndarray, axis: int) -> np.ndarray:
    ax = axis % y.ndim
    return y.astype(np.float64).mean(axis=tuple(i for i in range(y.ndim) if i != ax))


def measure_shift(float_runner: Runner, quant_runner: Runner, layers, batches
                  ) -> dict[str, np.ndarray]:
    """Per-channel mean(float) - mean(quantized) of every layer output over ``batches``."""
    names = [name for _, name, _ in layers]
    axes = {name: axis for _, name, axis in layers}
    sums = {n: 0.0 for n in names}
    count = 0
    for batch in batches:
        f_out = float_runner.run(batch.feed, names)
        q_out = quant_runner.run(batch.feed, names)
        for n, f, q in zip(names, f_out, q_out):
            sums[n] = sums[n] + _channel_mean(f, axes[n]) - _channel_mean(q, axes[n])
        count += 1
    return {n: (s / max(count, 1)).astype(np.float32) for n, s in sums.items()}


def param_target(program: Program, output: str, size: int) -> tuple[str, float] | None:
    """(param, sign) when the shift folds into an existing per-channel constant."""
    users = program.consumers(output)
    if len(users) != 1:
        return None
    user, slot, _ = users[0]
    if user.type == "batch_norm" and slot == "X":
        name, sign = user.input("Mean")[0], -1.0     # BN subtracts its Mean
    elif user.type == "elementwise_add" and slot == "X":
        name, sign = user.input("Y")[0], 1.0
    else:
        return None
    if program.is_weight(name) and program.params[name].shape == (size,):
        return name, sign
    return None


def ensure_bias(program: Program, layer: Op, output: str, axis: int, size: int) -> tuple[str, float]:
    """The per-channel constant after ``layer`` (adding a zero bias add when there is none)."""
    target = param_target(program, output, size)
    if target is not None:
        return target
    var = program.var(output)
    bias = program.add_var(program.fresh_name(output + "@bias_correction"),
                           data=np.zeros([size], np.float32))
    corrected = program.add_var(program.fresh_name(output + ".bias_corrected"),
                                shape=var.shape if var is not None else None)
    for op, slot, index in program.consumers(output):
        program.set_input(op, slot, index, corrected.name)
    program.new_op("elementwise_add", {"X": [output], "Y": [bias.name]},
                   {"Out": [corrected.name]}, {"axis": axis}, after=layer)
    return bias.name, 1.0


def reference_program(program: Program, float_weights: dict[str, np.ndarray]) -> Program:
    """The float model to correct toward: quantizers removed and the weights as they were
    before calibration (reconstruction may have written rounded weights over them)."""
    reference = float_program(program)
    for name, value in float_weights.items():
        if name in reference.params:
            reference.set_param(name, value)
    return reference


def correct_biases(program: Program, quantizers, dataset, *, batch_size, batch_nums,
                   device, float_weights: dict[str, np.ndarray],
                   max_batches: int = 8) -> dict[str, int]:
    """Sequential correction in program order: each layer's shift is measured with every
    earlier layer already corrected, so upstream error is not corrected twice.
    ``float_weights``: the weights before calibration touched them (the true reference)."""
    layers = corrected_layers(program, quantizers)
    if not layers:
        return {}
    sizes = {}
    for _, output, axis in layers:
        var = program.var(output)
        if var is None or var.shape is None or var.shape[axis] < 0:
            raise ActcError(f"bias correction: cannot tell the channel count of '{output}'")
        sizes[output] = var.shape[axis]
    targets = {out: ensure_bias(program, layer, out, axis, sizes[out])
               for layer, out, axis in layers}
    count = min(batch_nums or max_batches, max_batches)
    batches = list(dataset.batches(batch_size, count))
    names = [out for _, out, _ in layers]
    float_runner = Runner(reference_program(program, float_weights), device, private=True)
    f_means = {n: 0.0 for n in names}
    for batch in batches:
        for n, y in zip(names, float_runner.run(batch.feed, names)):
            f_means[n] = f_means[n] + _channel_mean(y, dict((o, a) for _, o, a in layers)[n])
    quant_runner = Runner(program, device)
    for _, out, axis in progress(layers, desc="bias correction", unit="layer"):
        q_mean = 0.0
        for batch in batches:
            q_mean = q_mean + _channel_mean(quant_runner.run(batch.feed, [out])[0], axis)
        delta = ((f_means[out] - q_mean) / len(batches)).astype(np.float32)
        name, sign = targets[out]
        value = np.asarray(program.params[name].array, np.float32) + sign * delta
        program.set_param(name, value)
        quant_runner.set_param(name, value)
    kinds: dict[str, int] = {}
    for out, (name, sign) in targets.items():
        kind = "batch_norm mean" if sign < 0 else ("new bias add" if "@bias_correction" in name
                                                   else "bias")
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds
