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
region. With ``simulate_activation_quant`` its input comes from the quantized program with
the earlier regions already reconstructed. At the end the hard rounding is compared with
round-to-nearest on the cached data and the better one is kept for the whole region.
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
from actc.runtime.reconstruct import (DEFAULT_LAMBDA, LayerResult, ReconReport, SoftRounding,
                                      learn_rounding, write_codes)

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
    set_forward_only(True)
    fprog = float_program(program)
    float_runner = Runner(fprog, device)
    place = float_runner.place
    bar = progress_bar(total=len(eligible), desc="reconstruct", unit="region",
                       enabled=progress)
    quant_runner = None
    try:
        for region in eligible:
            set_forward_only(True)
            if quant_runner is None:
                quant_runner = Runner(program, device)
            targets = [float_runner.run(feed, [region.output])[0] for feed in batches]
            source = quant_runner if simulate_activation_quant else float_runner
            _check_names(fprog if source is float_runner else program, region)
            inputs = [source.run(feed, region.inputs) for feed in batches]
            program_out = quant_runner.run(batches[0], region.inputs + [region.output])
            set_forward_only(False)
            with dygraph(paddle, place):
                codes, result = _learn(paddle, program, region, inputs, targets, program_out,
                                       epochs=epochs, lr=lr, reg_lambda=reg_lambda,
                                       progress=progress)
            for q, c in codes:
                name = write_codes(program, q, c)
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
           epochs: int, lr: float, reg_lambda: float, progress: bool):
    T = lambda a: paddle.to_tensor(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
    softs = [SoftRounding(paddle, program, q) for q in region.weights]
    params = {}
    for op in region.ops:
        for n in op.input_names:
            if n in program.params and program.is_weight(n):
                params[n] = T(program.params[n].array)
    xs = [[T(a) for a in batch] for batch in inputs]
    ys = [T(a) for a in targets]
    norm = sum(float((y * y).sum()) for y in ys) / len(ys) or 1.0

    def run(x, weights):
        env = dict(params)
        env.update(zip(region.inputs, x))
        env.update(weights)
        return interp.run(paddle, region.ops, env)[region.output]

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

    def hard_loss(weights) -> float:
        with paddle.no_grad():
            return sum(float(((run(x, weights) - y) ** 2).sum()) for x, y in zip(xs, ys)) \
                / len(ys) / norm

    learn_rounding(paddle, [s.V for s in softs], xs, ys,
                   lambda x, y: ((run(x, {s.q.output: s.weight() for s in softs}) - y) ** 2
                                 ).sum() / norm,
                   lambda beta: sum(s.regularizer(beta) for s in softs),
                   epochs=epochs, lr=lr, reg_lambda=reg_lambda,
                   desc=f"reconstruct {region.name}", progress=progress)
    learned = {id(s): s.learned_codes() for s in softs}
    near_loss = hard_loss(nearest)
    learned_loss = hard_loss(hard(lambda s: learned[id(s)]))
    kept = "learned" if learned_loss <= near_loss else "nearest"
    codes = [(s.q, (learned[id(s)] if kept == "learned" else s.nearest).astype(np.float32))
             for s in softs]
    changed = sum(int((c != s.nearest).sum()) for s, (_, c) in zip(softs, codes))
    result = LayerResult(output=f"{region.name} ({region.inputs[0]} -> {region.output})",
                         weight=", ".join(s.q.tensor for s in softs), nearest_loss=near_loss,
                         learned_loss=learned_loss, kept=kept, changed=changed,
                         size=sum(int(s.nearest.size) for s in softs))
    return codes, result
