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
    alias: str | None = None              # another name (normalised to ``name``)
    alias_old: bool = True                # the alias is an old name (noted); False: ACT's own
    value_aliases: Mapping[str, str] | None = None  # old enum spellings -> new
    sub: Mapping[str, "Key"] | None = None  # known sub-keys when the value is a mapping
    open: bool = False                    # the mapping also takes keys beyond ``sub`` (class args)
    required: bool = False
    ignored: str | None = None            # accepted but has no effect in actc: why
    ignored_kind: str = "warning"         # how that is reported: "warning" (likely a mistake)
                                          # or "note" (a legitimate ACT setting actc does not need)
    refused: Mapping[Any, str] | None = None  # values ACT accepts that actc cannot do: why

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
# The old Prune section's prune_algo values and the section each one means.
OLD_PRUNE_ALGOS = ("prune", "asp", "transformer_pruner")
OLD_PRUNE_TARGETS = {"prune": "ChannelPrune", "asp": "ASPPrune",
                     "transformer_pruner": "TransformerPrune"}

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
      "for region-wise reconstruction: a list of [input var, output var] pairs (null: the "
      "program's blocks)", items=("list",)),
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
          items=("bool",), alias="bias_correct", alias_old=False),
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
    dict(_DISTILL),  # the old distill_* names too; merge_feed is one bool for every teacher
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
        K("amp_config", "mapping|null", None,
          "mixed-precision training settings (custom_white_list, custom_black_list, "
          "custom_black_varnames, use_pure_fp16, use_fp16_guard, or fleet's amp_configs)",
          open=True, sub={}, ignored_kind="note",
          ignored="actc trains in float32 (mixed precision only changes training speed and "
                  "memory; the compressed model is the same kind either way)"),
        K("recompute_config", "mapping|null", None, "recompute settings (multi-device)",
          open=True, sub={}, ignored_kind="note",
          ignored="recomputation only saves memory in fleet training; actc's data-parallel "
                  "training keeps activations (the model is the same)"),
        K("sharding_config", "mapping|null", None, "sharding settings (multi-device)",
          open=True, sub={}, ignored_kind="note",
          ignored="sharding only splits optimizer state across devices in fleet training; "
                  "actc's data-parallel training does not shard (the model is the same)"),
        # Old format (PaddleSlim 2.3): fleet on/off. 2.6 decides by the number of GPUs.
        K("use_fleet", "bool|null", None, "old format: train with fleet (multi-device)",
          ignored_kind="note",
          ignored="actc trains data-parallel when started under paddle.distributed.launch "
                  "(see actc.train.parallel); the setting does not change the model"),
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
        K("prune_algo", "str", "prune", "prune (-> ChannelPrune), asp (-> ASPPrune) or "
          "transformer_pruner (-> TransformerPrune)", choices=OLD_PRUNE_ALGOS),
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
    K("input_shapes", "list|mapping|null", None,
      "the model inputs' shapes: one list (one feed), one list per feed, or {feed name: shape}",
      items=("int", "list"), open=True, sub={}),
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


# ---------------------------------------------------------------------------------------------
# The ACT audit: every section, key and value ACT reads, and what actc does with each.
#
# ACT_FIELDS: the fields of each strategy class, as PaddleSlim 2.6 defines them in
# ``paddleslim/auto_compression/strategy_config.py`` (the ``__init__`` arguments of QuantAware,
# QuantPost, HyperParameterOptimization, Distillation, MultiTeacherDistillation, ChannelPrune,
# ASPPrune, TransformerPrune, UnstructurePrune, TrainConfig; ``config_helpers.
# extract_strategy_config`` builds each one from its YAML section with ``Class(**section)``, so
# these are exactly the keys ACT 2.6 accepts). ProgramInfo is built in code, never from YAML.
# ACT_OLD_FIELDS: the namedtuples of the same file in the older format (PaddleSlim 2.3, seed
# 001): Quantization, Distillation/MultiTeacherDistillation with distill_*, merge_feed, Prune
# (prune_algo prune|asp|transformer_pruner, create_compressed_program.build_prune_program),
# UnstructurePrune with pruned_ratio, TrainConfig with optimizer/optim_args/use_fleet.
# ACT_GLOBAL_FIELDS: AutoCompression's own arguments that ACT's example scripts take from Global.

ACT_FIELDS: dict[str, tuple[str, ...]] = {
    "QuantAware": ("quantize_op_types", "weight_bits", "activation_bits", "not_quant_pattern",
                   "use_pact", "activation_quantize_type", "weight_quantize_type", "dtype",
                   "window_size", "moving_rate", "for_tensorrt", "onnx_format",
                   "is_full_quantize"),
    "QuantPost": ("batch_size", "batch_nums", "epochs", "lr", "algo", "hist_percent", "regions",
                  "region_weights_names", "recon_level", "is_full_quantize", "bias_correction",
                  "weight_quantize_type", "activation_quantize_type",
                  "simulate_activation_quant", "skip_tensor_list", "onnx_format",
                  "quantize_op_types", "weight_bits", "activation_bits"),
    "HyperParameterOptimization": ("ptq_algo", "bias_correct", "weight_quantize_type",
                                   "hist_percent", "batch_num", "max_quant_count"),
    "Distillation": ("loss", "node", "alpha", "teacher_model_dir", "teacher_model_filename",
                     "teacher_params_filename"),
    "MultiTeacherDistillation": ("loss", "node", "alpha", "teacher_model_dir",
                                 "teacher_model_filename", "teacher_params_filename"),
    "ChannelPrune": ("pruned_ratio", "prune_params_name", "criterion"),
    "ASPPrune": ("prune_params_name",),
    "TransformerPrune": ("pruned_ratio",),
    "UnstructurePrune": ("prune_strategy", "prune_mode", "threshold", "ratio", "gmp_config",
                         "prune_params_type", "local_sparsity"),
    "TrainConfig": ("epochs", "train_iter", "learning_rate", "optimizer_builder", "eval_iter",
                    "logging_iter", "origin_metric", "target_metric", "amp_config",
                    "recompute_config", "sharding_config", "sparse_model"),
}
ACT_OLD_FIELDS: dict[str, tuple[str, ...]] = {
    "Quantization": ("quantize_op_types", "weight_bits", "activation_bits", "not_quant_pattern",
                     "use_pact", "is_full_quantize", "activation_quantize_type",
                     "weight_quantize_type"),
    "Distillation": ("distill_loss", "distill_node_pair", "distill_lambda", "teacher_model_dir",
                     "teacher_model_filename", "teacher_params_filename", "merge_feed"),
    "MultiTeacherDistillation": ("distill_loss", "distill_node_pair", "distill_lambda",
                                 "teacher_model_dir", "teacher_model_filename",
                                 "teacher_params_filename", "merge_feed"),
    "HyperParameterOptimization": ("ptq_algo", "bias_correct", "weight_quantize_type",
                                   "hist_percent", "batch_num", "max_quant_count"),
    "Prune": ("prune_algo", "pruned_ratio", "prune_params_name", "criterion"),
    "UnstructurePrune": ("prune_strategy", "prune_mode", "threshold", "pruned_ratio",
                         "gmp_config", "prune_params_type", "local_sparsity"),
    "TrainConfig": ("epochs", "learning_rate", "optimizer", "optim_args", "eval_iter",
                    "logging_iter", "origin_metric", "target_metric", "use_fleet", "amp_config",
                    "recompute_config", "sharding_config", "sparse_model"),
}
ACT_GLOBAL_FIELDS = ("model_dir", "model_filename", "params_filename", "input_shapes",
                     "target_speedup", "deploy_hardware")

ACTED, NOTED, REFUSED = "acted", "noted", "refused"


@dataclass(frozen=True)
class Audit:
    """One thing ACT accepts and what actc does with it.

    ``acted``: lowered into the recipe (``shows`` is text the lowered recipe contains);
    ``noted``: accepted with a note or warning at the key's line (actc ignores it, or reads an
    old spelling); ``refused``: a ConfigError at the key's line -- only for values that change
    what the model becomes and that actc cannot do. ``also``: sibling keys the example needs;
    ``context``: other sections the example needs (replacing the audit test's default)."""
    section: str
    key: str | None
    value: Any
    outcome: str
    shows: str | None = None
    also: Mapping[str, Any] | None = None
    context: Mapping[str, Any] | None = None


def _enum(section: str, key: str, values, shows: str = "{k}: {v}", **kw) -> list[Audit]:
    """One acted entry per value of an enumeration (refused where the Key says so)."""
    spec = SECTIONS[section].keys[key] if section in SECTIONS else None
    out = []
    for v in values:
        refused = spec is not None and spec.refused and v in spec.refused
        out.append(Audit(section, key, v, REFUSED if refused else ACTED,
                         None if refused else shows.format(k=key, v=v), **kw))
    return out


_TRAIN = {"TrainConfig": {"epochs": 1}}
_DIST_TRAIN = {"Distillation": {}, "TrainConfig": {"epochs": 1}}
_GMP = {"stable_iterations": 0, "pruning_iterations": 40, "tunning_iterations": 40,
        "resume_iteration": -1, "pruning_steps": 4, "initial_ratio": 0.15}


def _quant_entries(sec: str, post: bool) -> list[Audit]:
    wqt = ("channel_wise_abs_max", "abs_max") if post else WEIGHT_QUANTIZE_TYPES
    e = [
        Audit(sec, "quantize_op_types", ["conv2d", "mul"], ACTED, "op.type in {conv2d, mul}"),
        Audit(sec, "weight_bits", 4, ACTED, "weight_bits: 4"),
        Audit(sec, "weight_bits", 16, REFUSED),          # ACT: 1..16; actc emits 1..8 only
        Audit(sec, "activation_bits", 6, ACTED, "activation_bits: 6"),
        Audit(sec, "activation_bits", 12, REFUSED),
        Audit(sec, "is_full_quantize", True, ACTED, "pool2d, elementwise_add"),
        *_enum(sec, "weight_quantize_type", wqt),
        *_enum(sec, "activation_quantize_type", ACTIVATION_QUANTIZE_TYPES),
    ]
    if sec == "Quantization":  # the old namedtuple's 8 fields
        return e + [Audit(sec, "not_quant_pattern", ["head"], ACTED,
                          'op.name_scope contains "head"'),
                    Audit(sec, "use_pact", True, ACTED, "pact(")]
    e.append(Audit(sec, "onnx_format", False, ACTED, "format: fake"))
    e.append(Audit(sec, "onnx_format", True, ACTED, "format: onnx"))
    if post:
        return e
    return e + [
        Audit(sec, "not_quant_pattern", ["head"], ACTED, 'op.name_scope contains "head"'),
        Audit(sec, "not_quant_pattern", "head", ACTED, 'op.name_scope contains "head"'),
        Audit(sec, "use_pact", True, ACTED, "pact("),
        Audit(sec, "dtype", "int8", ACTED, "dtype: int8"),
        Audit(sec, "window_size", 5000, ACTED, "window_size: 5000",
              also={"activation_quantize_type": "range_abs_max"}),
        Audit(sec, "moving_rate", 0.8, ACTED, "moving_rate: 0.8"),
        Audit(sec, "for_tensorrt", True, ACTED, "op.type in {mul, conv2d, pool2d"),
    ]


_RECON = {"recon_level": "layer-wise"}
_MT = {"teacher_model_dir": ["./t1", "./t2"]}

AUDIT: list[Audit] = [
    # -- quantization --------------------------------------------------------------------------
    *_quant_entries("QuantAware", post=False),
    Audit("Quantization", None, {}, NOTED),               # old name of QuantAware
    *_quant_entries("Quantization", post=False),
    *_quant_entries("QuantPost", post=True),
    Audit("QuantPost", "batch_size", 16, ACTED, "batch_size: 16"),
    Audit("QuantPost", "batch_nums", 10, ACTED, "batch_nums: 10"),
    Audit("QuantPost", "batch_nums", None, ACTED, "batch_nums: null"),
    *_enum("QuantPost", "algo", PTQ_ALGOS),
    Audit("QuantPost", "hist_percent", 0.99, ACTED, "hist_percent: 0.99"),
    Audit("QuantPost", "bias_correction", True, ACTED, "bias_correction: true"),
    Audit("QuantPost", "recon_level", None, ACTED, "calibrate("),
    Audit("QuantPost", "recon_level", "layer-wise", ACTED, "recon_level: layer_wise"),
    Audit("QuantPost", "recon_level", "region-wise", ACTED, "recon_level: region_wise",
          also={"regions": [["a.tmp_0", "b.tmp_0"]]}),
    Audit("QuantPost", "recon_level", "region-wise", ACTED, "regions: null"),   # automatic
    Audit("QuantPost", "epochs", 5, ACTED, "epochs: 5", also=_RECON),
    Audit("QuantPost", "lr", 0.01, ACTED, "lr: 0.01", also=_RECON),
    Audit("QuantPost", "simulate_activation_quant", True, ACTED,
          "simulate_activation_quant: true", also=_RECON),
    Audit("QuantPost", "regions", [["a.tmp_0", "b.tmp_0"]], NOTED),  # only with region-wise
    Audit("QuantPost", "region_weights_names", [["w_0"]], NOTED),
    Audit("QuantPost", "skip_tensor_list", ["x.tmp_0"], ACTED, 'op.output in ["x.tmp_0"]'),
    Audit("HyperParameterOptimization", "ptq_algo", ["KL", "mse"], ACTED, "ptq_algo: [KL, mse]",
          context={"QuantPost": {}}),
    Audit("HyperParameterOptimization", "bias_correct", [True], ACTED,
          "bias_correction: [true]", context={"QuantPost": {}}),
    Audit("HyperParameterOptimization", "weight_quantize_type", ["abs_max"], ACTED,
          "weight_quantize_type: [abs_max]", context={"QuantPost": {}}),
    Audit("HyperParameterOptimization", "hist_percent", [0.9, 0.99], ACTED,
          "hist_percent: 0.9 .. 0.99", context={"QuantPost": {}}),
    Audit("HyperParameterOptimization", "batch_num", [5, 12], ACTED, "batch_num: 5 .. 12",
          context={"QuantPost": {}}),
    Audit("HyperParameterOptimization", "max_quant_count", 5, ACTED, "max_trials: 5",
          context={"QuantPost": {}}),
    # -- distillation ----------------------------------------------------------------------------
    *_enum("Distillation", "loss", DISTILL_LOSSES, context=_TRAIN),
    *[Audit("Distillation", "loss", old, NOTED, f"loss: {new}", context=_TRAIN)
      for old, new in DISTILLATION.keys["loss"].value_aliases.items()],
    Audit("Distillation", "node", ["a.tmp_0"], ACTED, '["teacher_a.tmp_0", "a.tmp_0"]',
          context=_TRAIN),
    Audit("Distillation", "node", ["teacher_a.tmp_0", "a.tmp_0"], ACTED,
          'nodes: [["teacher_a.tmp_0", "a.tmp_0"]]', context=_TRAIN),
    Audit("Distillation", "node", [["a", "b", "c"], ["d"]], ACTED,   # ACT 2.6 node groups
          "loss: [l2, l2, l2, soft_label]", also={"loss": ["l2", "soft_label"]}, context=_TRAIN),
    Audit("Distillation", "alpha", 0.5, ACTED, "alpha: 0.5", context=_TRAIN),
    Audit("Distillation", "teacher_model_dir", "./t", ACTED, 'teacher: "./t"', context=_TRAIN),
    Audit("Distillation", "teacher_model_filename", "t.pdmodel", ACTED,
          'teacher_model_filename: "t.pdmodel"', also={"teacher_model_dir": "./t"},
          context=_TRAIN),
    Audit("Distillation", "teacher_params_filename", "t.pdiparams", ACTED,
          'teacher_params_filename: "t.pdiparams"', also={"teacher_model_dir": "./t"},
          context=_TRAIN),
    Audit("Distillation", "distill_loss", "l2_loss", NOTED, "loss: l2", context=_TRAIN),
    Audit("Distillation", "distill_node_pair", ["teacher_a.tmp_0", "a.tmp_0"], NOTED,
          'nodes: [["teacher_a.tmp_0", "a.tmp_0"]]', context=_TRAIN),
    Audit("Distillation", "distill_lambda", 0.5, NOTED, "alpha: 0.5", context=_TRAIN),
    Audit("Distillation", "merge_feed", False, ACTED, "merge_feed: false", context=_TRAIN),
    Audit("MultiTeacherDistillation", "loss", ["l2", "soft_label"], ACTED, "loss: soft_label",
          also=_MT, context=_TRAIN),
    Audit("MultiTeacherDistillation", "node", [["teacher1_a", "a"], ["teacher2_b", "b"]], ACTED,
          '[["teacher2_b", "b"]]', also=_MT, context=_TRAIN),
    Audit("MultiTeacherDistillation", "alpha", [1.0, 0.5], ACTED, "alpha: 0.5", also=_MT,
          context=_TRAIN),
    Audit("MultiTeacherDistillation", "teacher_model_dir", ["./t1", "./t2"], ACTED,
          'teacher: "./t2"', context=_TRAIN),
    Audit("MultiTeacherDistillation", "teacher_model_filename", ["a.pdmodel", "b.pdmodel"],
          ACTED, 'teacher_model_filename: "b.pdmodel"', also=_MT, context=_TRAIN),
    Audit("MultiTeacherDistillation", "teacher_params_filename", ["a.pdiparams", "b.pdiparams"],
          ACTED, 'teacher_params_filename: "b.pdiparams"', also=_MT, context=_TRAIN),
    Audit("MultiTeacherDistillation", "distill_loss", ["l2_loss", "l2"], NOTED, "loss: l2",
          also=_MT, context=_TRAIN),
    Audit("MultiTeacherDistillation", "distill_node_pair",
          [["teacher1_a", "a"], ["teacher2_b", "b"]], NOTED, '[["teacher2_b", "b"]]', also=_MT,
          context=_TRAIN),
    Audit("MultiTeacherDistillation", "distill_lambda", [1.0, 0.5], NOTED, "alpha: 0.5",
          also=_MT, context=_TRAIN),
    Audit("MultiTeacherDistillation", "merge_feed", False, ACTED, "merge_feed: false",
          also=_MT, context=_TRAIN),
    # QuantPost beside Distillation: ACT distils first (a teacher of its own), else a no-op.
    Audit("Distillation", "teacher_model_dir", "./t", ACTED, "distill(teacher", context={
        "QuantPost": {}, "TrainConfig": {"epochs": 1}}),
    Audit("Distillation", None, {}, NOTED, context={"QuantPost": {}}),
    # -- pruning -------------------------------------------------------------------------------
    Audit("ChannelPrune", "pruned_ratio", 0.3, ACTED, "ratio: 0.3", context=_DIST_TRAIN),
    Audit("ChannelPrune", "pruned_ratio", [0.5, 0.25], ACTED, '"conv2d_1.w_0": 0.25',
          also={"prune_params_name": ["conv2d_0.w_0", "conv2d_1.w_0"]}, context=_DIST_TRAIN),
    # ACT reads a list without prune_params_name in the model's conv order; actc cannot tell it
    Audit("ChannelPrune", "pruned_ratio", [0.5, 0.25], REFUSED, context=_DIST_TRAIN),
    Audit("ChannelPrune", "prune_params_name", ["conv2d_0.w_0"], ACTED,
          'op.input in ["conv2d_0.w_0"]', also={"pruned_ratio": 0.3}, context=_DIST_TRAIN),
    *_enum("ChannelPrune", "criterion", PRUNE_CRITERIA, also={"pruned_ratio": 0.3},
           context=_DIST_TRAIN),
    Audit("ASPPrune", "prune_params_name", ["fc_0.w_0"], ACTED, 'op.input in ["fc_0.w_0"]',
          context=_DIST_TRAIN),
    Audit("ASPPrune", "prune_params_name", None, ACTED, "op.type in {mul, matmul_v2}",
          context=_DIST_TRAIN),
    Audit("TransformerPrune", "pruned_ratio", 0.25, ACTED, "prune_transformer(ratio: 0.25)",
          context=_DIST_TRAIN),
    Audit("UnstructurePrune", "prune_strategy", None, ACTED, "sparsify(", context=_DIST_TRAIN),
    Audit("UnstructurePrune", "prune_strategy", "gmp", ACTED, "strategy: gmp",
          also={"gmp_config": _GMP}, context=_DIST_TRAIN),
    Audit("UnstructurePrune", "prune_strategy", "gmp", NOTED, "strategy: gmp",  # ACT's schedule
          context=_DIST_TRAIN),
    *_enum("UnstructurePrune", "prune_mode", ("ratio", "threshold"), shows="mode: {v}",
           context=_DIST_TRAIN),
    Audit("UnstructurePrune", "threshold", 0.1, ACTED, "threshold: 0.1",
          also={"prune_mode": "threshold"}, context=_DIST_TRAIN),
    Audit("UnstructurePrune", "ratio", 0.7, ACTED, "ratio: 0.7", context=_DIST_TRAIN),
    Audit("UnstructurePrune", "pruned_ratio", 0.7, NOTED, "ratio: 0.7", context=_DIST_TRAIN),
    Audit("UnstructurePrune", "gmp_config", _GMP, ACTED, "pruning_iterations: 40",
          also={"prune_strategy": "gmp"}, context=_DIST_TRAIN),
    Audit("UnstructurePrune", "prune_params_type", "conv1x1_only", ACTED, "op.is_conv1x1",
          context=_DIST_TRAIN),
    Audit("UnstructurePrune", "prune_params_type", None, ACTED, "op.has_weight and not",
          context=_DIST_TRAIN),
    Audit("UnstructurePrune", "local_sparsity", True, ACTED, "local_sparsity: true",
          context=_DIST_TRAIN),
    *[Audit("Prune", "prune_algo", algo, NOTED, step, also=also, context=_DIST_TRAIN)
      for algo, step, also in (("prune", "prune_channels(", {"pruned_ratio": 0.3}),
                               ("asp", "asp_prune(", None),
                               ("transformer_pruner", "prune_transformer(",
                                {"pruned_ratio": 0.3}))],
    Audit("Prune", "pruned_ratio", 0.3, ACTED, "ratio: 0.3", context=_DIST_TRAIN),
    Audit("Prune", "prune_params_name", ["conv2d_0.w_0"], ACTED, 'op.input in ["conv2d_0.w_0"]',
          also={"pruned_ratio": 0.3}, context=_DIST_TRAIN),
    Audit("Prune", "criterion", "bn_scale", ACTED, "criterion: bn_scale",
          also={"pruned_ratio": 0.3}, context=_DIST_TRAIN),
    Audit("Prune", "criterion", "bn_scale", NOTED, "asp_prune(",     # no effect with asp
          also={"prune_algo": "asp"}, context=_DIST_TRAIN),
    # -- training --------------------------------------------------------------------------------
    Audit("TrainConfig", "epochs", 3, ACTED, "epochs: 3"),
    Audit("TrainConfig", "train_iter", 100, ACTED, "train_iter: 100"),
    Audit("TrainConfig", "learning_rate", 0.01, ACTED, "learning_rate: 0.01"),
    Audit("TrainConfig", "learning_rate",
          {"type": "PiecewiseDecay", "boundaries": [100], "values": [0.01, 0.001]}, ACTED,
          "type: PiecewiseDecay"),
    Audit("TrainConfig", "learning_rate",
          {"type": "CosineAnnealingDecay", "learning_rate": 0.01, "T_max": 100}, ACTED,
          "type: CosineAnnealingDecay"),
    *[Audit("TrainConfig", "optimizer_builder", {"optimizer": {"type": t}}, ACTED, f"type: {t}")
      for t in ("SGD", "Momentum", "Adam", "AdamW")],
    Audit("TrainConfig", "optimizer_builder",
          {"optimizer": {"type": "Momentum", "momentum": 0.9}, "weight_decay": 4e-05}, ACTED,
          "weight_decay: 4.0e-05"),
    Audit("TrainConfig", "optimizer_builder",
          {"optimizer": {"type": "SGD"}, "regularizer": {"type": "L2Decay", "coeff": 0.0001}},
          ACTED, "type: L2Decay"),
    Audit("TrainConfig", "optimizer_builder",
          {"optimizer": {"type": "SGD"},
           "grad_clip": {"type": "ClipGradByGlobalNorm", "clip_norm": 1.0}}, ACTED,
          "type: ClipGradByGlobalNorm"),
    Audit("TrainConfig", "eval_iter", 50, ACTED, "eval_iter: 50"),
    Audit("TrainConfig", "logging_iter", 5, ACTED, "logging_iter: 5"),
    Audit("TrainConfig", "origin_metric", 0.7, ACTED, "origin_metric: 0.7"),
    Audit("TrainConfig", "target_metric", 0.7, ACTED, "target_metric: 0.7"),
    Audit("TrainConfig", "amp_config", {"use_pure_fp16": True, "custom_white_list": ["conv2d"]},
          NOTED),
    Audit("TrainConfig", "recompute_config", {"checkpoints": ["a.tmp_0"]}, NOTED),
    Audit("TrainConfig", "sharding_config", {"sharding_degree": 2}, NOTED),
    Audit("TrainConfig", "sparse_model", True, ACTED, "sparse_model: true"),
    Audit("TrainConfig", "optimizer", "Momentum", NOTED, "type: Momentum"),
    Audit("TrainConfig", "optim_args", {"weight_decay": 0.0005}, NOTED, "weight_decay: 0.0005"),
    Audit("TrainConfig", "optim_args",   # 2.3: grad_clip by class name + grad_clip_args
          {"grad_clip": "ClipGradByNorm", "grad_clip_args": {"clip_norm": 2.0}}, NOTED,
          "grad_clip: {type: ClipGradByNorm, clip_norm: 2.0}"),
    Audit("TrainConfig", "use_fleet", True, NOTED),
    # pruning then QAT: ACT trains the quantization stage 10% as long at 10% of the rate
    Audit("TrainConfig", "epochs", 20, ACTED, "epochs: 2,", context={
        "ChannelPrune": {"pruned_ratio": 0.3}, "QuantAware": {}, "Distillation": {}}),
    # -- Global (AutoCompression's arguments in ACT's example scripts) ---------------------------
    Audit("Global", "model_dir", "./m", ACTED, "Model (Global.model_dir): ./m"),
    Audit("Global", "model_filename", "m.pdmodel", ACTED, "(m.pdmodel",
          also={"model_dir": "./m"}),
    Audit("Global", "params_filename", "m.pdiparams", ACTED, "m.pdiparams)",
          also={"model_dir": "./m"}),
    Audit("Global", "input_shapes", [1, 3, 32, 32], ACTED, "set_feed_shape(index: 0"),
    Audit("Global", "input_shapes", [[1, 3, 32, 32], [1, 4]], ACTED, "set_feed_shape(index: 1"),
    Audit("Global", "input_shapes", {"x": [1, 3, 32, 32]}, ACTED, 'name: "x"'),
    Audit("Global", "batch_size", 8, ACTED, "batch_size: 8", context=_DIST_TRAIN),
    Audit("Global", "target_speedup", 2.0, ACTED, "target_speedup: 2.0", context=_TRAIN),
    Audit("Global", "deploy_hardware", "gpu", ACTED, 'deploy_hardware: "gpu"', context=_TRAIN),
    *[Audit("Global", k, v, NOTED) for k, v in (("input_name", "x"), ("data_dir", "./data"),
                                                ("reader_config", "r.yaml"))],
    # -- sections only the example scripts read -------------------------------------------------
    *[Audit(name, None, {"k": 1}, NOTED) for name in IGNORED_SECTIONS if name != "Global"],
    Audit("MyReader", None, {"k": 1}, NOTED),
]
