"""Load a model into the IR and write one back, with one-line errors and atomic writes."""
from __future__ import annotations

import os
from pathlib import Path

from actc.errors import ActcError
from actc.io.atomic import write_files
from actc.io.locate import ModelFiles, locate_model
from actc.io.params import read_params, write_params
from actc.ir.program import IRError, Program
from actc.ir.verify import check_input
from actc.proto import framework_pb2 as fpb

MODEL_FILENAME = "model.pdmodel"
PARAMS_FILENAME = "model.pdiparams"


def parse_program(data: bytes, path: str | Path) -> fpb.ProgramDesc:
    """Bytes -> ProgramDesc, telling apart empty, PIR json, and corrupt files."""
    if not data:
        raise ActcError("empty program file", path=path)
    if data.lstrip()[:1] in (b"{", b"["):
        raise ActcError(
            "this is a Paddle 3 PIR model (JSON); actc reads the legacy ProgramDesc format. "
            "Re-export with FLAGS_enable_pir_api=0 set before `import paddle`", path=path)
    desc = fpb.ProgramDesc()
    try:
        desc.ParseFromString(data)
    except Exception:
        raise ActcError(f"not a Paddle ProgramDesc: protobuf cannot parse these {len(data)} bytes "
                        "(truncated or not a .pdmodel)", path=path) from None
    if not desc.blocks:
        raise ActcError("not a Paddle ProgramDesc: it has no blocks", path=path)
    for bi, block in enumerate(desc.blocks):
        if block.parent_idx >= len(desc.blocks) or block.parent_idx < -1:
            raise ActcError(f"corrupt program: block {bi} has parent {block.parent_idx}",
                            path=path)
        for var in block.vars:
            if not isinstance(var.name, str):
                raise ActcError(f"corrupt program: block {bi} declares a var whose name is not "
                                "valid UTF-8", path=path)
        for oi, op in enumerate(block.ops):
            if not isinstance(op.type, str) or not op.type or not op.type.isprintable():
                raise ActcError(f"corrupt program: block {bi} op #{oi} has no valid type",
                                path=path)
            if not _strings_ok(op):
                raise ActcError(f"corrupt program: block {bi} op #{oi} '{op.type}' has a name "
                                "or string attr that is not valid UTF-8", path=path)
            if op.type in _FEED_FETCH_SLOT and not _feed_fetch_ok(op):
                slot, kind = _FEED_FETCH_SLOT[op.type]
                raise ActcError(f"corrupt program: block {bi} op #{oi} '{op.type}' needs one "
                                f"{kind} in slot {slot} and an INT 'col' attr", path=path)
    return desc


# feed writes one var, fetch reads one; both say which column with an INT attr 'col'.
_FEED_FETCH_SLOT = {"feed": ("Out", "output"), "fetch": ("X", "input")}


def _feed_fetch_ok(op: fpb.OpDesc) -> bool:
    slot, kind = _FEED_FETCH_SLOT[op.type]
    slots = op.outputs if kind == "output" else op.inputs
    args = [a for s in slots if s.parameter == slot for a in s.arguments]
    cols = [a for a in op.attrs if a.name == "col"]
    return len(args) == 1 and all(a.type == fpb.AttrType.INT for a in cols)


_S, _SS, _V, _VS = (fpb.AttrType.STRING, fpb.AttrType.STRINGS, fpb.AttrType.VAR,
                    fpb.AttrType.VARS)


def _all_str(values) -> bool:
    return all(isinstance(v, str) for v in values)


def _strings_ok(op: fpb.OpDesc) -> bool:
    """protobuf hands back ``bytes`` for a proto2 string field holding invalid UTF-8 (a bit
    flip in a name); everything downstream expects ``str``."""
    for slots in (op.inputs, op.outputs):
        for s in slots:
            if not isinstance(s.parameter, str) or not _all_str(s.arguments):
                return False
    for a in op.attrs:
        t = a.type
        if not isinstance(a.name, str) or (t == _S and not isinstance(a.s, str)) \
                or (t == _SS and not _all_str(a.strings)) \
                or (t == _V and not isinstance(a.var_name, str)) \
                or (t == _VS and not _all_str(a.vars_name)):
            return False
    return True


def _check_params(program: Program, files: ModelFiles) -> None:
    """Dtype and size of each tensor against its VarDesc; quant scales and int8 weights under
    an fp32 VarDesc are legitimate (Paddle writes them), anything else is a mismatch."""
    quant_inputs = set()
    for op in program.ops(block=None):
        if "quant" in op.type:
            quant_inputs.update(op.input_names)
    for name, tensor in program.params.items():
        var = program.var(name)
        if var is None or var.shape is None or name in quant_inputs:
            continue
        declared = var.shape
        if len(declared) != len(tensor.shape) or any(
                d >= 0 and d != t for d, t in zip(declared, tensor.shape)):
            raise ActcError(f"tensor '{name}' has shape {list(tensor.shape)} but the program "
                            f"declares {list(declared)}: params and program do not match",
                            path=files.params)
        if var.dtype_code != tensor.dtype_code and not (
                tensor.dtype in ("int8", "uint8") and var.dtype in ("float32", "float16")):
            raise ActcError(f"tensor '{name}' is {tensor.dtype} but the program declares "
                            f"{var.dtype}: params and program do not match", path=files.params)


def load_model(path: str | Path, params: str | Path | None = None, *,
               model_filename: str | None = None, params_filename: str | None = None,
               files: ModelFiles | None = None,
               need_params: bool = True) -> tuple[Program, ModelFiles]:
    """Locate, parse and check a model; params are memory-mapped, not copied.
    ``need_params=False`` (inspecting a program): a missing params file is allowed, and the
    weights are known only from their VarDescs."""
    files = files or locate_model(path, params, model_filename=model_filename,
                                  params_filename=params_filename)
    try:
        data = files.program.read_bytes()
    except OSError as e:
        raise ActcError(f"cannot read: {e.strerror}", path=files.program) from None
    desc = parse_program(data, files.program)
    try:
        program = Program(desc)
    except IRError as e:
        raise ActcError(f"corrupt program: {e}", path=files.program) from None
    check_input(program, files.program)  # blame the file, before any pass or Paddle sees it
    names = program.persistable_names()
    if names and files.params is None and need_params:
        raise ActcError(f"the program has {len(names)} persistable vars but no params file was "
                        "found beside it (pass it explicitly)", path=files.program)
    if files.params is not None:
        try:
            program.params = read_params(files.params, names)
        except OSError as e:
            raise ActcError(f"cannot read: {e.strerror}", path=files.params) from None
        _check_params(program, files)
    return program, files


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output_dir(out_dir: str | Path, source: ModelFiles | None = None,
                     model_filename: str = MODEL_FILENAME,
                     params_filename: str = PARAMS_FILENAME) -> None:
    """Before long work (calibration, training): refuse an output that would overwrite the
    input or cannot be written, so nobody loses an hour to a typo."""
    out_dir = Path(out_dir)
    if source is not None:
        inputs = [source.program] + ([source.params] if source.params else [])
        targets = (out_dir / model_filename, out_dir / params_filename)
        if any(_same_file(p, q) for p in targets for q in inputs) or \
                _same_file(out_dir, source.directory):
            raise ActcError("refusing to write over the input model; choose another output "
                            "directory", path=out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ActcError("the output exists and is not a directory", path=out_dir)
    parent = out_dir if out_dir.exists() else next(
        (p for p in out_dir.parents if p.exists()), Path("."))
    if not os.access(parent, os.W_OK):
        raise ActcError(f"cannot write here ({parent} is not writable)", path=out_dir)


def save_model(program: Program, out_dir: str | Path, *, source: ModelFiles | None = None,
               model_filename: str = MODEL_FILENAME,
               params_filename: str = PARAMS_FILENAME) -> ModelFiles:
    """Write the program and params into ``out_dir``; never over the input model.

    Both files are written to temporaries first and renamed only once both are complete, so an
    interrupted write leaves no half-written model behind.
    """
    out_dir = Path(out_dir)
    program_path = out_dir / model_filename
    params_path = out_dir / params_filename
    if source is not None:
        inputs = [source.program] + ([source.params] if source.params else [])
        if any(_same_file(p, q) for p in (program_path, params_path) for q in inputs) or \
                _same_file(out_dir, source.directory):
            raise ActcError("refusing to write over the input model; choose another output "
                            "directory", path=out_dir)
    names = program.persistable_names()
    missing = [n for n in names if n not in program.params]
    if missing:
        raise ActcError(f"persistable var '{missing[0]}' has no data to write", path=out_dir)
    data = program.to_bytes()
    writes = [(program_path, lambda fh: fh.write(data))]
    if names:
        writes.append((params_path, lambda fh: write_params(fh, program.params, names)))
    write_files(writes, error_path=out_dir, what="the model")
    return ModelFiles(program_path, params_path if names else None)
