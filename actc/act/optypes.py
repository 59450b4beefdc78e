"""Op-type lists ACT's quantization keys refer to, defined once.

These are data, learned from (not copied out of) PaddlePaddle 3.x
``paddle/static/quantization/quant_config.py`` and PaddleSlim ``paddleslim/quant/quanter.py``:

- ``WEIGHT_QUANT_OP_TYPES``: ops with a weight input that quantization rewrites
  (PaddleSlim ``TRANSFORM_PASS_OP_TYPES``; Paddle 2.4's ``_weight_supported_quantizable_op_type``;
  Paddle 3.x ``SUPPORT_WEIGHT_QUANTIZATION_OP_DICT``).
- ``ACT_QUANT_OP_TYPES``: ops whose activation inputs can be quantized
  (PaddleSlim ``QUANT_DEQUANT_PASS_OP_TYPES``; Paddle 2.4's ``_act_supported_quantizable_op_type``;
  Paddle 3.x ``SUPPORT_ACT_QUANTIZATION_OP_DICT``).
- ``TENSORRT_OP_TYPES``: what ACT quantizes when ``for_tensorrt: true``.
- ``FULL_QUANT_OP_TYPES``: what ACT quantizes when ``is_full_quantize: true``
  (weight list + activation list, in that order, without repeats).

No Paddle import: actc's YAML front end must work without Paddle installed.
"""
from __future__ import annotations

WEIGHT_QUANT_OP_TYPES: tuple[str, ...] = (
    "conv2d", "depthwise_conv2d", "conv2d_transpose", "mul", "matmul", "matmul_v2",
)

ACT_QUANT_OP_TYPES: tuple[str, ...] = (
    "mul", "matmul", "matmul_v2", "pool2d", "elementwise_add", "concat", "softmax", "argmax",
    "transpose", "equal", "gather", "greater_equal", "greater_than", "less_equal", "less_than",
    "mean", "not_equal", "reshape", "reshape2", "transpose2", "nearest_interp",
    "trilinear_interp", "slice", "squeeze", "elementwise_sub", "relu", "relu6", "leaky_relu",
    "prelu", "tanh", "swish", "dropout", "batch_norm", "layer_norm", "sigmoid",
    "elementwise_mul", "elementwise_pow", "hard_swish", "hard_sigmoid", "gru", "lstm", "pad2d",
    "pad3d", "flatten", "flatten2", "unsqueeze2", "flatten_contiguous_range", "split",
    "squeeze2", "nearest_interp_v2", "bilinear_interp", "bilinear_interp_v2",
    "fill_constant_batch_size_like", "arg_max", "abs", "assign", "cast", "clip", "box_coder",
    "crop", "cumsum", "expand_v2", "fill_any_like", "fill_constant", "gelu", "instance_norm",
    "lookup_table", "lookup_table_v2", "norm", "p_norm", "pow", "reduce_mean", "stack",
    "top_k_v2", "logical_and", "logical_not", "meshgrid", "roi_align", "strided_slice", "where",
    "grid_sampler", "tile", "group_norm", "reduce_sum", "square", "softplus", "shuffle_channel",
    "reduce_max", "scale",
)

TENSORRT_OP_TYPES: tuple[str, ...] = (
    "mul", "conv2d", "pool2d", "depthwise_conv2d", "elementwise_add", "leaky_relu",
)

FULL_QUANT_OP_TYPES: tuple[str, ...] = tuple(dict.fromkeys(WEIGHT_QUANT_OP_TYPES + ACT_QUANT_OP_TYPES))

# Everything ``quantize_op_types`` may name (ACT asserts membership in this set).
QUANTIZABLE_OP_TYPES: frozenset[str] = frozenset(FULL_QUANT_OP_TYPES)

# ACT's documented defaults (tutorial: conv layers conv2d/depthwise_conv2d and FC layers
# mul/matmul_v2; ACT_CONFIG_KEYS.md gives the longer lists PaddleSlim 2.6 really uses).
QUANT_AWARE_DEFAULT_OP_TYPES: tuple[str, ...] = (
    "conv2d", "depthwise_conv2d", "conv2d_transpose", "mul", "matmul", "matmul_v2",
)
QUANT_POST_DEFAULT_OP_TYPES: tuple[str, ...] = (
    "conv2d", "depthwise_conv2d", "mul", "matmul", "matmul_v2",
)

# Normalisation layers: UnstructurePrune with prune_params_type None sparsifies every parameter
# except these layers' parameters.
NORM_OP_TYPES: tuple[str, ...] = (
    "batch_norm", "sync_batch_norm", "layer_norm", "instance_norm", "group_norm",
)
