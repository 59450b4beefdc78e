"""Find the program and params files of a Paddle inference model.

Accepts what ACT's ``Global`` section allows: a directory (auto-detected names or explicit
``model_filename``/``params_filename``), a program file, or a program file plus a params file.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from actc.errors import ActcError

PROGRAM_NAMES = ("model.pdmodel", "inference.pdmodel", "__model__")
PARAMS_FOR = {"__model__": ("__params__", "params")}


@dataclass(frozen=True)
class ModelFiles:
    program: Path
    params: Path | None  # None: the program has no persistable vars, or none were found

    @property
    def directory(self) -> Path:
        return self.program.parent


def _pir_error(path: Path) -> ActcError:
    return ActcError(
        "this is a Paddle 3 PIR model (.json); actc reads the legacy ProgramDesc format. "
        "Re-export with FLAGS_enable_pir_api=0 set before `import paddle` "
        "(paddle.jit.save or paddle.static.save_inference_model then write a .pdmodel)",
        path=path)


def _params_beside(program: Path) -> Path | None:
    candidates = [program.with_suffix(".pdiparams")]
    candidates += [program.parent / n for n in PARAMS_FOR.get(program.name, ())]
    for cand in candidates:
        if cand.is_file():
            return cand
    return None


def _program_in_dir(directory: Path) -> Path:
    for name in PROGRAM_NAMES:
        if (directory / name).is_file():
            return directory / name
    found = sorted(directory.glob("*.pdmodel"))
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise ActcError(f"several programs here ({names}); name one with --model-filename",
                        path=directory)
    jsons = sorted(directory.glob("*.json"))
    if jsons:
        raise _pir_error(jsons[0])
    raise ActcError("no Paddle program here (looked for model.pdmodel, inference.pdmodel, "
                    "__model__ or a single *.pdmodel)", path=directory)


def locate_model(path: str | Path, params: str | Path | None = None, *,
                 model_filename: str | None = None,
                 params_filename: str | None = None) -> ModelFiles:
    """Resolve a user's model argument to the two files, or raise a one-line error."""
    path = Path(path)
    if not path.exists():
        raise ActcError("no such file or directory", path=path)
    if path.is_dir():
        program = path / model_filename if model_filename else _program_in_dir(path)
        if not program.is_file():
            raise ActcError(f"model file '{model_filename}' not found in this directory",
                            path=path)
        if params is None and params_filename:
            params = path / params_filename
    else:
        program = path
    if program.suffix == ".json":
        raise _pir_error(program)
    if params is not None:
        params = Path(params)
        if not params.is_file():
            raise ActcError("params file not found", path=params)
        return ModelFiles(program, params)
    return ModelFiles(program, _params_beside(program))
