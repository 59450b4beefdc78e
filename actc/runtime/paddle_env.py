"""Import Paddle in the mode actc needs and pick the device.

Only this package imports Paddle. The legacy program format requires FLAGS_enable_pir_api=0
before the first ``import paddle``; on CPU, oneDNN makes forward passes several times faster but
breaks some grad kernels, so it is enabled only for forward-only work (see PADDLE_NOTES.md).
"""
from __future__ import annotations

import contextlib
import os
import sys

from actc.errors import ActcError

_paddle = None


def import_paddle():
    """Paddle, in legacy static mode; a clear error when it is missing or in PIR mode."""
    global _paddle
    if _paddle is not None:
        if _paddle.in_dynamic_mode():  # someone in this process switched to dygraph
            _paddle.enable_static()
        return _paddle
    if "paddle" not in sys.modules:
        os.environ.setdefault("FLAGS_enable_pir_api", "0")
        os.environ.setdefault("GLOG_minloglevel", "2")
    elif os.environ.get("FLAGS_enable_pir_api", "1") not in ("0", "false", "False"):
        raise ActcError("Paddle was imported in PIR mode before actc could set "
                        "FLAGS_enable_pir_api=0; set it in the environment first")
    try:
        import io
        import warnings

        # Paddle prints a warning whenever OMP_NUM_THREADS > 1, and a ccache notice. actc keeps
        # Paddle's default of one thread (set OMP_NUM_THREADS for more): on a busy machine
        # OpenMP threads spin against each other, a tiny CNN's batch went from 12 ms to 210 ms.
        from actc.io.atomic import signals_held, signals_restored

        # Paddle turns any exception inside its import into ImportError, so a Ctrl-C there
        # would read "needs Paddle": signals wait until the import is done (about a second).
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()), \
                signals_held(), signals_restored():
            warnings.simplefilter("ignore")
            import paddle
    except ImportError:
        raise ActcError("this step runs the model and needs Paddle: pip install "
                        "'actc[paddle]' (CPU) or install paddlepaddle-gpu yourself") from None
    paddle.enable_static()
    _paddle = paddle
    return paddle


def set_forward_only(enabled: bool) -> None:
    """oneDNN on for calibration/evaluation, off for training."""
    paddle = import_paddle()
    if not paddle.is_compiled_with_cuda():
        paddle.set_flags({"FLAGS_use_mkldnn": bool(enabled)})


@contextlib.contextmanager
def onednn_off(enabled: bool = True):
    """oneDNN off inside the block (when ``enabled``), as it was after."""
    paddle = import_paddle()
    if not enabled or paddle.is_compiled_with_cuda():
        yield
        return
    was = bool(paddle.get_flags(["FLAGS_use_mkldnn"])["FLAGS_use_mkldnn"])
    if was:
        paddle.set_flags({"FLAGS_use_mkldnn": False})
    try:
        yield
    finally:
        if was:
            paddle.set_flags({"FLAGS_use_mkldnn": True})


def resolve_place(device: str | None):
    """``cpu``, ``gpu``, ``gpu:N`` or None/``auto`` (GPU when Paddle has CUDA and sees one)."""
    paddle = import_paddle()
    device = (device or "auto").lower()
    has_gpu = paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
    if device == "auto":
        return paddle.CUDAPlace(0) if has_gpu else paddle.CPUPlace()
    if device == "cpu":
        return paddle.CPUPlace()
    if device.startswith("gpu"):
        _, _, idx = device.partition(":")
        if not has_gpu:
            raise ActcError(f"--device {device}: this Paddle has no usable GPU "
                            f"(compiled with CUDA: {paddle.is_compiled_with_cuda()})")
        try:
            index = int(idx or 0)
        except ValueError:
            raise ActcError(f"--device {device}: expected gpu or gpu:N") from None
        if index >= paddle.device.cuda.device_count():
            raise ActcError(f"--device {device}: only {paddle.device.cuda.device_count()} "
                            "GPU(s) visible")
        return paddle.CUDAPlace(index)
    raise ActcError(f"unknown device '{device}' (expected cpu, gpu, gpu:N or auto)")
