"""The ``actc`` command: a thin dispatcher over one module per subcommand.

Each subcommand module (``actc.cli.<name>_cmd``) defines ``add_parser(subparsers)`` and
``run(args) -> int``. User errors (``ActcError``) print one line and exit 2; a traceback
appears only with ``--debug``.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import traceback

from actc.errors import ActcError

# Subcommand modules, in the order ``actc --help`` lists them.
COMMANDS = ["dump", "compile", "check", "passes", "lower", "eval", "sensitivity"]


def _load_commands() -> dict[str, object]:
    mods = {}
    for name in COMMANDS:
        try:
            mods[name] = importlib.import_module(f"actc.cli.{name}_cmd")
        except ModuleNotFoundError as e:
            if e.name != f"actc.cli.{name}_cmd":
                raise
    return mods


def build_parser(mods: dict[str, object]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="actc", description="Compress PaddlePaddle inference models with declarative "
                                 "rewrite recipes.")
    parser.add_argument("--debug", action="store_true",
                        help="show Python tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in mods.values():
        mod.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    mods = _load_commands()
    parser = build_parser(mods)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    try:
        return int(mods[args.command].run(args) or 0)
    except ActcError as e:
        if args.debug:
            traceback.print_exc()
        print(str(e), file=sys.stderr)
        if e.detail:
            print(e.detail, file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("actc: interrupted; no output was written", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # a bug in actc, not in the user's input
        if args.debug:
            traceback.print_exc()
        print(f"actc: internal error: {type(e).__name__}: {e} (rerun with --debug for the "
              "traceback and please report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
