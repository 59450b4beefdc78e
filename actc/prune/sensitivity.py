"""Sensitivity analysis: how much each prunable group and each quantized layer costs alone.

Every trial is an ordinary recipe run on a copy of the model (the same `prune_channels`,
`quantize`, `calibrate` and `convert` steps a user would write), scored on the eval data:
top-1 when it has labels, else the SNR of the first output against the unmodified model. The
result picks per-weight ratios within a metric budget and the layers to keep float, and
renders them as a recipe the user can run or edit.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from actc.dsl.compiler import compile_source
from actc.dsl.pipeline import PipelineContext, run_pipeline
from actc.ir.program import Program
from actc.prune.groups import channel_groups
from actc.quant.quantizers import find_quantizers

QUANT_OPS = ("conv2d", "depthwise_conv2d", "mul", "matmul_v2")


@dataclass
class Trial:
    kind: str        # "prune" or "quantize"
    target: str      # group root weight, or the op's output var
    setting: float   # ratio (prune) or bits (quantize)
    metric: float
    drop: float


@dataclass
class Report:
    metric_name: str
    baseline: float
    trials: list[Trial] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps({"metric": self.metric_name, "baseline": self.baseline,
                           "trials": [t.__dict__ for t in self.trials]}, indent=1)

    def table(self) -> str:
        show = (lambda v: f"{v * 100:.2f}%") if self.metric_name == "top-1" else \
            (lambda v: f"{v:.2f} dB")
        unit = "points" if self.metric_name == "top-1" else "dB"
        lines = [f"baseline {self.metric_name}: {show(self.baseline)}"]
        prune = [t for t in self.trials if t.kind == "prune"]
        if prune:
            ratios = sorted({t.setting for t in prune})
            lines.append("channel pruning (drop in " + unit + " by ratio, no fine-tuning):")
            lines.append("  " + "weight".ljust(18) + "".join(f"{r:>9.2f}" for r in ratios))
            for target in dict.fromkeys(t.target for t in prune):
                cells = {t.setting: t.drop for t in prune if t.target == target}
                lines.append("  " + target.ljust(18) + "".join(
                    f"{_scaled(cells[r], self.metric_name):>9.2f}" for r in ratios))
        quant = sorted((t for t in self.trials if t.kind == "quantize"), key=lambda t: -t.drop)
        if quant:
            bits = int(quant[0].setting)
            lines.append(f"quantizing one layer at W{bits}A{bits} (drop in {unit}, worst "
                         "first):")
            for t in quant:
                lines.append(f"  {t.target.ljust(24)} {_scaled(t.drop, self.metric_name):8.2f}")
        return "\n".join(lines)


def _scaled(drop: float, metric: str) -> float:
    return drop * 100 if metric == "top-1" else drop


class Analysis:
    def __init__(self, program: Program, files, eval_data, calib_data: str | None,
                 device: str | None):
        from actc.data import open_dataset

        self.program = program
        self.files = files
        self.device = device
        self.calib = calib_data
        self.dataset = open_dataset(eval_data, program)
        self.reference = None
        if not self.dataset.has_labels:
            self.reference = program
        self.metric_name = "top-1" if self.dataset.has_labels else "SNR dB"

    def score(self, program: Program) -> float:
        from actc.runtime.evaluate import evaluate

        result = evaluate(program, self.dataset, device=self.device, reference=self.reference)
        if result.accuracy is not None:
            return result.accuracy
        return result.fidelity[0].snr_db

    def run_recipe(self, text: str) -> Program:
        copy = self.program.clone()
        compiled = compile_source(text, "<sensitivity>", program=copy)
        ctx = PipelineContext(program=copy, source=self.files, data=self.calib,
                              device=self.device or "auto", original=self.program)
        run_pipeline(compiled, ctx)
        return ctx.program

    def analyse(self, ratios: list[float], bits: int | None, progress=None) -> Report:
        base = self.score(self.program)
        report = Report(self.metric_name, base)
        for g in channel_groups(self.program):
            if g.problem:
                continue
            for r in ratios:
                pruned = self.run_recipe(
                    f'recipe s() {{ prune_channels(ops: op.input in ["{g.root_param}"], '
                    f'ratio: {{"{g.root_param}": {r}}}) }}')
                m = self.score(pruned)
                report.trials.append(Trial("prune", g.root_param, r, m, base - m))
                if progress:
                    progress(report.trials[-1])
        if bits:
            for op in self.program.ops():
                if op.type not in QUANT_OPS or op.has_attr("skip_quant"):
                    continue
                out = op.output("Out")[0] if op.output("Out") else op.output("Output")[0]
                q = self.run_recipe(
                    f'recipe s() {{ quantize(ops: op.output in ["{out}"], weight_bits: {bits}, '
                    f'activation_bits: {bits}) calibrate(algo: abs_max, batch_nums: 8) '
                    'convert() }')
                if not find_quantizers(q):
                    continue
                m = self.score(q)
                report.trials.append(Trial("quantize", out, bits, m, base - m))
                if progress:
                    progress(report.trials[-1])
        return report


def suggest_recipe(report: Report, max_drop: float, model: str) -> str:
    """Per weight the largest analysed ratio whose drop stays within max_drop, and the layers
    whose quantization alone costs more than max_drop kept float."""
    ratios: dict[str, float] = {}
    for t in report.trials:
        if t.kind == "prune" and t.drop <= max_drop and t.setting > ratios.get(t.target, 0.0):
            ratios[t.target] = t.setting
    skip = [t.target for t in report.trials if t.kind == "quantize" and t.drop > max_drop]
    unit = "points" if report.metric_name == "top-1" else "dB"
    budget = max_drop * 100 if report.metric_name == "top-1" else max_drop
    lines = [f"# From `actc sensitivity {model}`: each weight at the largest ratio that alone "
             f"costs <= {budget:g} {unit}",
             "# (before fine-tuning); layers whose quantization alone costs more stay float.",
             "recipe main() {"]
    if ratios:
        mapping = ", ".join(f'"{k}": {v}' for k, v in ratios.items())
        names = ", ".join(f'"{k}"' for k in ratios)
        lines.append(f"    prune_channels(ops: op.input in [{names}], ratio: {{{mapping}}})")
        lines.append("    distill(nodes: [], loss: l2, alpha: 1.0)")
        lines.append("    train(epochs: 10, learning_rate: 0.005, optimizer: {type: Momentum, "
                     "momentum: 0.9}, eval_iter: 50)")
    if skip:
        lines.append(f"    skip_ops(ops: op.output in [{', '.join(json.dumps(s) for s in skip)}])")
    if any(t.kind == "quantize" for t in report.trials):
        lines.append("    quantize()")
        lines.append("    calibrate()")
        lines.append("    convert()")
    lines.append("}")
    return "\n".join(lines) + "\n"


def plot(report: Report, path: str) -> None:
    """Drop vs ratio per weight (and per-layer quantization drops) with matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        from actc.errors import ActcError
        raise ActcError("--plot needs matplotlib: pip install matplotlib") from None
    prune = [t for t in report.trials if t.kind == "prune"]
    quant = [t for t in report.trials if t.kind == "quantize"]
    cols = 1 + bool(quant) if prune else 1
    fig, axes = plt.subplots(1, cols, figsize=(6 * cols, 4), squeeze=False)
    scale = 100 if report.metric_name == "top-1" else 1
    unit = "points" if report.metric_name == "top-1" else "dB"
    if prune:
        ax = axes[0][0]
        for target in dict.fromkeys(t.target for t in prune):
            pts = sorted((t.setting, t.drop * scale) for t in prune if t.target == target)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=target)
        ax.set_xlabel("pruned ratio")
        ax.set_ylabel(f"{report.metric_name} drop ({unit})")
        ax.set_title("channel pruning, no fine-tuning")
        ax.legend(fontsize=7)
    if quant:
        ax = axes[0][-1]
        names = [t.target for t in quant]
        ax.barh(names, [t.drop * scale for t in quant])
        ax.set_xlabel(f"{report.metric_name} drop ({unit})")
        ax.set_title(f"one layer quantized (W{int(quant[0].setting)}A{int(quant[0].setting)})")
        ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    from pathlib import Path
    import io
    from actc.io.atomic import write_atomic
    buf = io.BytesIO()
    fig.savefig(buf, format=Path(path).suffix.lstrip(".") or "png")
    plt.close(fig)
    write_atomic(path, buf.getvalue())
