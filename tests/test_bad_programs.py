"""Semantically broken programs are refused on load, blaming the input (file, block, op, var),
before any pass runs and before anything reaches Paddle's C++; errors Paddle raises while running
a program, and non-finite weights, are one-line user errors too. Seeded, so failures reproduce."""
from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from actc.cli.main import main
from actc.errors import ActcError
from actc.io.model import load_model
from actc.io.params import Tensor, write_params
from actc.ir import opdefs
from actc.ir.attrs import A
from actc.ir.verify import verify, verify_input
from actc.proto import framework_pb2 as fpb

REPO = Path(__file__).resolve().parent.parent
QUANTIZE_ONLY = "recipe main() {\n    quantize()\n}\n"


# ------------------------------------------------------------------ helpers
def _copy_model(src: Path, dst: Path, desc: fpb.ProgramDesc | None = None) -> Path:
    """A model dir with src's params (and data files) and ``desc`` as its program."""
    dst.mkdir(parents=True, exist_ok=True)
    for f in ("model.pdiparams", "calib.npz", "test.npz"):
        if (src / f).exists():
            shutil.copyfile(src / f, dst / f)
    if desc is None:
        shutil.copyfile(src / "model.pdmodel", dst / "model.pdmodel")
    else:
        (dst / "model.pdmodel").write_bytes(desc.SerializeToString())
    return dst


def _desc(model_dir: Path) -> fpb.ProgramDesc:
    d = fpb.ProgramDesc()
    d.ParseFromString((model_dir / "model.pdmodel").read_bytes())
    return d


def _op(desc: fpb.ProgramDesc, op_type: str, nth: int = 0, block: int = 0) -> fpb.OpDesc:
    return [o for o in desc.blocks[block].ops if o.type == op_type][nth]


def _slot(slots, name: str):
    return next(s for s in slots if s.parameter == name)


def _attr(op: fpb.OpDesc, name: str):
    return next(a for a in op.attrs if a.name == name)


def _compile(capsys, model: Path, out: Path, recipe: str | Path, *extra) -> tuple[int, str]:
    rc = main(["compile", str(model), "--recipe", str(recipe), "-o", str(out), *extra])
    return rc, capsys.readouterr().err


@pytest.fixture
def quantize_recipe(tmp_path) -> Path:
    p = tmp_path / "q.actc"
    p.write_text(QUANTIZE_ONLY)
    return p


def _assert_input_blamed(err: str, path: Path, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert str(path) in lines[0] and ": error: " in lines[0], err
    assert "bug in step" not in err and "internal error" not in err, err
    for n in needles:
        assert n in lines[0], (n, err)


# --------------------------------------------------------- op definitions
def test_opdefs_are_data_read_without_paddle():
    """The definitions ship as JSON in the package; reading them imports no Paddle."""
    code = ("import sys; from actc.ir import opdefs; d = opdefs.lookup('batch_norm'); "
            "assert d and not d.inputs['Mean'].dispensable; "
            "assert 'paddle' not in sys.modules; print(opdefs.paddle_version())")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "3.3.1"
    size = (REPO / "actc" / "ir" / "opdefs.json").stat().st_size
    assert size < 1 << 20


def test_opdefs_match_installed_paddle():
    """tools/make_opdefs.py reproduces the shipped file from Paddle's registry."""
    pytest.importorskip("paddle")
    code = ("import json, sys; sys.path.insert(0, 'tools'); import make_opdefs; "
            "print(json.dumps(make_opdefs.build(), sort_keys=True))")
    env = dict(os.environ, FLAGS_enable_pir_api="0", GLOG_minloglevel="2")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    built = json.loads(proc.stdout.strip().splitlines()[-1])
    shipped = json.loads((REPO / "actc" / "ir" / "opdefs.json").read_text())
    if built["paddle"] != shipped["paddle"]:
        pytest.skip(f"installed Paddle {built['paddle']} != shipped {shipped['paddle']}")
    assert built == shipped


# ------------------------------------------------------- no false positives
def _clean_models(corpus):
    models = dict(corpus)
    models["tfm_encoder"] = REPO / "tests" / "fixtures" / "tfm_encoder"
    return models


def test_corpus_loads_clean(corpus):
    """Every corpus model, the example and the transformer fixture pass the input checks
    (control flow included: sub-blocks reading their parents' vars)."""
    for name, d in _clean_models(corpus).items():
        program, _ = load_model(d)
        problems, notes = verify_input(program)
        assert problems == [] and notes == [], (name, problems[:3], notes[:3])
        assert verify(program) == [], name


# ----------------------------------------------------- named broken programs
def _undefined_var(desc):
    _slot(_op(desc, "relu").inputs, "X").arguments[0] = "no_such_var"
    return "'no_such_var'"


def _empty_required(desc):
    del _slot(_op(desc, "batch_norm").inputs, "Mean").arguments[:]
    return "'Mean'"


def _empty_bias(desc):
    """The batch_norm that segfaulted Paddle's oneDNN kernel."""
    del _slot(_op(desc, "batch_norm").inputs, "Bias").arguments[:]
    return "'Bias'"


def _missing_slot(desc):
    op = _op(desc, "conv2d")
    del op.inputs[[s.parameter for s in op.inputs].index("Filter")]
    return "'Filter'"


def _two_args(desc):
    s = _slot(_op(desc, "relu").inputs, "X")
    s.arguments.append(s.arguments[0])
    return "takes one var"


def _reordered(desc):
    ops = desc.blocks[0].ops
    i = next(k for k, o in enumerate(ops) if o.type == "conv2d")
    a, b = fpb.OpDesc(), fpb.OpDesc()
    a.CopyFrom(ops[i])
    b.CopyFrom(ops[i + 1])
    ops[i].CopyFrom(b)
    ops[i + 1].CopyFrom(a)
    return "before any op writes it"


def _wrong_attr_type(desc):
    a = _attr(_op(desc, "conv2d"), "strides")
    a.type = A.STRING
    a.s = "1,1"
    return "'strides'"


def _sub_block_out_of_range(desc):
    a = _op(desc, "relu").attrs.add(name="sub_block", type=A.BLOCK)
    a.block_idx = 7
    return "block 7"


def _cyclic_blocks(desc):
    for idx in (1, 2):
        desc.blocks.add(idx=idx, parent_idx=3 - idx)
    return "parent"


def _undeclared_output(desc):
    op = _op(desc, "relu")
    name = op.outputs[0].arguments[0]
    blk = desc.blocks[0]
    del blk.vars[[v.name for v in blk.vars].index(name)]
    return f"'{name}'"


BROKEN = {f.__name__[1:]: f for f in (
    _undefined_var, _empty_required, _empty_bias, _missing_slot, _two_args, _reordered,
    _wrong_attr_type, _sub_block_out_of_range, _cyclic_blocks, _undeclared_output)}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_program_blames_input(case, example_dir, tmp_path, capsys, quantize_recipe):
    desc = _desc(example_dir)
    needle = BROKEN[case](desc)
    model = _copy_model(example_dir, tmp_path / "m", desc)
    with pytest.raises(ActcError) as e:
        load_model(model)
    assert needle in e.value.message and "\n" not in str(e.value)
    for flags in ((), ("--no-verify",)):
        rc, err = _compile(capsys, model, tmp_path / "out", quantize_recipe, *flags)
        assert rc == 2, err
        _assert_input_blamed(err, model / "model.pdmodel", needle)
    assert not (tmp_path / "out").exists()


def test_error_names_block_op_and_var(example_dir, tmp_path):
    desc = _desc(example_dir)
    ops = list(desc.blocks[0].ops)
    idx = next(i for i, o in enumerate(ops) if o.type == "relu")
    _undefined_var(desc)
    model = _copy_model(example_dir, tmp_path / "m", desc)
    with pytest.raises(ActcError) as e:
        load_model(model)
    msg = str(e.value)
    assert msg.startswith(str(model / "model.pdmodel") + ": error: ")
    assert f"block 0 op #{idx} 'relu'" in msg and "'no_such_var'" in msg, msg


def test_control_flow_errors_in_sub_blocks(corpus, tmp_path):
    """Sub-block checks: a reference to a block the op's block does not enclose, and a read of
    a var that only a sibling block writes."""
    src = corpus["control_flow"]
    desc = _desc(src)
    ops = [o for o in desc.blocks[0].ops if o.type in ("while", "conditional_block")]
    _attr(ops[0], "sub_block").block_idx = 0
    with pytest.raises(ActcError, match="block 0"):
        load_model(_copy_model(src, tmp_path / "a", desc))
    desc = _desc(src)
    desc.blocks[2].parent_idx = 3
    with pytest.raises(ActcError, match="parent"):
        load_model(_copy_model(src, tmp_path / "b", desc))


def test_unknown_op_type_is_a_note_not_an_error(example_dir, tmp_path, capsys,
                                                quantize_recipe):
    """Custom ops exist: an op type Paddle does not define loads (with a note) and compiles
    when no step runs it."""
    desc = _desc(example_dir)
    _op(desc, "relu").type = "my_custom_relu"
    model = _copy_model(example_dir, tmp_path / "m", desc)
    program, _ = load_model(model)
    problems, notes = verify_input(program)
    assert problems == [] and any("my_custom_relu" in n for n in notes), notes
    rc, err = _compile(capsys, model, tmp_path / "out", quantize_recipe)
    assert rc == 0, err


# ------------------------------------------------------ Paddle's own errors
def _bad_pooling(desc):
    """Structurally fine (a STRING attr holding a string), but Paddle refuses the value."""
    _attr(_op(desc, "pool2d"), "pooling_type").s = "median"


@pytest.mark.paddle
@pytest.mark.parametrize("edit,needle", [
    (_bad_pooling, "pool2d"),
    (lambda d: setattr(_op(d, "relu"), "type", "my_custom_relu"), "my_custom_relu"),
])
def test_paddle_error_is_one_line(edit, needle, example_dir, tmp_path, capsys):
    pytest.importorskip("paddle")
    desc = _desc(example_dir)
    edit(desc)
    model = _copy_model(example_dir, tmp_path / "m", desc)
    rc, err = _compile(capsys, model, tmp_path / "out", "ptq")
    lines = [ln for ln in err.strip().splitlines() if ": note: " not in ln]
    assert rc == 2, err
    assert len(lines) == 1 and ": error: Paddle refused op " in lines[0], err
    assert "internal error" not in err and needle in lines[0], err
    assert "Traceback" not in err and not (tmp_path / "out").exists()


# ---------------------------------------------------------- non-finite weights
@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_non_finite_weight_refused(bad, example_dir, tmp_path):
    model = _copy_model(example_dir, tmp_path / "m")
    program, files = load_model(model)
    names = program.persistable_names()
    tensors = {n: Tensor(array=np.array(t.array), dtype_code=t.dtype_code, lod=list(t.lod),
                         desc=t.desc) for n, t in program.params.items()}
    target = next(n for n in names if tensors[n].array.ndim == 4)
    tensors[target].array.reshape(-1)[[0, 3, 5]] = bad
    del program
    with open(files.params, "wb") as fh:
        write_params(fh, tensors, names)
    with pytest.raises(ActcError) as e:
        load_model(model)
    msg = str(e.value)
    assert f"'{target}'" in msg and "3 " in msg and "non-finite" in msg, msg
    assert str(files.params) in msg


# --------------------------------------------------------------------- fuzz
def _choose_op(desc, rng, block=None, where=lambda o: True):
    blocks = [desc.blocks[block]] if block is not None else list(desc.blocks)
    cands = [(b.idx, i) for b in blocks for i, o in enumerate(b.ops) if where(o)]
    if not cands:
        return None, None
    b, i = rng.choice(cands)
    return desc.blocks[b], i


def m_drop_var(desc, rng):
    block = rng.choice(list(desc.blocks))
    used = {a for o in block.ops for s in list(o.inputs) + list(o.outputs) for a in s.arguments}
    cands = [i for i, v in enumerate(block.vars) if v.name in used and not v.persistable]
    if not cands:
        return None
    i = rng.choice(cands)
    name = block.vars[i].name
    del block.vars[i]
    return f"drop var {name}"


def m_rename_input(desc, rng):
    block, i = _choose_op(desc, rng, where=lambda o: any(s.arguments for s in o.inputs))
    if block is None:
        return None
    op = block.ops[i]
    s = rng.choice([s for s in op.inputs if s.arguments])
    k = rng.randrange(len(s.arguments))
    s.arguments[k] = f"undeclared_{rng.randrange(1000)}"
    return f"rename {op.type}.{s.parameter}[{k}]"


def m_swap_ops(desc, rng):
    block = desc.blocks[0]
    n = len(block.ops)
    i, j = sorted(rng.sample(range(n), 2))
    if rng.random() < 0.5:  # neighbours, often a producer and its consumer
        j = min(i + 1, n - 1)
        if i == j:
            return None
    a, b = fpb.OpDesc(), fpb.OpDesc()
    a.CopyFrom(block.ops[i])
    b.CopyFrom(block.ops[j])
    block.ops[i].CopyFrom(b)
    block.ops[j].CopyFrom(a)
    return f"swap ops {i},{j}"


def m_sub_block(desc, rng):
    block, i = _choose_op(desc, rng)
    op = block.ops[i]
    a = next((a for a in op.attrs if a.type == A.BLOCK), None)
    if a is None:
        a = op.attrs.add(name="sub_block", type=A.BLOCK)
    a.block_idx = rng.choice([len(desc.blocks), len(desc.blocks) + 5, -1, 0, block.idx, 99])
    return f"{op.type}.sub_block = {a.block_idx}"


_RETYPE = [(A.STRING, "s", "x"), (A.INTS, "ints", [1]), (A.FLOAT, "f", 1.5),
           (A.STRINGS, "strings", ["a"]), (A.BOOLEAN, "b", True), (A.INT, "i", 3),
           (A.FLOATS, "floats", [0.5]), (A.LONG, "l", 9)]


def m_attr_type(desc, rng):
    block, i = _choose_op(desc, rng, where=lambda o: any(
        not a.name.startswith("op_") for a in o.attrs))
    if block is None:
        return None
    op = block.ops[i]
    a = rng.choice([a for a in op.attrs if not a.name.startswith("op_")])
    old = a.type
    new_type, field, value = rng.choice([r for r in _RETYPE if r[0] != old])
    name = a.name
    a.Clear()
    a.name, a.type = name, new_type
    if isinstance(value, list):
        getattr(a, field).extend(value)
    else:
        setattr(a, field, value)
    return f"{op.type}.{name}: type {old} -> {new_type}"


def m_empty_slot(desc, rng):
    block, i = _choose_op(desc, rng, where=lambda o: any(s.arguments for s in o.inputs))
    if block is None:
        return None
    op = block.ops[i]
    slots = [s for s in list(op.inputs) + list(op.outputs) if s.arguments]
    defn = opdefs.lookup(op.type)
    if defn is not None and rng.random() < 0.7:  # mostly the slots Paddle requires
        req = [s for s in slots if s.parameter in defn.inputs and defn.inputs[s.parameter].required
               or s.parameter in defn.outputs and defn.outputs[s.parameter].required]
        slots = req or slots
    s = rng.choice(slots)
    del s.arguments[:]
    return f"empty {op.type}.{s.parameter}"


def m_cyclic_parents(desc, rng):
    n = len(desc.blocks)
    if n == 1 or rng.random() < 0.3:
        k = rng.choice([0, 1])
        if k == 0:
            desc.blocks[0].parent_idx = 0
            return "block 0 parent 0"
        desc.blocks.add(idx=n, parent_idx=n)
        return f"block {n} is its own parent"
    a, b = rng.sample(range(1, n), 2) if n > 2 else (1, 1)
    desc.blocks[a].parent_idx = b
    desc.blocks[b].parent_idx = a
    return f"blocks {a},{b} parents of each other"


def m_extra_arg(desc, rng):
    block, i = _choose_op(desc, rng, where=lambda o: any(s.arguments for s in o.inputs))
    if block is None:
        return None
    op = block.ops[i]
    s = rng.choice([s for s in op.inputs if s.arguments])
    s.arguments.append(s.arguments[0])
    return f"duplicate {op.type}.{s.parameter}"


MUTATIONS = [m_drop_var, m_rename_input, m_swap_ops, m_sub_block, m_attr_type, m_empty_slot,
             m_cyclic_parents, m_extra_arg]
FUZZ_MODELS = ("digits", "resnet18", "control_flow")
N_FUZZ = 105


def fuzz_cases(n: int = N_FUZZ, seed: int = 20250611):
    """(index, model, mutation name, seed) for n seeded mutations; each is applied afresh."""
    rng = random.Random(seed)
    return [(i, FUZZ_MODELS[i % len(FUZZ_MODELS)], MUTATIONS[(i // 3) % len(MUTATIONS)].__name__,
             rng.randrange(2 ** 32)) for i in range(n)]


def mutate(src: Path, mutation: str, seed: int) -> tuple[fpb.ProgramDesc, str]:
    """The mutated ProgramDesc of src and what was done (retrying inapplicable picks)."""
    rng = random.Random(seed)
    fn = globals()[mutation]
    for _ in range(20):
        desc = _desc(src)
        what = fn(desc, rng)
        if what:
            return desc, what
    raise AssertionError(f"{mutation} found nothing to mutate in {src}")


def run_fuzz_case(case, corpus, tmp_path, capsys, recipe) -> tuple[str, str]:
    """'refused' (ActcError at load), 'loaded' (compile ok), or 'internal' / 'blamed-actc'."""
    i, model, mutation, seed = case
    src = corpus[model]
    desc, what = mutate(src, mutation, seed)
    d = _copy_model(src, tmp_path / f"m{i}", desc)
    try:
        program, _ = load_model(d)
        verify(program)
        loaded = True
    except ActcError as e:
        assert "\n" not in str(e), (what, str(e))
        loaded = False
    rc, err = _compile(capsys, d, tmp_path / f"out{i}", recipe)
    if rc == 1 or "internal error" in err:
        return "internal", f"{what}: {err.strip()}"
    if "bug in step" in err:
        return "blamed-actc", f"{what}: {err.strip()}"
    if rc == 2:
        assert len(err.strip().splitlines()) == 1, (what, err)
        return ("refused" if not loaded else "compile-error"), what
    assert rc == 0, (what, err)
    return ("loaded" if loaded else "refused-then-compiled"), what


@pytest.mark.parametrize("case", fuzz_cases(), ids=lambda c: f"{c[0]}-{c[1]}-{c[2]}")
def test_fuzz_semantic_mutation(case, corpus, tmp_path, capsys, quantize_recipe):
    outcome, what = run_fuzz_case(case, corpus, tmp_path, capsys, quantize_recipe)
    assert outcome in ("refused", "loaded"), (outcome, what)


def test_fuzz_mutants_are_refused_on_load(corpus, tmp_path):
    """Nearly every mutant is broken, and load must say so (1 of 105 was refused before the
    input checks). What may still load: retyped attrs Paddle converts (INT stored for a
    BOOLEAN, ...), and swaps of independent ops."""
    loaded = []
    for i, model, mutation, seed in fuzz_cases():
        desc, what = mutate(corpus[model], mutation, seed)
        d = _copy_model(corpus[model], tmp_path / f"m{i}", desc)
        try:
            load_model(d)
            loaded.append((mutation, what))
        except ActcError:
            pass
        shutil.rmtree(d)
    assert len(loaded) <= 5, loaded
    assert {m for m, _ in loaded} <= {"m_attr_type", "m_swap_ops"}, loaded


# ------------------------------------------- fuzz through Paddle, in a subprocess
_VALUES = {A.INT: [-7, 0, 100000], A.LONG: [-7, 100000], A.FLOAT: [-1.0, float("nan"), 1e30],
           A.STRING: ["bogus", ""], A.INTS: [[], [0], [-1, -1], [100, 100], [1, 2, 3, 4, 5]],
           A.BOOLEAN: [True, False]}


def m_attr_value(desc, rng):
    """A well-typed but wrong attr value: only Paddle can judge it."""
    block, i = _choose_op(desc, rng, where=lambda o: o.type not in ("feed", "fetch") and any(
        a.type in _VALUES and not a.name.startswith("op_") for a in o.attrs))
    op = block.ops[i]
    a = rng.choice([a for a in op.attrs if a.type in _VALUES and not a.name.startswith("op_")])
    value = rng.choice(_VALUES[a.type])
    field = {A.INT: "i", A.LONG: "l", A.FLOAT: "f", A.STRING: "s", A.BOOLEAN: "b"}.get(a.type)
    if field is None:
        del a.ints[:]
        a.ints.extend(value)
    else:
        setattr(a, field, value)
    return f"{op.type}.{a.name} = {value!r}"


# Runs each model dir given on the command line through a PTQ compile, logging every start and
# end, so a crash of the process names the case it died in.
_DRIVER = """
import sys, io, contextlib
from actc.cli.main import main
log = open(sys.argv[1], "a")
for d in sys.argv[2:]:
    log.write(f"START {d}\\n"); log.flush()
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(["compile", d, "--recipe", "ptq", "-o", d + "-out", "--no-eval",
                   "--set", "batch_nums=1", "--set", "batch_size=8"])
    lines = [ln for ln in err.getvalue().splitlines() if ": note: " not in ln]
    log.write(f"END {rc} {len(lines)} {lines[0] if lines else ''}\\n"); log.flush()
"""


def _paddle_fuzz_models(corpus, tmp_path, n_values=24):
    """The digits mutants that pass the input checks (they reach Paddle) and seeded wrong
    attr values; returns {model dir: what was done}."""
    src = corpus["digits"]
    todo = {}
    for i, model, mutation, seed in fuzz_cases():
        if model != "digits":
            continue
        desc, what = mutate(src, mutation, seed)
        d = _copy_model(src, tmp_path / f"s{i}", desc)
        try:
            load_model(d)
            todo[str(d)] = what
        except ActcError:
            shutil.rmtree(d)
    rng = random.Random(4242)
    for k in range(n_values):
        desc, what = mutate(src, "m_attr_value", rng.randrange(2 ** 32))
        todo[str(_copy_model(src, tmp_path / f"v{k}", desc))] = what
    return todo


@pytest.mark.paddle
@pytest.mark.slow
def test_fuzz_through_paddle_never_crashes(corpus, tmp_path):
    """Mutants that load run a PTQ compile (calibration runs Paddle): exit 0 or one-line
    exit 2, never an internal error, and never a dead process."""
    pytest.importorskip("paddle")
    todo = _paddle_fuzz_models(corpus, tmp_path)
    log = tmp_path / "fuzz.log"
    env = dict(os.environ, FLAGS_enable_pir_api="0", GLOG_minloglevel="2")
    proc = subprocess.run([sys.executable, "-c", _DRIVER, str(log), *todo], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    lines = log.read_text().splitlines() if log.exists() else []
    starts = [ln.split(" ", 1)[1] for ln in lines if ln.startswith("START")]
    ends = [ln.split(" ", 3)[1:] for ln in lines if ln.startswith("END")]
    assert proc.returncode == 0, (f"died (rc {proc.returncode}) in {todo.get(starts[-1])}"
                                  if starts else proc.stderr[-2000:])
    assert len(ends) == len(todo)
    outcomes = {}
    for d, (rc, nlines, first) in zip(starts, ends):
        outcomes[todo[d]] = rc
        assert rc in ("0", "2"), (todo[d], first)
        assert rc == "0" or (nlines == "1" and ": error: " in first), (todo[d], first)
    assert "2" in outcomes.values()  # the wrong values do reach Paddle's checks


# A pass bug simulated after 'quantize': it empties a batch_norm's Bias, the program that
# segfaulted Paddle. Run in a subprocess: if the guard failed, the crash must not take pytest.
_BUGGY_PASS = """
import sys
import actc.dsl.pipeline as P
from actc.cli.main import main
real = P.run_step
def run_step(step, ctx):
    result = real(step, ctx)
    if step.name == "quantize":
        op = ctx.program.ops("batch_norm")[0]
        ctx.program.set_args(op, inputs={"Bias": []})
    return result
P.run_step = run_step
sys.exit(main(["compile", "example", "--recipe", "ptq", "-o", sys.argv[1], "--no-eval",
               "--set", "batch_nums=1", *sys.argv[2:]]))
"""


@pytest.mark.paddle
@pytest.mark.parametrize("flags", [(), ("--no-verify",)])
def test_pass_bug_never_reaches_paddle(flags, tmp_path):
    """With the verifier the step is blamed; with --no-verify the runtime still refuses to
    hand the broken program to Paddle: exit 2 and one line either way, no crash."""
    pytest.importorskip("paddle")
    env = dict(os.environ, FLAGS_enable_pir_api="0", GLOG_minloglevel="2")
    proc = subprocess.run([sys.executable, "-c", _BUGGY_PASS, str(tmp_path / "out"), *flags],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    lines = [ln for ln in proc.stderr.splitlines() if ": error: " in ln or "error" in ln.lower()]
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert len(lines) == 1 and "'Bias'" in lines[0], proc.stderr[-3000:]
    assert ("bug in step 'quantize'" in lines[0]) == (not flags), lines[0]
    assert not (tmp_path / "out").exists()
