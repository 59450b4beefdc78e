"""Type tables as data: Paddle VarType codes and numpy dtypes -> ONNX TensorProto codes.

Kept here (not taken from ``onnx``) so converters import without the onnx package."""
from __future__ import annotations

import numpy as np

# onnx.TensorProto.DataType values
ONNX_CODE = {"float32": 1, "uint8": 2, "int8": 3, "int16": 5, "int32": 6, "int64": 7,
             "bool": 9, "float16": 10, "float64": 11, "bfloat16": 16}

# Paddle VarType.Type values (framework.proto) -> numpy dtype names
PADDLE_DTYPE = {0: "bool", 1: "int16", 2: "int32", 3: "int64", 4: "float16", 5: "float32",
                6: "float64", 20: "uint8", 21: "int8", 22: "bfloat16"}


def onnx_code(dtype) -> int:
    name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    if name not in ONNX_CODE:
        raise KeyError(name)
    return ONNX_CODE[name]


def paddle_dtype(code: int) -> str:
    return PADDLE_DTYPE.get(int(code), "float32")
