"""Score ``algo: auto``'s candidate thresholds on the layers each tensor feeds.

For an activation read by quantized conv/FC layers, each candidate threshold quantizes the
kept float samples, the layer runs in Paddle dygraph with its weight quantized as calibrate
set it, and the error after the layer's batch_norm/bias/relu is compared with the float
layer's. No forward pass of the model is added: the samples were kept by the statistics pass.
"""
from __future__ import annotations

import time

import numpy as np

from actc.ir.program import Program
from actc.quant import auto
from actc.quant.quantizers import Quantizer
from actc.quant.reference import fake_quant_dequant
from actc.runtime.layers import (CONV_TYPES, Layer, attach_epilogue, dygraph, forward,
                                 numpy_epilogue)

_INPUT_SLOT = {"conv2d": "Input", "depthwise_conv2d": "Input", "mul": "X", "matmul_v2": "X"}
_WEIGHT_SLOT = {"conv2d": "Filter", "depthwise_conv2d": "Filter", "mul": "Y", "matmul_v2": "Y"}
#: values in one batched layer call while scoring (bounds the memory of the batched samples).
CALL_ELEMENTS = 1 << 22
_OUTPUT_SLOT = {"conv2d": "Output", "depthwise_conv2d": "Output", "mul": "Out",
                "matmul_v2": "Out"}


def _round_type(q: Quantizer) -> int:
    return int(q.quant_op.attr("round_type", 0) or 0) if q.quant_op is not None else 0


def layers_fed_by(program: Program, act: Quantizer, weight_of: dict[str, Quantizer]
                  ) -> list[Layer]:
    """The quantized conv/FC layers reading ``act``'s quantized output as their input."""
    out = []
    for op, slot, _ in program.consumers(act.output):
        if op.block != 0 or _INPUT_SLOT.get(op.type) != slot:
            continue
        wnames = op.input(_WEIGHT_SLOT[op.type])
        wq = weight_of.get(wnames[0]) if wnames else None
        if wq is None:
            continue
        layer = Layer(op=op, quantizer=wq, input=act.output, float_input=act.tensor,
                      output=op.output(_OUTPUT_SLOT[op.type])[0],
                      weight_slot=_WEIGHT_SLOT[op.type])
        if op.type in CONV_TYPES and op.attr("data_format", "NCHW") == "NHWC":
            continue
        attach_epilogue(program, layer)
        out.append(layer)
    return out


def choose(program: Program, quantizers: list[Quantizer], stats: dict, samples: dict,
           originals: dict[str, np.ndarray], quantized: dict[str, np.ndarray],
           hist_percent: float | None, device: str | None
           ) -> tuple[dict[str, float], list[auto.AutoChoice], float]:
    """Threshold per activation tensor, what won where, and the seconds spent scoring.
    ``originals``/``quantized``: each weight quantizer's float and quantize-dequantized
    weight."""
    from actc.runtime.paddle_env import import_paddle, resolve_place

    start = time.perf_counter()
    weight_of = {q.output: q for q in quantizers if q.is_weight}
    choices: list[auto.AutoChoice] = []
    thresholds: dict[str, float] = {}
    paddle = import_paddle()
    with dygraph(paddle, resolve_place(device)):
        for q in quantizers:
            if q.is_weight or q.tensor in thresholds:
                continue
            cands = auto.candidates(stats[q.tensor], q.bits, hist_percent)
            layers = layers_fed_by(program, q, weight_of) if samples.get(q.tensor) else []
            errors = None
            if layers:
                try:
                    errors = _layer_errors(paddle, q, layers, cands, samples[q.tensor],
                                           originals, quantized)
                except (ValueError, RuntimeError, TypeError):
                    errors = None   # an attribute Paddle's functional API refuses: tensor error
            if errors is not None:
                choice = auto.pick(q.tensor, cands, errors, "layer")
            else:
                choice = auto.pick(q.tensor, cands,
                                   auto.tensor_errors(stats[q.tensor], q.bits, cands), "tensor")
            thresholds[q.tensor] = choice.threshold
            choices.append(choice)
    return thresholds, choices, time.perf_counter() - start


def _layer_errors(paddle, act: Quantizer, layers: list[Layer], cands: dict[str, float],
                  kept: list[np.ndarray], originals: dict[str, np.ndarray],
                  quantized: dict[str, np.ndarray]) -> dict[str, float]:
    """Sum over the layers of |layer(qdq(x), Wq) - layer(x, W)|^2 / |layer(x, W)|^2. Every
    distinct threshold's quantized samples go through the layer in one batched call; the
    epilogue and the error run in numpy, in place (Paddle's broadcasting ``y * a + b`` on
    CPU took 3x the conv itself: 28 of 57 s scoring mobilenet_v2 at 224)."""
    T = lambda a: paddle.to_tensor(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
    x = np.concatenate(kept, axis=0)
    n = x.shape[0]
    values, index = auto.distinct(cands)
    per_value = np.zeros(values.size)
    chunk = max(1, CALL_ELEMENTS // max(x.size, 1))
    with paddle.no_grad():
        for layer in layers:
            epilogue = numpy_epilogue(layer)
            w = originals[layer.quantizer.tensor]
            wq = T(quantized[layer.quantizer.tensor])
            ref = epilogue(forward(paddle, layer, T(x), T(w)).numpy())
            flat_ref = ref.reshape(1, n, -1)
            norm = max(float(np.einsum("ij,ij->", flat_ref[0], flat_ref[0])), 1e-30)
            for lo in range(0, values.size, chunk):
                ts = values[lo:lo + chunk]
                xq = np.concatenate([fake_quant_dequant(x, np.float32(t), act.bits, -1,
                                                        _round_type(act)) for t in ts])
                out = epilogue(forward(paddle, layer, T(xq), wq).numpy())
                diff = out.reshape(ts.size, n, -1)
                diff -= flat_ref
                diff = diff.reshape(ts.size, -1)
                per_value[lo:lo + ts.size] += np.einsum("ij,ij->i", diff, diff) / norm
    return {k: float(per_value[i]) for k, i in index.items()}


#: single algorithms the per-tensor mix may be checked against on the whole model.
SINGLE_ALGOS = ("abs_max", "avg", "hist", "KL", "mse", "emd", "ptf")


def best_singles(choices: list[auto.AutoChoice], hist_percent: float) -> tuple[str, ...]:
    """The single algorithms, least summed error over the tensors first."""
    names = {a: (auto.hist_name(hist_percent) if a == "hist" else a) for a in SINGLE_ALGOS}
    err = auto.uniform_errors(choices, names.values())
    return tuple(sorted(SINGLE_ALGOS, key=lambda a: err[names[a]]))


def check_configs(choices: list[auto.AutoChoice], singles: tuple[str, ...],
                  hist_percent: float) -> dict[str, dict[str, float]]:
    """What the whole-model check compares, most promising first: the per-tensor mix, the
    best single algorithm, it with only clear local winners replacing it
    (:func:`actc.quant.auto.blend`), then the other singles. Duplicates are dropped."""
    configs = {"per-tensor": {c.tensor: c.threshold for c in choices}}
    for k, algo in enumerate(singles):
        name = auto.hist_name(hist_percent) if algo == "hist" else algo
        thresholds = {c.tensor: c.thresholds[name] for c in choices}
        if thresholds not in configs.values():
            configs[algo] = thresholds
        if k == 0:
            mixed = auto.blend(choices, name, thresholds)
            if mixed not in configs.values():
                configs[f"{algo}+per-tensor"] = mixed
    return configs


def model_check(program: Program, quantizers: list[Quantizer], stats: dict,
                configs: dict[str, dict[str, float]], originals: dict[str, np.ndarray],
                weight_algo: str, batches: list, device: str | None
                ) -> tuple[str, dict[str, float], dict[str, float]]:
    """Run the quantized model on ``batches`` with each configuration of thresholds and keep
    whichever reproduces the float outputs best (SNR): per-layer errors do not add up
    exactly, and this keeps auto from losing to a single algorithm on the data it is checked
    on (near ties: :func:`pick_checked`). Returns (winner, its thresholds, SNR dB per
    configuration)."""
    from actc.quant.ptq import ScaleChoice, apply_scales
    from actc.runtime.calibrate import float_program
    from actc.runtime.evaluate import fidelity
    from actc.runtime.executor import Runner

    ref_runner = Runner(float_program(program), device, private=True)
    refs = [ref_runner.run(b.feed) for b in batches]
    del ref_runner
    runner = Runner(program, device)
    weights: dict = {}   # weight thresholds do not change between configurations
    snr: dict[str, float] = {}
    for name, thresholds in configs.items():
        written = apply_scales(program, quantizers, stats, ScaleChoice("auto", None, weight_algo),
                               originals, cache=weights, overrides=thresholds)
        for var, value in written.items():
            runner.set_param(var, value)
        outs = [runner.run(b.feed) for b in batches]
        per_fetch = [fidelity(f, np.concatenate([r[k] for r in refs]),
                              np.concatenate([o[k] for o in outs])).snr_db
                     for k, f in enumerate(runner.fetches)]
        snr[name] = float(np.mean(per_fetch))
    winner = pick_checked(snr, list(configs))
    return winner, configs[winner], snr


#: configurations whose checked SNR is this close to the best count as tied: on a few dozen
#: samples such gaps are noise, and the tie goes to the one the layer errors ranked first.
CHECK_TIE_DB = 0.25


def pick_checked(snr: dict[str, float], order: list[str]) -> str:
    """The first configuration (in ``order``: per-tensor mix, then by summed layer error)
    within CHECK_TIE_DB of the best checked SNR."""
    best = max(snr.values())
    return next(k for k in order if snr[k] >= best - CHECK_TIE_DB)
