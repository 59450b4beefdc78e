"""The ``actc`` command: a thin dispatcher over one module per subcommand.

Each subcommand module (``actc.cli.<name>_cmd``) defines ``add_parser(subparsers)`` and
``run(args) -> int``. User errors (``ActcError``) print one line and exit 2; a traceback
appears only with ``--debug``.
"""
from __future__ import annotations

import argparse
import importlib
import signal
import sys
import traceback

from actc import __version__
from actc.errors import ActcError

# Subcommand modules, in the order ``actc --help`` lists them.
COMMANDS = ["dump", "compile", "check", "passes", "lower", "eval", "sensitivity", "bench", "export"]


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
    parser.add_argument("--version", action="version", version=f"actc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in mods.values():
        mod.add_parser(sub)
    for cmd in sub.choices.values():  # `actc dump --debug M` as well as `actc --debug dump M`
        cmd.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                         help="show Python tracebacks for errors")
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C (the same cleanup, the same report) but exiting 143."""


def _terminate(signum, frame):
    raise Terminated


def _interrupted(e: KeyboardInterrupt) -> int:
    print(interrupted_report(), file=sys.stderr)
    return 143 if isinstance(e, Terminated) else 130


def interrupted_report() -> str:
    """What exists after an interruption: only outputs that were completed."""
    from actc.io.atomic import WRITTEN

    if not WRITTEN:
        return "actc: interrupted; no output was written"
    done = "; ".join(f"{w.what} in {w.where}" for w in WRITTEN)
    return f"actc: interrupted; written completely before the interruption: {done}"


def _start_threads_deaf() -> None:
    """Import numpy with SIGINT/SIGTERM blocked, so the BLAS threads it starts inherit that
    mask: signals then reach the main thread (Python's handler) only, never a worker thread
    running a C library's handler (Paddle installs glog's, which aborts without cleanup)."""
    from actc.io.atomic import signals_held

    with signals_held():
        import numpy  # noqa: F401


def main(argv: list[str] | None = None) -> int:
    """The console entry point (``argv`` None: this process is actc's own) or an in-process
    call (tests), which gets its signal handlers back afterwards."""
    old = signal.signal(signal.SIGTERM, _terminate), signal.getsignal(signal.SIGINT)
    try:
        _start_threads_deaf()
        return _main(argv)
    except KeyboardInterrupt as e:  # while starting up or reporting: still no traceback
        return _interrupted(e)
    finally:
        if argv is None:  # a signal during interpreter shutdown must not print a traceback
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        else:
            signal.signal(signal.SIGTERM, old[0])
            signal.signal(signal.SIGINT, old[1])


def _main(argv: list[str] | None) -> int:
    from actc.io.atomic import WRITTEN

    WRITTEN.clear()
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
    except KeyboardInterrupt as e:
        return _interrupted(e)
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
