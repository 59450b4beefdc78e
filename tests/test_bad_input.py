"""Bad input gives one line naming the file, exit code 2, no traceback, nothing written."""
import importlib.util
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from actc.cli.main import main
from actc.errors import ActcError
from actc.io.model import load_model, save_model
from actc.io.params import Tensor, read_params, write_params

REPO = Path(__file__).resolve().parent.parent


def _copy_model(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for f in ("model.pdmodel", "model.pdiparams"):
        shutil.copyfile(src / f, dst / f)
    return dst


def _rewrite_params(model_dir: Path, edit) -> Path:
    """Rewrite model.pdiparams after ``edit(names, tensors)`` changed the list or the dict."""
    program, files = load_model(model_dir)
    names = program.persistable_names()
    tensors = {n: Tensor(array=np.array(t.array), dtype_code=t.dtype_code, lod=list(t.lod),
                         desc=t.desc) for n, t in read_params(files.params, names).items()}
    names = edit(names, tensors) or names
    del program
    with open(files.params, "wb") as fh:
        write_params(fh, tensors, names)
    return files.params


# Each case builds bad input under tmp and returns (argv after "dump", file the error must name,
# words the message must contain).
def case_missing(tmp, good):
    p = tmp / "nope" / "model.pdmodel"
    return [str(p)], p, "no such file"


def case_missing_params(tmp, good):
    d = _copy_model(good, tmp / "m")
    return [str(d / "model.pdmodel"), str(tmp / "absent.pdiparams")], tmp / "absent.pdiparams", \
        "not found"


def case_no_params_beside(tmp, good):
    d = _copy_model(good, tmp / "m")
    (d / "model.pdiparams").unlink()
    # plain dump shows such a program (tests/test_cli_usability.py); --sparsity needs values
    return [str(d), "--sparsity"], d / "model.pdmodel", "no params file"


def case_empty_dir(tmp, good):
    d = tmp / "m"
    d.mkdir()
    return [str(d)], d, "no Paddle program"


def case_empty(tmp, good):
    d = _copy_model(good, tmp / "m")
    (d / "model.pdmodel").write_bytes(b"")
    return [str(d)], d / "model.pdmodel", "empty"


def case_truncated(tmp, good):
    d = _copy_model(good, tmp / "m")
    data = (d / "model.pdmodel").read_bytes()
    (d / "model.pdmodel").write_bytes(data[: len(data) // 3])
    return [str(d)], d / "model.pdmodel", "truncated"


def case_random_bytes(tmp, good):
    d = _copy_model(good, tmp / "m")
    (d / "model.pdmodel").write_bytes(np.random.default_rng(7).bytes(4096))
    return [str(d / "model.pdmodel")], d / "model.pdmodel", "ProgramDesc"


def case_text_file(tmp, good):
    p = tmp / "notes.pdmodel"
    p.write_text("hello, this is not a model\n")
    return [str(p)], p, "ProgramDesc"


# What Paddle 3.3 writes by default (paddle.jit.save without FLAGS_enable_pir_api=0) starts so.
PIR_JSON = ('{"base_code":{"magic":"pir","trainable":true,"version":4},"program":{"regions":'
            '[{"#":"region_0","blocks":[{"#":"block_0","args":[],"ops":[]}]}]}}')


def case_pir_json(tmp, good):
    d = tmp / "m"
    d.mkdir()
    (d / "model.json").write_text(PIR_JSON)
    shutil.copyfile(good / "model.pdiparams", d / "model.pdiparams")
    return [str(d)], d / "model.json", "PIR"


def case_pir_json_file(tmp, good):
    p = tmp / "inference.json"
    p.write_text(PIR_JSON)
    return [str(p)], p, "FLAGS_enable_pir_api=0"


def case_pir_json_named_pdmodel(tmp, good):
    d = _copy_model(good, tmp / "m")
    (d / "model.pdmodel").write_text(PIR_JSON)
    return [str(d)], d / "model.pdmodel", "PIR"


def case_params_too_few(tmp, good):
    d = _copy_model(good, tmp / "m")
    p = _rewrite_params(d, lambda names, t: names[:-1])
    return [str(d)], p, "holds"


def case_params_too_many(tmp, good):
    d = _copy_model(good, tmp / "m")

    def edit(names, t):
        t["zz_extra"] = Tensor.from_array(np.zeros(3, np.float32))
        return names + ["zz_extra"]

    p = _rewrite_params(d, edit)
    return [str(d)], p, "more tensors"


def case_params_wrong_dtype(tmp, good):
    d = _copy_model(good, tmp / "m")

    def edit(names, t):
        n = names[0]
        t[n] = Tensor.from_array(np.asarray(t[n].array, dtype=np.float64))

    p = _rewrite_params(d, edit)
    return [str(d)], p, "float64"


def case_params_wrong_shape(tmp, good):
    d = _copy_model(good, tmp / "m")
    prog, _ = load_model(d)
    conv_w = prog.ops("conv2d")[0].input("Filter")[0]

    def edit(names, t):
        t[conv_w] = Tensor.from_array(np.asarray(t[conv_w].array)[:-1])

    p = _rewrite_params(d, edit)
    return [str(d)], p, "shape"


def case_params_truncated(tmp, good):
    d = _copy_model(good, tmp / "m")
    p = d / "model.pdiparams"
    data = p.read_bytes()
    p.write_bytes(data[: len(data) - 100])
    return [str(d)], p, "truncated"


def case_params_empty(tmp, good):
    d = _copy_model(good, tmp / "m")
    (d / "model.pdiparams").write_bytes(b"")
    return [str(d)], d / "model.pdiparams", "empty"


def case_params_random(tmp, good):
    d = _copy_model(good, tmp / "m")
    (d / "model.pdiparams").write_bytes(np.random.default_rng(3).bytes(5000))
    return [str(d)], d / "model.pdiparams", "tensor"


def case_output_parent_is_file(tmp, good):
    blocker = tmp / "blocker"
    blocker.write_text("a regular file where a directory should be")
    out = blocker / "sub" / "dump.txt"
    return [str(good), "-o", str(out)], out, "cannot write"


def case_output_is_input(tmp, good):
    d = _copy_model(good, tmp / "m")
    return [str(d), "-o", str(d / "model.pdmodel")], d / "model.pdmodel", "overwrite the input"


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith("case_")}


def _snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.stat().st_size, p.read_bytes() if p.is_file() else None)
            for p in sorted(root.rglob("*"))}


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _check_stderr(err: str, path: Path, words: str):
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert str(path) in lines[0], (path, err)
    assert words.lower() in lines[0].lower(), (words, err)
    assert ": error: " in lines[0]


@pytest.mark.parametrize("case", sorted(CASES))
def test_in_process(case, corpus, tmp_path, capsys):
    args, path, words = CASES[case](tmp_path, corpus["digits"])
    before = _snapshot(tmp_path)
    rc = main(["dump", *args])
    cap = capsys.readouterr()
    assert rc == 2, cap.err
    _check_stderr(cap.err, path, words)
    assert cap.out == ""
    assert _snapshot(tmp_path) == before  # nothing written, not even a temporary


@pytest.mark.parametrize("case", ["missing", "truncated", "pir_json", "params_wrong_shape",
                                  "output_parent_is_file", "random_bytes"])
def test_subprocess(case, corpus, tmp_path):
    args, path, words = CASES[case](tmp_path, corpus["digits"])
    before = _snapshot(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "actc", "dump", *args], capture_output=True,
                          text=True, env=_env(), cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr
    _check_stderr(proc.stderr, path, words)
    assert proc.stdout == ""
    assert _snapshot(tmp_path) == before


def test_debug_shows_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "actc", "--debug", "dump",
                           str(tmp_path / "missing.pdmodel")], capture_output=True, text=True,
                          env=_env(), timeout=120)
    assert proc.returncode == 2
    assert "Traceback" in proc.stderr
    assert proc.stderr.rstrip().splitlines()[-1].endswith("no such file or directory")


# ------------------------------------------------------------------ save_model
def test_save_unwritable_dir(corpus, tmp_path):
    program, files = load_model(corpus["digits"])
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    with pytest.raises(ActcError) as e:
        save_model(program, blocker / "out", source=files)
    assert str(blocker / "out") in str(e.value) and "cannot write" in str(e.value)
    assert "\n" not in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker"]
    # the output directory is an existing regular file
    with pytest.raises(ActcError):
        save_model(program, blocker, source=files)
    assert blocker.read_text() == "x"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root ignores directory permissions")
def test_save_read_only_dir(corpus, tmp_path):
    program, files = load_model(corpus["digits"])
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(ActcError, match="cannot write"):
            save_model(program, ro, source=files)
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


def test_save_refuses_input_dir(corpus, tmp_path):
    d = _copy_model(corpus["digits"], tmp_path / "m")
    before = _snapshot(d)
    program, files = load_model(d)
    with pytest.raises(ActcError, match="refusing to write over the input"):
        save_model(program, d, source=files)
    with pytest.raises(ActcError, match="refusing"):
        save_model(program, str(d) + "/./", source=files)
    assert _snapshot(d) == before


# ----------------------------------------------------------- a real PIR model
@pytest.mark.paddle
@pytest.mark.skipif(importlib.util.find_spec("paddle") is None, reason="paddle not installed")
def test_real_pir_export(tmp_path):
    script = textwrap.dedent("""
        import sys
        import paddle
        net = paddle.nn.Linear(4, 2)
        net.eval()
        paddle.jit.save(net, sys.argv[1] + "/model",
                        input_spec=[paddle.static.InputSpec([None, 4], "float32", "x")])
    """)
    env = {k: v for k, v in _env().items() if k != "FLAGS_enable_pir_api"}
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True, env=env,
                   capture_output=True, timeout=300)
    assert (tmp_path / "model.json").is_file(), list(tmp_path.iterdir())
    assert (tmp_path / "model.json").read_bytes().startswith(b'{"base_code":{"magic":"pir"')
    before = _snapshot(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "actc", "dump", str(tmp_path)],
                          capture_output=True, text=True, env=_env(), timeout=120)
    assert proc.returncode == 2
    _check_stderr(proc.stderr, tmp_path / "model.json", "PIR")
    assert "FLAGS_enable_pir_api=0" in proc.stderr
    assert _snapshot(tmp_path) == before
