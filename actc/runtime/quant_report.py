"""The per-quantizer error report after calibration (actc.quant.error), measured on a few
calibration batches through the float program."""
from __future__ import annotations

from actc.quant.error import QuantError, quantizer_errors
from actc.runtime.calibrate import float_program
from actc.runtime.executor import Runner

REPORT_BATCHES = 2


def measure(program, quantizers, dataset, *, batch_size: int, device) -> list[QuantError]:
    names = list(dict.fromkeys(q.tensor for q in quantizers if not q.is_weight))
    samples: dict[str, list] = {n: [] for n in names}
    if names:
        runner = Runner(float_program(program), device, private=True)
        for batch in dataset.batches(batch_size, REPORT_BATCHES):
            for n, value in zip(names, runner.run(batch.feed, names)):
                samples[n].append(value)
    return quantizer_errors(program, quantizers, samples)
