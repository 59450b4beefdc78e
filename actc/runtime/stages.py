"""Runtime stages a recipe calls by name: ``calibrate``, ``search``, ``convert``.

The registry declares their parameters (``actc.dsl.registry``); these functions receive the
pipeline context and the checked arguments, ``fn(ctx, args)``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from actc.data import Batch, open_dataset
from actc.errors import ActcError
from actc.quant import auto as auto_calibration
from actc.quant.calibration import AUTO, needs_histogram
from actc.quant.ptq import (ScaleChoice, apply_scales, freeze_fake, freeze_onnx,
                            original_weights, quantized_weights)
from actc.quant.quantizers import find_quantizers

DEFAULT_CALIB_FILE = "calib.npz"
# Stages with an implementation here; the rest of passes/stages.actc (train, distill, pruning)
# are declared so recipes and ACT configs using them check, and fail before anything runs.
IMPLEMENTED = ("calibrate", "search", "convert", "train", "auto")


def calibration_data(ctx, step: str):
    """--data, else a calib.npz shipped beside the model (the embedded example has one)."""
    source = ctx.data
    if source is None and ctx.source is not None:
        candidate = Path(ctx.source.directory) / DEFAULT_CALIB_FILE
        if candidate.is_file():
            source = str(candidate)
            _note(ctx, f"{step}: using {candidate} (no --data given)")
    if source is None:
        raise ActcError(f"{step} needs calibration data: pass --data FILE.npz (arrays named "
                        "after the model's feeds), a directory of .npz, or module:function")
    return open_dataset(source, ctx.program)


def _note(ctx, text: str) -> None:
    ctx.notes.append(text)


def _quantizers(ctx, step: str):
    quantizers = find_quantizers(ctx.program)
    if not quantizers:
        raise ActcError(f"{step}: the program has no quantizers; put a `quantize(...)` step "
                        "before it")
    return quantizers


def _choice(args: dict) -> ScaleChoice:
    params = {"hist_percent": args["hist_percent"]}
    return ScaleChoice(algo=str(args["algo"]), params=params,
                       weight_algo=str(args["weight_algo"]),
                       bias_correction=bool(args["bias_correction"]))


def calibrate(ctx, args: dict) -> None:
    from actc.runtime.calibrate import collect_stats

    fold_masks(ctx, "calibrate")
    quantizers = _quantizers(ctx, "calibrate")
    if any(q.quant_op is None for q in quantizers if q.is_weight):
        raise ActcError("calibrate: the weights are already converted to int8")
    if args["recon_level"] == "region_wise" and args["regions"]:
        from actc.quant.regions import regions_from_pairs

        regions_from_pairs(ctx.program, quantizers, args["regions"])   # bad names: before work
    dataset = calibration_data(ctx, "calibrate")
    batch_size = int(args["batch_size"])
    batch_nums = args["batch_nums"]
    choice = _choice(args)
    samples = {} if choice.algo == AUTO else None
    stats, _, seen, secs = collect_stats(ctx.program, quantizers, dataset,
                                         batch_size=batch_size, batch_nums=batch_nums,
                                         device=ctx.device,
                                         histogram=needs_histogram([choice.algo]),
                                         samples=samples, keep_samples=auto_calibration.SAMPLES,
                                         sample_elements=auto_calibration.SAMPLE_ELEMENTS)
    originals = original_weights(ctx.program, quantizers)
    chosen = _auto_thresholds(ctx, quantizers, stats, samples, originals, choice, args, dataset,
                              seen)
    apply_scales(ctx.program, quantizers, stats, choice, originals, overrides=chosen)
    _reconstruct(ctx, quantizers, dataset, args, batch_size)
    _bias_correction(ctx, quantizers, dataset, choice, batch_size, batch_nums, originals)
    _error_report(ctx, quantizers, dataset, batch_size)
    acts = sum(1 for q in quantizers if not q.is_weight)
    _note(ctx, f"calibrate: {acts} activation and {len(quantizers) - acts} weight quantizers, "
               f"algo={choice.algo}, weights={choice.weight_algo}"
               f"{', bias correction' if choice.bias_correction else ''}; "
               f"{seen} batches x {batch_size} in {secs:.2f} s")


def tail_samples(dataset, count: int) -> list:
    """The last ``count`` samples of the data as one batch (all of it when it is that short;
    a data function's own batches are cut to size). A short last batch is topped up from the
    one before it."""
    import itertools

    size = max(1, count)   # one run per configuration
    available = dataset.num_batches(size, None)
    skip = max(0, (available or 0) - 2)
    picked = []
    for batch in itertools.islice(dataset.batches(size, None), skip, None):
        picked.append(batch)
        if available is None and sum(len(b) for b in picked) >= count:
            break   # a data function: its first samples
    if not picked:
        return []
    picked = picked[-2:] if available else picked
    rows = [len(b) for b in picked]

    def rows_of(values, last):
        batched = all(getattr(v, "ndim", 0) and len(v) == n for v, n in zip(values, rows))
        if not batched:
            return values[-1]
        merged = np.concatenate(values)
        return merged[-count:] if last else merged[:count]

    last = available is not None
    feed = {k: rows_of([b.feed[k] for b in picked], last) for k in picked[-1].feed}
    labels = [b.label for b in picked]
    label = rows_of(labels, last) if all(lab is not None for lab in labels) else None
    return [Batch(feed, label)]


def _auto_thresholds(ctx, quantizers, stats, samples, originals, choice, args, dataset,
                     seen):
    """algo: auto: per tensor, the candidate threshold with the least measured error
    (actc.quant.auto); None for any other algo."""
    if samples is None:
        return None
    from actc.runtime.auto_calib import best_singles, check_configs, choose, model_check

    hist_percent = float(args["hist_percent"])
    quantized = quantized_weights(quantizers, originals, choice.weight_algo)
    chosen, choices, secs = choose(ctx.program, quantizers, stats, samples, originals,
                                   quantized, hist_percent, ctx.device)
    per_sample = sum(int(np.prod(kept[0].shape[1:])) for kept in samples.values() if kept)
    samples.clear()
    by_layer = sum(1 for c in choices if c.metric == "layer")
    _note(ctx, f"calibrate: auto chose per tensor ({by_layer} of {len(choices)} scored on the "
               f"layers they feed, in {secs:.2f} s): {auto_calibration.winners_summary(choices)}")
    configs = check_configs(choices, best_singles(choices, hist_percent), hist_percent)
    n, k = auto_calibration.check_plan(seen * int(args["batch_size"]), per_sample,
                                       len(configs))
    configs = dict(list(configs.items())[:k])
    checked_on = tail_samples(dataset, n)
    where = "last" if dataset.num_batches(max(1, n), None) is not None else "first"
    how = f"the {where} {sum(len(b) for b in checked_on)} calibration samples"
    winner, chosen, snr = model_check(ctx.program, quantizers, stats, configs, originals,
                                      choice.weight_algo, checked_on, ctx.device)
    base = winner.split("+")[0]
    base = auto_calibration.hist_name(float(args["hist_percent"])) if base == "hist" else base
    rows = []
    for c in choices:
        row = c.to_json()
        row["applied"] = auto_calibration.applied_name(c, chosen[c.tensor], base)
        rows.append(row)
    ctx.reports["auto"] = {"tensors": rows, "model_snr_db": snr, "kept": winner,
                           "checked_on": how}
    table = ", ".join(f"{k} {v:.1f}" for k, v in sorted(snr.items(), key=lambda t: -t[1]))
    kept = {"per-tensor": "the per-tensor choice"}.get(winner, winner if "+" in winner else
                                                        f"{winner} for every tensor")
    _note(ctx, f"calibrate: auto kept {kept} (output SNR dB on {how}: {table})")
    return chosen


def _reconstruct(ctx, quantizers, dataset, args, batch_size) -> None:
    """recon_level: layer_wise: learn each weight's rounding (actc.runtime.reconstruct)."""
    level = args["recon_level"]
    if level is None:
        if args["regions"]:
            _note(ctx, "calibrate: regions has no effect without recon_level: region_wise")
        return
    common = dict(batch_size=batch_size, recon_batches=int(args["recon_batches"]),
                  epochs=int(args["epochs"]), lr=float(args["lr"]),
                  simulate_activation_quant=bool(args["simulate_activation_quant"]),
                  device=ctx.device)
    if str(level) == "region_wise":
        from actc.runtime.reconstruct_region import reconstruct_regions

        report, regions = reconstruct_regions(ctx.program, quantizers, dataset,
                                              regions=args["regions"], **common)
        how = "given" if args["regions"] else "chosen automatically (program blocks)"
        _note(ctx, f"reconstruction (region_wise, {len(regions)} regions {how}): "
                   f"{report.summary()}")
        return
    from actc.runtime.reconstruct import reconstruct

    report = reconstruct(ctx.program, quantizers, dataset, **common)
    _note(ctx, f"reconstruction (layer_wise): {report.summary()}")


def _bias_correction(ctx, quantizers, dataset, choice, batch_size, batch_nums,
                     originals) -> None:
    if not choice.bias_correction:
        return
    from actc.runtime.bias_correction import correct_biases

    how = correct_biases(ctx.program, quantizers, dataset, batch_size=batch_size,
                         batch_nums=batch_nums, device=ctx.device, float_weights=originals)
    done = ", ".join(f"{n} into {kind}" for kind, n in how.items())
    _note(ctx, f"bias correction: {done or 'no quantized layer'}")


def _error_report(ctx, quantizers, dataset, batch_size) -> None:
    """Each quantizer's SQNR at its final scale, for compile's worst-quantizers table."""
    from actc.runtime.quant_report import measure

    ctx.reports["quantizers"] = measure(ctx.program, quantizers, dataset,
                                        batch_size=batch_size, device=ctx.device)


def run_pass(ctx, name: str, args: dict | None = None) -> int:
    """Run a stdlib DSL pass from a stage (structure stays in the DSL); returns ops matched."""
    from actc.dsl.registry import default_registry
    from actc.dsl.rules import RuleRunner

    spec = default_registry().get(name)
    bound = {p.name: p.default for p in spec.params}
    bound.update(args or {})
    result = RuleRunner(ctx.program, spec.passdef, bound, ctx).run()
    ctx.notes.extend(f"{name}: {n}" for n in result.notes)
    return result.matched


def fold_masks(ctx, step: str) -> None:
    """Inference-time stages see the masked weights as plain (zeroed) weights."""
    masks = sum(1 for op in ctx.program.ops() if op.has_attr("actc_mask"))
    if masks:
        run_pass(ctx, "fold_masks")
        _note(ctx, f"{step}: {masks} sparsity masks folded into their weights")


def convert(ctx, args: dict) -> None:
    fold_masks(ctx, "convert")
    if any(op.has_attr("actc_pact") for op in ctx.program.ops()):
        run_pass(ctx, "strip_pact")
        _note(ctx, "convert: PACT clips removed (the quantizers clip at scales <= each "
                   "learned threshold)")
    quantizers = _quantizers(ctx, "convert")
    fmt = args["format"]
    formats = {q.format for q in quantizers}
    if fmt is not None and str(fmt) == "onnx" and "fake" in formats:
        dynamic = [q.tensor for q in quantizers
                   if q.format == "fake" and not q.is_weight and q.scale is None]
        if dynamic:
            raise ActcError(f"convert(format: onnx): {len(dynamic)} activation quantizers "
                            f"(e.g. on '{dynamic[0]}') are abs_max, which computes its scale "
                            "per batch, so there is no trained scale to export; quantize with "
                            "activation_quantize_type: moving_average_abs_max or "
                            "range_abs_max, or keep convert(format: fake)")
        fake = sum(1 for q in quantizers if q.format == "fake")
        run_pass(ctx, "fake_to_onnx")
        _note(ctx, f"convert: {fake} fake quantizers turned into quantize_linear/"
                   "dequantize_linear with their trained scales")
        quantizers = _quantizers(ctx, "convert")
        formats = {q.format for q in quantizers}
    if fmt is not None and str(fmt) not in formats:
        raise ActcError(f"convert(format: {fmt}): the program's quantizers are "
                        f"{'/'.join(sorted(formats))}; only fake -> onnx conversion is "
                        "supported")
    folded = freeze_onnx(ctx.program, quantizers)
    frozen = freeze_fake(ctx.program, quantizers)
    _note(ctx, f"convert: {folded} weights stored as int8" if folded else
               f"convert: {frozen} fake quantizers set to inference mode")


def train(ctx, args: dict) -> None:
    """Quantization-aware training / distillation / task loss (actc.train)."""
    from actc.runtime.report import eval_source
    from actc.train.loop import run_train

    train_data = calibration_data(ctx, "train")
    eval_path = ctx.eval_data if ctx.eval_data else (
        eval_source(None, ctx.source) if ctx.source is not None else None)
    eval_data = open_dataset(eval_path, ctx.program) if eval_path else None
    if args["amp"]:
        _note(ctx, "train: amp is not supported yet; training in float32")
    if args["sparse_model"]:
        keep_sparsity(ctx)
    for note in run_train(ctx, args, train_data, eval_data):
        _note(ctx, note)
    # the losses are spent: a later distill step (e.g. QAT after pruning) wires its own
    run_pass(ctx, "strip_distill")


def keep_sparsity(ctx) -> None:
    """ACT sparse_model: an already-sparse model stays sparse through training. Masks from the
    sparsify pass (|w| >= the smallest float, i.e. w != 0) pin every zero; compile folds them
    into the weights before writing."""
    import numpy as np

    from actc.dsl.parser import parse_expr
    from actc.dsl.values import Selector

    if any(op.has_attr("actc_mask") for op in ctx.program.ops()):
        _note(ctx, "train: sparse_model: the program's sparsity masks are kept")
        return
    text = "op.has_weight"
    run_pass(ctx, "sparsify", {"ops": Selector(parse_expr(text), text=text),
                               "mode": "threshold",
                               "threshold": float(np.finfo(np.float32).tiny)})
    masks = sum(1 for op in ctx.program.ops() if op.has_attr("actc_mask"))
    _note(ctx, f"train: sparse_model: {masks} weights keep their zeros (masked while training)")


def auto(ctx, args: dict) -> None:
    """ACT's automatic mode (actc.auto.strategy)."""
    from actc.auto.strategy import choose

    for note in choose(ctx, args):
        _note(ctx, note)


def search(ctx, args: dict) -> None:
    from actc.runtime.search import run_search

    fold_masks(ctx, "search")
    quantizers = _quantizers(ctx, "search")
    types = [str(t) for t in args["weight_quantize_type"] or []]
    current = {"channel_wise_abs_max" if q.axis >= 0 else "abs_max"
               for q in quantizers if q.is_weight}
    if any(t not in current for t in types):
        raise ActcError(f"search: weight_quantize_type {types} differs from what quantize "
                        f"inserted ({', '.join(sorted(current))}); the weight quantizer type is "
                        "fixed by the quantize step, set it there")
    dataset = calibration_data(ctx, "search")
    originals = original_weights(ctx.program, quantizers)
    eval_dataset = open_dataset(ctx.eval_data, ctx.program) if ctx.eval_data else None
    result = run_search(ctx.program, quantizers, dataset, args,
                        device=ctx.device, eval_dataset=eval_dataset)
    print(result.table())
    _note(ctx, f"search: best of {len(result.trials)} trials (scored on {result.scored_on}): "
               f"{result.best.describe()}")
    _bias_correction(ctx, quantizers, dataset, result.best.choice,
                     int(args["batch_size"]), result.best.batch_num, originals)
    _error_report(ctx, quantizers, dataset, int(args["batch_size"]))
