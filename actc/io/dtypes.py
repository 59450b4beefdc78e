"""Paddle VarType codes <-> numpy dtypes: the one table both the params codec and the IR use."""
from __future__ import annotations

import numpy as np

# VarType.Type code -> (name, numpy dtype). bf16 and fp8 have no numpy dtype: their raw bits
# are kept in a same-width unsigned integer so bytes round-trip unchanged.
VARTYPE_DTYPES: dict[int, tuple[str, np.dtype]] = {
    0: ("bool", np.dtype(np.bool_)),
    1: ("int16", np.dtype("<i2")),
    2: ("int32", np.dtype("<i4")),
    3: ("int64", np.dtype("<i8")),
    4: ("float16", np.dtype("<f2")),
    5: ("float32", np.dtype("<f4")),
    6: ("float64", np.dtype("<f8")),
    20: ("uint8", np.dtype(np.uint8)),
    21: ("int8", np.dtype(np.int8)),
    22: ("bfloat16", np.dtype("<u2")),
    23: ("complex64", np.dtype("<c8")),
    24: ("complex128", np.dtype("<c16")),
    32: ("float8_e4m3fn", np.dtype(np.uint8)),
    33: ("float8_e5m2", np.dtype(np.uint8)),
    36: ("uint16", np.dtype("<u2")),
    37: ("uint32", np.dtype("<u4")),
    38: ("uint64", np.dtype("<u8")),
}

def dtype_name(code: int) -> str:
    entry = VARTYPE_DTYPES.get(code)
    return entry[0] if entry else f"vartype{code}"


def numpy_dtype(code: int) -> np.dtype:
    entry = VARTYPE_DTYPES.get(code)
    if entry is None:
        raise KeyError(code)
    return entry[1]


def code_for(dtype) -> int:
    dt = np.dtype(dtype)
    for code, (_, known) in VARTYPE_DTYPES.items():
        if known == dt and dtype_name(code) not in ("bfloat16", "float8_e4m3fn", "float8_e5m2"):
            return code
    raise KeyError(f"no Paddle dtype for numpy {dt}")
