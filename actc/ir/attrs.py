"""OpDesc attribute values <-> Python values, for every AttrType the schema defines."""
from __future__ import annotations

from actc.proto import framework_pb2 as fpb

A = fpb.AttrType
# AttrType -> the Attr field that holds its value; repeated fields are the plural names.
ATTR_FIELD = {
    A.INT: "i", A.FLOAT: "f", A.STRING: "s", A.INTS: "ints", A.FLOATS: "floats",
    A.STRINGS: "strings", A.BOOLEAN: "b", A.BOOLEANS: "bools", A.BLOCK: "block_idx",
    A.LONG: "l", A.BLOCKS: "blocks_idx", A.LONGS: "longs", A.FLOAT64S: "float64s",
    A.VAR: "var_name", A.VARS: "vars_name", A.FLOAT64: "float64", A.SCALAR: "scalar",
    A.SCALARS: "scalars",
}
REPEATED = {A.INTS, A.FLOATS, A.STRINGS, A.BOOLEANS, A.BLOCKS, A.LONGS, A.FLOAT64S, A.VARS,
            A.SCALARS}
TYPE_NAMES = {v: k for k, v in A.items()}
INT32_MIN, INT32_MAX = -(2 ** 31), 2 ** 31 - 1


def _scalar_value(s):
    t = fpb.Scalar.Type
    if s.type == t.BOOLEAN:
        return bool(s.b)
    if s.type == t.LONG:
        return int(s.i)
    if s.type == t.FLOAT64:
        return float(s.r)
    return complex(s.c.r, s.c.i)


def _make_scalar(value) -> fpb.Scalar:
    t = fpb.Scalar.Type
    if isinstance(value, bool):
        return fpb.Scalar(type=t.BOOLEAN, b=value)
    if isinstance(value, int):
        return fpb.Scalar(type=t.LONG, i=value)
    if isinstance(value, float):
        return fpb.Scalar(type=t.FLOAT64, r=value)
    return fpb.Scalar(type=t.COMPLEX128, c=fpb.Complex(r=value.real, i=value.imag))


def attr_value(attr: fpb.OpDesc.Attr):
    """The Python value of an attr (lists for repeated types)."""
    field = ATTR_FIELD[attr.type]
    if attr.type == A.SCALAR:
        return _scalar_value(attr.scalar)
    if attr.type == A.SCALARS:
        return [_scalar_value(s) for s in attr.scalars]
    value = getattr(attr, field)
    return list(value) if attr.type in REPEATED else value


def infer_attr_type(value) -> int:
    """The AttrType Paddle would use for a Python value."""
    if isinstance(value, bool):
        return A.BOOLEAN
    if isinstance(value, int):
        return A.INT if INT32_MIN <= value <= INT32_MAX else A.LONG
    if isinstance(value, float):
        return A.FLOAT
    if isinstance(value, str):
        return A.STRING
    if isinstance(value, (list, tuple)):
        items = list(value)
        if not items:
            return A.INTS
        if all(isinstance(v, bool) for v in items):
            return A.BOOLEANS
        if all(isinstance(v, int) and not isinstance(v, bool) for v in items):
            ok32 = all(INT32_MIN <= v <= INT32_MAX for v in items)
            return A.INTS if ok32 else A.LONGS
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in items):
            return A.FLOATS
        if all(isinstance(v, str) for v in items):
            return A.STRINGS
    raise TypeError(f"cannot store {value!r} as a Paddle attribute")


def fill_attr(attr: fpb.OpDesc.Attr, value, attr_type: int | None = None) -> None:
    """Set ``attr`` (name already set) to ``value``, clearing any previous value."""
    name = attr.name
    attr.Clear()
    attr.name = name
    attr.type = infer_attr_type(value) if attr_type is None else attr_type
    field = ATTR_FIELD[attr.type]
    if attr.type == A.SCALAR:
        attr.scalar.CopyFrom(_make_scalar(value))
    elif attr.type == A.SCALARS:
        attr.scalars.extend(_make_scalar(v) for v in value)
    elif attr.type in REPEATED:
        getattr(attr, field).extend(value)
    else:
        setattr(attr, field, value)
