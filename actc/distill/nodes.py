"""Distillation node pairs: the three ways ACT spells them, ACT's default, and the checks.

Pairs are returned as ``[teacher_name, student_name]`` with the teacher name *unprefixed*
(as it is in the teacher program); the pass adds the prefix once the teacher is merged.
"""
from __future__ import annotations

from actc.errors import ActcError, did_you_mean
from actc.ir.merge import TEACHER_ATTR
from actc.ir.program import Program
from actc.dsl.primitives import QUANTIZER_TYPES

NORM_TYPES = frozenset({"batch_norm", "sync_batch_norm", "layer_norm", "group_norm",
                        "instance_norm"})


def _real_var_names(program: Program) -> list[str]:
    return [v.name for v in program.all_vars() if not v.is_feed_fetch]


def _has_trainable_weight(program: Program, op) -> bool:
    if op.type in QUANTIZER_TYPES or op.type in NORM_TYPES or op.has_attr(TEACHER_ATTR) \
            or op.has_attr("actc_pact") or op.has_attr("actc_loss"):
        return False
    for name in op.input_names:
        if program.is_weight(name) and program.var(name).dtype in ("float32", "float16",
                                                                    "bfloat16"):
            return True
        prods = program.producers(name)
        if prods and prods[0][0].type in QUANTIZER_TYPES and \
                program.is_weight(prods[0][0].input("X")[0]):
            return True
    return False


def default_node(program: Program) -> str:
    """ACT's rule: the output of the last op with a trainable weight, or of the bias add /
    batch_norm right after it."""
    ops = [op for op in program.ops() if op.type not in ("feed", "fetch")]
    for op in reversed(ops):
        if not _has_trainable_weight(program, op):
            continue
        out = (op.output("Out") or op.output("Output") or op.output("Y") or op.output_names)[0]
        users = program.consumers(out)
        if len(users) == 1 and users[0][0].type in ("elementwise_add", "batch_norm"):
            nxt = users[0][0]
            return (nxt.output("Out") or nxt.output("Y"))[0]
        return out
    raise ActcError("distill: the model has no op with a trainable weight; name the nodes "
                    "to distill on (nodes: [...])")


def _check_exists(program: Program, name, where: str) -> str:
    if not isinstance(name, str):
        raise ActcError(f"distill: node names must be strings, got {name!r}")
    if program.var(name) is None:
        raise ActcError(f"distill: {where} has no var '{name}'"
                        f"{did_you_mean(name, _real_var_names(program))}")
    return name


def resolve_pairs(student: Program, teacher: Program, nodes: list, prefix: str) -> list[list[str]]:
    nodes = list(nodes or [])
    if not nodes:
        s = default_node(student)
        pairs = [[s, s]]
    elif all(isinstance(n, (list, tuple)) for n in nodes):
        pairs = []
        for pair in nodes:
            if len(pair) != 2:
                raise ActcError(f"distill: node pair {list(pair)} must be [teacher, student]")
            pairs.append([_strip(pair[0], prefix), pair[1]])
    elif _student_var(student, str(nodes[0])):  # self-distillation: student names
        pairs = [[n, n] for n in nodes]
    else:
        if len(nodes) % 2:
            raise ActcError(f"distill: nodes {nodes} is neither student var names (the first, "
                            f"'{nodes[0]}', is not a var of the model"
                            f"{did_you_mean(str(nodes[0]), _real_var_names(student))}) nor an "
                            "even-length teacher/student list")
        pairs = [[_strip(nodes[i], prefix), nodes[i + 1]] for i in range(0, len(nodes), 2)]
    for t, s in pairs:
        _check_exists(student, s, "the student model")
        _check_exists(teacher, t, "the teacher model")
        ts, ss = teacher.var(t).shape, student.var(s).shape
        if ts is not None and ss is not None and not _same_shape(ts, ss):
            raise ActcError(f"distill: teacher '{prefix}{t}' is {list(ts)} but student '{s}' "
                            f"is {list(ss)}; pair vars of the same shape")
    return pairs


def _student_var(program: Program, name: str) -> bool:
    """A var of the student itself (not one a merged teacher brought in)."""
    if program.var(name) is None:
        return False
    prods = program.producers(name)
    return not (prods and prods[0][0].has_attr(TEACHER_ATTR))


def _same_shape(a, b) -> bool:
    return len(a) == len(b) and all(x == y or x < 0 or y < 0 for x, y in zip(a, b))


def _strip(name, prefix: str) -> str:
    name = str(name)
    return name[len(prefix):] if name.startswith(prefix) else name


def shared_feeds(student: Program, teacher: Program) -> list[str]:
    """Feeds both programs read (merge_feed): they must agree in name, shape and dtype."""
    sfeeds, tfeeds = student.feed_names(), teacher.feed_names()
    for name in tfeeds:
        if name not in sfeeds:
            raise ActcError(f"distill: the teacher reads feed '{name}', which the student "
                            f"does not have (student feeds: {', '.join(sfeeds)}); use "
                            "merge_feed: false to feed the teacher separately")
        sv, tv = student.var(name), teacher.var(name)
        if not _same_shape(sv.shape or (), tv.shape or ()) or sv.dtype != tv.dtype:
            raise ActcError(f"distill: feed '{name}' is {list(tv.shape or ())} {tv.dtype} in the "
                            f"teacher but {list(sv.shape or ())} {sv.dtype} in the student")
    return list(tfeeds)


def pick(value, i: int, n: int, what: str):
    """One value for every pair, or a list with one per pair."""
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ActcError(f"distill: {what} has {len(value)} entries but there are {n} node "
                            "pairs")
        return value[i]
    return value
