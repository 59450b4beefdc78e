"""``actc lower CONFIG.yaml``: print the recipe an ACT YAML config lowers to (and check it)."""
from __future__ import annotations

import sys


def add_parser(sub) -> None:
    p = sub.add_parser("lower", help="print the recipe an ACT YAML config means",
                       description="Lower a PaddleSlim ACT YAML config to the actc recipe it "
                                   "means and print it, with a note for every key actc reads "
                                   "differently or ignores; compile --config runs the same "
                                   "recipe.")
    p.add_argument("config", help="ACT YAML config")
    p.add_argument("--no-check", action="store_true", help="do not compile-check the result")


def run(args) -> int:
    from actc.cli.compile_cmd import load_act_config, recipe_from_config
    from actc.dsl.compiler import compile_source

    text, where, notes = recipe_from_config(load_act_config(args.config), args.config)
    if not args.no_check:
        compile_source(text, where)
    sys.stdout.write(text)
    for n in notes:
        print(n, file=sys.stderr)
    return 0
