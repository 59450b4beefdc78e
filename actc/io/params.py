"""Read and write ``.pdiparams`` (Paddle's save_combine format) with numpy, no Paddle.

Layout per tensor, in ``sorted()`` order of the persistable var names, no header or trailer:
``<I`` version 0, ``<Q`` lod_level, per level ``<Q`` nbytes + data, ``<I`` tensor version 0,
``<i`` TensorDesc size, TensorDesc proto, raw little-endian data.
Reading memory-maps the file: arrays are views, so a large file is never held twice.
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Sequence

import numpy as np

from actc.errors import ActcError
from actc.io.dtypes import code_for, dtype_name, numpy_dtype
from actc.proto import framework_pb2 as fpb


@dataclass
class Tensor:
    """One stored tensor. ``desc`` keeps the file's TensorDesc bytes so unchanged tensors
    are written back byte for byte; it is dropped when the array is replaced."""

    array: np.ndarray
    dtype_code: int
    lod: list[bytes] = field(default_factory=list)
    desc: bytes | None = None

    @classmethod
    def from_array(cls, array: np.ndarray, dtype_code: int | None = None) -> "Tensor":
        array = np.ascontiguousarray(array)
        return cls(array=array, dtype_code=code_for(array.dtype) if dtype_code is None else dtype_code)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    @property
    def dtype(self) -> str:
        return dtype_name(self.dtype_code)

    @property
    def nbytes(self) -> int:
        return int(self.array.nbytes)

    def desc_bytes(self) -> bytes:
        if self.desc is not None:
            return self.desc
        td = fpb.VarType.TensorDesc(data_type=self.dtype_code, dims=list(self.array.shape))
        return td.SerializeToString()


def _fail(path, msg) -> ActcError:
    return ActcError(msg, path=path)


def _check_finite(path: Path, name: str, array: np.ndarray) -> None:
    """inf/NaN weights would turn into inf scales and NaN outputs downstream; refuse them
    here, where the weight can be named. One sum per tensor is the fast path: it is finite
    exactly when every entry is (an overflowing sum falls through to the exact count)."""
    if array.dtype.kind not in "fc" or array.size == 0:
        return
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(np.add.reduce(array, axis=None)):
            return
    bad = int(array.size - np.count_nonzero(np.isfinite(array)))
    if bad:
        raise _fail(path, f"weight '{name}' has {bad} non-finite value(s) (inf or NaN) among "
                          f"{array.size}: fix or retrain the model before compressing it")


def read_params(path: str | Path, names: Sequence[str]) -> dict[str, Tensor]:
    """Read the tensors for ``names`` (already in file order); a mismatch is a one-line error."""
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        if names:
            raise _fail(path, f"params file is empty but the program has {len(names)} "
                              "persistable vars")
        return {}
    data = np.memmap(path, dtype=np.uint8, mode="r")
    buf = memoryview(data)
    out: dict[str, Tensor] = {}
    pos = 0

    def take(n: int, what: str, name: str, i: int) -> int:
        nonlocal pos
        if pos + n > size:
            raise _fail(path, f"truncated: file ends inside {what} of tensor #{i} '{name}' "
                              f"(needs {pos + n} bytes, has {size})")
        start = pos
        pos += n
        return start

    for i, name in enumerate(names):
        if pos >= size:
            raise _fail(path, f"holds {i} tensors but the program has {len(names)} persistable "
                              f"vars; first missing: '{name}'")
        s = take(4, "the header", name, i)
        (version,) = struct.unpack_from("<I", buf, s)
        if version != 0:
            raise _fail(path, f"not a save_combine params file: tensor #{i} '{name}' has "
                              f"version {version} (expected 0)")
        s = take(8, "the header", name, i)
        (lod_level,) = struct.unpack_from("<Q", buf, s)
        if lod_level > 16:
            raise _fail(path, f"corrupt header of tensor #{i} '{name}' (lod_level {lod_level})")
        lod = []
        for _ in range(lod_level):
            s = take(8, "the LoD", name, i)
            (nb,) = struct.unpack_from("<Q", buf, s)
            s = take(nb, "the LoD", name, i)
            lod.append(bytes(buf[s:s + nb]))
        s = take(4, "the header", name, i)
        (tversion,) = struct.unpack_from("<I", buf, s)
        s = take(4, "the header", name, i)
        (desc_size,) = struct.unpack_from("<i", buf, s)
        if tversion != 0 or desc_size < 0 or desc_size > 1 << 20:
            raise _fail(path, f"corrupt header of tensor #{i} '{name}'")
        s = take(desc_size, "the TensorDesc", name, i)
        desc = bytes(buf[s:s + desc_size])
        td = fpb.VarType.TensorDesc()
        try:
            td.ParseFromString(desc)
            dtype = numpy_dtype(td.data_type)
        except Exception:
            raise _fail(path, f"corrupt TensorDesc of tensor #{i} '{name}'") from None
        dims = [int(d) for d in td.dims]
        if any(d < 0 for d in dims):
            raise _fail(path, f"tensor #{i} '{name}' has negative dims {dims}")
        count = math.prod(dims)  # Python ints: a corrupt dim cannot overflow
        s = take(count * dtype.itemsize, "the data", name, i)
        array = np.frombuffer(data, dtype=dtype, count=count, offset=s).reshape(dims)
        _check_finite(path, name, array)
        out[name] = Tensor(array=array, dtype_code=int(td.data_type), lod=lod, desc=desc)
    if pos != size:
        raise _fail(path, f"{size - pos} bytes left after the program's {len(names)} persistable "
                          "vars: the file holds more tensors than the program declares")
    return out


def write_params(fh: BinaryIO, params: dict[str, Tensor], names: Sequence[str]) -> None:
    """Write ``names`` (in the order given, normally sorted) as save_combine records."""
    for name in names:
        t = params[name]
        fh.write(struct.pack("<IQ", 0, len(t.lod)))
        for level in t.lod:
            fh.write(struct.pack("<Q", len(level)))
            fh.write(level)
        desc = t.desc_bytes()
        fh.write(struct.pack("<Ii", 0, len(desc)))
        fh.write(desc)
        arr = t.array
        if not arr.flags.c_contiguous or arr.dtype.byteorder == ">":
            arr = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
        fh.write(arr.reshape(-1).view(np.uint8))
