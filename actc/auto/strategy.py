"""Choose a compression strategy the way ACT's auto_strategy.py does, and say why.

Transformers (attention found in the IR) get TransformerPrune 0.25 and then int8. Other
models get int8: a quick PTQ probe first; a small output loss stops there, a moderate one runs
the PTQ hyper-parameter search, otherwise QAT with distillation. Beyond ACT: with labelled eval
data the candidates are judged by their real accuracy against the float model, and the first
within the allowed drop wins. Every candidate is an ordinary recipe run on a copy of the model;
the winner's program becomes the pipeline's.
"""
from __future__ import annotations

from dataclasses import dataclass

from actc.dsl.compiler import compile_source
from actc.dsl.pipeline import PipelineContext, run_pipeline
from actc.dsl.values import show
from actc.errors import ActcError
from actc.ir.program import Program
from actc.prune.heads import find_attention

# Output SNR (dB) of the PTQ probe against the float model: ACT's "small" and "moderate"
# output loss, as the signal-to-noise ratio of the logits.
SNR_SMALL = 30.0
SNR_MODERATE = 20.0


@dataclass
class Candidate:
    name: str
    recipe: str
    why: str
    program: Program | None = None
    accuracy: float | None = None
    snr: float | None = None
    seconds: float = 0.0

    def score(self) -> str:
        parts = []
        if self.accuracy is not None:
            parts.append(f"top-1 {self.accuracy * 100:.2f}%")
        if self.snr is not None:
            parts.append(f"SNR {self.snr:.1f} dB")
        return ", ".join(parts) or "-"


def _train_args(train: dict) -> str:
    args = dict(train or {})
    if not args.get("epochs") and not args.get("train_iter"):
        args["epochs"] = 5
    return ", ".join(f"{k}: {show(v)}" for k, v in args.items())


def ptq_recipe() -> str:
    return "recipe ptq() { quantize() calibrate() convert() }"


def search_recipe(trials: int) -> str:
    return (f"recipe search() {{ quantize() search(max_trials: {trials}) convert() }}")


def qat_recipe(train: dict) -> str:
    return ("recipe qat() { quantize(format: fake) calibrate(algo: abs_max, batch_nums: 8) "
            f"task_loss(only_if: labels) distill(only_if: no_labels) train({_train_args(train)}) "
            "convert(format: onnx) }")


def transformer_recipe(train: dict, ratio: float) -> str:
    return (f"recipe tp() {{ prune_transformer(ratio: {ratio}) task_loss(only_if: labels) "
            f"distill(only_if: no_labels) train({_train_args(train)}) quantize() calibrate() "
            "convert() }")


class Auto:
    def __init__(self, ctx, args: dict):
        from actc.data import open_dataset
        from actc.runtime.report import eval_source

        self.ctx = ctx
        self.args = args
        path = ctx.eval_data or (eval_source(None, ctx.source) if ctx.source else None)
        self.eval_data = open_dataset(path, ctx.program) if path else None
        self.float_acc = None

    def run(self, c: Candidate) -> Candidate:
        import time

        from actc.runtime.evaluate import evaluate

        t0 = time.perf_counter()
        copy = self.ctx.program.clone()
        compiled = compile_source(c.recipe, f"<auto: {c.name}>", program=copy)
        sub = PipelineContext(program=copy, source=self.ctx.source, data=self.ctx.data,
                              device=self.ctx.device, out_dir=None,
                              original=self.ctx.original or self.ctx.program,
                              eval_data=self.ctx.eval_data)
        run_pipeline(compiled, sub)
        c.program = sub.program
        c.seconds = time.perf_counter() - t0
        if self.eval_data is not None:
            from actc.ir.dead import dead_ops
            for op in dead_ops(c.program):
                c.program.remove_op(op)
            r = evaluate(c.program, self.eval_data, device=self.ctx.device,
                         reference=self.ctx.original or self.ctx.program)
            c.accuracy = r.accuracy
            c.snr = r.fidelity[0].snr_db if r.fidelity else None
        return c

    def good_enough(self, c: Candidate) -> bool:
        if c.accuracy is not None and self.float_acc is not None:
            return (self.float_acc - c.accuracy) * 100 <= self.max_drop()
        return c.snr is not None and c.snr >= SNR_SMALL

    def max_drop(self) -> float:
        target = self.args["target_metric"]
        if target is not None and self.float_acc is not None:
            t = float(target)
            t = t / 100 if t > 1 else t
            return max(0.0, (self.float_acc - t) * 100)
        return float(self.args["max_drop"])


def choose(ctx, args: dict) -> list[str]:
    """Run the strategy; replace ctx.program with the winner; return notes."""
    from actc.runtime.evaluate import evaluate

    auto = Auto(ctx, args)
    source = ctx.program  # the input, for the latency check
    notes = []
    if auto.eval_data is not None and auto.eval_data.has_labels:
        auto.float_acc = evaluate(ctx.program, auto.eval_data, device=ctx.device).accuracy
    train = dict(args["train"] or {})
    tried: list[Candidate] = []
    if find_attention(ctx.program):
        ratio = float(args["transformer_ratio"])
        c = auto.run(Candidate("transformer", transformer_recipe(train, ratio),
                               "attention blocks found: TransformerPrune then int8, as ACT"))
        tried.append(c)
        winner, reason = c, c.why
    else:
        probe = auto.run(Candidate("ptq", ptq_recipe(), "int8 PTQ probe (hist)"))
        tried.append(probe)
        winner, reason = probe, None
        if auto.good_enough(probe):
            reason = _why(auto, probe, "the PTQ probe is already within the allowed loss")
        else:
            moderate = probe.snr is not None and probe.snr >= SNR_MODERATE if \
                auto.float_acc is None else \
                (auto.float_acc - (probe.accuracy or 0)) * 100 <= 3 * auto.max_drop()
            if moderate:
                s = auto.run(Candidate("ptq search", search_recipe(int(args["search_trials"])),
                                       "moderate PTQ loss: hyper-parameter search"))
                tried.append(s)
                if auto.good_enough(s):
                    winner, reason = s, _why(auto, s, "the PTQ search reached the allowed loss")
            if reason is None:
                q = auto.run(Candidate("qat", qat_recipe(train),
                                       "PTQ loses too much: QAT with distillation"))
                tried.append(q)
                best = max(tried, key=lambda c: (c.accuracy if c.accuracy is not None
                                                 else -1, c.snr or -1e9))
                winner = best
                reason = _why(auto, best, "QAT ran; the most accurate candidate is kept" if
                              best is q else "no candidate reached the allowed loss; the most "
                              "accurate is kept")
    for c in tried:
        mark = "*" if c is winner else " "
        notes.append(f"auto: {mark} {c.name}: {c.score()} ({c.seconds:.1f} s) - {c.why}")
    notes.append(f"auto: chose {winner.name}: {reason}")
    if winner.program is None:
        raise ActcError("auto: no candidate produced a model")
    notes += latency_notes(source, winner, args, ctx.device)
    ctx.program = winner.program
    return notes


def latency_notes(source, winner: Candidate, args: dict, device: str | None) -> list[str]:
    """target_speedup: the chosen model's speed-up measured with actc bench on this machine
    (ACT's latency tables cover three ARM phones only); deploy_hardware names hardware actc
    cannot measure here, so it is noted."""
    notes = []
    if args["deploy_hardware"] is not None:
        notes.append(f"auto: deploy_hardware '{args['deploy_hardware']}': actc measures latency "
                     "on this machine (Paddle Inference), not on that hardware")
    target = args["target_speedup"]
    if target is None:
        return notes
    from actc.deploy.bench import measured_speedup

    dev = "gpu" if str(device or "cpu").startswith("gpu") else "cpu"
    ratio, how = measured_speedup(source, winner.program, device=dev)
    if ratio is None:
        notes.append(f"auto: target_speedup {target:g}: could not measure ({how})")
    elif ratio >= float(target):
        notes.append(f"auto: target_speedup {target:g}: reached, {ratio:.2f}x measured ({how})")
    else:
        notes.append(f"auto: target_speedup {target:g}: not reached, {ratio:.2f}x measured "
                     f"({how}); int8 alone gives no more here: channel pruning "
                     "(prune_channels) or a smaller input can")
    return notes


def _why(auto: Auto, c: Candidate, text: str) -> str:
    if c.accuracy is not None and auto.float_acc is not None:
        return (f"{text} (top-1 {c.accuracy * 100:.2f}% vs float {auto.float_acc * 100:.2f}%, "
                f"allowed drop {auto.max_drop():.2f} points)")
    if c.snr is not None:
        return f"{text} (output SNR {c.snr:.1f} dB; small >= {SNR_SMALL:g} dB)"
    return text
