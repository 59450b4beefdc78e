"""Hyper-parameter search for PTQ (ACT's HyperParameterOptimization), made cheap.

The float model runs once over the largest batch count any trial asks for, with snapshots
of the statistics at every other count; each trial then only computes thresholds (ms) and
runs the quantized model on a few held-out batches with its scales swapped into the same
Paddle scope. The objective is the SNR of the quantized outputs against the float outputs
(and top-1 where the data has labels).

Trials are scored on data they did not calibrate on: ``--eval-data`` when given, else the last
``eval_batches`` batches of the calibration data, which no trial calibrates on. Scoring on the
calibration batches themselves rewards overfitting the statistics (every trial scored 100%
on the example).
"""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

import numpy as np
from actc.progress import progress

from actc.errors import ActcError
from actc.quant.calibration import needs_histogram
from actc.quant.ptq import ScaleChoice, apply_scales, original_weights
from actc.runtime.bias_correction import corrected_layers, measure_shift, param_target
from actc.runtime.calibrate import collect_stats, float_program
from actc.runtime.evaluate import fidelity, top1
from actc.runtime.executor import Runner
from actc.runtime.paddle_env import set_forward_only


@dataclass
class Trial:
    index: int
    choice: ScaleChoice
    batch_num: int
    snr_db: float = float("nan")
    accuracy: float | None = None
    seconds: float = 0.0

    def describe(self) -> str:
        hp = (self.choice.params or {}).get("hist_percent")
        parts = [f"algo={self.choice.algo}"]
        if self.choice.algo == "hist" and hp is not None:
            parts.append(f"hist_percent={hp:.5f}")
        parts += [f"weights={self.choice.weight_algo}",
                  f"bias_correction={self.choice.bias_correction}",
                  f"batch_num={self.batch_num}", f"SNR={self.snr_db:.2f} dB"]
        if self.accuracy is not None:
            parts.append(f"acc={self.accuracy * 100:.2f}%")
        return ", ".join(parts)


@dataclass
class SearchResult:
    trials: list[Trial] = field(default_factory=list)
    best: Trial | None = None
    collect_seconds: float = 0.0
    scored_on: str = ""

    def table(self) -> str:
        has_acc = any(t.accuracy is not None for t in self.trials)
        head = f"{'#':>3}  {'algo':<8} {'hist_pct':>8}  {'weights':<8} {'bias_c':<6} " \
               f"{'batches':>7}  {'SNR dB':>7}" + ("  {:>7}".format("acc %") if has_acc else "")
        lines = [head, "-" * len(head)]
        for t in self.trials:
            hp = (t.choice.params or {}).get("hist_percent")
            hp_s = f"{hp:.5f}" if t.choice.algo == "hist" and hp is not None else "-"
            mark = " *" if t is self.best else ""
            row = f"{t.index:>3}  {t.choice.algo:<8} {hp_s:>8}  {t.choice.weight_algo:<8} " \
                  f"{str(t.choice.bias_correction):<6} {t.batch_num:>7}  {t.snr_db:>7.2f}"
            if has_acc:
                row += f"  {t.accuracy * 100:>7.2f}" if t.accuracy is not None else f"  {'-':>7}"
            lines.append(row + mark)
        lines.append(f"statistics collected once in {self.collect_seconds:.2f} s; scored on "
                     f"{self.scored_on}; * = chosen")
        return "\n".join(lines)


def _as_list(value, name: str) -> list:
    if value is None:
        raise ActcError(f"search: {name} must not be empty")
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if not items:
        raise ActcError(f"search: {name} must not be empty")
    return items


def _as_range(value, name: str, cast):
    if isinstance(value, (list, tuple)) and len(value) == 2:
        lo, hi = cast(value[0]), cast(value[1])
    elif hasattr(value, "lo"):
        lo, hi = cast(value.lo), cast(value.hi)
    else:
        lo = hi = cast(value)
    if lo > hi:
        raise ActcError(f"search: {name} range {lo} .. {hi} is empty")
    return lo, hi


def sample_trials(args: dict, max_batches: int | None) -> list[Trial]:
    """The trial list, fixed by the seed; duplicates are dropped."""
    rng = np.random.default_rng(int(args["seed"]))
    algos = [str(a) for a in _as_list(args["ptq_algo"], "ptq_algo")]
    biases = [bool(b) for b in _as_list(args["bias_correction"], "bias_correction")]
    weight_algos = [str(w) for w in _as_list(args["weight_algo"], "weight_algo")]
    hp_lo, hp_hi = _as_range(args["hist_percent"], "hist_percent", float)
    bn_lo, bn_hi = _as_range(args["batch_num"], "batch_num", int)
    if max_batches is not None:
        bn_hi = min(bn_hi, max_batches)
        bn_lo = min(bn_lo, bn_hi)
    budget = int(args["max_trials"])
    if budget < 1:
        raise ActcError("search: max_trials must be at least 1")
    trials: list[Trial] = []
    seen = set()
    attempts = 0
    while len(trials) < budget and attempts < budget * 20:
        attempts += 1
        algo = algos[rng.integers(len(algos))]
        hp = float(rng.uniform(hp_lo, hp_hi)) if algo == "hist" else None
        choice = ScaleChoice(algo=algo, params={"hist_percent": hp} if hp is not None else {},
                             weight_algo=weight_algos[rng.integers(len(weight_algos))],
                             bias_correction=biases[rng.integers(len(biases))])
        bn = int(rng.integers(bn_lo, bn_hi + 1))
        key = (algo, None if hp is None else round(hp, 6), choice.weight_algo,
               choice.bias_correction, bn)
        if key in seen:
            continue
        seen.add(key)
        trials.append(Trial(len(trials) + 1, choice, bn))
    return trials


def scoring_batches(dataset, eval_dataset, batch_size: int, eval_batches: int
                    ) -> tuple[list, int | None, str]:
    """(batches trials are scored on, how many batches calibration may use, a description).
    Held out: --eval-data, else the tail of the calibration data."""
    if eval_dataset is not None:
        batches = list(eval_dataset.batches(batch_size, eval_batches))
        return batches, dataset.num_batches(batch_size, None), \
            f"{len(batches)} batch(es) of --eval-data"
    available = dataset.num_batches(batch_size, None)
    if available is None or available <= eval_batches:
        batches = list(dataset.batches(batch_size, eval_batches))
        return batches, available, (f"{len(batches)} calibration batch(es): too little data to "
                                    "hold any out (pass --eval-data, or more --data)")
    start = available - eval_batches
    batches = list(itertools.islice(dataset.batches(batch_size, available), start, None))
    return batches, start, (f"the last {len(batches)} batch(es) of the calibration data, held "
                            f"out (trials calibrate on at most the first {start})")


def run_search(program, quantizers, dataset, args: dict, *,
               device: str | None = None, eval_dataset=None) -> SearchResult:
    batch_size = int(args["batch_size"])
    eval_batches = int(args["eval_batches"])
    held_out, usable, scored_on = scoring_batches(dataset, eval_dataset, batch_size,
                                                  eval_batches)
    trials = sample_trials(args, usable)
    result = SearchResult(trials=trials, scored_on=scored_on)
    counts = sorted({t.batch_num for t in trials})
    stats, snaps, seen, secs = collect_stats(program, quantizers, dataset,
                                             batch_size=batch_size, batch_nums=counts[-1],
                                             device=device, snapshots_at=tuple(counts),
                                             histogram=needs_histogram(
                                                 t.choice.algo for t in trials))
    result.collect_seconds = secs
    set_forward_only(True)
    ref_runner = Runner(float_program(program), device, private=True)
    refs = [ref_runner.run(b.feed) for b in held_out]
    runner = Runner(program, device)
    originals = original_weights(program, quantizers)
    cache: dict = {}
    layers = corrected_layers(program, quantizers)
    foldable = {out: param_target(program, out, program.var(out).shape[axis])
                for _, out, axis in layers if program.var(out) and program.var(out).shape}
    shift_batches = list(dataset.batches(batch_size, min(eval_batches, counts[-1])))
    for trial in progress(trials, desc="search", unit="trial"):
        start = time.perf_counter()
        snapshot = snaps.get(trial.batch_num) or stats
        written = apply_scales(program, quantizers, snapshot, trial.choice, originals, cache)
        for name, value in written.items():
            runner.set_param(name, value)
        restore = {}
        if trial.choice.bias_correction and layers:
            # Trials fold shifts only into existing BN means / biases (set in the scope, then
            # restored); the chosen setting is applied fully to the IR afterwards.
            shifts = measure_shift(ref_runner, runner, layers, shift_batches)
            for out, target in foldable.items():
                if target is None:
                    continue
                name, sign = target
                original = np.asarray(program.params[name].array, np.float32)
                restore[name] = original
                runner.set_param(name, original + sign * shifts[out])
        outs = [runner.run(b.feed) for b in held_out]
        for name, value in restore.items():
            runner.set_param(name, value)
        snrs = []
        for k, name in enumerate(runner.fetches):
            ref = np.concatenate([r[k] for r in refs])
            out = np.concatenate([o[k] for o in outs])
            snrs.append(fidelity(name, ref, out).snr_db)
        trial.snr_db = float(np.mean(snrs))
        labels = [b.label for b in held_out]
        if all(l is not None for l in labels):
            trial.accuracy = top1(np.concatenate([o[0] for o in outs]), np.concatenate(labels))
        trial.seconds = time.perf_counter() - start
    result.best = max(trials, key=lambda t: (t.snr_db, -t.index))
    best_stats = snaps.get(result.best.batch_num) or stats
    apply_scales(program, quantizers, best_stats, result.best.choice, originals, cache)
    return result
