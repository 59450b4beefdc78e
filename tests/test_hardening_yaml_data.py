"""Hardening of the ACT YAML reader and the data loader (issue 11, "YAML" and "Data").

Every bad config is refused through the CLI as one line ``FILE:LINE:COL: error: ...`` with
exit 2, never an internal error; a seeded fuzz of mutated configs checks the same at scale.
Bad data gets messages that say what is wrong with the file. No Paddle needed.
"""
from __future__ import annotations

import contextlib
import io
import random
import re
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from actc.act import load as act_load
from actc.cli.main import main
from actc.data import MAX_FUNCTION_BATCHES, Dataset, FeedSpec
from actc.errors import ActcError

ROOT = Path(__file__).resolve().parent.parent
IMAGE = FeedSpec("image", (-1, 1, 8, 8), "float32")


def actc(*argv: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``actc ARGV`` run in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(argv))
    return rc, out.getvalue(), err.getvalue()


def refused(path: Path) -> str:
    """The one error line ``actc lower PATH`` prints; asserts exit 2 and a clean message."""
    rc, _, err = actc("lower", str(path))
    assert rc == 2, err
    assert "internal error" not in err and "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ": error: " in ln]
    assert len(lines) == 1 and len(err.strip().splitlines()) == 1, err
    return lines[0]


def said(line: str) -> str:
    """The message of an error line, without its location (test paths hold test names)."""
    return line.partition(": error: ")[2]


def at(path: Path, line: int, col: int | None = None) -> str:
    return f"{path}:{line}:{col}: error: " if col else f"{path}:{line}:"


def write(tmp_path: Path, text: str | bytes, name: str = "c.yaml") -> Path:
    p = tmp_path / name
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(textwrap.dedent(text))
    return p


# -- YAML: aliases ------------------------------------------------------------------------------
def _bomb(levels: int = 9) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        refs = ", ".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    lines += ["QuantPost:", f"  quantize_op_types: *a{levels - 1}"]
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_capped_at_the_alias(tmp_path):
    """9 levels of 9 aliases expand to 387M nodes: it took minutes and gigabytes before."""
    p = write(tmp_path, _bomb())
    t0 = time.perf_counter()
    line = refused(p)
    assert time.perf_counter() - t0 < 5
    assert f"{act_load.MAX_NODES}" in said(line) and "alias" in said(line)
    m = re.match(rf"{re.escape(str(p))}:(\d+):(\d+): error: ", line)
    assert m, line
    row = int(m.group(1))
    assert "*a" in p.read_text().splitlines()[row - 1]


def test_small_aliases_still_work(tmp_path):
    p = write(tmp_path, """\
        ops: &ops [conv2d, depthwise_conv2d]
        QuantPost:
          quantize_op_types: *ops
    """)
    rc, out, err = actc("lower", str(p))
    assert rc == 0, err
    assert "conv2d" in out


@pytest.mark.parametrize("text, line", [
    ("QuantPost: &a\n  quantize_op_types: *a\n", 2),
    ("QuantPost:\n  quantize_op_types: &a [conv2d, *a]\n", 2),
    ("QuantPost:\n  x: &m\n    y: [1, {z: *m}]\n", 3),
])
def test_self_referencing_anchor(tmp_path, text, line):
    p = write(tmp_path, text)
    msg = refused(p)
    assert msg.startswith(f"{p}:{line}:") and "refers to itself" in said(msg)


# -- YAML: tags, encodings, characters ----------------------------------------------------------
@pytest.mark.parametrize("value, words", [
    ("!!python/object/apply:os.system ['echo hi']", "tag"),
    ("!!python/name:os.system", "tag"),
    ("!!binary aGVsbG8=", "tag"),
    ("!custom 3", "tag"),
    ("!!int 'abc'", "not an int"),
    ("!!int ''", "not an int"),
    ("!!float ''", "not a number"),
    ("!!float 'abc'", "not a number"),
    ("!!bool 'maybe'", "not a bool"),
    ("2020-13-45", "not a date"),
    ("!!str {a: 1}", "!!str"),
    ("!!map [1, 2]", "!!map"),
    (".inf", "not a finite number"),
])
def test_bad_tags_and_values(tmp_path, value, words):
    p = write(tmp_path, f"QuantPost:\n  batch_size: {value}\n")
    msg = refused(p)
    assert msg.startswith(at(p, 2, 15)), msg
    assert words in said(msg)


@pytest.mark.parametrize("value", ["1e999", "-.inf", ".nan", "1.0e999"])
def test_non_finite_numbers(tmp_path, value):
    """They lowered to a recipe that cannot hold them ('cannot write inf', an internal error)."""
    p = write(tmp_path, f"Distillation:\n  alpha: {value}\n")
    msg = refused(p)
    assert msg.startswith(at(p, 2, 10)) and "not a finite number" in said(msg)


def test_bad_tag_on_a_key(tmp_path):
    p = write(tmp_path, "QuantPost:\n  !!int 'x': 3\n")
    assert refused(p).startswith(at(p, 2, 3))


def test_equals_sign_is_a_plain_string(tmp_path):
    """PyYAML resolves a bare '=' to the 'value' tag, which has no constructor."""
    p = write(tmp_path, "QuantPost:\n  algo: =\n")
    msg = refused(p)
    assert msg.startswith(at(p, 2, 9)) and "'='" in said(msg)


@pytest.mark.parametrize("data, line, col, words", [
    (b"QuantPost:\n  batch_size: \xff\xfe4\n", 2, 15, "UTF-8"),
    (b"QuantPost:\n  algo: caf\xc3\n", 2, 12, "UTF-8"),
    (b"\xff\xfeQ\x00\n\x00\x00\xd8", 2, 1, "UTF-16"),
    (b"QuantPost:\n  batch_size: 4\x00\n", 2, 16, "U+0000"),
    (b"QuantPost:\n  algo: a\x07b\n", 2, 10, "U+0007"),
])
def test_bad_bytes(tmp_path, data, line, col, words):
    p = write(tmp_path, data)
    msg = refused(p)
    assert msg.startswith(at(p, line, col)), msg
    assert words in said(msg)


def test_utf16_with_bom_is_read(tmp_path):
    p = write(tmp_path, "QuantPost:\n  batch_size: 4\n".encode("utf-16"))
    rc, out, err = actc("lower", str(p))
    assert rc == 0, err
    assert "batch_size: 4" in out


# -- YAML: merge keys ---------------------------------------------------------------------------
def test_merge_keys_are_supported(tmp_path):
    """As PyYAML reads them (ACT's own reader): explicit keys win over merged ones."""
    p = write(tmp_path, """\
        base: &base
          batch_size: 4
          batch_nums: 2
        more: &more
          algo: avg
          batch_nums: 7
        QuantPost:
          <<: [*base, *more]
          batch_nums: 3
    """)
    cfg = act_load.load_config(p)
    qp = cfg.sections["QuantPost"]
    assert (qp["batch_size"], qp["batch_nums"], qp["algo"]) == (4, 3, "avg")
    rc, out, err = actc("lower", str(p))
    assert rc == 0, err


def test_merge_first_source_wins(tmp_path):
    p = write(tmp_path, """\
        a: &a {batch_nums: 1}
        b: &b {batch_nums: 2}
        QuantPost:
          <<: [*a, *b]
    """)
    assert act_load.load_config(p).sections["QuantPost"]["batch_nums"] == 1


@pytest.mark.parametrize("value", ["5", "[1, 2]", "[*a, 3]"])
def test_bad_merge_value(tmp_path, value):
    p = write(tmp_path, f"a: &a {{batch_nums: 1}}\nQuantPost:\n  <<: {value}\n")
    msg = refused(p)
    assert msg.startswith(f"{p}:3:") and "merge" in said(msg)


# -- YAML: shape and size -----------------------------------------------------------------------
@pytest.mark.parametrize("text, got", [("- QuantPost\n- QuantAware\n", "a list"),
                                       ("hello\n", "a string"), ("42\n", "an int")])
def test_top_level_not_a_mapping(tmp_path, text, got):
    p = write(tmp_path, text)
    msg = refused(p)
    assert msg.startswith(at(p, 1, 1)) and "mapping" in said(msg) and got in said(msg)


@pytest.mark.parametrize("opener, closer", [("[", "]"), ("{a: ", "}")])
def test_deep_nesting(tmp_path, opener, closer):
    n = 5000
    p = write(tmp_path, "QuantPost:\n  quantize_op_types: " + opener * n + "1" + closer * n + "\n")
    msg = refused(p)
    assert msg.startswith(f"{p}:2:") and f"{act_load.MAX_DEPTH}" in said(msg)


def test_huge_file(tmp_path):
    p = write(tmp_path, "QuantPost:\n  batch_size: 4\n# " + "x" * act_load.MAX_BYTES + "\n")
    t0 = time.perf_counter()
    msg = refused(p)
    assert time.perf_counter() - t0 < 2
    assert msg.startswith(f"{p}:1:1: error: ") and "MiB" in said(msg)


def test_many_plain_nodes(tmp_path):
    p = write(tmp_path, "QuantPost:\n  quantize_op_types: [" + "a, " * act_load.MAX_NODES + "]\n")
    msg = refused(p)
    assert msg.startswith(f"{p}:2:") and f"{act_load.MAX_NODES}" in said(msg)


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
def test_config_that_is_a_device():
    msg = refused(Path("/dev/zero"))
    assert msg.startswith("/dev/zero:1:1: error: ") and "not a regular file" in said(msg)


def test_set_value_with_a_python_tag(tmp_path):
    p = write(tmp_path, "QuantPost:\n  batch_size: 4\n")
    rc, _, err = actc("lower", str(p))
    assert rc == 0
    with pytest.raises(ActcError) as e:
        act_load.load_config(p, {"QuantPost.batch_size": "!!python/object/apply:os.getcwd []"})
    assert "tag" in e.value.message and "\n" not in str(e.value)


# -- YAML fuzz ----------------------------------------------------------------------------------
FUZZ_CASES = 300
_TAGS = ["!!python/object/apply:os.system ['true']", "!!int 'x'", "!!float", "!!bool 'z'",
         "!!binary", "!!timestamp 'y'", "!!set", "!!omap", "!foo", "!!str", "!!map", "!!seq",
         "!!null", "!<tag:yaml.org,2002:int>"]
_VALUES = ["=", "~", ".inf", "-.nan", "1e999", "0x1F", "0o17", "2020-13-45", "2021-01-01", "-",
           "?", "*undefined", "&", "!", "<<", "9" * 5000, "[", "{", "'", '"', "|", ">", "%", "@",
           "`", "null", "None", "[[[[]]]]", "{a: {b: {c: }}}", "<<: *a"]


def fuzz_seeds() -> list[str]:
    """The tests' and the package's ACT configs, plus every YAML example in the spec texts."""
    texts = [p.read_text() for p in sorted((ROOT / "tests" / "act_configs").glob("*.yaml"))]
    texts += [p.read_text() for p in sorted((ROOT / "configs").glob("act_*.yaml"))]
    seeds = ROOT.parent / "shared" / "seeds"
    for doc in sorted(seeds.glob("*.txt")) if seeds.is_dir() else []:
        texts += re.findall(r"```yaml\n(.*?)```", doc.read_text(), re.S)
    return texts


def _mutate(text: str, rng: random.Random) -> bytes:
    """One to three random edits of a config: lines, characters, bytes, indents, anchors, tags."""
    lines = text.split("\n")
    for _ in range(rng.randint(1, 3)):
        lines = lines or [""]
        i = rng.randrange(len(lines))
        kind = rng.randrange(9)
        if kind == 0:
            del lines[i]
        elif kind == 1:
            lines.insert(i, lines[i])
        elif kind == 2 and len(lines[i]) > 1:
            j = rng.randrange(len(lines[i]) - 1)
            s = lines[i]
            lines[i] = s[:j] + s[j + 1] + s[j] + s[j + 2:]
        elif kind == 3:
            lines[i] = rng.choice(["", " ", "  ", "\t", "    "]) + lines[i].lstrip(
                "" if rng.random() < 0.5 else " ")
        elif kind == 4:
            j = rng.randrange(len(lines))
            lines[i] = lines[i].rstrip() + " &a"
            lines[j] = re.sub(r":\s.*$", ": *a", lines[j]) if ":" in lines[j] else "*a"
        elif kind == 5:
            lines[i] = re.sub(r":(\s*)", lambda m: f": {rng.choice(_TAGS)} ", lines[i], count=1)
        elif kind == 6:
            lines[i] = re.sub(r":\s.*$", ": " + rng.choice(_VALUES), lines[i]) \
                if ":" in lines[i] else rng.choice(_VALUES)
        elif kind == 7:
            lines.insert(i, "<<: *a" if rng.random() < 0.5 else "  <<: {batch_size: 2}")
        else:
            lines = lines[:i] or [""]
    data = bytearray("\n".join(lines).encode("utf-8"))
    if rng.random() < 0.25 and data:
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data)


def test_yaml_fuzz_no_internal_errors(tmp_path):
    seeds = fuzz_seeds()
    assert len(seeds) >= 15
    rng = random.Random(20240611)
    failures, refused_count = [], 0
    t0 = time.perf_counter()
    for i in range(FUZZ_CASES):
        p = tmp_path / f"case{i:03d}.yaml"
        p.write_bytes(_mutate(rng.choice(seeds), rng))
        try:
            rc, _, err = actc("lower", str(p))
        except BaseException as e:  # noqa: BLE001 - whatever escapes is the failure we count
            rc, err = -1, f"{type(e).__name__}: {e}"
        if rc not in (0, 2) or "internal error" in err or "Traceback" in err:
            failures.append(f"case {i}: {err.strip()[:200]}")
        refused_count += rc == 2
    elapsed = time.perf_counter() - t0
    print(f"yaml fuzz: {FUZZ_CASES} cases, {refused_count} refused, {len(failures)} internal "
          f"errors, {elapsed:.1f} s")
    assert not failures, "\n".join(failures)
    assert elapsed < 30


# -- Data ---------------------------------------------------------------------------------------
@pytest.fixture
def gen_module(tmp_path, monkeypatch):
    """``actc_hard_data.gen:endless`` yields batches forever; ``three`` yields three."""
    pkg = tmp_path / "actc_hard_data"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "gen.py").write_text(textwrap.dedent("""
        import numpy as np

        def endless():
            while True:
                yield {"image": np.zeros((1, 1, 8, 8), np.float32)}

        def three():
            for _ in range(3):
                yield {"image": np.zeros((1, 1, 8, 8), np.float32)}
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "actc_hard_data.gen"
    for name in [m for m in sys.modules if m.startswith("actc_hard_data")]:
        del sys.modules[name]


def test_endless_generator_is_capped(gen_module, capsys):
    ds = Dataset(f"{gen_module}:endless", [IMAGE])
    assert sum(1 for _ in ds.batches(1)) == MAX_FUNCTION_BATCHES
    err = capsys.readouterr().err
    assert "batch_nums" in err and str(MAX_FUNCTION_BATCHES) in err
    assert any("batch_nums" in n for n in ds.notes)
    assert sum(1 for _ in ds.batches(1, batch_nums=MAX_FUNCTION_BATCHES + 5)) == \
        MAX_FUNCTION_BATCHES + 5


def test_short_generator_gets_no_cap_note(gen_module, capsys):
    ds = Dataset(f"{gen_module}:three", [IMAGE])
    assert sum(1 for _ in ds.batches(1)) == 3
    assert ds.notes == [] and capsys.readouterr().err == ""


def data_error(source, feeds=(IMAGE,)) -> str:
    """The message (without the path) of the one-line error reading SOURCE gives."""
    with pytest.raises(ActcError) as e:
        list(Dataset(str(source), list(feeds)).batches(4))
    assert "\n" not in str(e.value) and e.value.path == str(source)
    return e.value.message


def test_text_file_named_npz(tmp_path):
    bad = tmp_path / "d.npz"
    bad.write_text("hello, I am text\n")
    msg = data_error(bad)
    assert "not a valid .npz archive" in msg and "pickle" not in msg


def test_truncated_npz(tmp_path):
    good = tmp_path / "good.npz"
    np.savez(good, image=np.zeros((4, 1, 8, 8), np.float32))
    bad = tmp_path / "d.npz"
    bad.write_bytes(good.read_bytes()[:100])
    assert "not a valid .npz archive" in data_error(bad)


def test_npy_file_says_npz_is_needed(tmp_path):
    p = tmp_path / "d.npy"
    np.save(p, np.zeros((4, 1, 8, 8), np.float32))
    msg = data_error(p)
    assert "context manager" not in msg
    assert ".npy" in msg and ".npz" in msg and "image" in msg


def test_empty_file(tmp_path):
    p = tmp_path / "d.npz"
    p.write_bytes(b"")
    assert "is empty" in data_error(p)


@pytest.mark.skipif(not Path("/dev/null").exists(), reason="no /dev/null")
def test_dev_null():
    msg = data_error("/dev/null")
    assert "no such" not in msg and "not a regular file" in msg


def test_directory_notes_its_other_files(tmp_path, capsys):
    np.savez(tmp_path / "a.npz", image=np.zeros((2, 1, 8, 8), np.float32))
    np.save(tmp_path / "b.npy", np.zeros((2, 1, 8, 8), np.float32))
    (tmp_path / "readme.txt").write_text("x")
    ds = Dataset(str(tmp_path), [IMAGE])
    assert ds.num_samples() == 2
    (note,) = ds.notes
    assert "b.npy" in note and "readme.txt" in note and "2 files" in note
    assert note in capsys.readouterr().err


def test_directory_without_npz_names_what_it_holds(tmp_path):
    np.save(tmp_path / "b.npy", np.zeros((2, 1, 8, 8), np.float32))
    msg = data_error(tmp_path)
    assert "no .npz files" in msg and "b.npy" in msg
