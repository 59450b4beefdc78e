"""Graphviz view of the program: ops are boxes, activations ellipses, weights grey notes.

Node ids are ``op<uid>`` for ops and ``v<block>:<name>`` for vars, so a script can count them.
Each sub-block is a cluster; a dashed edge leads from a control-flow op to its block's first
op. Edges carry the slot name unless it is the op's main slot (X, Input, Out, Output, Y).
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from actc.dump.common import (OpPredicate, block_owners, name_scope, var_type_str, visible_ops,
                              weight_type_str)
from actc.errors import ActcError
from actc.io.atomic import write_atomic
from actc.ir.program import Program

PLAIN_SLOTS = frozenset({"X", "Input", "Out", "Output", "Y"})
RENDER_FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf"}


def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def render(program: Program, *, ops: OpPredicate | None = None) -> str:
    shown = visible_ops(program, ops)
    owners = block_owners(program)
    lines = ["digraph program {",
             '  graph [rankdir=TB, fontname="Helvetica", fontsize=10];',
             '  node [fontname="Helvetica", fontsize=10];',
             '  edge [fontname="Helvetica", fontsize=8, color="#555555"];']
    var_nodes: dict[tuple[int, str], str] = {}  # (declaring block, name) -> node line
    block_lines: dict[int, list[str]] = {b.idx: [] for b in program.blocks}
    edges: list[str] = []
    first_op: dict[int, str] = {}

    def var_id(name: str, block: int) -> str:
        decl_block, var = program.resolve(name, block)
        key = (decl_block, name)
        node = f"v{decl_block}:{name}"
        if key not in var_nodes:
            if program.is_weight(name, block):
                t = weight_type_str(program, name, block)
                attrs = ('shape=note, style=filled, fillcolor="#e8e8e8", color="#888888", '
                         f"label={_q(name + chr(10) + (t or ''))}")
            else:
                t = var_type_str(var)
                label = name + ("\n" + t if t and not (var and var.is_feed_fetch) else "")
                attrs = f"shape=ellipse, label={_q(label)}"
            var_nodes[key] = f"    {_q(node)} [{attrs}];"
            block_lines.setdefault(decl_block, []).append(var_nodes[key])
        return _q(node)

    for block in program.blocks:
        for op in block.ops:
            if shown is not None and op.uid not in shown:
                continue
            oid = _q(f"op{op.uid}")
            first_op.setdefault(block.idx, oid)
            label = op.type
            scope = name_scope(op)
            if scope and scope != "/":
                label += "\n" + scope
            style = 'style="rounded,filled", fillcolor="#cfe2f3"'
            if op.sub_block_ids:
                style = 'style="rounded,filled,bold", fillcolor="#fce5cd"'
            block_lines[block.idx].append(f"    {oid} [shape=box, {style}, label={_q(label)}];")
            for s in op.desc.inputs:
                for name in s.arguments:
                    lab = "" if s.parameter in PLAIN_SLOTS else f" [label={_q(s.parameter)}]"
                    edges.append(f"  {var_id(name, block.idx)} -> {oid}{lab};")
            for s in op.desc.outputs:
                for name in s.arguments:
                    lab = "" if s.parameter in PLAIN_SLOTS else f" [label={_q(s.parameter)}]"
                    edges.append(f"  {oid} -> {var_id(name, block.idx)}{lab};")
    for idx, owner in sorted(owners.items()):
        if idx in first_op and (shown is None or owner.uid in shown):
            edges.append(f"  {_q(f'op{owner.uid}')} -> {first_op[idx]} "
                         f'[style=dashed, label="^block{idx}"];')
    for block in program.blocks:
        body = block_lines.get(block.idx, [])
        if block.idx == 0:
            lines.extend(line[2:] for line in body)
        elif body:
            owner = owners.get(block.idx)
            title = f"^block{block.idx}" + (f" ({owner.type})" if owner else "")
            lines.append(f"  subgraph {_q(f'cluster_block{block.idx}')} {{")
            lines.append(f'    label={_q(title)}; style=dashed; color="#999999";')
            lines.extend(body)
            lines.append("  }")
    lines.extend(edges)
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_file(dot_text: str, out: Path) -> None:
    """Render with graphviz's ``dot`` into ``out`` (format from its suffix); atomic."""
    fmt = RENDER_FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise ActcError(f"cannot render '{out.suffix}' files; use .dot, .gv, "
                        + ", ".join(RENDER_FORMATS), path=out)
    exe = shutil.which("dot")
    if exe is None:
        raise ActcError(f"rendering {fmt.upper()} needs graphviz's `dot` program, which is not "
                        "installed; write the graph with -o FILE.dot and run "
                        f"`dot -T{fmt} FILE.dot -o {out.name}` where graphviz is available",
                        path=out)
    try:
        proc = subprocess.run([exe, f"-T{fmt}"], input=dot_text.encode(), capture_output=True,
                              timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ActcError(f"running graphviz `dot` failed: {e}", path=out) from None
    if proc.returncode != 0:
        msg = proc.stderr.decode(errors="replace").strip().splitlines()
        raise ActcError(f"graphviz `dot` failed: {msg[-1] if msg else proc.returncode}",
                        path=out)
    write_atomic(out, proc.stdout)
