"""Run an IR program with Paddle's executor: params from the IR, any var fetchable."""
from __future__ import annotations

import contextlib
import re

import numpy as np

from actc.dsl.primitives import QUANTIZER_TYPES
from actc.errors import ActcError
from actc.ir.program import Program
from actc.ir.verify import summarize, verify_input
from actc.runtime.paddle_env import import_paddle, onednn_off, resolve_place

# How Paddle's C++ errors look: "(InvalidArgument) msg", "[Hint: ...]", "(at /paddle/x.cc:12)",
# "[operator < pool2d > error]". Paddle maps them to these builtin types (or EnforceNotMet);
# oneDNN and the C++ standard library raise RuntimeError/ValueError with bare messages.
_PADDLE_KIND = re.compile(r"^\s*(?:\((\w+)\)|[A-Z]\w*Error:)\s*")
_PADDLE_RAISES = (RuntimeError, ValueError, OSError, IndexError, MemoryError,
                  NotImplementedError)
_OPERATOR_PATTERNS = (
    re.compile(r"\[operator\s*<\s*([\w.]+)\s*>\s*error\]"),
    re.compile(r"Operator\s*\(\s*([\w.]+)\s*\)\s*is not registered"),
    re.compile(r"Operator\s+([\w.]+)'s\s+(?:input|output)"),
    re.compile(r"Op\(([\w.]+)\)"),
)
_SOURCE = re.compile(r"\(at\s+\S*/(\w+?)(?:_op)?\.(?:cc|cu|h):\d+\)")


def _is_paddle_error(e: BaseException) -> bool:
    """Only Paddle calls run under ``paddle_errors``; TypeError, KeyError and the like still
    mean actc called it wrongly, and stay internal errors."""
    return isinstance(e, _PADDLE_RAISES) or type(e).__name__ in ("EnforceNotMet",
                                                                 "EOFException")


def _op_type(text: str, types: set[str]) -> str | None:
    """The op Paddle blames (its marker, or the source file it failed in), when that names an
    op type of the program ("Op(Conv)" names a family, not an op)."""
    for m in [p.search(text) for p in _OPERATOR_PATTERNS] + [_SOURCE.search(text)]:
        if m and m.group(1) in types:
            return m.group(1)
    return None


def _first_line(text: str) -> str:
    """Paddle's own message, without its kind prefix, hint, source position, C++ stack, or the
    "In user code:" Python stack it sometimes leads with."""
    _, _, summary = text.rpartition("Error Message Summary:")
    lines = [ln.strip() for ln in summary.splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith(("-", "[", "File ", "In user code"))]
    kinds = [ln for ln in lines if _PADDLE_KIND.match(ln)]
    for line in kinds or lines:
        line = _PADDLE_KIND.sub("", line, count=1)
        return re.sub(r"\s*\(at /paddle/\S+\)\s*$", "", line).strip()
    return "(no message)"


def op_positions(program: Program) -> list[tuple[str, str]]:
    """(type, first output) of every op: enough to name an op in an error (output names
    survive rewrites, indexes do not), kept instead of the program itself."""
    return [(op.type, next(iter(op.output_names), "")) for op in program.ops(block=None)
            if op.type not in ("feed", "fetch")]


def _where(positions: list[tuple[str, str]], op_type: str | None) -> str:
    if op_type is None:
        return "the program"
    outs = [out for t, out in positions if t == op_type]
    if len(outs) == 1 and outs[0]:
        return f"op '{op_type}' (writing '{outs[0]}')"
    return f"op '{op_type}'" + (f" (one of {len(outs)})" if len(outs) > 1 else "")


def paddle_error(e: BaseException, positions: list[tuple[str, str]]) -> ActcError:
    """One line for an error raised inside Paddle: the op and Paddle's first line; the full
    message stays on the exception's cause (shown with --debug)."""
    text = str(e)
    where = _where(positions, _op_type(text, {t for t, _ in positions}))
    return ActcError(f"Paddle refused {where}: {_first_line(text)}")


@contextlib.contextmanager
def paddle_errors(positions: list[tuple[str, str]]):
    """Turn errors Paddle raises about a program (``op_positions``) into ActcError: the
    program or its data is at fault, not actc; other exceptions pass through."""
    try:
        yield
    except ActcError:
        raise
    except Exception as e:
        if not _is_paddle_error(e):
            raise
        raise paddle_error(e, positions) from e


def _refuse_invalid(program: Program) -> None:
    """The last guard before Paddle's C++, which some broken programs crash outright: holds
    even under --no-verify, where a pass may have broken the program."""
    problems, _ = verify_input(program)
    if problems:
        raise ActcError(f"refusing to run an invalid program in Paddle: {summarize(problems)} "
                        "(if --no-verify was given, rerun without it to see which step broke "
                        "the program)")


def strip_feed_fetch(program: Program) -> Program:
    """Remove feed/fetch ops in place: the executor adds its own for whatever we fetch."""
    for op in program.ops(("feed", "fetch")):
        program.remove_op(op, drop_dead_vars=False)
    return program


#: feed values per run above which a quantized program runs without oneDNN (see Runner).
QDQ_ONEDNN_FEED_VALUES = 1 << 16


class Runner:
    """One Paddle program + scope built from an IR program, run batch by batch.

    ``private=True`` hands over a program nobody else uses (e.g. a fresh float copy), which
    saves a copy.

    A program with quantize/dequantize ops fed more than a few small images runs without
    oneDNN: Paddle 3.3.1's oneDNN path grows memory at every run of such a program
    (mobilenet_v2 at 224: +150-350 MB per run of 6 images, 0.7 -> 3.7 GB over three runs of
    32) for no gain in speed (2.2-3.0 vs 2.4-2.6 s at batch 16); on small inputs oneDNN
    stays, twice as fast there (35 vs 70 ms for 32 8x8 digits). The choice is made at the
    first run: Paddle keeps the kernels it picked then.
    """

    def __init__(self, program: Program, device: str | None = None, *, private: bool = False):
        paddle = import_paddle()
        _refuse_invalid(program)
        self.feeds = program.feed_names()
        self.fetches = program.fetch_names()
        self.positions = op_positions(program)
        self.quantized = any(op.type in QUANTIZER_TYPES for op in program.ops())
        self.onednn_off: bool | None = None
        runnable = strip_feed_fetch(program if private else program.clone())
        self.place = resolve_place(device)
        with paddle_errors(self.positions):
            self.program = paddle.static.Program.parse_from_string(runnable.to_bytes())
            self.scope = paddle.static.Scope()
            for name, tensor in program.params.items():
                self.scope.var(name).get_tensor().set(np.asarray(tensor.array), self.place)
        self.exe = paddle.static.Executor(self.place)

    def set_param(self, name: str, array: np.ndarray) -> None:
        self.scope.var(name).get_tensor().set(np.asarray(array), self.place)

    def run(self, feed: dict[str, np.ndarray], fetch: list[str] | None = None) -> list[np.ndarray]:
        fetch = list(fetch or self.fetches)
        if self.onednn_off is None:
            values = sum(int(np.size(v)) for v in feed.values())
            self.onednn_off = self.quantized and values > QDQ_ONEDNN_FEED_VALUES
        with self._guard(), paddle_errors(self.positions), onednn_off(self.onednn_off):
            return self.exe.run(self.program, feed=feed, fetch_list=fetch, scope=self.scope,
                                return_numpy=True)

    def _guard(self):
        paddle = import_paddle()
        return paddle.static.scope_guard(self.scope)
