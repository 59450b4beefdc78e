"""Which op attrs a dump hides by default: the one table of attr defaults.

A saved Paddle op carries many attrs that say nothing about what it computes. The text dump
hides an attr when it is one of:

1. framework bookkeeping that every op carries (its role in training, the device pin, the
   Python call stack, ...), at its usual value;
2. a kernel-selection hint (Paddle's "extra" attrs: cuDNN/oneDNN switches and the like), which
   picks an implementation but never changes the result, at any value;
3. a semantic attr at the value Paddle's op definition gives it by default (``groups=1``,
   ``dilations`` all ones, ``data_format="NCHW"``, ``is_test=true`` in an inference model ...).

Anything not in this table is always shown. ``--attrs all`` shows everything. ``op_namescope``
is not an attr in the dump: it is shown as the op's location, ``loc("/scope/")``, unless it is
the root scope ``/``.
"""
from __future__ import annotations

from typing import Callable

ANY = object()  # hidden whatever the value


def _all_ones(v) -> bool:
    return isinstance(v, list) and all(x == 1 for x in v)


# attr name -> default. A default is a value (hidden when equal), ANY, or a predicate.
BOOKKEEPING: dict[str, object] = {
    "op_role": 0,            # forward; backward/optimizer roles are shown
    "op_role_var": [],
    "op_device": "",
    "op_callstack": ANY,     # the Python stack that built the op
    "op_namescope": ANY,     # rendered as loc("...") instead
    "with_quant_attr": False,
}

KERNEL_HINTS: dict[str, object] = {
    name: ANY for name in (
        "use_cudnn", "use_mkldnn", "use_onednn", "use_quantizer", "mkldnn_data_type",
        "onednn_data_type", "use_addto", "workspace_size_MB", "exhaustive_search",
        "fuse_relu_before_depthwise_conv", "force_fp32_output", "use_cpu_offload",
        "fuse_with_relu", "fuse_relu", "fuse_activation", "fuse_alpha", "fuse_beta",
        "Scale_in", "Scale_out", "Scale_in_eltwise", "Scale_weights", "Scale_x", "Scale_y",
        "x_data_format", "y_data_format", "fused_output_scale", "fused_reshape_Out",
        "fused_transpose_Out", "fused_reshape_X", "fused_transpose_X", "fused_reshape_Y",
        "fused_transpose_Y", "use_seq", "force_cpu",
    )
}

# Semantic defaults. Keyed by attr name; a value of the form {op_type: default} applies only to
# those ops (names like "axis" mean different things, with different defaults, per op).
_ELEMENTWISE = ("elementwise_add", "elementwise_sub", "elementwise_mul", "elementwise_div",
                "elementwise_max", "elementwise_min", "elementwise_pow", "elementwise_mod",
                "elementwise_floordiv", "less_than", "less_equal", "greater_than",
                "greater_equal", "equal", "not_equal")
SEMANTIC: dict[str, object] = {
    "is_test": True,
    "data_format": lambda v: v in ("NCHW", "AnyLayout"),
    "data_layout": lambda v: v in ("NCHW", "AnyLayout"),
    "dilations": _all_ones,
    "groups": 1,
    "padding_algorithm": "EXPLICIT",
    "ceil_mode": False,
    "exclusive": True,
    "global_pooling": False,
    "adaptive": False,
    "trainable_statistics": False,
    "trans_x": False,
    "trans_y": False,
    "transpose_X": False,
    "transpose_Y": False,
    "bias_after_scale": True,
    "place_type": -1,
    "keep_dim": False,
    "in_dtype": -1,
    "out_dtype": -1,
    "str_value": {"fill_constant": ""},
    "axis": {name: -1 for name in _ELEMENTWISE},
    "x_num_col_dims": {"mul": 1},
    "y_num_col_dims": {"mul": 1},
}

TABLES = (BOOKKEEPING, KERNEL_HINTS, SEMANTIC)


def _matches(default, value) -> bool:
    if default is ANY:
        return True
    if callable(default):
        try:
            return bool(default(value))
        except Exception:
            return False
    return value == default and type(value) is type(default)


def is_default(op_type: str, name: str, value) -> bool:
    """True when the dump hides ``name=value`` on an op of ``op_type`` by default."""
    for table in TABLES:
        if name in table:
            default = table[name]
            if isinstance(default, dict):
                if op_type not in default:
                    return False
                default = default[op_type]
            return _matches(default, value)
    return False


Predicate = Callable[[str, str, object], bool]
