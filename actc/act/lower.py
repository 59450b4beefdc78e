"""Lower a normalised ACT config (``load.Config``) to an actc recipe.

``lower(config) -> Lowered`` gives (a) ``steps``: the ordered steps, each a name and an ordered
dict of plain Python values, with ``EnumName`` (a bare enum name), ``SelectorText`` (selector
source text) and ``Range`` wrappers from ``actc.dsl.values`` where the recipe language has its own kinds; and (b) ``text``: the
same plan as a readable, editable ``.actc`` recipe (``recipe main() { ... }``, syntax of
docs/language.md) with comments saying where each step came from and what actc will do.

Section combinations (ACT runs its strategies one after another; so does the recipe):
  QuantPost [+ HyperParameterOptimization]     -> skip_ops, quantize, calibrate, [search], convert
  QuantAware/Quantization [+ Distillation]      -> skip_ops, quantize(format: fake), [distill],
                                                   train, convert(format: onnx|fake)
  ChannelPrune/ASPPrune/TransformerPrune/UnstructurePrune [+ Distillation]
                                                -> prune step(s), [distill], train
  Distillation / MultiTeacherDistillation alone -> distill, train
  pruning + quantization                        -> the pruning plan, then the quantization plan
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from actc.dsl.values import EnumName, Range, SelectorText, show

from . import optypes
from .load import Config, ConfigError, Note


@dataclass
class Step:
    name: str
    args: dict[str, Any]
    comments: list[str] = field(default_factory=list)
    section: str | None = None  # the config section it comes from (for error positions)


@dataclass
class Lowered:
    steps: list[Step]
    text: str
    notes: list[Note] = field(default_factory=list)
    # (first line, last line) of each step in ``text`` -> (line, col) of its section in the YAML
    line_map: list[tuple[int, int, int, int]] = field(default_factory=list)

    def yaml_position(self, line: int | None) -> tuple[int, int] | None:
        """The config position behind a line of the lowered recipe."""
        for first, last, yl, yc in self.line_map:
            if line is not None and first <= line <= last:
                return yl, yc
        return None


_RECON = {"layer-wise": "layer_wise", "region-wise": "region_wise"}
PRUNE_SECTIONS = ("ChannelPrune", "ASPPrune", "TransformerPrune", "UnstructurePrune")


def _typed_mapping(m: dict | None) -> dict | None:
    """{type: PiecewiseDecay, ...}: the class name is an enum name, the rest stays as given."""
    if m is None:
        return None
    return {k: (EnumName(v) if k == "type" and isinstance(v, str) else v) for k, v in m.items()}


def paddle_op_types(types) -> tuple[list[str], list[str]]:
    """(types Paddle 3.3.1 registers, the others): ACT's lists carry legacy names (argmax,
    pad2d, flatten, ...) that no model of today's Paddle holds and a selector refuses."""
    from actc.dsl.known_ops import KNOWN_OP_TYPES
    return ([t for t in types if t in KNOWN_OP_TYPES], [t for t in types if t not in KNOWN_OP_TYPES])


def op_types_selector(types) -> SelectorText:
    names = ", ".join(show(EnumName(t)) for t in types)
    return SelectorText(f"op.type in {{{names}}}")


def name_list(names) -> str:
    return "[" + ", ".join(json.dumps(n, ensure_ascii=False) for n in names) + "]"


# -- lowering -----------------------------------------------------------------------------------

class _Lowerer:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.s = cfg.sections
        self.steps: list[Step] = []
        self.notes: list[Note] = []
        self.pending: list[str] = []     # comments for the next step
        self.tenth = False               # train the next stage at ACT's 10% (after pruning)

    def at(self, section: str, key: str | None = None) -> str:
        line, _ = self.cfg.where.get((section, key) if key else (section,),
                                     self.cfg.where.get((section,), (1, 1)))
        return f"{self.cfg.path}:{line}"

    def comment(self, *lines: str) -> None:
        self.pending.extend(lines)

    def step(self, name: str, /, **args: Any) -> Step:
        st = Step(name, dict(args), self.pending, self.section_of(name))
        self.pending = []
        self.steps.append(st)
        return st

    STEP_SECTIONS = {"quantize": ("QuantAware", "QuantPost"), "skip_ops": ("QuantAware", "QuantPost"),
                     "pact": ("QuantAware",), "calibrate": ("QuantPost",),
                     "convert": ("QuantAware", "QuantPost"), "search": ("HyperParameterOptimization",),
                     "distill": ("Distillation", "MultiTeacherDistillation"),
                     "task_loss": ("Distillation",), "train": ("TrainConfig",),
                     "auto": ("TrainConfig", "Global"), "set_feed_shape": ("Global",),
                     "sparsify": ("UnstructurePrune",), "asp_prune": ("ASPPrune",),
                     "prune_channels": ("ChannelPrune",), "prune_transformer": ("TransformerPrune",),
                     "restore_xshape": ("TransformerPrune",)}

    def section_of(self, step: str) -> str | None:
        for sec in self.STEP_SECTIONS.get(step, ()):
            if (sec,) in self.cfg.where:
                return sec
        return next(iter(self.s), None)

    def note(self, section: str, kind: str, message: str, key: str | None = None) -> None:
        line, col = self.cfg.where.get((section, key) if key else (section,),
                                       self.cfg.where.get((section,), (1, 1)))
        self.notes.append(Note(self.cfg.path, line, col, kind, message))

    def set_(self, section: str, key: str) -> bool:
        return self.cfg.is_set(section, key)

    # -- plans ----------------------------------------------------------------------------------
    def run(self) -> list[Step]:
        s = self.s
        shapes = self.cfg.global_train.get("input_shapes")
        if isinstance(shapes, dict):  # {feed name: shape}, as ACT's AutoCompression takes it
            for i, (feed, shape) in enumerate(shapes.items()):
                if not (isinstance(shape, list) and all(isinstance(d, int) and
                                                        not isinstance(d, bool) for d in shape)):
                    raise ConfigError(self.cfg.path, *self.cfg.where.get(("Global",), (1, 1)),
                                      f"Global.input_shapes.{feed}: expected a list of ints "
                                      "(e.g. [-1, 3, 224, 224])")
                if i == 0:
                    self.comment("Global.input_shapes: fix the declared input shapes (by name).")
                self.step("set_feed_shape", name=str(feed), shape=list(shape))
        elif shapes:
            if shapes and not isinstance(shapes[0], list):
                shapes = [shapes]  # one feed written as a flat list
            for i, shape in enumerate(shapes):
                if i == 0:
                    self.comment("Global.input_shapes: fix the declared input shapes.")
                self.step("set_feed_shape", index=i, shape=list(shape))
        prunes = [p for p in PRUNE_SECTIONS if p in s]
        quant = "QuantPost" if "QuantPost" in s else "QuantAware" if "QuantAware" in s else None
        distill = "Distillation" in s or "MultiTeacherDistillation" in s
        if not prunes and not quant and not distill:
            self.auto_step()
            return self.steps
        if prunes:
            for p in prunes:
                getattr(self, "prune_" + p)()
            self.distill_steps("the pruned model")
            self.train_step("pruning")
            if "TransformerPrune" in prunes:
                self.comment("Give transpose2/reshape2 back the XShape output export drops: "
                             "Paddle Inference's oneDNN",
                             "matmul_transpose_reshape fuse needs it (ACT's written models "
                             "keep it).")
                self.step("restore_xshape")
        if quant == "QuantPost":
            if not prunes:
                self.distill_before_ptq()
            self.ptq()
        elif quant == "QuantAware":
            if prunes:
                self.tenth = True  # ACT: the quantization stage after pruning trains 10% as long
            self.qat()
        elif not prunes:
            self.comment("Distillation alone: train the model to follow its teacher.")
            self.distill_steps("the model")
            self.train_step("distillation")
        return self.steps

    # -- quantization ---------------------------------------------------------------------------
    def quant_ops(self, sec: str) -> SelectorText:
        q = self.s[sec]
        if q["for_tensorrt"]:
            types = optypes.TENSORRT_OP_TYPES
            why = f"for_tensorrt: true ({self.at(sec, 'for_tensorrt')}) -> TENSORRT_OP_TYPES"
        elif q["is_full_quantize"]:
            types = optypes.FULL_QUANT_OP_TYPES
            why = (f"is_full_quantize: true ({self.at(sec, 'is_full_quantize')}) -> every "
                   "quantizable op type (TRANSFORM_PASS_OP_TYPES + QUANT_DEQUANT_PASS_OP_TYPES)")
        else:
            types, gone = paddle_op_types(q["quantize_op_types"])
            where = self.at(sec, "quantize_op_types") if self.set_(sec, "quantize_op_types") \
                else f"{sec} default"
            self.comment(f"quantize_op_types ({where}) -> op.type in {{...}}")
            self.dropped(gone)
            return op_types_selector(types)
        types, gone = paddle_op_types(types)
        self.comment(why)
        self.dropped(gone)
        if self.set_(sec, "quantize_op_types"):
            self.comment("  (it replaces quantize_op_types, as in ACT)")
            self.note(sec, "note", f"{sec}.quantize_op_types is replaced by the "
                      f"{'TensorRT' if q['for_tensorrt'] else 'full'} op-type list",
                      "quantize_op_types")
        return op_types_selector(types)

    def dropped(self, gone: list[str]) -> None:
        if gone:
            self.comment(f"  (left out: {', '.join(gone)} -- legacy op types that Paddle 3.3.1 "
                         "does not have, so no model holds them)")

    def skip_step(self, sec: str) -> None:
        q = self.s[sec]
        parts = [f"op.name_scope contains {json.dumps(p, ensure_ascii=False)}"
                 for p in q["not_quant_pattern"]]
        src = []
        if q["not_quant_pattern"]:
            src.append("not_quant_pattern" + (f" ({self.at(sec, 'not_quant_pattern')})"
                                              if self.set_(sec, "not_quant_pattern")
                                              else " (ACT default [skip_quant])"))
        tensors = q.get("skip_tensor_list") or []
        if tensors:
            parts.append(f"op.output in {name_list(tensors)}")
            src.append(f"skip_tensor_list ({self.at(sec, 'skip_tensor_list')})")
        if not parts:
            return
        self.comment(f"{' + '.join(src)}: these ops stay float (FAQ 4: set an op's name_scope "
                     "to skip it).")
        self.step("skip_ops", ops=SelectorText(" or ".join(parts)))

    def quantize_step(self, sec: str, fmt_: str, qat: bool) -> None:
        q = self.s[sec]
        ops = self.quant_ops(sec)
        args: dict[str, Any] = dict(
            ops=ops, weight_bits=q["weight_bits"], activation_bits=q["activation_bits"],
            weight_quantize_type=EnumName(q["weight_quantize_type"]),
            activation_quantize_type=EnumName(q["activation_quantize_type"]),
            format=EnumName(fmt_))
        if self.set_(sec, "dtype"):
            args["dtype"] = EnumName(q["dtype"])
        if qat:
            if q["activation_quantize_type"] == "range_abs_max":
                args["window_size"] = q["window_size"]
            if q["activation_quantize_type"] == "moving_average_abs_max":
                args["moving_rate"] = q["moving_rate"]
        if qat and q["use_pact"]:
            self.comment("use_pact: learnable activation clipping (PACT) in front of the "
                         "quantized inputs.")
            self.step("pact", ops=ops)
        self.step("quantize", **args)

    def distill_before_ptq(self) -> None:
        """ACT runs a Distillation section beside QuantPost as a strategy of its own, before
        PTQ (compressor._prepare_strategy: single_teacher_dis, then quant_post)."""
        s = self.s
        sec = next((x for x in ("Distillation", "MultiTeacherDistillation") if x in s), None)
        dirs = s[sec]["teacher_model_dir"] if sec else None
        external = any(dirs if isinstance(dirs, list) else [dirs])
        if external:
            self.comment(f"{sec} beside QuantPost: ACT distils first (a strategy of its own), "
                         "then quantizes the distilled model.")
            self.distill_steps("the model")
            self.train_step("distillation")
            return
        if sec is not None:
            self.note(sec, "note", f"{sec} without teacher_model_dir beside QuantPost: ACT would "
                      "first distil the model from itself, which starts at zero loss and leaves "
                      "it unchanged; actc skips that and only quantizes")
        if "TrainConfig" in s:
            self.note("TrainConfig", "warning", "TrainConfig has no effect with QuantPost "
                      "(post-training quantization does not train); ignored")

    def ptq(self) -> None:
        sec = "QuantPost"
        q = self.s[sec]
        fmt_ = "onnx" if q["onnx_format"] else "fake"
        self.comment(f"QuantPost ({self.at(sec)}): post-training quantization -- insert "
                     "quantize/dequantize ops, calibrate scales on data, freeze.")
        self.skip_step(sec)
        self.comment(f"Insert quantize/dequantize pairs (W{q['weight_bits']}A{q['activation_bits']}); "
                     f"onnx_format: {'true' if q['onnx_format'] else 'false'}"
                     + ("" if self.set_(sec, "onnx_format") else " (PaddleSlim default)")
                     + f" -> format: {fmt_}.")
        self.quantize_step(sec, fmt_, qat=False)
        args: dict[str, Any] = {"algo": EnumName(q["algo"])}
        if q["algo"] == "hist":
            args["hist_percent"] = q["hist_percent"]
        args["batch_size"] = q["batch_size"]
        args["batch_nums"] = q["batch_nums"]
        args["bias_correction"] = q["bias_correction"]
        self.comment(f"Calibrate activation scales with {q['algo']} on "
                     + (f"{q['batch_nums']} x {q['batch_size']} samples."
                        if q["batch_nums"] else f"all calibration data (batch {q['batch_size']})."))
        if q["algo"] != "hist" and self.set_(sec, "hist_percent"):
            self.comment(f"  (hist_percent only applies to algo hist; not passed)")
        if q["recon_level"]:
            args["recon_level"] = EnumName(_RECON[q["recon_level"]])
            if q["recon_level"] == "region-wise":
                args["regions"] = q["regions"]
            args["epochs"] = q["epochs"]
            args["lr"] = q["lr"]
            args["simulate_activation_quant"] = q["simulate_activation_quant"]
            self.comment(f"Then {q['recon_level']} reconstruction: {q['epochs']} epochs at "
                         f"lr {q['lr']}.")
        if q["region_weights_names"]:
            self.note(sec, "warning", "QuantPost.region_weights_names is not supported by "
                      "actc's calibrate; ignored (regions are matched by their vars)",
                      "region_weights_names")
        self.step("calibrate", **args)
        if "HyperParameterOptimization" in self.s:
            h = self.s["HyperParameterOptimization"]
            self.comment(f"HyperParameterOptimization ({self.at('HyperParameterOptimization')}): "
                         "re-run calibration over this space, keep the best trial",
                         "(calibrate above supplies the settings not searched here).")
            self.step("search", ptq_algo=[EnumName(a) for a in h["ptq_algo"]],
                      bias_correction=h["bias_correction"],
                      weight_quantize_type=[EnumName(w) for w in h["weight_quantize_type"]],
                      hist_percent=Range(*h["hist_percent"]), batch_num=Range(*h["batch_num"]),
                      max_trials=h["max_quant_count"])
        self.comment("Freeze: fold scales, store int8 weights, drop calibration-only ops.")
        self.step("convert")

    def qat(self) -> None:
        sec = "QuantAware"
        q = self.s[sec]
        final = "onnx" if q["onnx_format"] else "fake"
        self.comment(f"QuantAware ({self.at(sec)}): quantization-aware training -- train with "
                     "fake quantize-dequantize ops,",
                     f"then convert to the {final} format (onnx_format: "
                     f"{'true' if q['onnx_format'] else 'false'}"
                     + ("" if self.set_(sec, "onnx_format") else ", PaddleSlim default") + ").")
        self.skip_step(sec)
        self.comment(f"Fake-quantize for training (W{q['weight_bits']}A{q['activation_bits']}"
                     + (", PACT clipping" if q["use_pact"] else "") + ").")
        self.quantize_step(sec, "fake", qat=True)
        self.distill_steps("the quantized model")
        self.train_step("quantization-aware training")
        self.comment(f"Freeze: fold the trained scales, store int{q['weight_bits']} weights "
                     f"(format {final}).")
        self.step("convert", format=EnumName(final))

    # -- distillation & training -----------------------------------------------------------------
    @staticmethod
    def flat_pairs(node: list, teacher_dir: str | None, prefix: str) -> tuple[list, str]:
        evens_are_teacher = len(node) % 2 == 0 and all(
            n.startswith(prefix) for n in node[0::2])
        if teacher_dir or evens_are_teacher:
            return [[node[i], node[i + 1]] for i in range(0, len(node), 2)], \
                "flat teacher/student list -> pairs"
        return [[prefix + n, n] for n in node], \
            f"self-distillation: each student var pairs with its '{prefix}' copy in the teacher"

    @classmethod
    def node_pairs(cls, node: list, teacher_dir: str | None,
                   prefix: str) -> tuple[list, str, list | None]:
        """Pairs, how they were read, and (list of lists) the group of each pair."""
        if not node:
            return [], "none given: actc picks the last layer with parameters, as ACT does", None
        if not isinstance(node[0], list):
            return (*cls.flat_pairs(node, teacher_dir, prefix), None)
        # ACT 2.6: a list of lists is a list of node groups, each with its own loss and alpha;
        # a group is a [teacher, student] pair, a flat teacher/student list or student names.
        pairs, group_of = [], []
        for g, inner in enumerate(node):
            got = [list(inner)] if len(inner) == 2 else \
                cls.flat_pairs(list(inner), teacher_dir, prefix)[0]
            pairs += got
            group_of += [g] * len(got)
        if len(pairs) == len(node):
            return pairs, "[teacher, student] pairs as given", None
        return pairs, (f"{len(node)} node groups (ACT 2.6), each with its own loss and alpha "
                       "-> pairs"), group_of

    def distill_steps(self, what: str) -> None:
        s = self.s
        if "Distillation" in s:
            d = s["Distillation"]
            self.one_distill("Distillation", d, "teacher_", what, None)
        elif "MultiTeacherDistillation" in s:
            m = s["MultiTeacherDistillation"]
            per = [k for k in m if k != "merge_feed" and self.set_("MultiTeacherDistillation", k)]
            n = max((len(m[k]) for k in per), default=0)
            if n == 0:
                raise ConfigError(self.cfg.path, *self.cfg.where[("MultiTeacherDistillation",)],
                                  "MultiTeacherDistillation: give each key one entry per teacher")
            for i in range(n):
                one = {k: (v[i] if k in per else v) for k, v in m.items()}
                self.one_distill("MultiTeacherDistillation", one, f"teacher{i + 1}_", what, i + 1)
        else:  # ACT builds no training strategy here (PaddleSlim #1704, #1824)
            self.comment(f"No Distillation section: ACT would not train {what} at all (#1704). "
                         "actc trains on the",
                         "data's labels when it has them, else distils from the input model.")
            first = next(iter(s))
            self.note(first, "note", f"no Distillation section: {what} trains on the data's "
                      "labels (cross-entropy) when the training data has them, else by "
                      "self-distillation from the input model")
            self.step("task_loss", only_if=EnumName("labels"))
            self.step("distill", only_if=EnumName("no_labels"))

    def one_distill(self, sec: str, d: dict, prefix: str, what: str, index: int | None) -> None:
        pairs, how, group_of = self.node_pairs(d["node"] or [], d["teacher_model_dir"], prefix)
        teacher = d["teacher_model_dir"]
        who = f"teacher {index}" if index else "the teacher"
        self.comment(f"{sec} ({self.at(sec)}): {who} = "
                     + (f"{teacher}" if teacher else "the uncompressed input model")
                     + f"; {what} learns to match it.",
                     f"nodes: {how}.")
        args: dict[str, Any] = {}
        if teacher:
            args["teacher"] = teacher
            if d["teacher_model_filename"]:
                args["teacher_model_filename"] = d["teacher_model_filename"]
            if d["teacher_params_filename"]:
                args["teacher_params_filename"] = d["teacher_params_filename"]
        args["nodes"] = pairs
        loss, alpha = d["loss"], d["alpha"]
        if group_of is not None:  # one loss / alpha per group -> one per pair
            loss = [loss[g] for g in group_of] if isinstance(loss, list) else loss
            alpha = [alpha[g] for g in group_of] if isinstance(alpha, list) else alpha
        args["loss"] = [EnumName(x) for x in loss] if isinstance(loss, list) else EnumName(loss)
        args["alpha"] = alpha
        if not d.get("merge_feed", True):
            args["merge_feed"] = False
        if prefix != "teacher_":
            args["teacher_prefix"] = prefix
        self.step("distill", **args)

    def auto_step(self) -> None:
        """No strategy section: ACT's automatic mode."""
        g = self.cfg.global_train
        self.comment("No strategy section: automatic compression, as ACT's auto mode. "
                     "Transformers (attention",
                     "in the model): TransformerPrune 0.25, then int8. Other models: an int8 "
                     "PTQ probe; a small",
                     "output loss stops there, a moderate one runs the PTQ search, else QAT "
                     "with distillation.",
                     "With labelled eval data candidates are judged by top-1 against the "
                     "float model instead.")
        args: dict[str, Any] = {}
        if "TrainConfig" in self.s:
            args["train"] = self.train_args()
            t = self.s["TrainConfig"]
            if t["target_metric"] is not None:
                args["target_metric"] = t["target_metric"]
        for key in ("target_speedup", "deploy_hardware"):
            if g.get(key) is not None:
                args[key] = g[key]
        first = next(iter(self.s), None) or "Global"
        self.note(first, "note", "no strategy section: actc chooses one automatically (auto) "
                  "and prints what it chose and why")
        self.step("auto", **args)

    def train_args(self) -> dict:
        """TrainConfig as the train step's arguments."""
        t = self.s["TrainConfig"]
        b = t["optimizer_builder"]
        lr = t["learning_rate"]
        args: dict[str, Any] = {}
        for k in ("epochs", "train_iter"):
            if t[k] is not None:
                args[k] = t[k]
        args["learning_rate"] = _typed_mapping(lr) if isinstance(lr, dict) else lr
        args["optimizer"] = _typed_mapping(b["optimizer"])
        for k in ("weight_decay", "regularizer", "grad_clip"):
            if b.get(k) is not None:
                args[k] = _typed_mapping(b[k]) if isinstance(b[k], dict) else b[k]
        if self.cfg.global_train.get("batch_size"):
            args["batch_size"] = self.cfg.global_train["batch_size"]
        args["eval_iter"] = t["eval_iter"]
        if self.set_("TrainConfig", "logging_iter"):
            args["logging_iter"] = t["logging_iter"]
        return args

    def tenth_of(self, args: dict) -> None:
        """ACT's TrainConfig for a quantization stage that follows pruning: 10% of the epochs
        (at least 1) and iterations, 10% of the learning rate (its 'learning_rate', or every
        PiecewiseDecay value) -- compressor._get_final_train_config. (ACT keeps the epochs of
        transformer models; actc cannot tell at this point and scales them too.)"""
        self.tenth = False
        if "epochs" in args:
            args["epochs"] = max(int(args["epochs"] * 0.1), 1)
        if "train_iter" in args:
            args["train_iter"] = max(int(args["train_iter"] * 0.1), 1)
        lr = args["learning_rate"]
        if isinstance(lr, dict):
            lr = dict(lr)
            if "learning_rate" in lr:
                lr["learning_rate"] = lr["learning_rate"] * 0.1
            elif isinstance(lr.get("values"), list):
                lr["values"] = [v * 0.1 for v in lr["values"]]
        else:
            lr = lr * 0.1
        args["learning_rate"] = lr
        self.comment("As ACT: after pruning, quantization-aware training runs 10% of the "
                     "epochs/iterations at 10% of the learning rate.")

    def train_step(self, purpose: str) -> None:
        if "TrainConfig" not in self.s:
            self.comment(f"No TrainConfig: ACT would not train, so {purpose} would do nothing.",
                         "actc trains with the train step's defaults (docs/steps.md); "
                         "set epochs or train_iter here.")
            first = next(iter(self.s))
            self.note(first, "warning", f"no TrainConfig section: actc trains with its defaults "
                      f"for {purpose} (ACT would silently not train); add TrainConfig to choose")
            self.step("train")
            return
        t = self.s["TrainConfig"]
        args = self.train_args()
        if self.tenth:
            self.tenth_of(args)
        if "batch_size" in args:
            self.comment("batch_size from Global.batch_size (the batch size of ACT's example "
                         "script's dataloader).")
        for k in ("origin_metric", "target_metric"):
            if t[k] is not None:
                args[k] = t[k]
        if t["amp_config"] is not None:  # noted at load: actc trains in float32
            self.comment("amp_config: actc trains in float32 (see the note).")
        if t["sparse_model"]:
            args["sparse_model"] = True
        length = (f"{t['epochs']} epochs" if t["epochs"] else
                  f"{t['train_iter']} iterations" if t["train_iter"] else "the default length")
        self.comment(f"TrainConfig ({self.at('TrainConfig')}): {purpose} for {length}.")
        self.step("train", **args)

    # -- pruning --------------------------------------------------------------------------------
    def prune_ChannelPrune(self) -> None:
        c = self.s["ChannelPrune"]
        names = c["prune_params_name"]
        ops = (SelectorText(f"op.input in {name_list(names)}") if names else
               SelectorText("op.type == conv2d and op.attr.groups == 1"))
        self.comment(f"ChannelPrune ({self.at('ChannelPrune')}): remove {c['pruned_ratio']} of "
                     f"the output channels, ranked by {c['criterion']};",
                     "prune_params_name -> op.input in [...]" if names else
                     "no prune_params_name: every conv2d with groups 1.")
        ratio = c["pruned_ratio"]
        if isinstance(ratio, list):  # one ratio per prune_params_name entry
            if not names or len(names) != len(ratio):
                raise ConfigError(self.cfg.path, *self.cfg.where[("ChannelPrune", "pruned_ratio")],
                                  f"ChannelPrune.pruned_ratio: a list of {len(ratio)} ratios needs "
                                  "prune_params_name with one weight per ratio")
            ratio = dict(zip(names, ratio))
        self.step("prune_channels", ops=ops, ratio=ratio, criterion=EnumName(c["criterion"]))

    def prune_ASPPrune(self) -> None:
        names = self.s["ASPPrune"]["prune_params_name"]
        ops = (SelectorText(f"op.input in {name_list(names)}") if names else
               SelectorText("(op.type == conv2d and op.attr.groups == 1) or op.type in {mul, matmul_v2}"))
        self.comment(f"ASPPrune ({self.at('ASPPrune')}): 2:4 semi-structured sparsity "
                     "(two of every four weights are zero);",
                     "prune_params_name -> op.input in [...]" if names else
                     "no prune_params_name: conv2d (groups 1), mul and matmul_v2 weights.")
        self.step("asp_prune", ops=ops)

    def prune_TransformerPrune(self) -> None:
        r = self.s["TransformerPrune"]["pruned_ratio"]
        self.comment(f"TransformerPrune ({self.at('TransformerPrune')}): remove {r} of each "
                     "transformer FC layer (heads and FFN width).")
        self.step("prune_transformer", ratio=r)

    def prune_UnstructurePrune(self) -> None:
        u = self.s["UnstructurePrune"]
        if u["prune_params_type"] == "conv1x1_only":
            ops = SelectorText("op.is_conv1x1")
            which = "prune_params_type conv1x1_only -> op.is_conv1x1"
        else:
            norms = ", ".join(paddle_op_types(optypes.NORM_OP_TYPES)[0])
            ops = SelectorText(f"op.has_weight and not (op.type in {{{norms}}})")
            which = "prune_params_type null -> every weight except normalisation layers'"
        args: dict[str, Any] = {"ops": ops, "mode": EnumName(u["prune_mode"])}
        if u["prune_mode"] == "ratio":
            args["ratio"] = u["ratio"]
            args["local_sparsity"] = u["local_sparsity"]
            what = (f"{u['ratio']} of the weights zero "
                    + ("in every matrix" if u["local_sparsity"] else "over the whole model"))
        else:
            args["threshold"] = u["threshold"]
            what = f"weights with |w| < {u['threshold']} zero"
        if u["prune_strategy"] == "gmp":
            args["strategy"] = EnumName("gmp")
            args["gmp"] = dict(u["gmp_config"] or {})
            if not u["gmp_config"]:
                self.note("UnstructurePrune", "note", "UnstructurePrune.prune_strategy gmp "
                          "without gmp_config: ACT's schedule from the training length "
                          "(pruning = tuning = 45% of the iterations, initial ratio 0.15)",
                          "prune_strategy")
            what += ", reached gradually on the GMP schedule"
        self.comment(f"UnstructurePrune ({self.at('UnstructurePrune')}): make {what};", which + ".")
        self.step("sparsify", **args)


def render(steps: list[Step], cfg: Config | None = None, name: str = "main",
           header: list[str] | None = None, spans: list | None = None) -> str:
    out: list[str] = []
    for h in header or []:
        out.append(f"# {h}" if h else "#")
    out.append(f"recipe {name}() {{")
    for i, st in enumerate(steps):
        if i and st.comments:
            out.append("")
        for c in st.comments:
            out.append(f"    # {c}")
        parts = [f"{k}: {show(v)}" for k, v in st.args.items()]
        one = f"    {st.name}(" + ", ".join(parts) + ")"
        first = len(out) + 1
        if len(one) <= 100 or len(parts) <= 1:  # (a single argument cannot be wrapped)
            out.append(one)
        else:
            pad = " " * (len(st.name) + 5)
            out.append(f"    {st.name}(" + parts[0] + ",")
            for j, p in enumerate(parts[1:], 1):
                out.append(pad + p + ("," if j < len(parts) - 1 else ")"))
        if spans is not None:
            spans.append((first, len(out), st))
    out.append("}")
    return "\n".join(out) + "\n"


def lower(cfg: Config, name: str = "main") -> Lowered:
    """Lower a loaded ACT config to steps and recipe text."""
    lw = _Lowerer(cfg)
    steps = lw.run()
    header = [f"actc recipe lowered from the ACT config {cfg.path}.",
              "Edit freely: this is the plan `actc compile` runs (syntax: docs/language.md)."]
    loc = cfg.model_location
    if loc and loc.model_dir:
        files = ", ".join(f for f in (loc.model_filename, loc.params_filename) if f)
        header.append(f"Model (Global.model_dir): {loc.model_dir}" + (f" ({files})" if files else ""))
    if cfg.ignored_sections:
        header.append("Ignored (data/eval settings of the example scripts): "
                      + ", ".join(cfg.ignored_sections))
    spans: list = []
    text = render(steps, cfg, name, header, spans)
    line_map = []
    for first, last, st in spans:
        pos = cfg.where.get((st.section,)) if st.section else None
        if pos is not None:
            line_map.append((first, last, pos[0], pos[1]))
    return Lowered(steps=steps, text=text, notes=list(cfg.notes) + lw.notes, line_map=line_map)
