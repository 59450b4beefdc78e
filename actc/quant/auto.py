"""``algo: auto``: per activation tensor, the threshold that loses least, from one pass.

Why: no single calibration algorithm is best for every tensor (KL clips a stem conv's output
to half of what hist keeps and loses 4 dB there alone, while it wins on others). Every
candidate here is computed from the statistics the calibration pass already collected; each
is then scored by a measured error and the lowest wins, tensor by tensor:

* ``layer``: where the tensor feeds quantized conv/FC layers, the error of those layers'
  outputs (after their batch_norm/bias/relu, as the next layer sees them) against the float
  layers, on a few samples kept during the same pass, with the weights quantized as they
  will be. This is what the tensor's quantization does to the network, clipping and
  rounding interplay with the weights included.
* ``tensor``: elsewhere, the expected squared error of the tensor itself, integrated exactly
  from its histogram (see :func:`actc.quant.calibration.expected_error`).

The numerics of candidates and selection live here (numpy); running the layers is the
runtime's job (``actc.runtime.auto_calib``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from actc.quant import calibration
from actc.quant.stats import ActivationStats

#: hist percentiles tried besides the recipe's own hist_percent.
PERCENTILES = (0.999, 0.9999, 0.99999)
#: fractions of abs-max tried too (a coarse grid catches what no named algorithm hits).
RATIOS = (0.35, 0.5, 0.65, 0.8)
#: samples of each tensor kept for layer scoring (fewer when a sample is large).
SAMPLES = 16
#: elements of one tensor's kept samples at most (bounds the memory and the scoring time
#: auto adds on big inputs; small models keep all SAMPLES).
SAMPLE_ELEMENTS = 1 << 20
#: the whole-model check: samples it runs on (an eighth of those calibrated on, within these
#: bounds), and the quantized activation values all its runs may pass through, which caps its
#: cost on big inputs (fewer configurations first, then fewer samples).
CHECK_SAMPLES = (8, 64)
CHECK_VALUES = 1 << 27
#: configurations the check runs: at least the per-tensor mix, the best single and the blend;
#: at most this many (the most promising first).
CHECK_MIN_CONFIGS = 3
CHECK_MAX_CONFIGS = 6


def check_plan(calibrated: int, values_per_sample: int, configs: int) -> tuple[int, int]:
    """(samples, configurations) for the whole-model check."""
    lo, hi = CHECK_SAMPLES
    n = max(lo, min(hi, calibrated // 8))
    per_run = max(1, values_per_sample)
    configs = min(configs, CHECK_MAX_CONFIGS)
    k = max(min(configs, CHECK_MIN_CONFIGS), min(configs, CHECK_VALUES // (n * per_run)))
    n = max(1, min(n, CHECK_VALUES // (k * per_run)))
    return n, k


@dataclass
class AutoChoice:
    """What ``auto`` chose for one tensor, and the error of every candidate."""
    tensor: str
    winner: str
    threshold: float
    metric: str                                    # "layer" or "tensor"
    errors: dict[str, float] = field(default_factory=dict)   # candidate -> relative error
    thresholds: dict[str, float] = field(default_factory=dict)   # candidate -> threshold

    def to_json(self) -> dict:
        return asdict(self)


def candidates(stats: ActivationStats, bits: int, hist_percent: float | None = None
               ) -> dict[str, float]:
    """Named candidate thresholds, all from ``stats`` (no data is re-read). Names repeat
    no algorithm twice; thresholds may coincide (scorers evaluate each value once)."""
    out: dict[str, float] = {}
    for algo in ("abs_max", "avg", "KL", "mse", "emd", "ptf"):
        out[algo] = calibration.threshold(stats, algo, bits)
    percents = sorted({*PERCENTILES, *([hist_percent] if hist_percent else [])})
    for p in percents:
        out[hist_name(p)] = calibration.threshold(stats, "hist", bits, hist_percent=p)
    top = stats.abs_max
    for r in RATIOS:
        out[f"{r:g}*abs_max"] = max(calibration.MIN_THRESHOLD, top * r)
    return {k: float(v) for k, v in out.items()}


def hist_name(percent: float) -> str:
    return f"hist@{percent:g}"


#: thresholds closer than this (relative) are scored once, as the smaller of them.
SAME_THRESHOLD = 0.01


def distinct(cands: dict[str, float]) -> tuple[np.ndarray, dict[str, int]]:
    """The thresholds worth scoring apart (within SAME_THRESHOLD of the previous one counts
    as the same), and each candidate's index among them."""
    values = np.unique(np.asarray(list(cands.values()), dtype=np.float64))
    keep = [0] if values.size else []
    for i in range(1, values.size):
        if values[i] > values[keep[-1]] * (1.0 + SAME_THRESHOLD):
            keep.append(i)
    kept = values[keep]
    return kept, {k: int(np.searchsorted(kept, v, side="right")) - 1 for k, v in cands.items()}


def uniform_errors(choices: list["AutoChoice"], names) -> dict[str, float]:
    """Summed error if every tensor used the same named candidate (ranks the single
    algorithms for the whole-model check)."""
    return {n: float(sum(c.errors.get(n, np.inf) for c in choices)) for n in names}


def tensor_errors(stats: ActivationStats, bits: int, cands: dict[str, float]
                  ) -> dict[str, float]:
    """Expected squared error of the tensor itself per candidate, relative to E[x^2]."""
    h, w = stats.histogram()
    if w == 0.0:
        return {k: 0.0 for k in cands}
    err = calibration.expected_error(h, w, list(cands.values()), bits, 2)
    centres = (np.arange(h.size) + 0.5) * w
    power = float((h * centres ** 2).sum() / max(h.sum(), 1)) or 1.0
    return {k: float(e) / power for k, e in zip(cands, err)}


def pick(tensor: str, cands: dict[str, float], errors: dict[str, float], metric: str
         ) -> AutoChoice:
    """The candidate with the lowest error (ties: the first, i.e. the simpler algorithm)."""
    winner = min(cands, key=lambda k: (errors[k], list(cands).index(k)))
    return AutoChoice(tensor, winner, cands[winner], metric, dict(errors), dict(cands))


#: a tensor leaves the best single algorithm for its own winner only when that cuts its
#: layer error at least this much (small local gains do not survive the whole model).
BLEND_FACTOR = 0.8


def blend(choices: list[AutoChoice], base: str, base_thresholds: dict[str, float],
          factor: float = BLEND_FACTOR) -> dict[str, float]:
    """``base``'s thresholds, except where a tensor's own winner loses clearly less."""
    out = dict(base_thresholds)
    for c in choices:
        if c.errors[c.winner] <= factor * c.errors.get(base, np.inf):
            out[c.tensor] = c.threshold
    return out


def applied_name(choice: AutoChoice, threshold: float, base: str) -> str:
    """The candidate name of the threshold finally applied to a tensor (the whole-model check
    may have kept a single algorithm over the tensor's own winner)."""
    for name in (base, choice.winner, *choice.thresholds):
        if name in choice.thresholds and choice.thresholds[name] == threshold:
            return name
    return "?"


def winners_summary(choices: list[AutoChoice]) -> str:
    """'hist@0.9999 x3, mse x2' -- how often each candidate won."""
    counts: dict[str, int] = {}
    for c in choices:
        counts[c.winner] = counts.get(c.winner, 0) + 1
    return ", ".join(f"{k} x{n}" for k, n in sorted(counts.items(), key=lambda t: -t[1]))


def winners_table(choices: list[AutoChoice]) -> str:
    """Per tensor: the winner, its error and the runner-up (for compile's output)."""
    if not choices:
        return ""
    w = max(len(c.tensor) for c in choices)
    lines = ["auto calibration (per tensor: winning candidate, relative error, runner-up):"]
    for c in choices:
        ranked = sorted(c.errors.items(), key=lambda t: t[1])
        second = next((f"{k} {e:.3g}" for k, e in ranked if k != c.winner), "-")
        lines.append(f"  {c.tensor:<{w}}  {c.winner:<14} {c.errors[c.winner]:.3g}  "
                     f"({c.metric}; next {second})")
    return "\n".join(lines)
