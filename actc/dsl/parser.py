"""Source text -> ``ast.Module``: the Lark LALR parser plus a transformer that keeps positions.

Syntax errors become ``ActcError`` with the file, line, column, what was expected, and the
source line with a caret under the offending token.
"""
from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

from actc.dsl.resources import data_dir

from lark import Lark, Token, Transformer, v_args
from lark import __version__ as lark_version
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, \
    UnexpectedToken, VisitError

from actc.dsl import ast as A
from actc.dsl.limits import MAX_CARET
from actc.errors import ActcError


# The LALR tables ship in the package as JSON (no pickle: Lark's own cache=True unpickled a
# file with a predictable name from the shared temp dir, which another local user could
# plant). They are tied to the grammar's SHA-256 and Lark's version; stale ones are rebuilt in
# memory.
# Regenerate after editing grammar/actc.lark: python -m actc.dsl.parser
TABLES = Path(__file__).with_name("parser_tables.json")
LARK_OPTIONS = dict(parser="lalr", lexer="contextual", propagate_positions=True,
                    maybe_placeholders=True)


def grammar_text() -> str:
    return data_dir("actc.grammar").joinpath("actc.lark").read_text(encoding="utf-8")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def build_parser(text: str) -> Lark:
    return Lark(text, **LARK_OPTIONS)


def load_tables(text: str) -> Lark | None:
    """The shipped tables when they were built from exactly this grammar by this version of
    Lark (its table format is internal to it), else None: the caller builds them instead."""
    try:
        stored = json.loads(TABLES.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(stored, dict) or stored.get("grammar_sha256") != _digest(text) \
            or stored.get("lark") != lark_version:
        return None
    try:
        tables = _decode(stored["tables"])
        return Lark.load({"data": tables["data"], "memo": tables["memo"]})  # a dict: no pickle
    except Exception:  # a damaged file: building the tables is slower, never wrong
        return None


def _encode(v):
    """JSON keeps only string keys; Lark's tables key states and memo entries by int."""
    if isinstance(v, dict):
        if all(isinstance(k, str) for k in v):
            return {k: _encode(x) for k, x in v.items()}
        return {"__items__": [[_encode(k), _encode(x)] for k, x in v.items()]}
    if isinstance(v, (list, tuple)):
        return [_encode(x) for x in v]
    return v


def _decode(v):
    if isinstance(v, dict):
        if set(v) == {"__items__"}:
            return {_key(_decode(k)): _decode(x) for k, x in v["__items__"]}
        return {k: _decode(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_decode(x) for x in v]
    return v


def _key(k):
    return tuple(k) if isinstance(k, list) else k


def write_tables(text: str) -> None:
    from lark.grammar import Rule
    from lark.lexer import TerminalDef

    data, memo = build_parser(text).memo_serialize([TerminalDef, Rule])
    tables = _encode({"data": data, "memo": memo})
    record = {"grammar_sha256": _digest(text), "lark": lark_version, "tables": tables}
    TABLES.write_text(json.dumps(record, separators=(",", ":")) + "\n", encoding="utf-8")


@lru_cache(maxsize=1)
def _parser() -> Lark:
    text = grammar_text()
    return load_tables(text) or build_parser(text)


def caret(source: str, line: int | None, col: int | None) -> str | None:
    """The source line and a caret under column ``col`` (both 1-based)."""
    if not line:
        return None
    lines = source.splitlines()
    if line > len(lines):
        return None
    text = lines[line - 1].expandtabs(1)
    at = max((col or 1) - 1, 0)
    width = MAX_CARET  # a window around the column: a 5000-character line stays readable
    start = max(0, min(at - width // 2, len(text) - width))
    shown = text[start:start + width]
    return f"    {shown}\n    {' ' * (at - start)}^"


def error_at(message: str, path: str, source: str, pos: A.Pos | None) -> ActcError:
    line, col = (pos.line, pos.col) if pos is not None else (None, None)
    return ActcError(message, path=path, line=line, col=col, detail=caret(source, line, col))


def _describe_terminal(name: str) -> str:
    if name == "$END":
        return "end of file"
    readable = {"NAME": "a name", "STRING": "a string", "NUMBER": "a number",
                "ADD_OP": "'+' or '-'", "MUL_OP": "'*', '/' or '%'",
                "POSITION": "'before' or 'after'"}
    if name in readable:
        return readable[name]
    try:
        term = _parser().get_terminal(name)
    except KeyError:
        return name
    pattern = term.pattern
    if pattern.type == "str":
        return f"'{pattern.value}'"
    return name.lower()


def _expected(names) -> str:
    described = sorted({_describe_terminal(n) for n in names})
    if len(described) > 8:
        described = described[:8] + ["..."]
    return ", ".join(described)


def _syntax_error(e: UnexpectedInput, path: str, source: str) -> ActcError:
    line, col = getattr(e, "line", None), getattr(e, "column", None)
    if isinstance(e, UnexpectedToken):
        tok = e.token
        if tok.type == "$END":
            what = "unexpected end of file"
            lines = source.splitlines() or [""]
            line, col = len(lines), len(lines[-1]) + 1
        else:
            what = f"unexpected {tok.value!r}"
        msg = f"syntax error: {what}; expected {_expected(e.expected)}"
    elif isinstance(e, UnexpectedCharacters):
        ch = source[e.pos_in_stream] if e.pos_in_stream < len(source) else ""
        if ch == '"':
            msg = "syntax error: unterminated string (strings end on the same line)"
        else:
            msg = f"syntax error: unexpected character {ch!r}"
            if e.allowed:
                msg += f"; expected {_expected(e.allowed)}"
    elif isinstance(e, UnexpectedEOF):
        lines = source.splitlines() or [""]
        line, col = len(lines), len(lines[-1]) + 1
        msg = f"syntax error: unexpected end of file; expected {_expected(e.expected)}"
    else:
        msg = "syntax error"
    return ActcError(msg, path=path, line=line, col=col, detail=caret(source, line, col))


def _pos(x) -> A.Pos:
    if isinstance(x, Token):
        return A.Pos(x.line, x.column)
    return A.Pos(getattr(x, "line", 0) or 0, getattr(x, "column", 0) or 0)


def _number(tok: Token):
    text = str(tok)
    if "." in text or "e" in text or "E" in text:
        return float(text)
    return int(text)


class _ToAst(Transformer):
    """Lark tree -> ``ast`` nodes (positions from tokens and rule metadata)."""

    def __init__(self, source: str, path: str):
        super().__init__()
        self.source = source
        self.path = path

    # --- atoms
    def number(self, c):
        """Numbers a recipe can mean: 64-bit integers and finite floats."""
        import math

        from actc.dsl.limits import MAX_INT

        text = str(c[0])
        shown = text if len(text) <= 12 else text[:10] + "..."
        try:
            value = _number(c[0])
        except ValueError:  # Python refuses int() of more than 4300 digits
            value = None
        if isinstance(value, float) and not math.isfinite(value):
            raise error_at(f"number {shown} is out of range (not a finite float)", self.path,
                           self.source, _pos(c[0]))
        if value is None or (isinstance(value, int) and value > MAX_INT):
            raise error_at(f"integer {shown} is out of range (integers are 64-bit)",
                           self.path, self.source, _pos(c[0]))
        return A.Lit(value, _pos(c[0]))

    def string(self, c):
        return A.Lit(self._str(c[0]), _pos(c[0]))

    def _str(self, tok: Token) -> str:
        try:
            return json.loads(str(tok))
        except json.JSONDecodeError:
            raise error_at("invalid escape in string (strings use JSON escapes)", self.path,
                           self.source, _pos(tok)) from None

    @v_args(meta=True)
    def true(self, meta, c):
        return A.Lit(True, _pos(meta))

    @v_args(meta=True)
    def false(self, meta, c):
        return A.Lit(False, _pos(meta))

    @v_args(meta=True)
    def null(self, meta, c):
        return A.Lit(None, _pos(meta))

    def name(self, c):
        return A.Name(str(c[0]), _pos(c[0]))

    def items(self, c):
        return [x for x in c if x is not None]

    @v_args(meta=True)
    def list(self, meta, c):
        return A.ListLit(c[0] or [], _pos(meta))

    @v_args(meta=True)
    def set(self, meta, c):
        return A.SetLit(c[0], _pos(meta))

    @v_args(meta=True)
    def mapping(self, meta, c):
        return A.MapLit([x for x in c if x is not None], _pos(meta))

    def map_item(self, c):
        key = c[0]
        k = self._str(key) if key.type == "STRING" else str(key)
        return (k, _pos(key), c[1])

    # --- operators
    @v_args(meta=True)
    def range_(self, meta, c):
        return A.RangeLit(c[0], c[1], _pos(meta))

    @v_args(meta=True)
    def neg(self, meta, c):
        inner = c[0]
        if isinstance(inner, A.Lit) and isinstance(inner.value, (int, float)) \
                and not isinstance(inner.value, bool):
            return A.Lit(-inner.value, _pos(meta))
        return A.Unary("-", inner, _pos(meta))

    @v_args(meta=True)
    def not_(self, meta, c):
        return A.Unary("not", c[0], _pos(meta))

    @v_args(meta=True)
    def and_(self, meta, c):
        return A.Binary("and", c[0], c[1], _pos(meta))

    @v_args(meta=True)
    def or_(self, meta, c):
        return A.Binary("or", c[0], c[1], _pos(meta))

    @v_args(meta=True)
    def binop(self, meta, c):
        return A.Binary(str(c[1]), c[0], c[2], _pos(c[1]))

    def cmp_op(self, c):
        return (" ".join(str(t) for t in c), _pos(c[0]))

    @v_args(meta=True)
    def cmp(self, meta, c):
        op, pos = c[1]
        return A.Compare(op, c[0], c[2], pos)

    @v_args(meta=True)
    def cond(self, meta, c):
        return A.Cond(c[0], c[1], c[2], _pos(meta))

    def getattr(self, c):
        return A.Attr(c[0], str(c[1]), _pos(c[1]))

    @v_args(meta=True)
    def index(self, meta, c):
        return A.Index(c[0], c[1], _pos(meta))

    def kwarg(self, c):
        return A.Arg(str(c[0]), c[1], _pos(c[0]))

    def call_args(self, c):
        return c

    def call(self, c):
        args = c[1] or []
        return A.Call(str(c[0]), [a for a in args if not isinstance(a, A.Arg)],
                      [a for a in args if isinstance(a, A.Arg)], _pos(c[0]))

    # --- declarations
    @v_args(meta=True)
    def arg(self, meta, c):
        text = self.source[meta.start_pos:meta.end_pos].split(":", 1)[1].strip()
        return A.Arg(str(c[0]), c[1], _pos(c[0]), " ".join(text.split()))

    def args(self, c):
        return [x for x in c if x is not None]

    def step(self, c):
        return A.Step(str(c[0]), c[1] or [], _pos(c[0]))

    def enum_choices(self, c):
        return [self._str(t) if t.type == "STRING" else str(t) for t in c if t is not None]

    def type_alt(self, c):
        return A.TypeAlt(str(c[0]), c[1], _pos(c[0]))

    def type_spec(self, c):
        return list(c)

    def type_range(self, c):
        return (c[0], c[1])

    def param(self, c):
        name, types, rng, default, doc = c
        return A.Param(str(name), types, rng, default, self._str(doc) if doc else "",
                       _pos(name))

    def params(self, c):
        return [x for x in c if x is not None]

    def recipe_def(self, c):
        name, params, doc = c[0], c[1] or [], c[2]
        steps = [s for s in c[3:] if isinstance(s, A.Step)]
        return A.Recipe(str(name), params, self._str(doc) if doc else "", steps, _pos(name))

    @v_args(meta=True)
    def pass_def(self, meta, c):
        name, params, doc = c[0], c[1] or [], c[2]
        src = self.source[meta.start_pos:meta.end_pos]
        return A.PassDef(str(name), params, self._str(doc) if doc else "", list(c[3:]),
                         _pos(name), source=src, path=self.path)

    def stage_def(self, c):
        name, params, doc = c[0], c[1] or [], c[2]
        return A.StageDef(str(name), params, self._str(doc) if doc else "", _pos(name),
                          path=self.path)

    def import_stmt(self, c):
        return A.Import(self._str(c[0]), _pos(c[0]))

    # --- rules and statements
    def rule(self, c):
        return A.Rule(str(c[0]), c[1], [s for s in c[2:] if s is not None], _pos(c[0]))

    def match_clause(self, c):
        return A.Match(str(c[0]), str(c[1]), c[2], _pos(c[1]))

    def block(self, c):
        return [s for s in c if s is not None]

    def empty_stmt(self, c):
        return None

    @v_args(meta=True)
    def let_stmt(self, meta, c):
        return A.Let(str(c[0]), c[1], _pos(meta))

    @v_args(meta=True)
    def new_var_stmt(self, meta, c):
        return A.NewVar(str(c[0]), c[1] or [], _pos(meta))

    def op_type(self, c):
        t = c[0]
        if isinstance(t, Token):
            return self._str(t) if t.type == "STRING" else str(t)
        return t

    def io_inputs(self, c):
        return c[0]

    io_outputs = io_inputs
    io_attrs = io_inputs

    @v_args(meta=True)
    def insert_stmt(self, meta, c):
        if len(c) == 6:  # insert ... at end
            bind, op_type, _, ins, outs, attrs = c
            position, anchor = "end", None
        else:
            bind, op_type, position, anchor, ins, outs, attrs = c
        return A.Insert(str(bind) if bind is not None else None, op_type, str(position),
                        anchor, ins, outs, attrs, _pos(meta))

    @v_args(meta=True)
    def for_stmt(self, meta, c):
        return A.For(str(c[0]), c[1], c[2], _pos(meta))

    @v_args(meta=True)
    def if_stmt(self, meta, c):
        orelse = c[2]
        if isinstance(orelse, A.If):
            orelse = [orelse]
        return A.If(c[0], c[1], orelse or [], _pos(meta))

    @v_args(meta=True)
    def set_stmt(self, meta, c):
        return A.SetStmt(c[0], c[1], _pos(meta))

    @v_args(meta=True)
    def unset_stmt(self, meta, c):
        return A.Unset(c[0], _pos(meta))

    @v_args(meta=True)
    def rewire_stmt(self, meta, c):
        return A.Rewire(c[0], c[1], c[2], _pos(meta))

    @v_args(meta=True)
    def replace_stmt(self, meta, c):
        return A.Replace(c[0], c[1], c[2], _pos(meta))

    def bypass(self, c):
        return ("bypass", str(c[0]) if c[0] else None, str(c[1]) if c[1] else None)

    @v_args(meta=True)
    def remove_stmt(self, meta, c):
        bp = c[1]
        if bp is None:
            return A.Remove(c[0], False, None, None, _pos(meta))
        return A.Remove(c[0], True, bp[1], bp[2], _pos(meta))

    @v_args(meta=True)
    def rename_stmt(self, meta, c):
        return A.Rename(c[0], c[1], _pos(meta))

    @v_args(meta=True)
    def fail_stmt(self, meta, c):
        return A.Fail(c[0], _pos(meta))

    @v_args(meta=True)
    def note_stmt(self, meta, c):
        return A.Note(c[0], _pos(meta))

    @v_args(meta=True)
    def return_stmt(self, meta, c):
        return A.Return(_pos(meta))

    def at_end(self, c):
        return "end"

    @v_args(meta=True)
    def merge_stmt(self, meta, c):
        return A.Merge(c[0], c[1], c[2], c[3], _pos(meta))

    def start(self, c):
        mod = A.Module(self.path, self.source)
        for item in c:
            if isinstance(item, A.Import):
                mod.imports.append(item)
            elif isinstance(item, A.PassDef):
                mod.passes.append(item)
            elif isinstance(item, A.Recipe):
                mod.recipes.append(item)
            elif isinstance(item, A.StageDef):
                mod.stages.append(item)
        return mod


def _check_depth(tree, path: str, source: str) -> None:
    """Refuse trees nested deeper than MAX_NESTING before anything recurses over them (the
    AST builder, the evaluator, printing): at a depth of ~1000 they raised RecursionError.
    Counted iteratively, on the parse tree (single-child grammar rules are inlined, so a
    level is one real level of nesting)."""
    from lark import Tree

    from actc.dsl.limits import MAX_NESTING

    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_NESTING:
            meta = getattr(node, "meta", None)
            line = getattr(meta, "line", None) if meta is not None and not meta.empty else None
            col = getattr(meta, "column", None) if line else None
            raise error_at(f"expression or block nested deeper than {MAX_NESTING} levels",
                           path, source, A.Pos(line or 1, col or 1))
        stack.extend((c, depth + 1) for c in node.children if isinstance(c, Tree))


def parse(source: str, path: str = "<recipe>", lark: Lark | None = None) -> A.Module:
    """Parse a whole ``.actc`` file (``lark``: another parser for the same grammar)."""
    try:
        tree = (lark or _parser()).parse(source)
    except UnexpectedInput as e:
        raise _syntax_error(e, path, source) from None
    _check_depth(tree, path, source)
    try:
        return _ToAst(source, path).transform(tree)
    except VisitError as e:
        if isinstance(e.orig_exc, ActcError):
            raise e.orig_exc from None
        raise


def parse_expr(text: str, what: str = "<value>"):
    """Parse one expression (``--set k=v`` values), via a one-step recipe wrapper."""
    mod = parse(f"recipe _() {{ _(v: {text}) }}", what)
    return mod.recipes[0].steps[0].args[0].value


if __name__ == "__main__":  # regenerate the shipped tables
    write_tables(grammar_text())
    print(f"wrote {TABLES}")
