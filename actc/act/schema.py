"""ACT's YAML configuration keys, as data: the one source of truth for the YAML front end.

Every section PaddleSlim's ACT (auto compression, 2.6) reads, in both the current format
(seed 000) and the older one (seed 001), with each key's type(s), default, allowed values or
range, a one-line doc and its old-name alias. ``load.py`` validates against this table;
``lower.py`` and the docs read defaults from it.

Type tokens: ``int``, ``float`` (an int is accepted too), ``bool``, ``str``, ``null``, ``list``,
``mapping``. In ACT configs the string ``None`` means null (``recon_level: None``).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping

from . import optypes

# actc quantizes to 1..8 bits; ACT's own table accepts 1..16 (16-bit needs int16 kernels actc
# does not emit).
ACTC_BITS = (1, 8)
ACT_BITS = (1, 16)


@dataclass(frozen=True)
class Key:
    name: str
    types: tuple[str, ...]
    default: Any
    doc: str
    choices: tuple | None = None          # allowed values (of the scalar, or of each list item)
    range: tuple | None = None            # inclusive numeric bounds (scalar, or each list item)
    act_range: tuple | None = None        # ACT's wider bounds, quoted when actc's are exceeded
    items: tuple[str, ...] | None = None  # element types when the value is a list
    length: int | None = None             # exact list length ([low, high] search ranges)
    alias: str | None = None              # the old name (normalised to ``name`` with a note)
    value_aliases: Mapping[str, str] | None = None  # old enum spellings -> new
    sub: Mapping[str, "Key"] | None = None  # known sub-keys when the value is a mapping
    open: bool = False                    # the mapping also takes keys beyond ``sub`` (class args)
    required: bool = False
    ignored: str | None = None            # accepted but has no effect in actc: why (a warning)

    def describe(self) -> str:
        t = " or ".join(self.types)
        extra = ""
        if self.choices:
            extra = f" ({', '.join(map(str, self.choices))})"
        elif self.range:
            extra = f" ({self.range[0]}..{self.range[1]})"
        return f"{self.name}: {t} = {self.default!r}{extra} -- {self.doc}"


@dataclass(frozen=True)
class Section:
    name: str
    doc: str
    keys: Mapping[str, Key]
    alias: str | None = None       # old section name (Quantization -> QuantAware)
    old: bool = False              # an old-format-only section, rewritten by the loader
    per_teacher: bool = False      # every value is a list with one entry per teacher

    def key_names(self) -> list[str]:
        names = list(self.keys)
        names += [k.alias for k in self.keys.values() if k.alias]
        return names


def _keys(*keys: Key) -> dict[str, Key]:
    return {k.name: k for k in keys}


def K(name: str, types: str | tuple[str, ...], default: Any, doc: str, **kw: Any) -> Key:
    if isinstance(types, str):
        types = tuple(types.split("|"))
    return Key(name, types, default, doc, **kw)


WEIGHT_QUANTIZE_TYPES = ("abs_max", "channel_wise_abs_max", "range_abs_max", "moving_average_abs_max")
ACTIVATION_QUANTIZE_TYPES = ("abs_max", "range_abs_max", "moving_average_abs_max")
PTQ_ALGOS = ("KL", "hist", "avg", "mse", "emd", "abs_max", "min_max", "ptf")
RECON_LEVELS = ("layer-wise", "region-wise")
DISTILL_LOSSES = ("l2", "soft_label", "fsp", "skd", "dkd")
PRUNE_CRITERIA = ("l1_norm", "bn_scale", "geometry_median")

# ---------------------------------------------------------------------------------------------
# Quantization keys shared by QuantAware and QuantPost ("离线量化中基本的量化参数和量化训练相同").

_COMMON_QUANT = _keys(
    K("quantize_op_types", "list", list(optypes.QUANT_AWARE_DEFAULT_OP_TYPES),
      "op types to quantize (conv layers conv2d/depthwise_conv2d, FC layers mul/matmul_v2, ...)",
      items=("str",), choices=tuple(sorted(optypes.QUANTIZABLE_OP_TYPES))),
    K("weight_bits", "int", 8, "bits of quantized weights", range=ACTC_BITS, act_range=ACT_BITS),
    K("activation_bits", "int", 8, "bits of quantized activations", range=ACTC_BITS,
      act_range=ACT_BITS),
    K("weight_quantize_type", "str", "channel_wise_abs_max",
      "how weight scales are computed (use channel_wise_abs_max for TensorRT)",
      choices=WEIGHT_QUANTIZE_TYPES),
    K("activation_quantize_type", "str", "moving_average_abs_max",
      "how activation scales are computed (range_abs_max or moving_average_abs_max for TensorRT)",
      choices=ACTIVATION_QUANTIZE_TYPES),
    K("not_quant_pattern", "str|list", ["skip_quant"],
      "ops whose name_scope contains any of these strings stay float (FAQ 4 sets name_scope)",
      items=("str",)),
    K("dtype", "str", "int8", "type of quantized parameters; only int8", choices=("int8",)),
    K("window_size", "int", 10000, "window size of the 'range_abs_max' quantize type",
      range=(1, 2**31 - 1)),
    K("moving_rate", "float", 0.9, "decay of the 'moving_average_abs_max' quantize type",
      range=(0.0, 1.0)),
    K("for_tensorrt", "bool", False,
      "quantize the op types TensorRT runs in int8 (TENSORRT_OP_TYPES), overriding quantize_op_types"),
    K("is_full_quantize", "bool", False,
      "quantize every quantizable op type (TRANSFORM_PASS_OP_TYPES + QUANT_DEQUANT_PASS_OP_TYPES)"),
    K("onnx_format", "bool", True,
      "emit ONNX-style quantize_linear/dequantize_linear (needed to export ONNX); the tutorial "
      "says false, PaddleSlim's code defaults to true and actc follows the code"),
    K("use_pact", "bool", False, "learn activation clipping thresholds with PACT during QAT"),
)

QUANT_AWARE = Section(
    "QuantAware",
    "quantization-aware training: fake-quantize, train (usually with distillation), convert",
    dict(_COMMON_QUANT),
    alias="Quantization",
)

_PTQ_ONLY = _keys(
    K("batch_size", "int", 32, "calibration batch size", range=(1, 2**31 - 1)),
    K("batch_nums", "int|null", None,
      "calibration batches; null runs over all data (samples = batch_nums * batch_size)",
      range=(1, 2**31 - 1)),
    K("algo", "str", "hist", "activation calibration algorithm", choices=PTQ_ALGOS),
    K("hist_percent", "float", 0.999, "percentile of the 'hist' algorithm", range=(0.0, 1.0)),
    K("bias_correction", "bool", False, "apply bias correction after quantizing weights"),
    K("recon_level", "str|null", None,
      "reconstruction after calibration: layer-wise, region-wise (uses regions) or null (none)",
      choices=RECON_LEVELS),
    K("regions", "list|null", None,
      "for region-wise reconstruction: a list of [input var, output var] pairs", items=("list",)),
    K("region_weights_names", "list|null", None,
      "for region-wise reconstruction: the weight names of each region", items=("list",)),
    K("epochs", "int", 20, "reconstruction epochs (batch_nums * batch_size samples each)",
      range=(0, 2**31 - 1)),
    K("lr", "float", 0.1, "reconstruction learning rate", range=(0.0, float("inf"))),
    K("simulate_activation_quant", "bool", False,
      "add activation-quantization noise during reconstruction"),
    K("skip_tensor_list", "list|null", None,
      "ops producing these tensors (by name) stay float", items=("str",)),
)

_qp = dict(_COMMON_QUANT)
_qp["quantize_op_types"] = replace(_qp["quantize_op_types"],
                                   default=list(optypes.QUANT_POST_DEFAULT_OP_TYPES))
_qp["weight_quantize_type"] = replace(_qp["weight_quantize_type"],
                                      choices=("channel_wise_abs_max", "abs_max"))
_qp["activation_quantize_type"] = replace(_qp["activation_quantize_type"], default="range_abs_max")
for _n in ("use_pact", "window_size", "moving_rate"):
    _qp[_n] = replace(_qp[_n], ignored="it only matters for quantization-aware training")
_qp.update(_PTQ_ONLY)
QUANT_POST = Section("QuantPost", "post-training (static) quantization: calibrate, then convert", _qp)

HPO = Section(
    "HyperParameterOptimization",
    "search QuantPost's hyper-parameters (needs a QuantPost section)",
    _keys(
        K("ptq_algo", "list", ["KL", "hist", "avg", "mse"], "calibration algorithms to try",
          items=("str",), choices=PTQ_ALGOS),
        K("bias_correction", "list", [True, False], "bias-correction settings to try",
          items=("bool",), alias="bias_correct"),
        K("weight_quantize_type", "list", ["channel_wise_abs_max"], "weight quantize types to try",
          items=("str",), choices=("channel_wise_abs_max", "abs_max")),
        K("hist_percent", "list", [0.98, 0.999],
          "[low, high]: 'hist' percentiles are sampled uniformly in this range",
          items=("float",), length=2, range=(0.0, 1.0)),
        K("batch_num", "list", [10, 30],
          "[low, high]: calibration batch counts are sampled uniformly in this range",
          items=("int",), length=2, range=(1, 2**31 - 1)),
        K("max_quant_count", "int", 20, "trial budget", range=(1, 2**31 - 1)),
    ),
)

_DISTILL = _keys(
    K("alpha", "float|list", 1.0, "weight of the distillation loss (one per node pair if a list)",
      items=("float",), alias="distill_lambda"),
    K("loss", "str|list", "l2", "distillation loss (one per node pair if a list)",
      items=("str",), choices=DISTILL_LOSSES, alias="distill_loss",
      value_aliases={"l2_loss": "l2", "soft_label_loss": "soft_label", "fsp_loss": "fsp"}),
    K("node", "list|null", [],
      "distillation vars: student names (self-distillation), flat teacher/student pairs, or "
      "[[teacher, student], ...]; empty = the last layer with parameters",
      items=("str", "list"), alias="distill_node_pair"),
    K("teacher_model_dir", "str|null", None, "teacher model directory (null = the input model)"),
    K("teacher_model_filename", "str|null", None, "teacher program file (*.pdmodel or __model__)"),
    K("teacher_params_filename", "str|null", None,
      "teacher params file (*.pdiparams or __params__)"),
    K("merge_feed", "bool", True,
      "teacher and student share feed vars of the same name (old-format key)"),
)
DISTILLATION = Section("Distillation", "knowledge distillation from a teacher model", _DISTILL)

MULTI_TEACHER = Section(
    "MultiTeacherDistillation",
    "distillation from several teachers: each key is a list with one entry per teacher "
    "(teacher vars are prefixed teacher1_, teacher2_, ...)",
    {n: replace(k, alias=None, value_aliases=k.value_aliases) for n, k in _DISTILL.items()
     if n != "merge_feed"},
    per_teacher=True,
)

CHANNEL_PRUNE = Section(
    "ChannelPrune",
    "structured pruning of conv output channels",
    _keys(
        K("pruned_ratio", "float|list", None,
          "fraction of channels removed (one per prune_params_name entry if a list)",
          items=("float",), range=(0.0, 1.0), required=True),
        K("prune_params_name", "list|null", None,
          "conv weight names to prune; null = every conv2d weight with groups 1",
          items=("str",)),
        K("criterion", "str", "l1_norm", "channel importance measure", choices=PRUNE_CRITERIA),
    ),
)

ASP_PRUNE = Section(
    "ASPPrune",
    "2:4 semi-structured (ASP) sparsity",
    _keys(K("prune_params_name", "list|null", None,
            "weight names to sparsify; null = conv2d (groups 1), mul and matmul_v2 weights",
            items=("str",))),
)

TRANSFORMER_PRUNE = Section(
    "TransformerPrune",
    "structured pruning of transformer heads and FC layers",
    _keys(K("pruned_ratio", "float", None, "fraction of each FC layer removed",
            range=(0.0, 1.0), required=True)),
)

GMP_CONFIG = _keys(
    K("stable_iterations", "int", 0, "length of the stable phase, in global iterations",
      range=(0, 2**31 - 1)),
    K("pruning_iterations", "int", None,
      "length of the pruning phase, in global iterations (total_iters * 0.4~0.45)",
      range=(0, 2**31 - 1)),
    K("tunning_iterations", "int", None,
      "length of the tuning phase, in global iterations (total_iters * 0.4~0.45)",
      range=(0, 2**31 - 1)),
    K("resume_iteration", "int", -1, "global iteration to resume from (-1: start)",
      range=(-1, 2**31 - 1)),
    K("pruning_steps", "int", 100, "how many times the ratio is raised", range=(1, 2**31 - 1)),
    K("initial_ratio", "float", 0.15, "ratio at the start of the pruning phase", range=(0.0, 1.0)),
)

UNSTRUCTURE_PRUNE = Section(
    "UnstructurePrune",
    "unstructured (element-wise) sparsity, optionally on the GMP schedule",
    _keys(
        K("prune_strategy", "str|null", None, "null (one-shot) or gmp (gradual magnitude pruning)",
          choices=("gmp",)),
        K("prune_mode", "str", "ratio", "ratio or threshold", choices=("ratio", "threshold")),
        K("ratio", "float", 0.55, "sparsity ratio (prune_mode ratio only)", range=(0.0, 1.0),
          alias="pruned_ratio"),
        K("threshold", "float", 0.01, "magnitude threshold (prune_mode threshold only)",
          range=(0.0, float("inf"))),
        K("gmp_config", "mapping|null", None, "GMP schedule (prune_strategy gmp)", sub=GMP_CONFIG),
        K("prune_params_type", "str|null", "conv1x1_only",
          "conv1x1_only, or null = every parameter except normalisation layers'",
          choices=("conv1x1_only",)),
        K("local_sparsity", "bool", False,
          "ratio applies to each weight matrix (true) or to the whole model (false)"),
    ),
)

_TYPED_MAPPING = _keys(K("type", "str", None, "class name", required=True))

OPTIMIZER_BUILDER = _keys(
    K("optimizer", "mapping", {"type": "SGD"},
      "{type: SGD|Momentum|Adam|AdamW|..., plus that optimizer's arguments}",
      sub=_TYPED_MAPPING, open=True),
    K("weight_decay", "float|null", None, "L2 weight decay coefficient", range=(0.0, float("inf"))),
    K("regularizer", "mapping|null", None, "{type: L1Decay|L2Decay, coeff: ...}",
      sub=_TYPED_MAPPING, open=True),
    K("grad_clip", "mapping|null", None,
      "{type: ClipGradByGlobalNorm|ClipGradByNorm|ClipGradByValue, ...}",
      sub=_TYPED_MAPPING, open=True),
)

TRAIN_CONFIG = Section(
    "TrainConfig",
    "training used by QAT, pruning and distillation",
    _keys(
        K("epochs", "int|null", None, "training epochs", range=(1, 2**31 - 1)),
        K("train_iter", "int|null", None, "training iterations (instead of epochs)",
          range=(1, 2**31 - 1)),
        K("learning_rate", "float|mapping", 0.02,
          "a float, or {type: <paddle.optimizer.lr scheduler>, ...that class's arguments}",
          sub=_TYPED_MAPPING, open=True, range=(0.0, float("inf"))),
        K("optimizer_builder", "mapping", {"optimizer": {"type": "SGD"}},
          "{optimizer: {type, ...}, weight_decay, regularizer, grad_clip}",
          sub=OPTIMIZER_BUILDER),
        K("eval_iter", "int", 1000, "evaluate every this many iterations", range=(1, 2**31 - 1)),
        K("logging_iter", "int", 10, "log every this many iterations", range=(1, 2**31 - 1)),
        K("origin_metric", "float|null", None, "the uncompressed model's metric (for reports)"),
        K("target_metric", "float|null", None, "stop once this metric is reached"),
        K("amp_config", "mapping|null", None, "mixed-precision training settings", open=True,
          sub={}),
        K("recompute_config", "mapping|null", None, "recompute settings (multi-device)",
          open=True, sub={}, ignored="it only applies to multi-device training"),
        K("sharding_config", "mapping|null", None, "sharding settings (multi-device)",
          open=True, sub={}, ignored="it only applies to multi-device training"),
        K("sparse_model", "bool", False, "keep the sparsity pattern of a sparse input model"),
        # Old format: optimizer + optim_args -> optimizer_builder (done by the loader).
        K("optimizer", "str", None, "old format: optimizer class name (-> optimizer_builder)"),
        K("optim_args", "mapping|null", None,
          "old format: optimizer arguments (-> optimizer_builder)", open=True, sub={}),
    ),
)

# Old format: Prune{prune_algo: prune|asp} -> ChannelPrune / ASPPrune.
OLD_PRUNE = Section(
    "Prune",
    "old format: prune_algo prune -> ChannelPrune, asp -> ASPPrune",
    _keys(
        K("prune_algo", "str", "prune", "prune (-> ChannelPrune) or asp (-> ASPPrune)",
          choices=("prune", "asp")),
        K("pruned_ratio", "float|list|null", None, "see ChannelPrune.pruned_ratio",
          items=("float",), range=(0.0, 1.0)),
        K("prune_params_name", "list|null", None, "see ChannelPrune.prune_params_name",
          items=("str",)),
        K("criterion", "str", "l1_norm", "see ChannelPrune.criterion", choices=PRUNE_CRITERIA),
    ),
    old=True,
)

SECTIONS: dict[str, Section] = {s.name: s for s in (
    QUANT_AWARE, QUANT_POST, HPO, DISTILLATION, MULTI_TEACHER, CHANNEL_PRUNE, ASP_PRUNE,
    TRANSFORMER_PRUNE, UNSTRUCTURE_PRUNE, TRAIN_CONFIG, OLD_PRUNE)}

SECTION_ALIASES: dict[str, str] = {s.alias: s.name for s in SECTIONS.values() if s.alias}

# Global: not read by ACT; actc reads the model location from it.
GLOBAL_MODEL_KEYS: dict[str, Key] = _keys(
    K("model_dir", "str", None, "directory of the model to compress"),
    K("model_filename", "str|null", None, "program file in model_dir (*.pdmodel)"),
    K("params_filename", "str|null", None, "params file in model_dir (*.pdiparams)"),
)
# Global keys of ACT's example scripts that actc uses beyond the model location.
GLOBAL_TRAIN_KEYS: dict[str, Key] = _keys(
    K("batch_size", "int", None, "the example script's batch size: actc's train batch size"),
    K("input_shapes", "list|null", None, "the model inputs' shapes, one list per feed",
      items=("int", "list")),
    K("target_speedup", "float|null", None, "auto mode: the speed-up to aim for (noted)"),
    K("deploy_hardware", "str|null", None, "auto mode: the deployment target (noted)"),
)

# Sections that belong to the user's data pipeline / evaluation, not to compression:
# accepted and reported as ignored, by name.
IGNORED_SECTIONS: dict[str, str] = {
    "Global": "example-script settings (data paths, input names, batch size, hardware); "
              "actc only reads model_dir/model_filename/params_filename from it",
    "TrainDataset": "training data is given to actc separately",
    "EvalDataset": "evaluation data is given to actc separately",
    "TestDataset": "test data is given to actc separately",
    "Dataset": "data is given to actc separately",
    "DataLoader": "data is given to actc separately",
    "TrainReader": "the data reader is the user's script's business",
    "EvalReader": "the data reader is the user's script's business",
    "TestReader": "the data reader is the user's script's business",
    "Reader": "the data reader is the user's script's business",
    "Metric": "evaluation metrics are the user's script's business",
    "PostProcess": "post-processing is the user's script's business",
    "Preprocess": "pre-processing is the user's script's business",
    "Export": "export settings of the example scripts",
    "Deploy": "deployment settings of the example scripts",
}


def all_section_names() -> list[str]:
    """Every section name the loader knows: compression sections, aliases, ignored ones."""
    return list(SECTIONS) + list(SECTION_ALIASES) + list(IGNORED_SECTIONS)


def defaults(section: str) -> dict[str, Any]:
    return {n: k.default for n, k in SECTIONS[section].keys.items()}
