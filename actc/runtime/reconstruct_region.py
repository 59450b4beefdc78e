"""Region-wise reconstruction (ACT ``recon_level: region_wise``; BRECQ, Li et al. 2021).

The rounding of every quantized weight in a region is learned jointly so that the region's
output on calibration data matches the float model's: the same AdaRound soft rounding and
regulariser as layer-wise (:class:`actc.runtime.reconstruct.SoftRounding`), but the loss is
the region output's normalised squared error, so the errors of its layers can compensate each
other, through batch_norm, activations, residual adds and the activation quantizers between
them (straight-through). Regions come from ``regions`` ([input var, output var] pairs, as
ACT's YOLO configs write them) or, with none given, from the program's blocks
(:func:`actc.quant.regions.auto_regions`: every residual block, runs of plain layers).

The region runs in Paddle dygraph, one function per op kind (:mod:`actc.runtime.interp`);
before learning, it is checked to reproduce the quantized program's own output for the
region (on the program's values for the first batch). With ``simulate_activation_quant`` its
input is what the quantized program feeds it with the earlier regions already reconstructed:
a dygraph forward of the program (:class:`actc.runtime.interp.Stream`) takes each region's
output with its chosen rounding and carries on from there, so the program is not re-run per
region. The float targets come from one executor pass for all regions. At the end the hard
rounding is compared with round-to-nearest on all cached samples and the better one is kept
for the whole region.
"""
from __future__ import annotations

import time

import numpy as np

from actc.errors import ActcError
from actc.ir.program import Program
from actc.progress import progress as progress_bar
from actc.quant.quantizers import Quantizer
from actc.quant.regions import Region, auto_regions, regions_from_pairs
from actc.runtime import interp
from actc.runtime.reconstruct import (DEFAULT_LAMBDA, FloatCache, LayerResult, ReconReport,
                                      SoftRounding, eval_rows, learn_rounding, slices,
                                      write_codes)

#: relative squared error within which the dygraph region must reproduce the program.
CHECK_TOLERANCE = 1e-3


def reconstruct_regions(program: Program, quantizers: list[Quantizer], dataset, *,
                        regions, batch_size: int, recon_batches: int, epochs: int, lr: float,
                        simulate_activation_quant: bool, device: str | None,
                        reg_lambda: float = DEFAULT_LAMBDA, progress: bool = True
                        ) -> tuple[ReconReport, list[Region]]:
    """Learn the rounding of the weights region by region; writes them into ``program``."""
    from actc.runtime.calibrate import float_program
    from actc.runtime.executor import Runner
    from actc.runtime.layers import dygraph
    from actc.runtime.paddle_env import import_paddle, set_forward_only

    start = time.perf_counter()
    paddle = import_paddle()
    blocks = (regions_from_pairs(program, quantizers, regions) if regions
              else auto_regions(program, quantizers))
    report = ReconReport(unit="regions")
    eligible = []
    for r in blocks:
        interp.check_supported(r.ops, r.name)
        usable = [q for q in r.weights if q.format == "onnx" and q.scale is not None]
        if len(usable) < len(r.weights):
            report.skipped.append(f"{r.name}: {len(r.weights) - len(usable)} weight(s) not in "
                                  "onnx format before convert")
        r.weights = usable
        if usable:
            eligible.append(r)
        else:
            report.skipped.append(f"{r.name} (no quantized weight)")
    batches = [b.feed for b in dataset.batches(batch_size, recon_batches)]
    if not batches:
        raise ActcError("reconstruction: the calibration data is empty", path=dataset.source)
    sizes = [len(next(iter(b.values()))) for b in batches]
    set_forward_only(True)
    fprog = float_program(program)
    if not simulate_activation_quant:
        for r in eligible:
            _check_names(fprog, r)
    float_runner = Runner(fprog, device, private=True)
    place = float_runner.place
    floats = FloatCache(float_runner, fprog, batches,
                        [[r.output] + ([] if simulate_activation_quant else r.inputs)
                         for r in eligible])
    quant_runner = Runner(program, device)
    # the program's own values on the first batch, before any weight changes: each region
    # (and every op the stream runs) must reproduce them in dygraph
    stream, why_not = None, None
    names = list(dict.fromkeys(n for r in eligible for n in r.inputs + [r.output]))
    in_regions = {op.uid for r in eligible for op in r.ops}
    if simulate_activation_quant:
        set_forward_only(False)
        with dygraph(paddle, place):
            try:
                stream = interp.Stream(paddle, program, batches,
                                       keep=[n for r in eligible for n in r.inputs],
                                       upto=[n for r in eligible for n in r.inputs])
            except interp.Unsupported as e:
                why_not = str(e)
        set_forward_only(True)
        if stream is not None:     # each region's ops are checked as a whole (_learn)
            names = list(dict.fromkeys(names + stream.verify_names(in_regions)))
    reference = dict(zip(names, quant_runner.run(batches[0], names)))
    if stream is not None:
        set_forward_only(False)
        with dygraph(paddle, place):
            stream.verify(reference, CHECK_TOLERANCE, in_regions)
        quant_runner = None     # the stream computes the inputs from here on
    elif not simulate_activation_quant:
        quant_runner = None     # the float model gives the inputs
    elif why_not:
        report.skipped.append(f"inputs from the executor, one pass per region (the dygraph "
                              f"forward cannot run {why_not})")
    bar = progress_bar(total=len(eligible), desc="reconstruct", unit="region",
                       enabled=progress)
    try:
        for k, region in enumerate(eligible):
            set_forward_only(True)
            floated = floats.take(k)
            targets = np.concatenate(floated[region.output])
            inputs = None
            if not simulate_activation_quant:
                inputs = [np.concatenate(floated[n]) for n in region.inputs]
            elif stream is None:
                if quant_runner is None:
                    quant_runner = Runner(program, device)
                runs = [quant_runner.run(feed, region.inputs) for feed in batches]
                inputs = [np.concatenate([r[i] for r in runs]) for i in range(len(region.inputs))]
            check = [reference[n] for n in region.inputs + [region.output]]
            set_forward_only(False)
            with dygraph(paddle, place):
                if inputs is None:
                    inputs = stream.values(region.inputs)
                codes, result, out = _learn(paddle, program, region, inputs, targets, check,
                                            sizes=sizes, epochs=epochs, lr=lr,
                                            reg_lambda=reg_lambda, progress=progress)
                if stream is not None:
                    stream.provide({region.output: out}, {op.uid for op in region.ops})
            for q, c in codes:
                name = write_codes(program, q, c)
                if quant_runner is not None:
                    if name == q.tensor:
                        quant_runner.set_param(name, program.params[name].array)
                    else:   # the quantizer was rewired to a copy: rebuild for the next region
                        quant_runner = None
            report.layers.append(result)
            bar.update(1)
    finally:
        bar.close()
        set_forward_only(True)
    report.seconds = time.perf_counter() - start
    return report, eligible


def _check_names(prog: Program, region: Region) -> None:
    for n in region.inputs:
        if prog.var(n) is None:
            raise ActcError(f"region_wise: {region.name} reads '{n}', which the float model does "
                            "not have; name float tensors as region boundaries (or set "
                            "simulate_activation_quant: true)")


def _learn(paddle, program: Program, region: Region, inputs, targets, program_out, *,
           sizes: list[int], epochs: int, lr: float, reg_lambda: float, progress: bool):
    """``inputs``: one array or tensor per region input, ``targets`` one, all cached samples;
    ``sizes``: the rows of each calibration batch. Returns the chosen codes, the report row
    and the region output with them (tensor, all samples)."""
    def T(a):
        if isinstance(a, np.ndarray):
            return paddle.to_tensor(np.ascontiguousarray(a, dtype=np.float32))
        return a

    softs = [SoftRounding(paddle, program, q) for q in region.weights]
    params = {}
    for op in region.ops:
        for n in op.input_names:
            if n in program.params and program.is_weight(n):
                params[n] = T(program.params[n].array)
    full_x = [T(a) for a in inputs]
    full_y = T(targets)
    xs = [[x[a:b] for x in full_x] for a, b in slices(sizes)]
    ys = [full_y[a:b] for a, b in slices(sizes)]
    norm = float((full_y * full_y).sum()) / len(ys) or 1.0
    chunks = slices(sizes, eval_rows(sizes, sum(4 * int(np.prod(x.shape[1:])) for x in full_x)))

    def run(x, weights):
        env = dict(params)
        env.update(zip(region.inputs, x))
        env.update(weights)
        return interp.run(paddle, region.ops, env)[region.output]

    # the ops that do not depend on any weight being learned (the input's QDQ, a residual
    # branch straight from the input) run once per training batch, not every step
    varying = {s.q.output for s in softs}
    fixed_ops, step_ops = [], []
    for op in region.ops:
        if any(n in varying for n in op.input_names):
            step_ops.append(op)
            varying.update(op.output_names)
        else:
            fixed_ops.append(op)
    wanted = {n for op in step_ops for n in op.input_names} | {region.output}

    def fixed(x) -> dict:
        env = dict(params)
        env.update(zip(region.inputs, x))
        with paddle.no_grad():
            interp.run(paddle, fixed_ops, env)
        return {n: v for n, v in env.items() if n in wanted and n not in params}

    def step_run(pre: dict, weights):
        env = dict(params)
        env.update(pre)
        env.update(weights)
        return interp.run(paddle, step_ops, env)[region.output]

    def hard(codes_of) -> dict:
        return {s.q.output: s.hard_weight(codes_of(s)) for s in softs}

    nearest = hard(lambda s: s.nearest)
    try:
        with paddle.no_grad():
            probe = run([T(a) for a in program_out[:-1]], nearest)
    except (ValueError, RuntimeError, TypeError) as e:
        raise ActcError(f"region_wise: {region.name} cannot be re-run in dygraph: "
                        f"{str(e).splitlines()[0]}") from None
    ref = program_out[-1]
    rel = float(((probe.numpy() - ref) ** 2).sum()) / max(float((ref ** 2).sum()), 1e-30)
    if not rel < CHECK_TOLERANCE:
        raise ActcError(f"region_wise: running {region.name} in dygraph does not reproduce the "
                        f"program (relative error {rel:.2e}); an op's attributes are not handled")

    def hard_pass(weights):
        """(loss, output on all samples) with hard weights."""
        with paddle.no_grad():
            outs = [run([x[a:b] for x in full_x], weights) for a, b in chunks]
            out = outs[0] if len(outs) == 1 else paddle.concat(outs, axis=0)
            return float(((out - full_y) ** 2).sum()) / len(ys) / norm, out

    learn_rounding(paddle, [s.V for s in softs], [fixed(x) for x in xs], ys,
                   lambda pre, y: ((step_run(pre, {s.q.output: s.weight() for s in softs})
                                    - y) ** 2).sum() / norm,
                   lambda beta: sum(s.regularizer(beta) for s in softs),
                   epochs=epochs, lr=lr, reg_lambda=reg_lambda,
                   desc=f"reconstruct {region.name}", progress=progress)
    learned = {id(s): s.learned_codes() for s in softs}
    near_loss, near_out = hard_pass(nearest)
    learned_loss, learned_out = hard_pass(hard(lambda s: learned[id(s)]))
    kept = "learned" if learned_loss <= near_loss else "nearest"
    codes = [(s.q, (learned[id(s)] if kept == "learned" else s.nearest).astype(np.float32))
             for s in softs]
    changed = sum(int((c != s.nearest).sum()) for s, (_, c) in zip(softs, codes))
    result = LayerResult(output=f"{region.name} ({region.inputs[0]} -> {region.output})",
                         weight=", ".join(s.q.tensor for s in softs), nearest_loss=near_loss,
                         learned_loss=learned_loss, kept=kept, changed=changed,
                         size=sum(int(s.nearest.size) for s in softs))
    return codes, result, (learned_out if kept == "learned" else near_out)
