"""What ``actc compile`` tells the user about the model it wrote: accuracy and fidelity."""
from __future__ import annotations

from pathlib import Path

from actc.data import open_dataset
from actc.io.locate import ModelFiles
from actc.ir.program import Program
from actc.runtime.evaluate import evaluate

DEFAULT_TEST_FILE = "test.npz"


def eval_source(explicit: str | None, source: ModelFiles) -> str | None:
    """--eval-data, else a test.npz shipped beside the input model."""
    if explicit:
        return explicit
    candidate = Path(source.directory) / DEFAULT_TEST_FILE
    return str(candidate) if candidate.is_file() else None


def compare(original: Program, written: Program, data: str, device: str | None) -> str:
    """One line per fact: accuracy before/after (with labels), cosine/SNR per output."""
    dataset = open_dataset(data, original)
    result = evaluate(written, dataset, device=device, reference=original)
    lines = []
    if result.accuracy is not None:
        base = evaluate(original, dataset, device=device).accuracy
        lines.append(f"top-1 on {result.samples} samples from {data}: float {base * 100:.2f}% "
                     f"-> compressed {result.accuracy * 100:.2f}% "
                     f"({(result.accuracy - base) * 100:+.2f} points)")
    for f in result.fidelity:
        lines.append(f"output {f.name}: cosine {f.cosine:.5f}, SNR {f.snr_db:.2f} dB vs float")
    return "\n".join(lines)
