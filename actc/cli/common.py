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


def load_from_args(args):
    return load_model(model_path(args.model), args.params, model_filename=args.model_filename,
                      params_filename=args.params_filename)
