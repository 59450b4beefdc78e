"""Accuracy and output fidelity of a model on a dataset, with Paddle."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from actc.progress import progress

from actc.data import Dataset
from actc.ir.program import Program
from actc.runtime.executor import Runner
from actc.runtime.paddle_env import set_forward_only


@dataclass
class FetchFidelity:
    name: str
    cosine: float
    snr_db: float
    max_abs_err: float


@dataclass
class EvalResult:
    samples: int
    accuracy: float | None
    fidelity: list[FetchFidelity] = field(default_factory=list)


def fidelity(name: str, ref: np.ndarray, out: np.ndarray) -> FetchFidelity:
    """Cosine similarity and SNR (dB) of ``out`` against ``ref``."""
    r = ref.astype(np.float64).ravel()
    o = out.astype(np.float64).ravel()
    denom = np.linalg.norm(r) * np.linalg.norm(o)
    cosine = float(r @ o / denom) if denom > 0 else float(np.array_equal(r, o))
    noise = float(np.sum((r - o) ** 2))
    signal = float(np.sum(r ** 2))
    snr = float("inf") if noise == 0 else 10.0 * np.log10(max(signal, 1e-30) / noise)
    return FetchFidelity(name, cosine, snr, float(np.max(np.abs(r - o))) if r.size else 0.0)


def collect_outputs(program: Program, dataset: Dataset, *, device: str | None = None,
                    batch_size: int = 64, batch_nums: int | None = None,
                    desc: str = "eval", runner: Runner | None = None):
    """All fetch outputs concatenated over the data, and the labels if the data has them."""
    set_forward_only(True)
    runner = runner or Runner(program, device)
    outs: list[list[np.ndarray]] = [[] for _ in runner.fetches]
    labels = []
    total = dataset.num_batches(batch_size, batch_nums)
    for batch in progress(dataset.batches(batch_size, batch_nums), total=total, desc=desc):
        for acc, arr in zip(outs, runner.run(batch.feed)):
            acc.append(arr)
        if batch.label is not None:
            labels.append(batch.label)
    fetched = [np.concatenate(a) for a in outs]
    return runner.fetches, fetched, (np.concatenate(labels) if labels else None)


def top1(logits: np.ndarray, labels: np.ndarray) -> float:
    pred = logits.reshape(len(logits), -1).argmax(axis=1)
    return float(np.mean(pred == labels.reshape(-1)))


def evaluate(program: Program, dataset: Dataset, *, device: str | None = None,
             batch_size: int = 64, batch_nums: int | None = None,
             reference: Program | None = None) -> EvalResult:
    names, outs, labels = collect_outputs(program, dataset, device=device,
                                          batch_size=batch_size, batch_nums=batch_nums)
    acc = top1(outs[0], labels) if labels is not None else None
    result = EvalResult(samples=len(outs[0]), accuracy=acc)
    if reference is not None:
        _, ref_outs, _ = collect_outputs(reference, dataset, device=device,
                                         batch_size=batch_size, batch_nums=batch_nums,
                                         desc="reference")
        for name, r, o in zip(names, ref_outs, outs):
            result.fidelity.append(fidelity(name, r, o))
    return result
