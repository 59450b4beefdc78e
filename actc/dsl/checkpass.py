"""Static checks of a pass definition: names defined before use, functions that exist,
assignable targets, known `new var` arguments. Catches typos in a pass when it is loaded,
not halfway through rewriting a model."""
from __future__ import annotations

from actc.dsl import ast as A
from actc.dsl.known_ops import KNOWN_OP_TYPES
from actc.dsl.parser import error_at
from actc.dsl.rules import slot_target
from actc.dsl.selectors import _walk
from actc.errors import did_you_mean

NEW_VAR_ARGS = ("name", "like", "shape", "dtype", "persistable", "data")
MATCH_KINDS = ("op", "var", "program")


def check_pass(d: A.PassDef, params, path: str, source: str) -> None:
    from actc.dsl.primitives import PRIMITIVES

    enum_words = {c for p in params for c in (p.choices or ())}
    selectors = {p.name for p in params if "selector" in p.types}

    def fail(msg, pos):
        raise error_at(msg, path, source, pos)

    def expr(e, scope: set[str]):
        if e is None:
            return
        for n in _walk(e):
            if isinstance(n, A.Call) and n.func not in PRIMITIVES and n.func not in selectors:
                fail(f"unknown function '{n.func}'"
                     f"{did_you_mean(n.func, list(PRIMITIVES) + list(selectors))}", n.pos)
            if isinstance(n, A.Name) and n.id not in scope and n.id not in enum_words \
                    and n.id not in KNOWN_OP_TYPES and n.id not in ("op", "var", "all", "none"):
                fail(f"unknown name '{n.id}'{did_you_mean(n.id, scope | enum_words)}", n.pos)

    def target(t, scope, unset=False):
        if isinstance(t, A.Attr) and t.name == "shape":  # `set VAR.shape = [...]`
            expr(t.obj, scope)
            return
        if isinstance(t, A.Name):  # `set x = ...` rebinds a name bound by an enclosing let
            if t.id not in scope:
                fail(f"set {t.id}: no such name to rebind (bind it with let first)"
                     f"{did_you_mean(t.id, scope)}", t.pos)
            return
        if slot_target(t) is not None:  # `set o.output.SLOT = [...]` (or input)
            if unset:
                fail("unset takes an op attribute; to empty an op's slot write "
                     "`set o.output.SLOT = []`", getattr(t, "pos", None))
            expr(t, scope)
            return
        ok = (isinstance(t, A.Attr) and isinstance(t.obj, A.Attr) and t.obj.name == "attr") or \
             (isinstance(t, A.Index) and isinstance(t.obj, A.Attr) and t.obj.name == "attr")
        if not ok:
            fail("can only set an op attribute (x.attr.NAME or x.attr[EXPR]), an op's slot "
                 "(x.output.SLOT, x.input.SLOT), a var's shape (v.shape) or a name bound by let",
                 getattr(t, "pos", None))
        expr(t, scope)

    def block(stmts, scope: set[str]):
        scope = set(scope)
        for s in stmts:
            if isinstance(s, A.Let):
                expr(s.value, scope)
                scope.add(s.name)
            elif isinstance(s, A.NewVar):
                names = [a.name for a in s.args]
                for a in s.args:
                    if a.name not in NEW_VAR_ARGS:
                        fail(f"new var has no argument '{a.name}'"
                             f"{did_you_mean(a.name, NEW_VAR_ARGS)}", a.pos)
                    expr(a.value, scope)
                if "name" not in names:
                    fail("new var needs a name: (name: ...)", s.pos)
                scope.add(s.name)
            elif isinstance(s, A.Insert):
                if not isinstance(s.op_type, str):
                    expr(s.op_type, scope)
                elif s.op_type not in KNOWN_OP_TYPES:
                    fail(f"unknown op type '{s.op_type}'"
                         f"{did_you_mean(s.op_type, KNOWN_OP_TYPES)}", s.pos)
                for m in (s.anchor, s.inputs, s.outputs, s.attrs):
                    expr(m, scope)
                if s.bind:
                    scope.add(s.bind)
            elif isinstance(s, A.For):
                expr(s.iter, scope)
                block(s.body, scope | {s.var})
            elif isinstance(s, A.If):
                expr(s.test, scope)
                block(s.then, scope)
                block(s.orelse, scope)
            elif isinstance(s, (A.SetStmt, A.Unset)):
                target(s.target, scope, unset=isinstance(s, A.Unset))
                if isinstance(s, A.SetStmt):
                    expr(s.value, scope)
            elif isinstance(s, A.Rewire):
                for e in (s.op, s.old, s.new):
                    expr(e, scope)
            elif isinstance(s, A.Replace):
                expr(s.old, scope)
                expr(s.new, scope)
                expr(s.where, scope)
            elif isinstance(s, A.Rename):
                expr(s.old, scope)
                expr(s.new, scope)
            elif isinstance(s, (A.Remove,)):
                expr(s.op, scope)
            elif isinstance(s, (A.Fail, A.Note)):
                expr(s.message, scope)
            elif isinstance(s, A.Merge):
                for e in (s.program, s.prefix, s.keep, s.share):
                    expr(e, scope)

    base = {p.name for p in params}
    seen_rules = set()
    for rule in d.rules:
        if rule.name in seen_rules:
            fail(f"rule '{rule.name}' is defined twice in pass '{d.name}'", rule.pos)
        seen_rules.add(rule.name)
        if rule.match.kind not in MATCH_KINDS:
            fail(f"match needs one of {', '.join(MATCH_KINDS)}, not '{rule.match.kind}'"
                 f"{did_you_mean(rule.match.kind, MATCH_KINDS)}", rule.match.pos)
        scope = base | {rule.match.var}
        expr(rule.match.where, scope)
        block(rule.body, scope)
