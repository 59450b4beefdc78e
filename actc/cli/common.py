"""Arguments and helpers shared by subcommands that take a model."""
from __future__ import annotations

import argparse
from pathlib import Path

from actc.io.model import load_model

# `actc dump example` etc.: the model shipped with the package, unless a path of that name exists.
EXAMPLE_ALIAS = "example"


def model_path(arg: str) -> str:
    from actc.example import model_path as resolve

    return resolve(arg)


def add_model_args(p: argparse.ArgumentParser, optional: bool = False) -> None:
    p.add_argument("model", nargs="?" if optional else None, default=None,
                   help="model directory, a .pdmodel file, or 'example' (the embedded digits "
                        "CNN)" + ("; with --config, default: its Global.model_dir"
                                  if optional else ""))
    p.add_argument("params", nargs="?", default=None,
                   help="params file (default: found beside the program)")
    p.add_argument("--model-filename", default=None,
                   help="program file name inside the model directory")
    p.add_argument("--params-filename", default=None,
                   help="params file name inside the model directory")


def load_from_args(args, need_params: bool = True):
    return load_model(model_path(args.model), args.params, model_filename=args.model_filename,
                      params_filename=args.params_filename, need_params=need_params)


def recipe_path(arg: str) -> Path:
    """A recipe file, or the name of a bundled one (``ptq``); a bare name that is neither gets
    a did-you-mean among the bundled recipes."""
    from actc.dsl.resources import bundled_recipe, data_dir
    from actc.errors import ActcError, did_you_mean

    path = bundled_recipe(arg)
    if path.exists() or path.suffix or len(path.parts) != 1:
        return path
    names = sorted(p.name[:-5] for p in data_dir("actc.configs").iterdir()
                   if p.name.endswith(".actc"))
    raise ActcError(f"no recipe file '{arg}' and no bundled recipe of that name"
                    f"{did_you_mean(arg, names)}; bundled: {', '.join(names)}")
