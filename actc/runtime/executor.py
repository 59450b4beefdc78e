"""Run an IR program with Paddle's executor: params from the IR, any var fetchable."""
from __future__ import annotations

import numpy as np

from actc.ir.program import Program
from actc.runtime.paddle_env import import_paddle, resolve_place


def strip_feed_fetch(program: Program) -> Program:
    """Remove feed/fetch ops in place: the executor adds its own for whatever we fetch."""
    for op in program.ops(("feed", "fetch")):
        program.remove_op(op, drop_dead_vars=False)
    return program


class Runner:
    """One Paddle program + scope built from an IR program, run batch by batch.

    ``private=True`` hands over a program nobody else uses (e.g. a fresh float copy), which
    saves a copy.
    """

    def __init__(self, program: Program, device: str | None = None, *, private: bool = False):
        paddle = import_paddle()
        self.feeds = program.feed_names()
        self.fetches = program.fetch_names()
        runnable = strip_feed_fetch(program if private else program.clone())
        self.place = resolve_place(device)
        self.program = paddle.static.Program.parse_from_string(runnable.to_bytes())
        self.scope = paddle.static.Scope()
        for name, tensor in program.params.items():
            self.scope.var(name).get_tensor().set(np.asarray(tensor.array), self.place)
        self.exe = paddle.static.Executor(self.place)

    def set_param(self, name: str, array: np.ndarray) -> None:
        self.scope.var(name).get_tensor().set(np.asarray(array), self.place)

    def run(self, feed: dict[str, np.ndarray], fetch: list[str] | None = None) -> list[np.ndarray]:
        fetch = list(fetch or self.fetches)
        with self._guard():
            return self.exe.run(self.program, feed=feed, fetch_list=fetch, scope=self.scope,
                                return_numpy=True)

    def _guard(self):
        paddle = import_paddle()
        return paddle.static.scope_guard(self.scope)
