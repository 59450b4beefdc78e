"""Interruption and atomicity: an output appears whole or not at all, SIGTERM is Ctrl-C, and
the report after an interruption says truthfully what exists. Bad output paths fail before any
work."""
import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from actc.cli.main import main
from actc.errors import ActcError
from actc.example import model_path
from actc.io import atomic
from actc.io.atomic import write_files
from actc.io.model import load_model

EXAMPLE = Path(model_path("example"))


def _leftovers(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_new_directory_appears_only_when_complete(tmp_path):
    out = tmp_path / "a" / "b" / "out"

    def full_disk(fh):
        fh.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(ActcError, match="No space left on device"):
        write_files([(out / "model.pdmodel", lambda fh: fh.write(b"x")),
                     (out / "model.pdiparams", full_disk)], error_path=out)
    assert _leftovers(tmp_path) == []  # no empty directory, no temporaries, no ancestors


def test_interrupt_while_writing_leaves_nothing(tmp_path):
    out = tmp_path / "out"

    def interrupted(fh):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_files([(out / "model.pdmodel", lambda fh: fh.write(b"x")),
                     (out / "model.pdiparams", interrupted)], error_path=out)
    assert _leftovers(tmp_path) == []
    assert atomic.WRITTEN == [] or all(w.where != out for w in atomic.WRITTEN)


def test_existing_directory_keeps_old_files_on_failure(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.pdmodel").write_bytes(b"old")

    def fail(fh):
        raise OSError(errno.EIO, "Input/output error")

    with pytest.raises(ActcError):
        write_files([(out / "model.pdmodel", lambda fh: fh.write(b"new")),
                     (out / "model.pdiparams", fail)], error_path=out)
    assert (out / "model.pdmodel").read_bytes() == b"old"
    assert _leftovers(tmp_path) == ["out", "out/model.pdmodel"]


def test_new_directory_gets_the_usual_mode(tmp_path):
    out = tmp_path / "out"
    write_files([(out / "f", lambda fh: fh.write(b"x"))], error_path=out)
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask
    assert (out / "f").stat().st_mode & 0o777 == 0o666 & ~umask


def test_interrupt_after_the_model_was_written_says_so(tmp_path, capsys, monkeypatch):
    """Ctrl-C during the accuracy report: the model is complete, and the report says so."""
    import actc.runtime.report as report

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "compare", interrupted)
    out = tmp_path / "out"
    rc = main(["compile", "example", "--recipe", "ptq", "-o", str(out), "-q"])
    err = capsys.readouterr().err
    assert rc == 130
    assert "no output was written" not in err
    assert f"the model in {out}" in err
    load_model(out)  # complete and loadable


def test_interrupt_before_writing_says_nothing_was_written(tmp_path, capsys, monkeypatch):
    import actc.runtime.stages as stages

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(stages, "calibrate", interrupted)
    out = tmp_path / "out"
    rc = main(["compile", "example", "--recipe", "ptq", "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 130 and "no output was written" in err
    assert not out.exists()


def test_symlink_to_the_input_is_refused_before_work(tmp_path, capsys):
    link = tmp_path / "out"
    link.symlink_to(EXAMPLE, target_is_directory=True)
    before = {p.name: p.stat().st_mtime_ns for p in EXAMPLE.iterdir()}
    rc = main(["compile", "example", "--recipe", "ptq", "-o", str(link)])
    assert rc == 2 and "over the input model" in capsys.readouterr().err
    assert before == {p.name: p.stat().st_mtime_ns for p in EXAMPLE.iterdir()}


def test_missing_gpu_fails_before_work(tmp_path, capsys):
    from actc.runtime.paddle_env import import_paddle

    paddle = import_paddle()
    if paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0:
        pytest.skip("this machine has a GPU")
    out = tmp_path / "out"
    rc = main(["compile", "example", "--recipe", "ptq", "-o", str(out), "--device", "gpu"])
    err = capsys.readouterr().err
    assert rc == 2 and "no usable GPU" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
@pytest.mark.parametrize("delay", [0.5, 1.2, 1.6, 3.0])
def test_signal_at_any_moment_leaves_all_or_nothing(tmp_path, sig, code, delay):
    """A real process signalled while it loads, calibrates, writes or evaluates: the output is
    complete or absent, no temporaries remain, no traceback, and the exit code says why."""
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "actc", "compile", "example", "--recipe",
                             "ptq", "-o", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert "Traceback" not in err, err
    assert proc.returncode in (0, code), err
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], _leftovers(tmp_path)
    if out.exists():
        load_model(out)
        assert sorted(p.name for p in out.iterdir()) == ["model.pdiparams", "model.pdmodel"]
    if proc.returncode == code:
        said_written = "written completely" in err
        assert said_written == out.exists(), err
