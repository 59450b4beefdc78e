"""``actc dump``: every format on every corpus model, the tables, the filters, the CLI."""
import json
import re
import shutil
import subprocess
import time

import pytest

import corpus as C
from actc.cli.main import main
from actc.dump import dot, json_fmt, tables, text
from actc.dump.common import OpFilter
from actc.dump.defaults import is_default
from actc.io.model import load_model

DOT_OP_NODE = re.compile(r'^\s*"op\d+" \[shape=box')


@pytest.fixture(scope="module")
def loaded(corpus):
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = load_model(corpus[name])[0]
        return cache[name]

    return get


def op_lines(rendered: str) -> list[str]:
    """The op lines of a text dump (everything but comments and block braces)."""
    out = []
    for line in rendered.splitlines():
        s = line.strip()
        if not s or s.startswith("//") or s.startswith("^block") or s == "}":
            continue
        out.append(line)
    return out


# ------------------------------------------------------------------ per model
@pytest.mark.parametrize("name", C.CORPUS)
def test_text(loaded, name):
    p = loaded(name)
    out = text.render(p)
    lines = op_lines(out)
    assert len(lines) == p.op_count()
    assert out.startswith("// ")
    assert f"{p.op_count()} ops" in out.splitlines()[0]
    # every weight read by an op is marked with @ and its stored shape and dtype
    for op in p.ops(block=None):
        for n in op.input_names:
            if p.is_weight(n, op.block):
                assert f"@{n}<" in out, n
    # ops appear in program order within block 0
    types0 = [op.type for op in p.blocks[0].ops]
    top = [re.search(r"(?:^| = )([A-Za-z0-9_]+)\(", ln.strip()).group(1)
           for ln in lines if ln.startswith("  ") and not ln.startswith("    ")]
    assert top == types0
    # noise attrs are hidden, everything is shown with show_attrs="all"
    assert "op_role" not in out and "op_callstack" not in out
    full = text.render(p, show_attrs="all")
    assert "op_role=0" in full
    assert len(op_lines(full)) == p.op_count()
    assert text.render(p) == out  # deterministic


@pytest.mark.parametrize("name", C.CORPUS)
def test_json(loaded, name):
    p = loaded(name)
    s = json_fmt.render(p)
    doc = json.loads(s)
    assert doc["schema"] == "actc.dump/1"
    blocks = doc["program"]["blocks"]
    assert [b["idx"] for b in blocks] == list(range(len(p.blocks)))
    assert sum(len(b["ops"]) for b in blocks) == p.op_count()
    assert doc["feeds"] == p.feed_names() and doc["fetches"] == p.fetch_names()
    for b, block in zip(blocks, p.blocks):
        assert [o["type"] for o in b["ops"]] == [op.type for op in block.ops]
        assert [v["name"] for v in b["vars"]] == list(block.vars)
        for o in b["ops"]:
            for a in o["attrs"].values():
                assert set(a) == {"type", "value"}
    weights = [v for b in blocks for v in b["vars"] if v["weight"]]
    assert sum(v["data"]["nbytes"] for v in weights) == sum(t.nbytes for t in p.params.values())
    assert json_fmt.render(p) == s  # stable
    assert s == json.dumps(doc, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


@pytest.mark.parametrize("name", C.CORPUS)
def test_dot(loaded, name):
    p = loaded(name)
    g = dot.render(p)
    assert g.startswith("digraph program {") and g.rstrip().endswith("}")
    assert sum(1 for ln in g.splitlines() if DOT_OP_NODE.match(ln)) == p.op_count()
    assert g.count("{") == g.count("}")
    n_weights = len(p.persistable_names())
    assert g.count("shape=note") == n_weights
    assert sum(1 for ln in g.splitlines() if "subgraph" in ln) == len(p.blocks) - 1


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz dot not installed")
@pytest.mark.parametrize("name", ["resnet18", "control_flow"])
def test_dot_renders_svg(loaded, name, tmp_path):
    g = dot.render(loaded(name))
    proc = subprocess.run(["dot", "-Tsvg"], input=g.encode(), capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert b"<svg" in proc.stdout


@pytest.mark.parametrize("name", C.CORPUS)
def test_op_types(loaded, name):
    p = loaded(name)
    counts = tables.op_type_counts(p)
    assert sum(counts["total"].values()) == p.op_count()
    order = list(counts["total"].items())
    assert order == sorted(order, key=lambda kv: (-kv[1], kv[0]))
    for idx, block in enumerate(p.blocks):
        assert sum(counts["blocks"][idx].values()) == len(block.ops)
    t = tables.op_types_text(p)
    assert f"{p.op_count()}  " in t.splitlines()[-1]
    if len(p.blocks) > 1:
        assert "^block1" in t.splitlines()[0]


@pytest.mark.parametrize("name", C.CORPUS)
def test_weights(loaded, name, corpus):
    p = loaded(name)
    rows = tables.weight_rows(p)
    assert [r["name"] for r in rows] == p.persistable_names()
    total = sum(r["bytes"] for r in rows)
    assert total == sum(t.nbytes for t in p.params.values())
    # the params file is the tensors plus small per-tensor headers
    size = (corpus[name] / "model.pdiparams").stat().st_size
    assert total <= size < total + 200 * max(1, len(rows))
    t = tables.weights_text(p)
    assert t.splitlines()[0].split() == ["name", "shape", "dtype", "bytes"]
    assert f"{total} bytes" in t.splitlines()[-1]


# ------------------------------------------------------------- control flow
def test_control_flow_sub_blocks_indented(loaded):
    p = loaded("control_flow")
    out = text.render(p)
    lines = out.splitlines()
    owners = {}
    for op in p.blocks[0].ops:
        for idx in op.sub_block_ids:
            owners[idx] = op
    assert sorted(owners) == [1, 2, 3]
    for idx, owner in owners.items():
        head = next(i for i, ln in enumerate(lines) if ln.strip() == f"^block{idx} {{")
        # the owner's line comes right before its block (or before a sibling block)
        owner_line = lines[head - 1]
        assert f"{owner.type}(" in owner_line and f"sub_block=^block{idx}" in owner_line
        indent = len(lines[head]) - len(lines[head].lstrip())
        assert indent > len(owner_line) - len(owner_line.lstrip())
        body = lines[head + 1: head + 1 + len(p.blocks[idx].ops)]
        for ln, op in zip(body, p.blocks[idx].ops):
            assert len(ln) - len(ln.lstrip()) > indent
            assert f"{op.type}(" in ln
        assert lines[head + 1 + len(p.blocks[idx].ops)].strip() == "}"


def test_filter_keeps_enclosing_control_flow(loaded):
    p = loaded("control_flow")
    flt = OpFilter.from_strings(["silu"])
    out = text.render(p, ops=flt)
    lines = op_lines(out)
    assert len(lines) == 2  # the conditional_block that runs block 3, and the silu in it
    assert "conditional_block(" in lines[0] and "holds matches" in lines[0]
    assert "silu(" in lines[1]
    doc = json.loads(json_fmt.render(p, ops=flt))
    assert [o["type"] for o in doc["program"]["blocks"][3]["ops"]] == ["silu"]


# ------------------------------------------------------------------ filters
def test_filter_op_type(loaded):
    p = loaded("resnet18")
    flt = OpFilter.from_strings(["conv2d,matmul_v2"])
    lines = op_lines(text.render(p, ops=flt))
    n_conv = len(p.ops("conv2d"))
    assert len(lines) == n_conv + 1
    assert all(" = conv2d(" in ln or " = matmul_v2(" in ln for ln in lines)
    assert "filter: 21 of" in text.render(p, ops=flt)
    counts = tables.op_type_counts(p, flt)
    assert counts["total"] == {"conv2d": n_conv, "matmul_v2": 1}
    g = dot.render(p, ops=flt)
    assert sum(1 for ln in g.splitlines() if DOT_OP_NODE.match(ln)) == n_conv + 1


def test_filter_var(loaded):
    p = loaded("resnet18")
    exact = OpFilter.from_strings(var_globs=["conv2d_0.tmp_0"])
    lines = op_lines(text.render(p, ops=exact))
    assert [re.search(r"= (\w+)\(", ln).group(1) for ln in lines] == ["conv2d", "batch_norm"]
    glob = OpFilter.from_strings(var_globs=["conv2d_1*.w_0"])
    lines = op_lines(text.render(p, ops=glob))
    expected = [op for op in p.ops() if any(re.fullmatch(r"conv2d_1\d*\.w_0", n)
                                            for n in op.input_names)]
    assert len(lines) == len(expected) > 1


def test_filter_name_scope(corpus):
    p, _ = load_model(corpus["digits"])
    convs = p.ops("conv2d")
    convs[0].set_attr("op_namescope", "/backbone/stem/")
    convs[1].set_attr("op_namescope", "/backbone/block1/")
    flt = OpFilter.from_strings(name_scopes=["backbone/"])
    out = text.render(p, ops=flt)
    lines = op_lines(out)
    assert len(lines) == 2
    assert 'loc("/backbone/stem/")' in lines[0]
    only = OpFilter.from_strings(name_scopes=["block1"])
    assert len(op_lines(text.render(p, ops=only))) == 1
    # combined with AND
    both = OpFilter.from_strings(["relu"], name_scopes=["backbone"])
    assert not any(both(op) for op in p.ops(block=None))


# ------------------------------------------------------------ attr defaults
def test_attr_defaults_table():
    assert is_default("conv2d", "op_callstack", ["x"])
    assert is_default("conv2d", "op_role", 0)
    assert not is_default("conv2d", "op_role", 1)  # a backward op is worth seeing
    assert is_default("conv2d", "use_cudnn", True) and is_default("pool2d", "use_mkldnn", False)
    assert is_default("conv2d", "dilations", [1, 1]) and not is_default("conv2d", "dilations",
                                                                       [2, 2])
    assert is_default("elementwise_add", "axis", -1)
    assert not is_default("concat", "axis", -1)  # concat's default axis is 0: keep it visible
    assert not is_default("elementwise_add", "axis", 1)
    assert is_default("batch_norm", "is_test", True)
    assert not is_default("dropout", "is_test", False)
    assert not is_default("conv2d", "groups", True)  # type matters, not just ==
    assert not is_default("conv2d", "strides", [1, 1])


def test_attr_rendering(loaded):
    p = loaded("lstm")
    out = text.render(p)
    assert "dtype=i32" in out  # dtype codes read as dtypes
    p = loaded("digits")
    out = text.render(p)
    assert "epsilon=1e-05" in out  # float32 attrs in their shortest form
    assert re.search(r"%image<\?x1x8x8 f32> = feed\(X: %feed\) \{col=0\}", out)


# ---------------------------------------------------------------------- CLI
def test_cli_text(corpus, capsys):
    assert main(["dump", str(corpus["resnet18"])]) == 0
    out = capsys.readouterr().out
    assert "conv2d(Input: %image, Filter: @conv2d_0.w_0<64x3x7x7 f32>)" in out
    assert "{paddings=[3,3], strides=[2,2]}" in out


def test_cli_formats_and_output(corpus, tmp_path, capsys):
    m = str(corpus["control_flow"])
    out = tmp_path / "m.json"
    assert main(["dump", m, "-o", str(out)]) == 0  # format from the suffix
    assert json.loads(out.read_text())["schema"] == "actc.dump/1"
    assert main(["dump", m, "--format", "dot", "-o", str(tmp_path / "g.dot")]) == 0
    assert (tmp_path / "g.dot").read_text().startswith("digraph")
    assert main(["dump", m, "--op-types", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert sum(doc["op_types"]["total"].values()) == 34
    assert set(doc["op_types"]["blocks"]) == {"0", "1", "2", "3"}
    assert main(["dump", m, "--weights", "--var", "fc_1*"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert [r.split()[0] for r in rows[1:-1]] == ["fc_1.b_0", "fc_1.w_0"]
    assert main(["dump", m, "--attrs", "all", "--op-type", "while"]) == 0
    assert "op_role=0" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.dot", "m.json"]


def test_cli_filter_errors(corpus, capsys):
    m = str(corpus["resnet18"])
    assert main(["dump", m, "--op-type", "conv"]) == 2
    err = capsys.readouterr().err
    assert "no 'conv' op" in err and "did you mean 'conv2d'" in err
    assert main(["dump", m, "--var", "nope*"]) == 2
    assert main(["dump", m, "--op-types", "--format", "dot"]) == 2


@pytest.mark.skipif(shutil.which("dot") is not None, reason="graphviz is installed")
def test_cli_svg_without_graphviz(corpus, tmp_path, capsys):
    out = tmp_path / "g.svg"
    assert main(["dump", str(corpus["digits"]), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "graphviz" in err and str(out) in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz dot not installed")
def test_cli_svg(corpus, tmp_path):
    out = tmp_path / "g.svg"
    assert main(["dump", str(corpus["digits"]), "-o", str(out)]) == 0
    assert b"<svg" in out.read_bytes()


def test_resnet50_speed(corpus):
    t0 = time.perf_counter()
    p, _ = load_model(corpus["resnet50"])
    text.render(p)
    assert time.perf_counter() - t0 < 1.0
