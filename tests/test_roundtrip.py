"""An unmodified IR writes back byte-identical files for every corpus model."""
import os
import stat

import pytest

import corpus as C
from actc.io.model import load_model, save_model
from actc.ir.verify import verify


def _files(d):
    return (d / "model.pdmodel").read_bytes(), (d / "model.pdiparams").read_bytes()


@pytest.mark.parametrize("name", C.CORPUS)
def test_load_save_identical(corpus, name, tmp_path):
    src = corpus[name]
    program, files = load_model(src)
    assert verify(program) == []
    out = save_model(program, tmp_path / "out", source=files)
    assert out.program.read_bytes() == files.program.read_bytes()
    assert out.params.read_bytes() == files.params.read_bytes()
    # no temporaries left behind, and the files are readable like any other output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["model.pdiparams",
                                                                    "model.pdmodel"]


@pytest.mark.parametrize("name", C.CORPUS)
def test_clone_save_identical(corpus, name, tmp_path):
    program, files = load_model(corpus[name])
    copy = program.clone()
    assert copy.to_bytes() == files.program.read_bytes()
    out = save_model(copy, tmp_path, source=files)
    assert out.program.read_bytes() == files.program.read_bytes()
    assert out.params.read_bytes() == files.params.read_bytes()


@pytest.mark.parametrize("name", ["resnet18", "control_flow"])
def test_second_generation_identical(corpus, name, tmp_path):
    """Load what actc wrote and write it again: still the same bytes."""
    program, files = load_model(corpus[name])
    first = save_model(program, tmp_path / "a", source=files)
    again, files2 = load_model(tmp_path / "a")
    second = save_model(again, tmp_path / "b", source=files2)
    assert second.program.read_bytes() == files.program.read_bytes()
    assert second.params.read_bytes() == files.params.read_bytes()
    assert first.program.read_bytes() == second.program.read_bytes()


def test_saved_files_honour_umask(corpus, tmp_path):
    program, files = load_model(corpus["digits"])
    old = os.umask(0o022)
    try:
        out = save_model(program, tmp_path, source=files)
    finally:
        os.umask(old)
    for p in (out.program, out.params):
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, p
