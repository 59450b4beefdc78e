"""Corrupted models never crash actc: truncations and bit flips of real model files, and random
edits of a decoded program, go through load_model + verify + every dump format, and the only
exception allowed out is ActcError (the one-line user error). Seeded, so failures reproduce."""
import random
import shutil

import pytest

from actc.dump import dot, json_fmt, tables, text
from actc.errors import ActcError
from actc.io.model import load_model
from actc.ir.attrs import A
from actc.ir.verify import verify
from actc.proto import framework_pb2 as fpb

FILES = ("model.pdmodel", "model.pdiparams")
N_CASES = 200


def _cases():
    rng = random.Random(20240611)
    cases = []
    for i in range(N_CASES):
        model = ("resnet18", "digits")[i % 2]
        which = FILES[(i // 2) % 2]
        # resnet18's params are 46 MB: truncate them rarely, flip bits in place otherwise
        kinds = ["truncate", "flip", "flip", "overwrite"]
        if model == "resnet18" and which == "model.pdiparams":
            kinds = ["flip", "flip", "overwrite"] + (["truncate"] if i % 40 == 3 else [])
        cases.append((i, model, which, rng.choice(kinds), rng.randrange(2 ** 32)))
    return cases


CASES = _cases()


def _exercise(program_path, params_path):
    program, _ = load_model(program_path, params_path)
    verify(program)
    text.render(program)
    text.render(program, show_attrs="all")
    json_fmt.render(program)
    dot.render(program)
    tables.op_types_text(program)
    tables.weights_text(program)


def _mutate(data: bytes, kind: str, seed: int, header_bias: bool) -> tuple[bytes, list]:
    """The corrupted bytes and the (offset, old bytes) edits, to undo an in-place corruption."""
    rng = random.Random(seed)
    n = len(data)
    if kind == "truncate":
        return data[: rng.randrange(n)], []
    edits = []
    buf = bytearray(data)

    def pos():
        # params headers sit before each tensor; bias some flips to the first records
        if header_bias and rng.random() < 0.5:
            return rng.randrange(min(n, 4096))
        return rng.randrange(n)

    if kind == "flip":
        for _ in range(rng.randint(1, 8)):
            p = pos()
            edits.append((p, bytes(buf[p:p + 1])))
            buf[p] ^= 1 << rng.randrange(8)
    else:  # overwrite a short run with random bytes
        p = pos()
        k = min(rng.randint(1, 16), n - p)
        edits.append((p, bytes(buf[p:p + k])))
        buf[p:p + k] = bytes(rng.randrange(256) for _ in range(k))
    return bytes(buf), edits


@pytest.fixture(scope="module")
def originals(corpus):
    return {(m, f): (corpus[m] / f).read_bytes() for m in ("resnet18", "digits") for f in FILES}


@pytest.fixture(scope="module")
def big_params(corpus, tmp_path_factory):
    """A private copy of resnet18's params, corrupted in place and restored by each case."""
    path = tmp_path_factory.mktemp("fuzz") / "model.pdiparams"
    shutil.copyfile(corpus["resnet18"] / "model.pdiparams", path)
    return path


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[1]}-{c[2][6:]}-{c[3]}")
def test_corrupt_file(case, corpus, originals, big_params, tmp_path):
    i, model, which, kind, seed = case
    data = originals[(model, which)]
    program = corpus[model] / "model.pdmodel"
    params = corpus[model] / "model.pdiparams"
    in_place = model == "resnet18" and which == "model.pdiparams" and kind != "truncate"
    bad, edits = _mutate(data, kind, seed, header_bias=which == "model.pdiparams")
    if in_place:
        target = big_params
        with open(target, "r+b") as fh:
            for off, _ in edits:
                fh.seek(off)
                fh.write(bad[off:off + len(_)])
    else:
        target = tmp_path / which
        target.write_bytes(bad)
    if which == "model.pdmodel":
        program = target
    else:
        params = target
    try:
        _exercise(program, params)
    except ActcError as e:
        msg = str(e)
        assert "\n" not in msg and ": error: " in msg, msg
        # it names a file involved (a corrupt program can surface as a params mismatch)
        assert str(program) in msg or str(params) in msg, msg
    finally:
        if in_place:
            with open(target, "r+b") as fh:
                for off, old in reversed(edits):
                    fh.seek(off)
                    fh.write(old)


# ---------------------------------------------------------- structured edits
def _edit_program(desc: fpb.ProgramDesc, rng: random.Random) -> None:
    """One to three plausible-but-wrong edits: renamed slots, emptied args, retyped attrs,
    dangling block refs, missing declarations, bad parents, stray outputs, flipped flags."""
    for _ in range(rng.randint(1, 3)):
        block = rng.choice(desc.blocks)
        if not block.ops:
            continue
        op = rng.choice(block.ops)
        k = rng.randrange(8)
        if k == 0 and op.outputs:
            rng.choice(op.outputs).parameter = "Zz"
        elif k == 1 and op.inputs:
            del rng.choice(op.inputs).arguments[:]
        elif k == 2 and op.attrs:
            rng.choice(op.attrs).type = rng.choice(list(A.values()))
        elif k == 3 and op.attrs:
            a = rng.choice(op.attrs)
            a.type = A.BLOCK
            a.block_idx = rng.choice([-1, 0, 1, 99, len(desc.blocks) - 1])
        elif k == 4 and block.vars:
            del block.vars[rng.randrange(len(block.vars))]
        elif k == 5:
            block.parent_idx = rng.choice([-1, 0, block.idx, len(desc.blocks) - 1])
        elif k == 6 and op.outputs:
            rng.choice(op.outputs).arguments.append(rng.choice(["feed", "fetch", "x", "nope"]))
        elif k == 7 and block.vars:
            v = rng.choice(block.vars)
            v.persistable = not v.persistable


@pytest.mark.parametrize("model", ["digits", "control_flow"])
def test_edited_program(model, corpus, tmp_path):
    src = (corpus[model] / "model.pdmodel").read_bytes()
    params = corpus[model] / "model.pdiparams"
    rng = random.Random(7 + len(model))
    path = tmp_path / "model.pdmodel"
    outcomes = {"ok": 0, "error": 0}
    for _ in range(60):
        desc = fpb.ProgramDesc()
        desc.ParseFromString(src)
        _edit_program(desc, rng)
        path.write_bytes(desc.SerializeToString())
        try:
            _exercise(path, params)
            outcomes["ok"] += 1
        except ActcError as e:
            assert "\n" not in str(e)
            outcomes["error"] += 1
    assert outcomes["ok"] and outcomes["error"]  # the edits exercise both paths
