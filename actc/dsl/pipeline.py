"""Running a compiled recipe: steps in order on one program, the verifier after each, optional
IR printing and timing, and a PassResult per step saying what it changed."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

from actc.dsl.compiler import BoundStep, Compiled, check_selectors
from actc.dsl.rules import PassResult, RuleRunner
from actc.errors import ActcError
from actc.ir.program import Program


@dataclass
class PipelineContext:
    """What every step sees. Stages may replace ``program``; they read what earlier steps did
    back from the IR itself (e.g. the quantizers), so nothing else needs sharing."""
    program: Program
    source: Any = None  # actc.io.locate.ModelFiles of the input model
    data: str | None = None
    device: str = "cpu"
    out_dir: str | None = None
    params: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    original: Program | None = None  # the input model as loaded (the default teacher)
    eval_data: str | None = None     # --eval-data (training evaluates on it)
    resume: bool = False             # --resume: continue training from its checkpoint
    cache: dict = field(default_factory=dict)  # loaded teachers etc., shared by steps
    reports: dict = field(default_factory=dict)  # structured results for the CLI (quantizers)


@dataclass
class Options:
    verify: bool = True
    print_before: set[str] = field(default_factory=set)  # step names, or {"all"}
    print_after: set[str] = field(default_factory=set)
    time_passes: bool = False
    out: TextIO = field(default_factory=lambda: sys.stderr)  # looked up when used, not at import


def render_ir(program: Program, title: str) -> str:
    try:
        from actc.dump.text import render
        return render(program, title=title)
    except ImportError:
        lines = [f"// {title}"]
        for op in program.ops(block=None):
            ins = ", ".join(f"{k}={v}" for k, v in op.inputs.items())
            outs = ", ".join(f"{k}={v}" for k, v in op.outputs.items())
            lines.append(f"  [{op.block}] {outs} = {op.type}({ins})")
        return "\n".join(lines) + "\n"


def _wants(selected: set[str], name: str) -> bool:
    return "all" in selected or name in selected


def _snapshot(program: Program):
    return ({op.uid for op in program.ops(block=None)},
            {(v.block, v.name) for v in program.all_vars()})


def run_step(step: BoundStep, ctx: PipelineContext) -> PassResult:
    if step.spec.kind == "pass":
        result = RuleRunner(ctx.program, step.spec.passdef, step.args, ctx).run()
        ctx.notes.extend(f"{step.name}: {n}" for n in result.notes)
        return result
    fn = step.spec.impl()
    before_ops, before_vars = _snapshot(ctx.program)
    before_params = {name: id(t) for name, t in ctx.program.params.items()}
    fn(ctx, dict(step.args))
    after_ops, after_vars = _snapshot(ctx.program)
    params_set = sum(1 for name, t in ctx.program.params.items()
                     if before_params.get(name) not in (None, id(t)))
    return PassResult(step.name, ops_added=len(after_ops - before_ops),
                      ops_removed=len(before_ops - after_ops),
                      vars_added=len(after_vars - before_vars), params_set=params_set)


def run_pipeline(compiled: Compiled, ctx: PipelineContext, opts: Options | None = None
                 ) -> list[PassResult]:
    """Run every step; raise ActcError (naming the step) on the first failure."""
    from actc.ir.verify import VerificationError, check

    opts = opts or Options()
    results = []
    for i, step in enumerate(compiled.steps):
        label = f"{step.name} (step {i + 1}, {step.where()})"
        if _wants(opts.print_before, step.name):
            opts.out.write(render_ir(ctx.program, f"IR before {label}"))
        if i > 0:
            for w in check_selectors([step], ctx.program, compiled.strict):
                ctx.notes.append(f"warning: {w}")
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            result = run_step(step, ctx)
        except ActcError as e:
            # point at the user's step, not inside a stdlib pass the user never wrote
            if e.path is None or str(e.path).startswith("<stdlib>"):
                e.path, e.line = step.path, step.pos.line
                e.col = step.pos.col
                e.detail = None
            raise
        result.seconds = time.perf_counter() - t0
        result.cpu_seconds = time.process_time() - c0
        results.append(result)
        if opts.verify:
            try:
                check(ctx.program, after=step.name)
            except VerificationError as e:
                raise ActcError(f"{e} (this is a bug in step '{step.name}'; rerun with "
                                "--no-verify to write the model anyway)", path=step.path,
                                line=step.pos.line, col=step.pos.col) from None
        if _wants(opts.print_after, step.name):
            opts.out.write(render_ir(ctx.program, f"IR after {label}"))
        if opts.time_passes:
            # CPU time too: on a shared machine it moves far less than the wall time
            opts.out.write(f"[time] {step.name}: {result.seconds * 1000:.1f} ms "
                           f"(cpu {result.cpu_seconds * 1000:.1f} ms)\n")
    return results


def summary(results: list[PassResult]) -> str:
    return "\n".join(f"  {r.name}: {r.summary()}" for r in results)
