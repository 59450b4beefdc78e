"""The IR verifier: cheap enough to run after every pass, and it names the op and var at fault.

``verify_input`` holds the checks that need only the program; the loader runs them so a broken
input is refused (blaming the file) before any pass or Paddle sees it. ``verify`` adds what a
pass can break besides: graph/desc agreement and the weights' data.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from actc.errors import ActcError
from actc.ir import opdefs
from actc.ir.attrs import ATTR_FIELD, REPEATED, TYPE_NAMES
from actc.ir.program import DENSE, Op, Program, var_node

# Ops whose sub-block runs repeatedly: its inputs may be written later in the same block.
_LOOP_OPS = frozenset({"while", "recurrent"})


@dataclass(frozen=True)
class Problem:
    message: str
    op: str | None = None
    var: str | None = None

    def __str__(self) -> str:
        return self.message


def _op_label(op: Op, index: int) -> str:
    return f"block {op.block} op #{index} '{op.type}'"


# ------------------------------------------------------------------ blocks
def _block_problems(program: Program) -> list[Problem]:
    """Paddle creates a sub-block inside its parent, so a parent always comes first: this
    rules out cycles and parents that do not exist."""
    problems = []
    for block in program.blocks:
        p = block.parent_idx
        if block.idx == 0 and p != -1:
            problems.append(Problem(f"block 0 has parent {p} (the main block has none)"))
        elif block.idx > 0 and not 0 <= p < block.idx:
            problems.append(Problem(f"block {block.idx} has parent {p}: a block's parent must "
                                    "be an earlier block (cyclic or dangling parent)"))
        for name, var in block.vars.items():
            if var.name != name:
                problems.append(Problem(f"block {block.idx} var '{name}' is declared as "
                                        f"'{var.name}'", var=name))
    return problems


def _block_refs(op: Op) -> list[int]:
    """The blocks an op's BLOCK/BLOCKS attrs name (``Op.sub_block_ids`` without the slow
    protobuf enum lookups)."""
    ids: list[int] = []
    for a in op.desc.attrs:
        if a.type == opdefs.BLOCK:
            ids.append(a.block_idx)
        elif a.type == opdefs.BLOCKS:
            ids.extend(a.blocks_idx)
    return ids


def _sub_block_problems(program: Program, op: Op, label: str) -> list[Problem]:
    problems = []
    for idx in _block_refs(op):
        if not 0 < idx < len(program.blocks) or idx == op.block:
            problems.append(Problem(f"{label} refers to block {idx}, which is not a sub-block "
                                    f"(the program has blocks 0..{len(program.blocks) - 1})",
                                    op=op.type))
        elif program.blocks[idx].parent_idx != op.block:
            problems.append(Problem(f"{label} runs block {idx} whose parent is "
                                    f"{program.blocks[idx].parent_idx}, not {op.block}",
                                    op=op.type))
    return problems


# ------------------------------------------------------- Paddle's op definitions
def _slot_problems(op: Op, label: str, defn: opdefs.OpDef) -> list[Problem]:
    """Required slots present and filled, single-var slots holding one var; an empty
    duplicable slot is fine for control flow (a sub-block may capture nothing)."""
    problems = []
    for kind, given, slots in (("input", op.desc.inputs, defn.inputs),
                               ("output", op.desc.outputs, defn.outputs)):
        args = {s.parameter: list(s.arguments) for s in given}
        for name, slot in slots.items():
            vals = args.get(name)
            if vals is None:
                if slot.required:
                    problems.append(Problem(f"{label} has no {kind} slot '{name}', which "
                                            f"Paddle's {op.type} requires", op=op.type))
            elif not vals and slot.required and not (slot.duplicable and defn.runs_sub_block):
                problems.append(Problem(f"{label} {kind} slot '{name}' is empty; Paddle's "
                                        f"{op.type} requires a var there", op=op.type))
            elif len(vals) > 1 and not slot.duplicable:
                problems.append(Problem(f"{label} {kind} slot '{name}' takes one var but holds "
                                        f"{len(vals)}", op=op.type, var=vals[1]))
    return problems


def _attr_problem(label: str, op_type: str, a, want: opdefs.AttrDef | None) -> str | None:
    """What is wrong with one attr: an unknown type, a scalar with no value, a type Paddle
    cannot read as the declared one, or an empty list a kernel indexes."""
    t = a.type
    field = ATTR_FIELD.get(t)
    if field is None:
        return f"{label} attr '{a.name}' has unknown type {t}"
    repeated = t in REPEATED
    if not repeated and field != "s" and not a.HasField(field):
        return f"{label} attr '{a.name}' is {TYPE_NAMES[t]} but holds no value"
    if want is None:
        return None  # attrs Paddle does not declare are ignored by it
    empty = repeated and not len(getattr(a, field))
    if not opdefs.accepts(want, t, empty):
        return (f"{label} attr '{a.name}' is {TYPE_NAMES[t]} but Paddle's {op_type} declares "
                f"it {TYPE_NAMES[want.type]}")
    if empty and want.nonempty:
        return f"{label} attr '{a.name}' is an empty list; Paddle's {op_type} needs its values"
    return None


def _attr_problems(op: Op, label: str, defn: opdefs.OpDef | None) -> list[Problem]:
    problems = []
    declared = defn.attrs if defn is not None else {}
    present = set()
    for a in op.desc.attrs:
        name = a.name
        present.add(name)
        msg = _attr_problem(label, op.type, a, declared.get(name))
        if msg:
            problems.append(Problem(msg, op=op.type))
    for name in (defn.block_attrs if defn is not None else ()):
        if name not in present:
            problems.append(Problem(f"{label} has no '{name}' attr (the block it runs)",
                                    op=op.type))
    return problems


# ----------------------------------------------------------------- dataflow
def _entry_names(program: Program) -> dict[int, set[str]]:
    """Names readable on entry to each block: its persistable vars, plus everything its
    ancestors declare or write (a sub-block runs inside its parent op, after the ops above
    it: permissive on purpose)."""
    nblocks = len(program.blocks)
    local = [set(b.vars) | {a for op in b.ops for a in op.output_names} for b in program.blocks]
    entry: dict[int, set[str]] = {}
    for block in program.blocks:
        defined = {n for n, v in block.vars.items() if v.persistable}
        b = block.parent_idx if block.idx > 0 else -1
        seen = set()
        while 0 <= b < nblocks and b not in seen:
            seen.add(b)
            defined |= local[b]
            b = program.blocks[b].parent_idx
        entry[block.idx] = defined
    return entry


def _loop_bodies(program: Program) -> set[int]:
    return {idx for b in program.blocks for op in b.ops if op.type in _LOOP_OPS
            for idx in _block_refs(op)}


def _read_problems(program: Program, op: Op, label: str, defined: set[str]) -> list[Problem]:
    problems = []
    for s in op.desc.inputs:
        for name in s.arguments:
            if name in defined:
                continue
            if program.var(name, op.block) is None:
                problems.append(Problem(f"{label} reads '{name}' ({s.parameter}), which no "
                                        "block declares", op=op.type, var=name))
            else:
                problems.append(Problem(f"{label} reads '{name}' ({s.parameter}) before any op "
                                        "writes it (and it is not a weight or feed)",
                                        op=op.type, var=name))
    return problems


def _write_problems(program: Program, op: Op, label: str) -> list[Problem]:
    return [Problem(f"{label} writes '{name}' ({s.parameter}), which no block declares",
                    op=op.type, var=name)
            for s in op.desc.outputs for name in s.arguments
            if program.var(name, op.block) is None]


def _one_op_problems(program: Program, op: Op, label: str, defined: set[str],
                     notes: dict[str, str]) -> list[Problem]:
    """Definition (slots, attrs), sub-blocks, reads, writes of one op."""
    defn = opdefs.lookup(op.type)
    problems = []
    if defn is not None:
        problems += _slot_problems(op, label, defn)
    elif op.type not in notes:
        notes[op.type] = (f"{label}: Paddle {opdefs.paddle_version()} defines no op "
                          f"'{op.type}' (a custom op?); only its vars are checked")
    problems += _attr_problems(op, label, defn)
    problems += _sub_block_problems(program, op, label)
    problems += _read_problems(program, op, label, defined)
    problems += _write_problems(program, op, label)
    return problems


def _op_problems(program: Program, notes: dict[str, str]) -> list[Problem]:
    """Every op in program order, with the names defined when it runs."""
    problems: list[Problem] = []
    entry = _entry_names(program)
    loops = _loop_bodies(program)
    for block in program.blocks:
        defined = set(entry[block.idx])
        if block.idx in loops:
            defined |= {a for op in block.ops for a in op.output_names}
        for i, op in enumerate(block.ops):
            problems += _one_op_problems(program, op, _op_label(op, i), defined, notes)
            defined.update(op.output_names)
    return problems


def verify_input(program: Program) -> tuple[list[Problem], list[str]]:
    """(problems, notes) from the checks that need only the program text; notes name op types
    Paddle does not define (custom ops are legitimate, so they are not refused)."""
    notes: dict[str, str] = {}
    problems = _block_problems(program)
    problems += _op_problems(program, notes)
    return problems, list(notes.values())


# ---------------------------------------------------------- after a pass
def _graph_problems(program: Program) -> list[Problem]:
    """Edges mirror the OpDesc arguments exactly; no stray var nodes."""
    problems = []
    g = program.graph
    for block in program.blocks:
        for i, op in enumerate(block.ops):
            label = _op_label(op, i)
            if op.uid not in g or g.nodes[op.uid].get("op") is not op:
                problems.append(Problem(f"{label} is missing from the graph", op=op.type))
                continue
            expected = {("in", s.parameter, k) for s in op.desc.inputs
                        for k in range(len(s.arguments))}
            expected |= {("out", s.parameter, k) for s in op.desc.outputs
                         for k in range(len(s.arguments))}
            actual = {key for _, _, key in g.in_edges(op.uid, keys=True)}
            actual |= {key for _, _, key in g.out_edges(op.uid, keys=True)}
            if expected != actual:
                problems.append(Problem(f"{label}: graph edges do not match its arguments "
                                        "(dangling or stale edge)", op=op.type))
    for node, data in g.nodes(data=True):
        if data.get("kind") == "var" and g.degree(node) == 0 and not data.get("declared"):
            problems.append(Problem(f"var '{node[2]}' is left in the graph with no users",
                                    var=node[2]))
    return problems


def _weight_problems(program: Program) -> list[Problem]:
    """Weights: data present and shaped as declared; no data without a persistable var."""
    problems = []
    for var in program.all_vars():
        if not var.persistable or var.is_feed_fetch:
            continue
        tensor = program.params.get(var.name)
        if tensor is None:
            problems.append(Problem(f"weight '{var.name}' has no data", var=var.name))
        elif var.type == DENSE and var.shape is not None and var.dtype_code == tensor.dtype_code \
                and len(var.shape) == len(tensor.shape) \
                and any(d >= 0 and d != t for d, t in zip(var.shape, tensor.shape)):
            problems.append(Problem(f"weight '{var.name}' data is {list(tensor.shape)} but its "
                                    f"var says {list(var.shape)}", var=var.name))
    for name in program.params:
        var = program.var(name)
        if var is None or not var.persistable:
            problems.append(Problem(f"data for '{name}' has no persistable var", var=name))
        elif var_node(var.block, name) not in program.graph:
            problems.append(Problem(f"weight '{name}' is missing from the graph", var=name))
    return problems


def verify(program: Program) -> list[Problem]:
    """Every problem found (empty list = valid)."""
    problems, _ = verify_input(program)
    return problems + _graph_problems(program) + _weight_problems(program)


def summarize(problems: list[Problem]) -> str:
    """The first problem, and how many more: one line."""
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"{problems[0]}{more}"


class VerificationError(ValueError):
    def __init__(self, problems: list[Problem], after: str | None = None):
        self.problems = problems
        where = f" after pass '{after}'" if after else ""
        super().__init__(f"IR verification failed{where}: {summarize(problems)}")


def check(program: Program, after: str | None = None) -> None:
    problems = verify(program)
    if problems:
        raise VerificationError(problems, after)


_NOTED: set[tuple[str, str]] = set()


def check_input(program: Program, path: str | Path) -> None:
    """Refuse a broken input program with one line naming the file, block, op and var, so the
    user's file is blamed rather than the pass that meets it first; print each note once."""
    problems, notes = verify_input(program)
    if problems:
        raise ActcError(f"invalid program: {summarize(problems)}", path=path)
    for note in notes:
        if (str(path), note) not in _NOTED:
            _NOTED.add((str(path), note))
            print(f"{path}: note: {note}", file=sys.stderr)
