"""The `train` stage: build the trainable Paddle program from the IR, run the loop, evaluate,
keep the best weights, checkpoint, and write the trained state back into the IR.

The loop is Paddle's own machinery end to end: Executor.run of a program whose backward and
optimizer ops `optimizer.minimize` appended, Paddle's LR schedulers stepped every iteration.
What actc adds is around it: evaluation on held-out data, NaN/inf stops, atomic checkpoints
and resume, Ctrl-C safety, and writing the results back into the IR for the next step.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from actc.data import Dataset, open_dataset
from actc.errors import ActcError
from actc.ir.dead import dead_ops
from actc.ir.program import Program
from actc.progress import progress
from actc.runtime.executor import strip_feed_fetch
from actc.runtime.paddle_env import import_paddle, resolve_place, set_forward_only
from actc.train import checkpoint, optim
from actc.prune.masks import gmp_ratio
from actc.train.gmp import describe, gmp_groups, update_masks
from actc.train.parallel import current_world, distributed_optimizer
from actc.train.prepare import TrainSpec, fill_common_attrs, prepare

ORIGIN_TOLERANCE = 0.02  # origin_metric sanity check: |measured - given| must stay below


@dataclass
class Built:
    main: object
    startup: object
    loss: object
    terms: list
    scheduler: object


@dataclass
class Metric:
    name: str      # "top-1" or "SNR dB"
    value: float

    def show(self) -> str:
        return f"{self.value * 100:.2f}%" if self.name == "top-1" else f"{self.value:.2f} dB"


def student_program(ir: Program) -> Program:
    """The student alone (teacher, losses and label feed removed), without feed/fetch."""
    p = ir.clone()
    for op in dead_ops(p):
        p.remove_op(op)
    return fill_common_attrs(strip_feed_fetch(p))


class Trainer:
    def __init__(self, ctx, args: dict, train_data: Dataset, eval_data: Dataset | None):
        self.ctx = ctx
        self.args = args
        self.data = train_data
        self.eval_data = eval_data
        self.paddle = import_paddle()
        self.place = resolve_place(ctx.device)
        self.batch_size = int(args["batch_size"])
        self.world = current_world()
        if self.world.is_parallel and ctx.device == "cpu":
            distributed_optimizer(self.paddle, None, self.world, self.paddle.CPUPlace())
        self.seed = int(args["seed"])
        self.ckpt_dir = Path(f"{ctx.out_dir}.ckpt") if ctx.out_dir else None

    # ------------------------------------------------------------ building
    def build(self, spec: TrainSpec) -> Built:
        paddle = self.paddle
        from paddle.base import unique_name

        main = paddle.static.Program.parse_from_string(spec.program.to_bytes())
        for op in main.global_block().ops:  # fill defaults of attrs actc's ops leave out
            op.desc.check_attrs()
        main.random_seed = self.seed
        startup = paddle.static.Program()
        startup.random_seed = self.seed
        with paddle.static.program_guard(main, startup), \
                unique_name.guard(unique_name.UniqueNameGenerator("actc_")):
            block = main.global_block()
            terms = [block.var(n) for n in spec.losses]
            loss = terms[0] if len(terms) == 1 else paddle.add_n(terms)
            lr, scheduler = optim.learning_rate(paddle, self.args["learning_rate"])
            opt = optim.optimizer(paddle, self.args["optimizer"], lr,
                                  weight_decay=self.args["weight_decay"],
                                  regularizer_spec=self.args["regularizer"],
                                  clip_spec=self.args["grad_clip"])
            opt = distributed_optimizer(paddle, opt, self.world, self.place)
            params = [block.var(n) for n in spec.parameters]
            opt.minimize(loss, parameters=params)
        return Built(main, startup, loss, terms, scheduler)

    def eval_program(self):
        student = student_program(self.ctx.program)
        prog = self.paddle.static.Program.parse_from_string(student.to_bytes())
        return prog.clone(for_test=True)

    # ------------------------------------------------------------ running
    def iterations(self) -> tuple[int, int | None]:
        """(total iterations, iterations per epoch) with ACT's semantics: epochs x batches,
        capped by train_iter; train_iter alone runs that many (over as many epochs)."""
        n = self.data.num_samples()
        per_epoch = None if n is None else \
            max(1, self.world.share(math.ceil(n / self.batch_size)))
        epochs, train_iter = self.args["epochs"], self.args["train_iter"]
        if epochs is None and train_iter is None:
            raise ActcError("train: give epochs or train_iter")
        if epochs is not None:
            if per_epoch is None:
                if train_iter is None:
                    raise ActcError("train: data from a function has no known length; give "
                                    "train_iter")
                return int(train_iter), None
            total = int(epochs) * per_epoch
            return (min(total, int(train_iter)) if train_iter else total), per_epoch
        return int(train_iter), per_epoch

    def batches(self, start: int, per_epoch: int | None):
        it = start
        epoch = 0 if per_epoch is None else start // per_epoch
        skip = 0 if per_epoch is None else start % per_epoch
        while True:
            got = False
            mine = 0
            for index, batch in enumerate(self.data.epoch_batches(self.batch_size,
                                                                  seed=self.seed, epoch=epoch)):
                got = True
                if not self.world.owns(index):
                    continue
                mine += 1
                if mine <= skip:
                    continue
                yield it, batch
                it += 1
            if not got and skip == 0:
                raise ActcError("train: the training data is empty", path=self.data.source)
            epoch, skip = epoch + 1, 0

    def feed(self, spec: TrainSpec, batch) -> dict:
        feed = dict(batch.feed)
        for teacher_name, data_name in spec.teacher_feeds.items():
            feed[teacher_name] = batch.feed[data_name]
        if spec.label is not None:
            if batch.label is None:
                raise ActcError("train: task_loss needs labels, but a training batch has none "
                                "(add a 'label' array to the data)", path=self.data.source)
            feed[spec.label] = np.asarray(batch.label).astype("int64").reshape(-1, 1)
        return feed


def _scope_arrays(scope, names) -> dict[str, np.ndarray]:
    out = {}
    for n in names:
        var = scope.find_var(n)
        if var is None:
            continue
        try:
            out[n] = np.array(var.get_tensor())
        except Exception:  # noqa: BLE001 - uninitialised or non-tensor vars
            continue
    return out


def run_train(ctx, args: dict, train_data: Dataset, eval_data: Dataset | None) -> list[str]:
    """Train ctx.program in place; returns notes for the compile summary."""
    t = Trainer(ctx, args, train_data, eval_data)
    paddle = t.paddle
    set_forward_only(False)  # oneDNN breaks some grad kernels (PADDLE_NOTES)
    paddle.seed(int(args["seed"]))  # dropout in a parsed program draws from the global generator
    freeze_bn_after = args["freeze_bn_after"]
    spec = prepare(ctx.program, freeze_scales=bool(args["freeze_scales"]),
                   freeze_bn=freeze_bn_after == 0)
    if spec.label is not None and not train_data.has_labels:
        raise ActcError("train: task_loss needs labels, but the training data has no 'label' "
                        "array", path=train_data.source)
    total, per_epoch = t.iterations()
    built = t.build(spec)
    scope = paddle.static.Scope()
    exe = paddle.static.Executor(t.place)
    eval_prog = t.eval_program() if eval_data is not None else None
    with paddle.static.scope_guard(scope):
        exe.run(built.startup)
        for name, tensor in spec.program.params.items():
            scope.var(name).get_tensor().set(np.asarray(tensor.array), t.place)

    persistables = [v.name for v in built.main.list_vars() if v.persistable
                    and v.name not in ("feed", "fetch")]
    metric_of = _evaluator(t, exe, scope, eval_prog, eval_data) if eval_data is not None \
        else None
    notes = []
    start, best, best_iter, best_metric = 0, None, None, None
    if ctx.resume:
        state, best, meta = checkpoint.load(t.ckpt_dir)
        for name, arr in state.items():
            scope.var(name).get_tensor().set(arr, t.place)
        start, best_iter = int(meta["iteration"]), meta.get("best_iter")
        best_metric = None if meta.get("best_metric") is None else \
            Metric(meta["metric_name"], float(meta["best_metric"]))
        if built.scheduler is not None and meta.get("scheduler"):
            built.scheduler.set_state_dict(meta["scheduler"])
        notes.append(f"train: resumed at iteration {start} from {t.ckpt_dir}")
    if eval_data is not None and args["origin_metric"] is not None and start == 0:
        m0 = metric_of(reference_program=True)
        if m0.name == "top-1" and abs(m0.value - float(args["origin_metric"])) > ORIGIN_TOLERANCE:
            raise ActcError(f"train: origin_metric is {args['origin_metric']} but the input "
                            f"model scores {m0.show()} on the eval data: wrong data, labels or "
                            "preprocessing")

    def save_ckpt(iteration: int) -> None:
        if t.ckpt_dir is None or not t.world.is_main:
            return
        meta = {"iteration": iteration, "best_iter": best_iter,
                "best_metric": None if best_metric is None else best_metric.value,
                "metric_name": None if best_metric is None else best_metric.name,
                "scheduler": built.scheduler.state_dict() if built.scheduler else None,
                "total": total}
        checkpoint.save(t.ckpt_dir, _scope_arrays(scope, persistables), best, meta)

    groups = gmp_groups(ctx.program, total)
    notes.extend(describe(groups))
    if groups and start > 0:  # masks come from the checkpoint: recompute only at new steps
        for g in groups:
            g.current = gmp_ratio(start - 1, g.target, g.schedule)
    eval_iter = int(args["eval_iter"])
    log_iter = int(args["logging_iter"])
    ckpt_iter = int(args["checkpoint_iter"])
    target = args["target_metric"]
    fetch = [built.loss] + built.terms
    bar = progress(total=total, desc="train", unit="it")
    bar.update(start)
    seen, t0, last_log = 0, time.perf_counter(), None
    exec_seconds = eval_seconds = 0.0
    it = start
    stopped_early = None
    try:
        batches = t.batches(start, per_epoch)
        while it < total:
            if freeze_bn_after and it == int(freeze_bn_after):
                spec_bn = prepare(ctx.program, freeze_scales=bool(args["freeze_scales"]),
                                  freeze_bn=True)
                sched_state = built.scheduler.state_dict() if built.scheduler else None
                built = t.build(spec_bn)
                if sched_state:
                    built.scheduler.set_state_dict(sched_state)
                fetch = [built.loss] + built.terms
                notes.append(f"train: batch_norm statistics frozen from iteration {it}")
            _, batch = next(batches)
            if groups:
                update_masks(groups, it, scope, t.place)
            feed = t.feed(spec, batch)
            e0 = time.perf_counter()
            with paddle.static.scope_guard(scope):
                values = exe.run(built.main, feed=feed, fetch_list=fetch, return_numpy=True)
            exec_seconds += time.perf_counter() - e0
            loss = float(np.asarray(values[0]).reshape(-1)[0])
            if not math.isfinite(loss):
                where = f"; the last good checkpoint is {t.ckpt_dir}" if t.ckpt_dir and \
                    (t.ckpt_dir / checkpoint.META).is_file() else ""
                raise ActcError(f"train: the loss became {loss} at iteration {it + 1} (lr "
                                f"{_lr(built, args):.3g}): nothing was written{where}. Lower "
                                "the learning rate or add grad_clip")
            if built.scheduler is not None:
                built.scheduler.step()
            it += 1
            after_step(it)
            seen += len(batch)
            bar.update(1)
            if it % log_iter == 0 or it == total:
                rate = seen / max(time.perf_counter() - t0, 1e-9)
                bar.set_postfix(loss=f"{loss:.4g}", lr=f"{_lr(built, args):.3g}",
                                samples_s=f"{rate:.0f}")
                last_log = (it, loss, rate)
                if bar.disable:  # no terminal (a log file, CI): one line per logging_iter
                    log(f"train: iteration {it}/{total} loss {loss:.4g} lr "
                        f"{_lr(built, args):.3g} {rate:.0f} samples/s")
            if metric_of is not None and (it % eval_iter == 0 or it == total):
                v0 = time.perf_counter()
                m = metric_of()
                eval_seconds += time.perf_counter() - v0
                bar.set_postfix(loss=f"{loss:.4g}", metric=m.show())
                if bar.disable:
                    log(f"train: iteration {it}/{total} eval {m.name} {m.show()}")
                pruned = all(g.current == g.target for g in groups)  # GMP: only at target
                if pruned and (best_metric is None or m.value > best_metric.value):
                    best_metric, best_iter = m, it
                    best = _scope_arrays(scope, spec.state)
                if pruned and target is not None and m.value >= float(target):
                    stopped_early = it
                    break
            if t.ckpt_dir is not None and it % ckpt_iter == 0 and it < total:
                save_ckpt(it)
    except KeyboardInterrupt:
        save_ckpt(it)
        bar.close()
        import sys
        print(f"actc: train interrupted at iteration {it}"
              + (f"; checkpoint written to {t.ckpt_dir} (rerun with --resume to continue)"
                 if t.ckpt_dir else ""), file=sys.stderr)
        raise
    finally:
        bar.close()
    for g in groups:  # a schedule that reached its target is done: later trains keep the masks
        if g.current == g.target:
            for op in ctx.program.ops():
                if op.has_attr("actc_mask") and op.input("Y")[0] in {m for _, m in g.pairs}:
                    op.set_attr("actc_gmp", "")
    final = best if best is not None else _scope_arrays(scope, spec.state)
    for name in spec.state:
        if name in final:
            ctx.program.set_param(name, final[name].astype(ctx.program.params[name].array.dtype)
                                  if name in ctx.program.params else final[name])
    if t.ckpt_dir is not None and t.ckpt_dir.is_dir():
        for f in (checkpoint.STATE, checkpoint.BEST, checkpoint.META):
            (t.ckpt_dir / f).unlink(missing_ok=True)
        try:
            t.ckpt_dir.rmdir()
        except OSError:
            pass
    done = it - start
    wall = time.perf_counter() - t0
    step_ms = (wall - eval_seconds) / max(done, 1) * 1000
    notes.append(f"train: {done} iterations x {t.batch_size} in {wall:.1f} s "
                 f"({step_ms:.1f} ms/it, of which Paddle's executor "
                 f"{exec_seconds / max(done, 1) * 1000:.1f}; evaluation {eval_seconds:.1f} s); "
                 "losses: "
                 f"{', '.join(spec.loss_kinds)}; {len(spec.parameters)} weights trained")
    if last_log:
        notes.append(f"train: last loss {last_log[1]:.4g}")
    if best_metric is not None:
        notes.append(f"train: kept the best evaluation, iteration {best_iter}: "
                     f"{best_metric.name} {best_metric.show()}"
                     + (f" (target {target} reached, stopped early)" if stopped_early else ""))
    elif eval_data is None:
        notes.append("train: no evaluation data (--eval-data, or a test.npz beside the model): "
                     "kept the last weights")
    return notes


def log(line: str) -> None:
    """Training progress on stderr when there is no progress bar."""
    import sys
    print(line, file=sys.stderr, flush=True)


def after_step(iteration: int) -> None:
    """Called after every optimizer step (a seam for tests that interrupt training)."""


def _lr(built: Built, args) -> float:
    if built.scheduler is not None:
        return float(built.scheduler.get_lr())
    return float(args["learning_rate"])


def _evaluator(t: Trainer, exe, scope, eval_prog, data: Dataset):
    """A function giving the current metric: top-1 with labels, else SNR of the first output
    against the input model's."""
    from actc.runtime.evaluate import collect_outputs, fidelity, top1

    out_name = t.ctx.program.fetch_names()[0]
    reference = None
    if not data.has_labels and t.ctx.original is not None:
        _, ref, _ = collect_outputs(t.ctx.original, data, device=t.ctx.device,
                                    desc="reference")
        reference = ref[0]
        set_forward_only(False)

    def run(reference_program: bool = False) -> Metric:
        if reference_program:
            _, outs, labels = collect_outputs(t.ctx.original, data, device=t.ctx.device)
            set_forward_only(False)
            return Metric("top-1", top1(outs[0], labels)) if labels is not None else \
                Metric("SNR dB", float("inf"))
        outs, labels = [], []
        with t.paddle.static.scope_guard(scope):
            for batch in data.batches(64):
                outs.append(exe.run(eval_prog, feed=batch.feed, fetch_list=[out_name],
                                    return_numpy=True)[0])
                if batch.label is not None:
                    labels.append(batch.label)
        logits = np.concatenate(outs)
        if labels:
            return Metric("top-1", top1(logits, np.concatenate(labels)))
        if reference is None:
            return Metric("SNR dB", float("nan"))
        return Metric("SNR dB", fidelity(out_name, reference, logits).snr_db)

    return run
