"""Hardening of the recipe language (issue 11): the parser's tables never come from a pickle in
a shared temp dir, imports read only bounded `.actc` files, recipes reach only the registered
stages, and every oversized or too-deep recipe is refused in one line at its position. A seeded
fuzz of the bundled recipes ends in ActcError or success, never in an internal error."""
import os
import pickle
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from actc.cli.main import main
from actc.dsl.compiler import compile_source
from actc.errors import ActcError

REPO = Path(__file__).resolve().parents[1]
ONE_ERROR = re.compile(r"^(?P<where>[^\n]*?):(?P<line>\d+):(?P<col>\d+): error: (?P<msg>.*)$")


def cli(capsys, *argv) -> tuple[int, str]:
    rc = main([str(a) for a in argv])
    return rc, capsys.readouterr().err


def assert_refused(rc: int, err: str, path: Path, fragment: str, line: int | None = None):
    """Exit 2, one error line at path:line:col naming the problem; at most the caret pair
    under it (short lines), never a traceback or an internal error."""
    assert rc == 2, err
    assert "internal error" not in err and "Traceback" not in err, err
    lines = err.splitlines()
    m = ONE_ERROR.match(lines[0])
    assert m, err
    assert m["where"] == str(path), err
    if line is not None:
        assert int(m["line"]) == line, err
    assert fragment in m["msg"], err
    assert len(lines) <= 3 and all(len(x) <= 200 for x in lines), err


def write(tmp_path: Path, text: str, name: str = "r.actc") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ------------------------------------------------------------------ the Lark cache
# as actc called Lark before: the cache file name hashes the options in this order
LARK_OPTIONS_BEFORE = dict(parser="lalr", lexer="contextual", propagate_positions=True,
                           maybe_placeholders=True, cache=True)


def _old_cache_name(tmp_path: Path) -> str:
    """The file name `Lark(cache=True)` used in $TMPDIR for actc's grammar."""
    import tempfile

    from lark import Lark

    probe = tmp_path / "probe"
    probe.mkdir()
    text = (REPO / "grammar" / "actc.lark").read_text(encoding="utf-8")
    saved = tempfile.tempdir
    tempfile.tempdir = str(probe)
    try:
        Lark(text, **LARK_OPTIONS_BEFORE)
    finally:
        tempfile.tempdir = saved
    (name,) = os.listdir(probe)
    return name


class _Payload:
    """Unpickling this creates the marker file: proof that a planted pickle ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


PARSE_ONCE = ("from actc.dsl.parser import parse; "
              "m = parse(open('configs/ptq.actc').read(), 'ptq.actc'); "
              "print(len(m.recipes))")


def _run_python(code: str, tmpdir: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, TMPDIR=str(tmpdir), TEMP=str(tmpdir), TMP=str(tmpdir))
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def test_planted_lark_cache_is_not_loaded(tmp_path):
    name = _old_cache_name(tmp_path)
    shared = tmp_path / "shared_tmp"
    shared.mkdir()
    marker = tmp_path / "pwned"
    with open(shared / name, "wb") as f:
        f.write(name.split("_")[3].encode() + b"\n")  # the grammar hash line Lark checks
        pickle.dump(_Payload(marker), f)
        pickle.dump(_Payload(marker), f)
    proc = _run_python(PARSE_ONCE, shared)
    assert proc.returncode == 0 and proc.stdout.strip() == "1", proc.stderr
    assert not marker.exists(), "actc unpickled a file planted in $TMPDIR"


def test_parser_uses_no_pickle_and_writes_nothing_to_tmp(tmp_path):
    code = ("import pickle\n"
            "def refuse(*a, **k): raise AssertionError('pickle used')\n"
            "pickle.load = pickle.loads = pickle.Unpickler = refuse\n" + PARSE_ONCE)
    proc = _run_python(code, tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == "1", proc.stderr
    assert os.listdir(tmp_path) == []


def test_shipped_parser_tables_match_the_grammar():
    """The generated tables are what a run loads; rebuild them with `python -m actc.dsl.parser`
    after editing grammar/actc.lark."""
    from actc.dsl import parser

    text = parser.grammar_text()
    assert parser.load_tables(text) is not None, "stale tables: run python -m actc.dsl.parser"
    assert parser.load_tables(text + "\n// edited") is None


def test_tables_from_another_lark_version_are_not_loaded(monkeypatch):
    """Lark's table format is its own: tables made by another version are rebuilt, and a
    damaged file is never fatal."""
    from actc.dsl import parser

    text = parser.grammar_text()
    monkeypatch.setattr(parser, "lark_version", "0.0.1")
    assert parser.load_tables(text) is None


def test_damaged_tables_fall_back_to_a_build(tmp_path, monkeypatch):
    import json

    from actc.dsl import parser

    text = parser.grammar_text()
    stored = json.loads(parser.TABLES.read_text(encoding="utf-8"))
    stored["tables"] = {"data": {"rules": "garbage"}, "memo": {}}
    damaged = tmp_path / "parser_tables.json"
    damaged.write_text(json.dumps(stored))
    monkeypatch.setattr(parser, "TABLES", damaged)
    assert parser.load_tables(text) is None


def test_tables_parse_like_the_grammar():
    """Same AST, positions included, from the shipped tables as from a fresh build."""
    from actc.dsl import parser

    built = parser.build_parser(parser.grammar_text())
    for path in sorted(REPO.glob("configs/*.actc")) + sorted(REPO.glob("passes/*.actc")):
        text = path.read_text(encoding="utf-8")
        assert parser.parse(text, str(path)) == parser.parse(text, str(path), lark=built), path


# ------------------------------------------------------------------ imports
def test_import_of_a_non_recipe_file_is_refused_without_echo(tmp_path, capsys):
    path = write(tmp_path, 'import "/etc/passwd"\nrecipe main() {}\n')
    rc, err = cli(capsys, "check", path)
    assert_refused(rc, err, path, "cannot import '/etc/passwd': not a .actc file", line=1)
    assert "root:" not in err  # no line of the file (the tmp path may hold "root")


def test_import_of_dev_zero_is_refused_at_once(tmp_path, capsys):
    path = write(tmp_path, 'import "/dev/zero"\nrecipe main() {}\n')
    t0 = time.perf_counter()
    rc, err = cli(capsys, "check", path)
    assert time.perf_counter() - t0 < 5
    assert_refused(rc, err, path, "not a .actc file", line=1)


def test_import_through_a_link_to_a_non_recipe_is_refused(tmp_path, capsys):
    (tmp_path / "passwd.actc").symlink_to("/etc/passwd")
    (tmp_path / "zero.actc").symlink_to("/dev/zero")
    for name, fragment in (("passwd.actc", "not a .actc file"), ("zero.actc", "not a .actc file")):
        path = write(tmp_path, f'import "{name}"\nrecipe main() {{}}\n')
        rc, err = cli(capsys, "check", path)
        assert_refused(rc, err, path, fragment, line=1)
        assert "root:" not in err  # no line of the file (the tmp path may hold "root")


def test_import_of_a_device_named_actc_is_refused(tmp_path, capsys):
    os.mkfifo(tmp_path / "fifo.actc")
    path = write(tmp_path, 'import "fifo.actc"\nrecipe main() {}\n')
    rc, err = cli(capsys, "check", path)
    assert_refused(rc, err, path, "not a regular file", line=1)


def test_import_size_and_encoding_are_checked(tmp_path, capsys):
    (tmp_path / "big.actc").write_text("# padding\n" * 120_000)
    (tmp_path / "latin1.actc").write_bytes(b"# caf\xe9\n")
    for name, fragment in (("big.actc", "larger than 1048576 bytes"),
                           ("latin1.actc", "not UTF-8 text")):
        path = write(tmp_path, f'import "{name}"\nrecipe main() {{}}\n')
        rc, err = cli(capsys, "check", path)
        assert_refused(rc, err, path, fragment, line=1)


def test_import_chains_are_bounded(tmp_path, capsys):
    for i in range(40):
        (tmp_path / f"m{i}.actc").write_text(f'import "m{i + 1}.actc"\n')
    (tmp_path / "m40.actc").write_text("")
    path = write(tmp_path, 'import "m0.actc"\nrecipe main() {}\n')
    rc, err = cli(capsys, "check", path)
    assert rc == 2 and "imports nested deeper than" in err and "internal" not in err, err


def test_recipe_file_itself_is_read_bounded(tmp_path, capsys):
    rc, err = cli(capsys, "check", "/dev/zero")
    assert rc == 2 and "not a regular file" in err and "internal" not in err, err


def test_a_parse_error_in_an_imported_recipe_shows_its_line(tmp_path, capsys):
    (tmp_path / "mine.actc").write_text("pass p( {\n")
    path = write(tmp_path, 'import "mine.actc"\nrecipe main() {}\n')
    rc, err = cli(capsys, "check", path)
    assert rc == 2 and err.startswith(f"{tmp_path / 'mine.actc'}:1:") and "pass p( {" in err


# ------------------------------------------------------------------ stage lookup
@pytest.mark.parametrize("name", ["_note", "Path", "__class__", "open_dataset"])
def test_only_registered_stages_resolve(name):
    from actc.dsl.registry import StepSpec

    spec = StepSpec(name, "stage", [], path="<stdlib>/stages.actc")
    with pytest.raises(ActcError, match=f"stage '{re.escape(name)}' is not a runtime stage"):
        spec.impl()


def test_unknown_stage_gets_did_you_mean():
    from actc.dsl.registry import StepSpec

    with pytest.raises(ActcError, match="did you mean 'calibrate'"):
        StepSpec("calibrat", "stage", [], path="<stdlib>/stages.actc").impl()


def test_declared_stages_resolve():
    from actc.dsl.registry import default_registry

    reg = default_registry()
    stages = [s for s in reg.steps.values() if s.kind == "stage"]
    assert {s.name for s in stages} >= {"calibrate", "search", "train", "convert", "auto"}
    for spec in stages:
        assert callable(spec.impl())


def test_a_recipe_cannot_declare_a_stage(tmp_path, capsys):
    path = write(tmp_path, 'stage _note(x: any = 1)\nrecipe main() { _note() }\n')
    out = tmp_path / "out"
    rc, err = cli(capsys, "compile", "example", "--recipe", path, "-o", out)
    assert_refused(rc, err, path, "a recipe file cannot declare stage '_note'", line=1)
    assert not out.exists()


def test_a_recipe_path_spelled_like_the_stdlib_cannot_declare_a_stage(tmp_path, monkeypatch,
                                                                     capsys):
    (tmp_path / "<stdlib>").mkdir()
    write(tmp_path / "<stdlib>", "stage _note(x: any = 1)\nrecipe main() { _note() }\n",
          "s.actc")
    monkeypatch.chdir(tmp_path)
    rc, err = cli(capsys, "check", "<stdlib>/s.actc")
    assert_refused(rc, err, Path("<stdlib>/s.actc"), "cannot declare stage '_note'", line=1)


# ------------------------------------------------------------------ bad recipes
N = 1000


def _arg(expr: str) -> str:
    return "recipe main() {\n  quantize(weight_bits: " + expr + ")\n}\n"


def _sel(expr: str) -> str:
    return "recipe main() {\n  skip_ops(ops: " + expr + ")\n}\n"


def _rule(*stmts: str) -> str:
    body = "".join(f"    {s}\n" for s in stmts)
    return ("pass p() {\n  rule r {\n    match o: program\n" + body + "  }\n}\n"
            "recipe main() { p() }\n")


DEEP = {
    "not": _sel("not " * N + "true"),
    "neg": _arg("-" * N + "1"),
    "neg_paren": _arg("-(" * N + "1" + ")" * N),
    "and": _sel("(" * N + "true" + " and true)" * N),
    "or": _sel("true or " * N + "true"),
    "list": _arg("[" * N + "]" * N),
    "map": _arg("{a: " * N + "1" + "}" * N),
    "set": _arg("{" * N + "1" + "}" * N),
    "index": _arg("[1]" + "[0]" * N),
    "attr": _sel("op" + ".type" * N + " == 1"),
    "sum": _arg("1" + " + 1" * N),
    "call": _arg("len(" * N + "1" + ")" * N),
    "if": _rule("if true {" * N + "}" * N),
}


@pytest.mark.parametrize("name", sorted(DEEP))
def test_deep_nesting_is_refused(tmp_path, capsys, name):
    path = write(tmp_path, DEEP[name])
    rc, err = cli(capsys, "check", path)
    assert_refused(rc, err, path, "nested deeper than 100 levels")


def test_nesting_within_the_limit_still_works(tmp_path, capsys):
    path = write(tmp_path, _arg("-(" * 30 + "4" + ")" * 30))  # 30 negations: 4
    rc, err = cli(capsys, "check", path)
    assert rc == 0, err


BAD_VALUES = [
    ("int_4301_digits", _arg("1" * 4301), 2, "integer 1111111111... is out of range"),
    ("int_2_pow_63", _arg("9223372036854775808"), 2, "is out of range"),
    ("float_1e999", _arg("1e999"), 2, "number 1e999 is out of range"),
    ("float_1e999_default", "recipe main(x: float = 1e999) {}\n", 1, "is out of range"),
    ("int_times_float", "recipe main(x: float = 9223372036854775807 * 1e308) {}\n", 1,
     "'*' overflows: the result is not a finite float"),
    ("int_times_int", "recipe main(x: int = 9223372036854775807 * 2) {}\n", 1,
     "'*' overflows: the result does not fit in 64 bits"),
    ("neg_min_int", "recipe main(x: int = -(0 - 9223372036854775807 - 1)) {}\n", 1,
     "'-' overflows"),
]


@pytest.mark.parametrize("name,text,line,fragment", BAD_VALUES, ids=[c[0] for c in BAD_VALUES])
def test_out_of_range_numbers_are_refused(tmp_path, capsys, name, text, line, fragment):
    path = write(tmp_path, text)
    rc, err = cli(capsys, "check", path)
    assert_refused(rc, err, path, fragment, line=line)


def test_set_override_out_of_range_is_refused(tmp_path, capsys):
    path = write(tmp_path, "recipe main(x: float = 1.0) {}\n")
    rc, err = cli(capsys, "check", path, "--set", "x=1e999")
    assert rc == 2 and "out of range" in err and "internal" not in err, err


GROWTH = [
    ("string_doubling", _rule('let s = "ab"', *["let s = s + s"] * 40), 24,
     "'+' would make a string of 2097152 characters; the limit is 1048576"),
    ("list_doubling", _rule("let l = [1]", *["let l = l + l"] * 40), 25,
     "'+' would make a list of 2097152 elements; the limit is 1048576"),
    ("array", _rule("let z = zeros([100000, 100000])"), 4,
     "zeros(): an array of 10000000000 elements is over the limit of 16777216"),
    ("array_broadcast", _rule("let a = zeros([4096])", "let b = zeros([4096, 1])",
                              "let c = a + b + zeros([4096, 1, 1])"), 6, "elements"),
]


@pytest.mark.parametrize("name,text,line,fragment", GROWTH, ids=[c[0] for c in GROWTH])
def test_values_that_grow_without_bound_are_refused(tmp_path, capsys, name, text, line,
                                                    fragment):
    path = write(tmp_path, text)
    rc, err = cli(capsys, "check", path, "--model", "example")
    assert_refused(rc, err, path, fragment, line=line)


def test_runtime_value_nesting_is_bounded(tmp_path, capsys):
    """A loop can nest a list deeper than any literal: printing it is refused, not a crash."""
    path = write(tmp_path, _rule("let l = [1]", *["let l = l + l"] * 12, "let x = []",
                                 "for i in l { set x = [x] }", "note x"))
    rc, err = cli(capsys, "check", path, "--model", "example")
    assert_refused(rc, err, path, "nested deeper than")


DEEP_VALUE = ["let l = [1]", *["let l = l + l"] * 12, "let x = []", "for i in l { set x = [x] }"]
RUNTIME = [
    ("full", _rule("let z = full([100000, 100000], 1.0)"), 4,
     "full(): an array of 10000000000 elements is over the limit of 16777216"),
    ("full_float32_overflow", _rule("let z = full([3], 1e308)"), 4,
     "full(): 1e+308 does not fit in float32"),
    ("array_overflow", _rule("let a = full([3], 1e30) * 1e30"), 4,
     "'*' overflows: the result is not a finite float"),
    ("array_broadcast_mismatch", _rule("let a = zeros([3]) + zeros([4])"), 4,
     "cannot apply '+': operands could not be broadcast"),
    ("array_truth", _rule("let a = zeros([3])", "if a < 1 { }"), 5,
     "an array of 3 elements is neither true nor false"),
    ("str_of_deep_value", _rule(*DEEP_VALUE, "note str(x)"), 19, "a value nested deeper"),
    ("compare_deep_values", _rule(*DEEP_VALUE, "if x == x { }"), 19, "a value nested deeper"),
    ("in_deep_values", _rule(*DEEP_VALUE, "if x in [x] { }"), 19, "a value nested deeper"),
    ("new_var_ragged_data", _rule('let v = new var(name: "v", shape: [2], data: [1, [2]])'), 4,
     "new var: data"),
]


@pytest.mark.parametrize("name,text,line,fragment", RUNTIME, ids=[c[0] for c in RUNTIME])
def test_rule_values_numpy_cannot_take_are_refused(tmp_path, capsys, name, text, line,
                                                   fragment):
    path = write(tmp_path, text)
    rc, err = cli(capsys, "check", path, "--model", "example")
    assert_refused(rc, err, path, fragment, line=line)


def test_long_lines_are_clipped_in_the_caret(tmp_path, capsys):
    path = write(tmp_path, _arg("1 + " * 20 + '"x"' + " + 1" * 20 + " " * 5000 + "+ z"))
    rc, err = cli(capsys, "check", path)
    assert rc == 2 and all(len(x) <= 200 for x in err.splitlines()), err


# ------------------------------------------------------------------ fuzz
SOURCES = sorted(REPO.glob("configs/*.actc")) + sorted(REPO.glob("passes/*.actc"))
# a stdlib pass file is exercised through a bundled recipe that uses its passes
RECIPE_FOR = {"quant": "ptq", "pact": "qat4", "prune": "sparsify", "distill": "distill",
              "edit": "ptq_search", "stages": "ptq"}
TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|[A-Za-z_]\w*'
                   r"|\.\.|->|[=!<>]=|\S")
N_CASES = 300
CASE_SECONDS = 5
HUGE = ["9" * 5000, "1" * 4301, "1e999", "1e308", "9223372036854775808", "-1e400",
        "18446744073709551616", "0.0000000000000000000000001", "4294967296"]


def _deep(rng: random.Random, tok: str) -> str:
    n = rng.choice([50, 99, 101, 300, 1000, 3000])
    return rng.choice([
        lambda: "not " * n + tok, lambda: "-" * n + tok, lambda: "[" * n + tok + "]" * n,
        lambda: "{a: " * n + tok + "}" * n, lambda: tok + "[0]" * n, lambda: tok + ".x" * n,
        lambda: (tok + " and ") * n + tok, lambda: (tok + " + ") * n + tok,
        lambda: "(" * n + tok + ")" * n, lambda: "if true {" * n + "}" * n,
    ])()


# values that parse but are out of range, overflow, or grow past a limit when evaluated
EXPRS = ["9223372036854775807 * 2", "1e308 * 10.0", "9223372036854775807 * 1e308",
         "-(0 - 9223372036854775807 - 1)", "zeros([100000, 100000])",
         "full([4096, 4096], 1.0) + zeros([4096, 1, 1])", "full([3], 1e308)",
         "zeros([3]) + zeros([4])", "zeros([2]) < 1", "1 / 0", "1.0 % 0", "[1, [2]]",
         '"' + "x" * 2000 + '"']
VALUE = re.compile(r"(?<=[:=(,\[] )(?:-?\d[\d.eE+-]*|\"[^\"\n]*\"|[A-Za-z_]\w*)")


def _value_spans(text: str) -> list[tuple[int, int]]:
    """Where a value goes (after `:`, `=`, `(`, `,`, `[`): mutating there keeps the syntax,
    so the case reaches the checker and the evaluator instead of stopping in the parser."""
    return [m.span() for m in VALUE.finditer(text)]


def _grow(rng: random.Random, text: str) -> str:
    """Forty `let x = x + x` after a `let` in a rule body: doubling a string or list."""
    lets = list(re.finditer(r"^( *)let (\w+) = .*$", text, re.M))
    if not lets:
        return text
    m = rng.choice(lets)
    grow = "".join(f"\n{m.group(1)}let {m.group(2)} = {m.group(2)} + {m.group(2)}"
                   for _ in range(40))
    return text[:m.end()] + grow + text[m.end():]


def _mutate(rng: random.Random, text: str) -> str:
    spans = [m.span() for m in TOKEN.finditer(text)]
    if not spans:
        return text + "\x00"
    a, b = spans[rng.randrange(len(spans))]
    values = _value_spans(text)
    if values and rng.random() < 0.5:  # half the token edits hit a value position
        a, b = values[rng.randrange(len(values))]
    tok = text[a:b]
    other = text.__getitem__(slice(*spans[rng.randrange(len(spans))]))
    kind = rng.choice(["delete", "duplicate", "swap", "replace", "deep", "deep", "huge",
                       "huge", "expr", "expr", "bytes", "truncate", "lines", "grow", "grow"])
    if kind == "delete":
        return text[:a] + text[b:]
    if kind == "duplicate":
        return text[:b] + " " + tok + text[b:]
    if kind == "swap":
        c, d = spans[rng.randrange(len(spans))]
        if c < a:
            (a, b), (c, d) = (c, d), (a, b)
        if c < b:
            return text
        return text[:a] + text[c:d] + text[b:c] + text[a:b] + text[d:]
    if kind == "replace":
        return text[:a] + other + text[b:]
    if kind == "deep":
        return text[:a] + _deep(rng, tok) + text[b:]
    if kind == "huge":
        return text[:a] + rng.choice(HUGE) + text[b:]
    if kind == "expr":
        return text[:a] + rng.choice(EXPRS) + text[b:]
    if kind == "bytes":
        noise = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 24)))
        return text[:a] + noise.decode("latin-1") + text[a:]
    if kind == "truncate":
        return text[:rng.randrange(len(text))]
    if kind == "grow":
        return _grow(rng, text)
    lines = text.splitlines(keepends=True)
    i = rng.randrange(len(lines))
    return "".join(lines[:i] + [lines[i]] * rng.randrange(2, 60) + lines[i:])


def _cases():
    rng = random.Random(20250611)
    out = []
    for i in range(N_CASES):
        source = SOURCES[i % len(SOURCES)]
        text = source.read_text(encoding="utf-8")
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            text = _mutate(rng, text)
        out.append((i, source, text))
    return out


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang(f"case ran past {CASE_SECONDS} s")


def _dry_run(compiled, program, files):
    """What `actc check --model` runs: every pass on a copy of the program, no stage."""
    from actc.dsl.pipeline import PipelineContext
    from actc.dsl.rules import RuleRunner

    program = program.clone()
    ctx = PipelineContext(program=program, source=files, original=program.clone())
    for st in compiled.steps:
        if st.spec.kind == "pass":
            RuleRunner(program, st.spec.passdef, st.args, ctx).run()


def _registry_with(stem: str, path: str, text: str):
    """The stdlib registry with one pass file replaced by a mutated copy."""
    from actc.dsl.parser import parse
    from actc.dsl.registry import Registry, stdlib_files

    reg = Registry()
    for name, (display, original) in stdlib_files().items():
        if name == stem:
            reg.add_module(parse(text, path), stdlib=True)
        else:
            reg.add_module(parse(original, display), stdlib=True)
    return reg


def _run_case(source: Path, text: str, tmp_path: Path, program, files, monkeypatch):
    import actc.dsl.compiler as compiler

    path = str(tmp_path / source.name)
    if source.parent.name == "passes":
        reg = _registry_with(source.stem, path, text)
        monkeypatch.setattr(compiler, "default_registry", reg.copy)
        recipe = REPO / "configs" / f"{RECIPE_FOR[source.stem]}.actc"
        compiled = compile_source(recipe.read_text(encoding="utf-8"), str(recipe),
                                  program=program)
        monkeypatch.undo()
    else:
        compiled = compile_source(text, path, program=program)
    _dry_run(compiled, program, files)


def _memory_cap():
    """Cap the address space while the fuzz runs (a case that grows without bound fails
    with MemoryError instead of taking the machine); restored afterwards."""
    import resource

    try:
        size = next(int(x.split()[1]) for x in open("/proc/self/status")
                    if x.startswith("VmSize:")) * 1024
    except (OSError, StopIteration):
        return None
    old = resource.getrlimit(resource.RLIMIT_AS)
    cap = size + (3 << 30)
    if old[1] != resource.RLIM_INFINITY:
        cap = min(cap, old[1])
    resource.setrlimit(resource.RLIMIT_AS, (cap, old[1]))
    return old


def test_fuzz_mutated_recipes(tmp_path, monkeypatch):
    import resource

    from actc.example import EXAMPLE_DIR
    from actc.io.model import load_model

    program, files = load_model(EXAMPLE_DIR)
    cases = _cases()
    internal, refused, slowest = [], 0, (0.0, None)
    old_handler = signal.signal(signal.SIGALRM, _alarm)
    old_limit = _memory_cap()
    t_start = time.perf_counter()
    try:
        for i, source, text in cases:
            t0 = time.perf_counter()
            signal.setitimer(signal.ITIMER_REAL, CASE_SECONDS)
            try:
                _run_case(source, text, tmp_path, program, files, monkeypatch)
            except ActcError:
                refused += 1
            except BaseException as e:  # noqa: B902 - anything else is an internal error
                if isinstance(e, KeyboardInterrupt):
                    raise
                internal.append((i, source.name, f"{type(e).__name__}: {str(e)[:120]}"))
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                monkeypatch.undo()
            dt = time.perf_counter() - t0
            slowest = max(slowest, (dt, i))
    finally:
        signal.signal(signal.SIGALRM, old_handler)
        if old_limit is not None:
            resource.setrlimit(resource.RLIMIT_AS, old_limit)
    total = time.perf_counter() - t_start
    print(f"\nfuzz: {len(cases)} mutated recipes: {refused} refused (ActcError), "
          f"{len(cases) - refused - len(internal)} accepted, {len(internal)} internal errors; "
          f"{total:.1f} s, slowest case {slowest[1]} {slowest[0]:.2f} s")
    for row in internal:
        print("  internal:", *row)
    assert not internal, internal[:10]
    assert total < 30
