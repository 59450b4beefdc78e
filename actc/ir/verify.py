"""The IR verifier: cheap enough to run after every pass, and it names the op and var at fault."""
from __future__ import annotations

from dataclasses import dataclass

from actc.ir.attrs import ATTR_FIELD, REPEATED, TYPE_NAMES
from actc.ir.program import DENSE, Op, Program, var_node

# Inputs that are legitimately read before any op writes them in the same block.
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


def verify(program: Program) -> list[Problem]:
    """Every problem found (empty list = valid)."""
    problems: list[Problem] = []
    g = program.graph
    known_types = set(ATTR_FIELD)
    nblocks = len(program.blocks)

    for block in program.blocks:
        if block.parent_idx >= nblocks or (block.idx > 0 and block.parent_idx < 0):
            problems.append(Problem(f"block {block.idx} has invalid parent {block.parent_idx}"))
        for name, var in block.vars.items():
            if var.name != name:
                problems.append(Problem(f"block {block.idx} var '{name}' is declared as "
                                        f"'{var.name}'", var=name))

    # Vars defined on entry to each block: persistable vars and whatever enclosing blocks
    # define; a sub-block reads its parent's vars.
    defined_in: dict[int, set[str]] = {}
    for block in program.blocks:
        defined = {n for n, v in block.vars.items() if v.persistable}
        # A sub-block runs inside its parent op, after everything above it: be permissive and
        # accept any name the ancestors declare or write.
        b = block.parent_idx if block.idx > 0 else -1
        seen = set()
        while 0 <= b < nblocks and b not in seen:
            seen.add(b)
            defined |= set(program.blocks[b].vars)
            defined |= {a for op in program.blocks[b].ops for a in op.output_names}
            b = program.blocks[b].parent_idx
        defined_in[block.idx] = defined

    for block in program.blocks:
        defined = set(defined_in[block.idx])
        in_loop_body = any(op.type in _LOOP_OPS and block.idx in op.sub_block_ids
                           for b in program.blocks for op in b.ops)
        written_here = {a for op in block.ops for a in op.output_names} if in_loop_body else set()
        for i, op in enumerate(block.ops):
            label = _op_label(op, i)
            if op.uid not in g or g.nodes[op.uid].get("op") is not op:
                problems.append(Problem(f"{label} is missing from the graph", op=op.type))
                continue
            # edges mirror the OpDesc arguments exactly
            expected = {("in", s.parameter, k) for s in op.desc.inputs
                        for k in range(len(s.arguments))}
            expected |= {("out", s.parameter, k) for s in op.desc.outputs
                         for k in range(len(s.arguments))}
            actual = {key for _, _, key in g.in_edges(op.uid, keys=True)}
            actual |= {key for _, _, key in g.out_edges(op.uid, keys=True)}
            if expected != actual:
                problems.append(Problem(f"{label}: graph edges do not match its arguments "
                                        "(dangling or stale edge)", op=op.type))
            for s in op.desc.inputs:
                for name in s.arguments:
                    if name in defined or name in written_here:
                        continue
                    b, var = program.resolve(name, op.block)
                    if var is None:
                        problems.append(Problem(f"{label} reads '{name}' ({s.parameter}) which "
                                                "no block declares", op=op.type, var=name))
                    else:
                        problems.append(Problem(f"{label} reads '{name}' ({s.parameter}) "
                                                "before anything defines it", op=op.type,
                                                var=name))
            for s in op.desc.outputs:
                for name in s.arguments:
                    if program.var(name, op.block) is None:
                        problems.append(Problem(f"{label} writes '{name}' ({s.parameter}) "
                                                "which no block declares", op=op.type, var=name))
                    defined.add(name)
            for a in op.desc.attrs:
                if a.type not in known_types:
                    problems.append(Problem(f"{label} attr '{a.name}' has unknown type "
                                            f"{a.type}", op=op.type))
                    continue
                field = ATTR_FIELD[a.type]
                if a.type not in REPEATED and field != "s" and not a.HasField(field):
                    problems.append(Problem(f"{label} attr '{a.name}' is "
                                            f"{TYPE_NAMES[a.type]} but holds no value",
                                            op=op.type))
            for idx in op.sub_block_ids:
                if not 0 < idx < nblocks:
                    problems.append(Problem(f"{label} refers to block {idx}, which does not "
                                            "exist", op=op.type))
                elif program.blocks[idx].parent_idx != op.block:
                    problems.append(Problem(f"{label} runs block {idx} whose parent is "
                                            f"{program.blocks[idx].parent_idx}", op=op.type))

    # graph nodes all belong to the program
    for node, data in g.nodes(data=True):
        if data.get("kind") == "var" and g.degree(node) == 0 and not data.get("declared"):
            problems.append(Problem(f"var '{node[2]}' is left in the graph with no users",
                                    var=node[2]))

    # weights: data present and shaped as declared
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
        elif var_node(var.block, name) not in g:
            problems.append(Problem(f"weight '{name}' is missing from the graph", var=name))
    return problems


class VerificationError(ValueError):
    def __init__(self, problems: list[Problem], after: str | None = None):
        self.problems = problems
        where = f" after pass '{after}'" if after else ""
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"IR verification failed{where}: {problems[0]}{more}")


def check(program: Program, after: str | None = None) -> None:
    problems = verify(program)
    if problems:
        raise VerificationError(problems, after)
