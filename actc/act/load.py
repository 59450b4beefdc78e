"""Read an ACT YAML config, validate it against ``schema.py`` and normalise it.

``load_config(path) -> Config``. Every problem is a ``ConfigError`` whose ``str`` is one line,
``FILE:LINE:COL: error: MESSAGE``; everything actc wants the user to know without stopping
(old names read as new ones, ignored sections, leniently accepted quirks) is a ``Note`` in
``Config.notes``, printed the same way with ``note:`` or ``warning:``.

No Paddle import here.
"""
from __future__ import annotations

import codecs
import math
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from actc.dsl.values import type_name
from actc.errors import ActcError, did_you_mean

from . import schema
from .schema import Key, Section


# Limits on an ACT config, far above real ones (a few KB, a few hundred nodes, 5 levels deep):
# they stop alias bombs, self-containing anchors and runaway nesting before anything recurses.
MAX_BYTES = 1 << 20       # the file; PyYAML's pure-Python scanner reads ~1 MiB a second
MAX_NODES = 100_000       # YAML nodes once every alias is expanded
MAX_DEPTH = 32            # nesting of lists and mappings, aliases expanded


class ConfigError(ActcError):
    """A problem in an ACT YAML config: ``str(e) == 'FILE:LINE:COL: error: MESSAGE'``."""

    def __init__(self, path: str | Path, line: int, col: int, message: str):
        super().__init__(message, path=str(path), line=line, col=col)


@dataclass
class Note:
    path: str
    line: int
    col: int
    kind: str          # "note" or "warning"
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: {self.kind}: {self.message}"


@dataclass
class ModelLocation:
    model_dir: str | None
    model_filename: str | None = None
    params_filename: str | None = None


@dataclass
class Config:
    """A validated, normalised ACT config.

    ``sections`` maps each present compression section (current names) to all of its keys,
    defaults filled in; ``given`` says which keys the file set; ``where`` gives the 1-based
    (line, col) of each section ``(name,)`` and key ``(name, key)`` in the file.
    """
    path: str
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    given: dict[str, set[str]] = field(default_factory=dict)
    where: dict[tuple[str, ...], tuple[int, int]] = field(default_factory=dict)
    notes: list[Note] = field(default_factory=list)
    model_location: ModelLocation | None = None
    ignored_sections: list[str] = field(default_factory=list)
    global_train: dict = field(default_factory=dict)  # Global keys actc uses (batch_size)

    def __contains__(self, section: str) -> bool:
        return section in self.sections

    def get(self, section: str, key: str) -> Any:
        return self.sections[section][key]

    def is_set(self, section: str, key: str) -> bool:
        return key in self.given.get(section, ())


_FLOATISH = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
# `key: [a, b],` / `key: {a: b},` at block level: a trailing comma copied from the tutorial.
_TRAILING_COMMA = re.compile(r"^(\s*[^\s#][^#]*?:\s*[\[{].*[\]}])(\s*),(\s*(#.*)?)$")
_TYPE_WORDS = {"int": "an int", "float": "a number", "bool": "a bool (true/false)",
               "str": "a string", "null": "null", "list": "a list", "mapping": "a mapping"}


def _expected(types) -> str:
    return " or ".join(_TYPE_WORDS.get(t, t) for t in types)


def _show(v: Any) -> str:
    if isinstance(v, str):
        return f"'{v}'"
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    return repr(v)


_YAML = "tag:yaml.org,2002:"
_MERGE = _YAML + "merge"
# Tags an ACT config may write explicitly, and the kind of node each one fits.
_PLAIN_TAGS = {_YAML + t: yaml.ScalarEvent for t in ("str", "int", "float", "bool", "null")}
_PLAIN_TAGS.update({_YAML + "seq": yaml.SequenceStartEvent, _YAML + "map": yaml.MappingStartEvent})
_KIND_WORDS = {yaml.ScalarEvent: "a scalar", yaml.SequenceStartEvent: "a list",
               yaml.MappingStartEvent: "a mapping"}
_SCALAR_WORDS = {"int": "an int", "float": "a number", "bool": "a bool (true/false)"}
_LINE_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")


class _Refused(Exception):
    """A config refused while composing, at a YAML mark (turned into a ConfigError)."""

    def __init__(self, mark, message: str):
        super().__init__(message)
        self.mark, self.message = mark, message


def _short_tag(tag: str) -> str:
    return "!!" + tag[len(_YAML):] if tag.startswith(_YAML) else tag


def _check_tag(event) -> None:
    """Only plain data tags, on the kind of node they fit: '!!python/...' would otherwise reach
    PyYAML's constructor (an internal error), and '!!str {a: 1}' would read as a mapping."""
    tag = getattr(event, "tag", None)
    if tag in (None, "!"):
        return
    fits = _PLAIN_TAGS.get(tag)
    if fits is None:
        raise _Refused(event.start_mark, f"the YAML tag '{_short_tag(tag)}' is not allowed: an "
                                         "ACT config holds plain strings, numbers, booleans, "
                                         "null, lists and mappings")
    if not isinstance(event, fits):
        raise _Refused(event.start_mark, f"the tag '{_short_tag(tag)}' is for "
                                         f"{_KIND_WORDS[fits]}, not {_KIND_WORDS[type(event)]}")


def _key_id(node):
    return (node.tag, node.value) if isinstance(node, yaml.ScalarNode) else id(node)


def _merge_pairs(node: yaml.MappingNode) -> list:
    """A mapping's pairs with its merge keys ('<<: *base', '<<: [*a, *b]') folded in as PyYAML
    reads them for ACT: the mapping's own keys win, then the merged mappings in order."""
    own, merged = [], []
    for k, v in node.value:
        if k.tag != _MERGE:
            own.append((k, v))
            continue
        for source in v.value if isinstance(v, yaml.SequenceNode) else [v]:
            if not isinstance(source, yaml.MappingNode):
                raise _Refused(source.start_mark, "a merge key '<<' takes a mapping or a list "
                                                  "of mappings (e.g. '<<: *base')")
            merged.extend(source.value)
    taken = {_key_id(k) for k, _ in own}
    out = []
    for k, v in merged:
        if _key_id(k) not in taken:
            taken.add(_key_id(k))
            out.append((k, v))
    return out + own


class _Composer(yaml.SafeLoader):
    """PyYAML's safe composer, bounded: it counts nodes with aliases expanded and tracks depth
    as it goes, so a bomb or a self-containing anchor is refused at its alias before any later
    step expands or recurses through it. Merge keys are folded in here, once per mapping."""

    def __init__(self, text: str):
        super().__init__(text)
        self._nodes = 0                                   # so far, aliases expanded
        self._shape: dict[int, tuple[int, int]] = {}      # id(node) -> (nodes, height)
        self._heights: list[int] = []                     # tallest child of each open node
        self._open: set[str] = set()                      # anchors still being composed

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self._open:
                raise _Refused(event.start_mark, f"the alias *{event.anchor} refers to itself "
                                                 f"(it is inside &{event.anchor}): a config "
                                                 "cannot contain itself")
            node = super().compose_node(parent, index)
            self._grow(*self._shape[id(node)], event.start_mark, alias=True)
            return node
        _check_tag(event)
        if len(self._heights) >= MAX_DEPTH:
            raise _Refused(event.start_mark, f"nested more than {MAX_DEPTH} levels deep")
        start = self._nodes
        if event.anchor is not None:
            self._open.add(event.anchor)
        self._heights.append(0)
        node = super().compose_node(parent, index)
        height = self._heights.pop() + 1
        self._open.discard(event.anchor)
        self._shape[id(node)] = (self._nodes - start + 1, height)  # its children are counted
        self._grow(1, height, event.start_mark)
        return node

    def compose_mapping_node(self, anchor):
        node = super().compose_mapping_node(anchor)
        if any(k.tag == _MERGE for k, _ in node.value):
            node.value = _merge_pairs(node)
        return node

    def _grow(self, nodes: int, height: int, mark, alias: bool = False) -> None:
        """Account for a finished node (or an alias to one) in the document's size and depth."""
        self._nodes += nodes
        if self._nodes > MAX_NODES:
            why = " once its aliases are expanded (an alias bomb?)" if alias else ""
            raise _Refused(mark, f"the config has more than {MAX_NODES} YAML nodes{why}")
        if len(self._heights) + height > MAX_DEPTH:
            raise _Refused(mark, f"nested more than {MAX_DEPTH} levels deep"
                                 + (" once its aliases are expanded" if alias else ""))
        if self._heights:
            self._heights[-1] = max(self._heights[-1], height)


# '=' and a '<<' that is not a key are resolved to tags with no constructor: read them as text.
_Composer.add_constructor(_YAML + "value", yaml.SafeLoader.construct_yaml_str)
_Composer.add_constructor(_MERGE, yaml.SafeLoader.construct_yaml_str)


class _Loader:
    def __init__(self, path: str, text: str):
        self.path = path
        self.text = text
        self.notes: list[Note] = []
        self.cfg = Config(path=path)
        self.yaml: yaml.SafeLoader | None = None

    # -- helpers --------------------------------------------------------------------------------
    def err(self, node, message: str) -> ConfigError:
        m = node.start_mark if node is not None else None
        return ConfigError(self.path, m.line + 1 if m else 1, m.column + 1 if m else 1, message)

    def note(self, node, message: str, kind: str = "note") -> None:
        m = node.start_mark if node is not None else None
        self.cfg.notes.append(Note(self.path, m.line + 1 if m else 1, m.column + 1 if m else 1,
                                   kind, message))

    def warn(self, node, message: str) -> None:
        self.note(node, message, "warning")

    @staticmethod
    def pos(node) -> tuple[int, int]:
        return node.start_mark.line + 1, node.start_mark.column + 1

    def py(self, node) -> Any:
        """Plain Python value of a node; the string 'None' is null, as in ACT configs."""
        if isinstance(node, yaml.MappingNode):
            return {self.py(k): self.py(v) for k, v in self.pairs(node, "mapping")}
        if isinstance(node, yaml.SequenceNode):
            return [self.py(n) for n in node.value]
        v = self.scalar(node)
        return None if v == "None" else v

    def scalar(self, node) -> Any:
        """A scalar's value; one PyYAML cannot build ('!!int abc', a 30th of February) is an
        error at the node, not a crash in the constructor."""
        try:
            v = self.yaml.construct_object(node, deep=True)
        except (ValueError, TypeError, KeyError, IndexError, OverflowError,
                yaml.YAMLError) as e:
            raise self.err(node, _unreadable(node, e)) from None
        if isinstance(v, float) and not math.isfinite(v):  # no recipe can hold it
            raise self.err(node, f"'{node.value}' is not a finite number")
        return v

    def pairs(self, node, where: str):
        """(key node, value node) pairs of a mapping node; duplicate keys are errors."""
        seen: dict[Any, Any] = {}
        out = []
        for k, v in node.value:
            name = self.scalar(k) if isinstance(k, yaml.ScalarNode) else None
            if name is None or isinstance(name, (list, dict)):
                raise self.err(k, f"{where}: keys must be plain names")
            if name in seen:
                line = seen[name].start_mark.line + 1
                raise self.err(k, f"{where}: duplicate key '{name}' (first set on line {line})")
            seen[name] = k
            out.append((k, v))
        return out

    # -- parsing --------------------------------------------------------------------------------
    def compose(self):
        """The root node; every YAML-level problem is a ConfigError at its line and column."""
        try:
            return self._compose_lenient()
        except _Refused as e:
            raise ConfigError(self.path, e.mark.line + 1, e.mark.column + 1, e.message) from None
        except yaml.reader.ReaderError as e:
            line, col = _line_col(self.text, e.position)
            raise ConfigError(self.path, line, col, _bad_character(e.character)) from None

    def _compose_lenient(self):
        try:
            return self._compose(self.text)
        except yaml.MarkedYAMLError as e:
            # Lenient: the tutorial's HyperParameterOptimization example ends lines with ','
            # (`hist_percent: [0.98, 0.999],`), which is not YAML. Strip such commas (only if
            # the file then parses) and warn about each.
            lines = self.text.split("\n")
            fixed: list[int] = []
            for i, line in enumerate(lines):
                m = _TRAILING_COMMA.match(line)
                if m:
                    lines[i] = m.group(1) + m.group(2) + " " + m.group(3)
                    fixed.append(i)
            if fixed:
                try:
                    root = self._compose("\n".join(lines))
                except yaml.MarkedYAMLError:
                    root = None
                if root is not None:
                    for i in fixed:
                        col = len(_TRAILING_COMMA.match(self.text.split("\n")[i]).group(1)) + \
                            len(_TRAILING_COMMA.match(self.text.split("\n")[i]).group(2)) + 1
                        self.cfg.notes.append(Note(
                            self.path, i + 1, col, "warning",
                            "ignored the trailing ',' after this value (not valid YAML; "
                            "copied from ACT's tutorial?)"))
                    return root
            mark = e.problem_mark or e.context_mark
            problem = (e.problem or "invalid YAML").strip()
            ctx = f" {e.context.strip()}" if e.context else ""
            raise ConfigError(self.path, mark.line + 1 if mark else 1,
                              mark.column + 1 if mark else 1,
                              f"invalid YAML: {problem}" + (f" ({ctx.strip()})" if ctx else ""))

    def _compose(self, text: str):
        self.yaml = _Composer(text)
        return self.yaml.get_single_node()

    # -- validation -----------------------------------------------------------------------------
    def check(self, key: Key, node, where: str) -> Any:
        v = self.py(node)
        types = key.types
        if v is None:
            if "null" in types:
                return None
            if key.required or key.default is None:
                raise self.err(node, f"{where}: expected {_expected(types)}, got null")
            self.note(node, f"{where}: null means the default, {_show(key.default)}")
            return key.default
        if isinstance(v, bool):
            if "bool" in types:
                return v
        elif isinstance(v, int):
            if "int" in types:
                return self.in_range(key, v, node, where)
            if "float" in types:
                return self.in_range(key, float(v), node, where)
        elif isinstance(v, float):
            if "float" in types:
                return self.in_range(key, v, node, where)
        elif isinstance(v, str):
            if "float" in types and "str" not in types and _FLOATISH.match(v):
                if not math.isfinite(float(v)):
                    raise self.err(node, f"{where}: '{v}' is not a finite number")
                self.note(node, f"{where}: read '{v}' as the number {float(v)!r} "
                                "(YAML 1.1 reads exponents without a '.' as strings)")
                return self.in_range(key, float(v), node, where)
            if "str" in types:
                return self.choice(key, v, node, where)
        elif isinstance(v, list):
            if "list" in types:
                return self.check_list(key, node, where)
        elif isinstance(v, dict):
            if "mapping" in types:
                return self.check_mapping(key, node, where)
        shown = "" if isinstance(v, (list, dict)) else f" {_show(v)}"
        raise self.err(node, f"{where}: expected {_expected(types)}, got {type_name(v)}{shown}")

    def in_range(self, key: Key, v, node, where: str):
        if key.range is None:
            return v
        lo, hi = key.range
        if lo <= v <= hi:
            return v
        if key.act_range and key.act_range[0] <= v <= key.act_range[1]:
            raise self.err(node, f"{where}: {v} is out of range: actc supports {lo}..{hi} bits "
                                 f"(ACT's table allows {key.act_range[0]}..{key.act_range[1]})")
        hi_s = "" if hi == float("inf") or hi >= 2**31 - 1 else f"{hi}"
        rng = f"{lo}..{hi_s}" if hi_s else f">= {lo}"
        raise self.err(node, f"{where}: {v} is out of range ({rng})")

    def choice(self, key: Key, v: str, node, where: str):
        if key.value_aliases and v in key.value_aliases:
            new = key.value_aliases[v]
            self.note(node, f"{where}: '{v}' is the old name of '{new}'; read as '{new}'")
            v = new
        if key.refused and v in key.refused:
            raise self.err(node, f"{where}: '{v}' is accepted by ACT but actc cannot do it: "
                                 f"{key.refused[v]}")
        if key.choices is None or v in key.choices:
            return v
        raise self.err(node, f"{where}: '{v}' is not one of {', '.join(map(str, key.choices))}"
                             + did_you_mean(v, key.choices))

    def check_list(self, key: Key, node, where: str) -> list:
        items = key.items or ("str", "int", "float", "bool", "list", "mapping")
        item_key = Key(key.name, items, None, key.doc, choices=key.choices, range=key.range,
                       act_range=key.act_range, value_aliases=key.value_aliases, required=True)
        out = []
        for i, n in enumerate(node.value):
            iw = f"{where}[{i}]"
            if isinstance(n, yaml.SequenceNode) and "list" in items:
                kinds = tuple(t for t in items if t != "list") or ("str",)
                inner = [self.check(Key(key.name, kinds, None, key.doc, required=True), m,
                                    f"{iw}[{j}]") for j, m in enumerate(n.value)]
                out.append(inner)
            else:
                out.append(self.check(item_key, n, iw))
        if key.length is not None and len(out) != key.length:
            raise self.err(node, f"{where}: expected {key.length} values ([low, high]), "
                                 f"got {len(out)}")
        return out

    def check_mapping(self, key: Key, node, where: str) -> dict:
        sub = key.sub or {}
        out: dict[str, Any] = {}
        for kn, vn in self.pairs(node, where):
            name = self.py(kn)
            if name in sub:
                out[name] = self.check(sub[name], vn, f"{where}.{name}")
            elif key.open:
                out[name] = self.py(vn)
            else:
                raise self.err(kn, f"{where}: unknown key '{name}'" + did_you_mean(name, sub))
        for n, k in sub.items():
            if n not in out:
                if k.required:
                    raise self.err(node, f"{where}: missing required key '{n}'")
                if not key.open:
                    out[n] = k.default
        return out

    # -- sections -------------------------------------------------------------------------------
    def load(self, overrides: dict[str, str] | None = None) -> Config:
        root = self.compose()
        if overrides:
            root = apply_overrides(root, overrides, self.path)
        if root is None:
            raise ConfigError(self.path, 1, 1, "the config is empty")
        if not isinstance(root, yaml.MappingNode):
            got = "a list" if isinstance(root, yaml.SequenceNode) else _a(type_name(self.py(root)))
            raise self.err(root, "an ACT config is a mapping of sections (QuantPost:, ...), "
                                 f"not {got}")
        seen_canonical: dict[str, Any] = {}
        for kn, vn in self.pairs(root, "config"):
            name = self.py(kn)
            if not isinstance(name, str):
                raise self.err(kn, f"section names are strings, got {_show(name)}")
            if name in schema.IGNORED_SECTIONS:
                self.ignored(name, kn, vn)
                continue
            canonical = name
            if name in schema.SECTION_ALIASES:
                canonical = schema.SECTION_ALIASES[name]
                self.note(kn, f"'{name}' is the old name of '{canonical}'; read as {canonical}")
            elif name not in schema.SECTIONS:
                import difflib

                strategies = list(schema.SECTIONS) + list(schema.SECTION_ALIASES)
                near = difflib.get_close_matches(name, strategies, n=1, cutoff=0.75)
                if near:  # a misspelt strategy: the user meant to compress with it
                    raise self.err(kn, f"unknown section '{name}' (did you mean '{near[0]}'?)")
                # the example script's own section (readers, metrics, its own settings)
                self.cfg.ignored_sections.append(name)
                self.note(kn, f"ignored: section '{name}' is not an ACT section (ACT ignores "
                              "it too; only the example script that owns it reads it)")
                continue
            if canonical == "Prune":
                canonical = self.old_prune_target(kn, vn)
            if canonical in seen_canonical:
                other = self.py(seen_canonical[canonical])
                raise self.err(kn, f"section '{name}' is set twice (also as '{other}')")
            seen_canonical[canonical] = kn
            self.section(schema.SECTIONS[canonical], name, kn, vn)
        self.cross_checks(seen_canonical)
        return self.cfg

    def ignored(self, name: str, kn, vn) -> None:
        if name != "Global":  # Global is read in part: only its unread keys are ignored
            self.cfg.ignored_sections.append(name)
            self.note(kn, f"ignored: section '{name}' ({schema.IGNORED_SECTIONS[name]})")
            return
        rest = []
        loc: dict[str, Any] = {}
        if isinstance(vn, yaml.MappingNode):
            for k, v in self.pairs(vn, "Global"):
                key = self.py(k)
                if key in schema.GLOBAL_MODEL_KEYS:
                    loc[key] = self.check(schema.GLOBAL_MODEL_KEYS[key], v, f"Global.{key}")
                elif key in schema.GLOBAL_TRAIN_KEYS:
                    self.cfg.global_train[key] = self.check(schema.GLOBAL_TRAIN_KEYS[key], v,
                                                            f"Global.{key}")
                else:
                    rest.append(str(key))
        elif self.py(vn) is not None:
            raise self.err(vn, "Global: expected a mapping")
        if loc:
            self.cfg.model_location = ModelLocation(loc.get("model_dir"), loc.get("model_filename"),
                                                    loc.get("params_filename"))
        if rest:
            self.cfg.ignored_sections.extend(f"Global.{k}" for k in rest)
            self.note(kn, f"ignored: Global.{', Global.'.join(rest)} (example-script settings; "
                          "actc reads only model_dir, model_filename, params_filename, "
                          "batch_size, input_shapes, target_speedup and deploy_hardware)")

    def old_prune_target(self, kn, vn) -> str:
        algo, at = "prune", kn
        if isinstance(vn, yaml.MappingNode):
            for k, v in self.pairs(vn, "Prune"):
                if self.py(k) == "prune_algo":
                    algo = self.check(schema.OLD_PRUNE.keys["prune_algo"], v, "Prune.prune_algo")
                    at = k
        target = schema.OLD_PRUNE_TARGETS[algo]
        self.note(at, f"'Prune' with prune_algo {algo} is the old form of '{target}'; "
                      f"read as {target}")
        return target

    def section(self, sec: Section, written: str, kn, vn) -> None:
        name = sec.name
        self.cfg.where[(name,)] = self.pos(kn)
        values: dict[str, Any] = {}
        given: set[str] = set()
        if isinstance(vn, yaml.MappingNode):
            entries = self.pairs(vn, written)
        elif self.py(vn) is None:
            entries = []
        else:
            raise self.err(vn, f"{written}: expected a mapping of keys, got "
                               f"{type_name(self.py(vn))}")
        old_prune = written == "Prune"
        keys = dict(sec.keys)
        aliases = {k.alias: k.name for k in keys.values() if k.alias}
        loose_gmp: list[tuple[Any, Any]] = []
        for k, v in entries:
            key = self.py(k)
            if old_prune:
                if key == "prune_algo":
                    continue
                if key not in schema.OLD_PRUNE.keys:
                    raise self.err(k, f"Prune: unknown key '{key}'" + did_you_mean(key, schema.OLD_PRUNE.keys))
                if key not in keys:
                    algo = next(a for a, t in schema.OLD_PRUNE_TARGETS.items() if t == name)
                    self.warn(k, f"Prune.{key} has no effect with prune_algo {algo}; ignored")
                    continue
            if key in aliases:
                new = aliases[key]
                if new in given:
                    raise self.err(k, f"{written}: both '{new}' and its old name '{key}' are set")
                if keys[new].alias_old:
                    self.note(k, f"{written}.{key} is the old name of {new}; read as {new}")
                key = new
            elif key not in keys:
                if name == "UnstructurePrune" and key in schema.GMP_CONFIG:
                    loose_gmp.append((k, v))
                    continue
                raise self.err(k, f"{written}: unknown key '{key}'"
                                  + did_you_mean(key, sec.key_names()))
            elif key in given:
                raise self.err(k, f"{written}: both '{key}' and its old name are set")
            spec = keys[key]
            if sec.per_teacher and key != "merge_feed":  # (merge_feed: one for all)
                values[key] = self.per_teacher(spec, v, f"{written}.{key}")
            else:
                values[key] = self.check(spec, v, f"{written}.{key}")
            given.add(key)
            self.cfg.where[(name, key)] = self.pos(k)
            if spec.ignored and values[key] is not None:
                self.note(k, f"{written}.{key} has no effect: {spec.ignored}", spec.ignored_kind)
        if loose_gmp:
            self.fold_gmp(loose_gmp, values, given, written)
        for n, spec in keys.items():
            if n not in values:
                if spec.required:
                    raise self.err(kn, f"{written}: missing required key '{n}'")
                values[n] = spec.default
        self.cfg.sections[name] = values
        self.cfg.given[name] = given
        self.normalise(name, written, values, given, kn)

    def per_teacher(self, spec: Key, node, where: str) -> list:
        if not isinstance(node, yaml.SequenceNode):
            raise self.err(node, f"{where}: expected a list with one entry per teacher")
        return [self.check(spec, n, f"{where}[{i}]") for i, n in enumerate(node.value)]

    def fold_gmp(self, loose, values, given, written) -> None:
        """Lenient: seed 001 writes gmp_config's sub-keys at the section's indentation, so YAML
        reads `gmp_config: null` plus stray keys. Fold them back into gmp_config, with a warning."""
        if values.get("gmp_config") not in (None, {}):
            k, _ = loose[0]
            raise self.err(k, f"{written}: unknown key '{self.py(k)}' (it belongs in gmp_config)")
        gmp_key = Key("gmp_config", ("mapping",), None, "", sub=schema.GMP_CONFIG)
        folded: dict[str, Any] = {}
        for k, v in loose:
            folded[self.py(k)] = self.check(schema.GMP_CONFIG[self.py(k)], v,
                                            f"{written}.gmp_config.{self.py(k)}")
        for n, spec in gmp_key.sub.items():
            if n not in folded:
                if spec.required:
                    raise self.err(loose[0][0], f"{written}.gmp_config: missing required key '{n}'")
                folded[n] = spec.default
        names = ", ".join(self.py(k) for k, _ in loose)
        self.warn(loose[0][0], f"{written}: read {names} as keys of gmp_config (they are not "
                               "indented under it, so YAML makes gmp_config empty)")
        values["gmp_config"] = folded
        given.add("gmp_config")

    def normalise(self, name: str, written: str, values: dict, given: set, kn) -> None:
        where = self.cfg.where
        if name in ("QuantAware", "QuantPost"):
            if isinstance(values["not_quant_pattern"], str):
                values["not_quant_pattern"] = [values["not_quant_pattern"]]
            if values["not_quant_pattern"] is None:
                values["not_quant_pattern"] = []
        if name == "TrainConfig":
            opt, args = values.pop("optimizer"), values.pop("optim_args")
            for old in ("optimizer", "optim_args"):
                if old in given:
                    given.discard(old)
                    if "optimizer_builder" in given and old == "optimizer":
                        raise self._err_at(name, old, f"{written}: both 'optimizer_builder' and "
                                                      "the old 'optimizer' are set")
            if opt is not None or args:
                args = dict(args or {})
                builder: dict[str, Any] = {"optimizer": {"type": opt or "SGD"},
                                           "weight_decay": None, "regularizer": None,
                                           "grad_clip": None}
                clip_args = args.pop("grad_clip_args", None)
                if isinstance(args.get("grad_clip"), str):  # 2.3: a class name + grad_clip_args
                    args["grad_clip"] = {"type": args["grad_clip"], **dict(clip_args or {})}
                for k in ("weight_decay", "regularizer", "grad_clip"):
                    if k in args:
                        builder[k] = args.pop(k)
                builder["optimizer"].update(args)
                values["optimizer_builder"] = builder
                given.add("optimizer_builder")
                line, col = where.get((name, "optimizer"), where.get((name, "optim_args")))
                where[(name, "optimizer_builder")] = (line, col)
                self.cfg.notes.append(Note(self.path, line, col, "note",
                                           f"{written}.optimizer/optim_args are the old form of "
                                           "optimizer_builder; read as optimizer_builder"))
            elif "optimizer_builder" not in given:
                values["optimizer_builder"] = {"optimizer": {"type": "SGD"}, "weight_decay": None,
                                               "regularizer": None, "grad_clip": None}

    def _err_at(self, section: str, key: str, message: str) -> ConfigError:
        line, col = self.cfg.where.get((section, key), self.cfg.where.get((section,), (1, 1)))
        return ConfigError(self.path, line, col, message)

    def cross_checks(self, seen: dict[str, Any]) -> None:
        s = self.cfg.sections
        if "HyperParameterOptimization" in s and "QuantPost" not in s:
            raise self._err_at("HyperParameterOptimization", "", "HyperParameterOptimization "
                               "searches QuantPost's hyper-parameters: add a QuantPost section")
        if "QuantPost" in s and "QuantAware" in s:
            raise self._err_at("QuantPost", "", "QuantPost (post-training quantization) and "
                               "QuantAware (quantization-aware training) exclude each other: "
                               "keep one")
        if "Distillation" in s and "MultiTeacherDistillation" in s:
            raise self._err_at("MultiTeacherDistillation", "", "Distillation and "
                               "MultiTeacherDistillation exclude each other: keep one")
        if "QuantPost" in s:
            qp = s["QuantPost"]
            for i, r in enumerate(qp["regions"] or []):
                if not (isinstance(r, list) and len(r) == 2):
                    raise self._err_at("QuantPost", "regions", f"QuantPost.regions[{i}]: expected "
                                       "an [input var, output var] pair")
            if qp["regions"] and qp["recon_level"] != "region-wise":
                self._warn_at("QuantPost", "regions", "QuantPost.regions has no effect unless "
                              "recon_level is region-wise")
        if "HyperParameterOptimization" in s:
            h = s["HyperParameterOptimization"]
            for k in ("hist_percent", "batch_num"):
                lo, hi = h[k]
                if lo > hi:
                    raise self._err_at("HyperParameterOptimization", k,
                                       f"HyperParameterOptimization.{k}: low {lo} > high {hi}")
        if "ChannelPrune" in s:
            c = s["ChannelPrune"]
            if isinstance(c["pruned_ratio"], list):
                names = c["prune_params_name"]
                if not names or len(names) != len(c["pruned_ratio"]):
                    raise self._err_at("ChannelPrune", "pruned_ratio", "ChannelPrune.pruned_ratio: "
                                       "a list needs one ratio per prune_params_name entry")
        if "Distillation" in s:
            d = s["Distillation"]
            node = d["node"] or []
            flat = all(isinstance(n, str) for n in node)
            for i, n in enumerate(node):  # ACT 2.6: each inner list is one group of nodes
                if isinstance(n, list) and not n:
                    raise self._err_at("Distillation", "node", f"Distillation.node[{i}]: an "
                                       "empty group")
            groups = len(node) if node and not flat else None
            for k in ("loss", "alpha"):
                if groups and isinstance(d[k], list) and len(d[k]) != groups:
                    raise self._err_at("Distillation", k, f"Distillation.{k}: {len(d[k])} "
                                       f"values for {groups} node groups (give one per group)")
            if not flat and any(isinstance(n, str) for n in node):
                raise self._err_at("Distillation", "node", "Distillation.node: mix of names and "
                                   "[teacher, student] pairs")
            if flat and node and d["teacher_model_dir"] and len(node) % 2:
                raise self._err_at("Distillation", "node", "Distillation.node: with "
                                   "teacher_model_dir set, node lists teacher/student pairs, so "
                                   f"it needs an even number of names (got {len(node)})")
        if "MultiTeacherDistillation" in s:
            m = s["MultiTeacherDistillation"]
            lens = {k: len(v) for k, v in m.items() if k in self.cfg.given["MultiTeacherDistillation"]
                    and k != "merge_feed"}
            if len(set(lens.values())) > 1:
                raise self._err_at("MultiTeacherDistillation", "", "MultiTeacherDistillation: "
                                   "every key needs one entry per teacher, got "
                                   + ", ".join(f"{k}: {n}" for k, n in lens.items()))

    def _warn_at(self, section: str, key: str, message: str) -> None:
        line, col = self.cfg.where.get((section, key), self.cfg.where.get((section,), (1, 1)))
        self.cfg.notes.append(Note(self.path, line, col, "warning", message))


def apply_overrides(root, overrides: dict[str, str], path: str):
    """``--set Section.key=value``: put the value (read as YAML) into the composed config
    before validation, so it is checked like any other value."""
    if root is None:
        root = yaml.MappingNode("tag:yaml.org,2002:map", [])
    if not isinstance(root, yaml.MappingNode):
        return root
    for dotted, text in overrides.items():
        keys = [k for k in dotted.split(".") if k]
        if len(keys) < 2:
            raise ConfigError(path, 1, 1, f"--set {dotted}: with --config, write "
                                          "Section.key=value (e.g. TrainConfig.epochs=3)")
        try:
            value = _Composer(text).get_single_node()
        except _Refused as e:
            raise ConfigError(path, 1, 1, f"--set {dotted}: {e.message}") from None
        except yaml.YAMLError as e:
            problem = " ".join(str(e).split())
            raise ConfigError(path, 1, 1, f"--set {dotted}: not a YAML value: {problem}") from None
        if value is None:
            value = yaml.ScalarNode("tag:yaml.org,2002:null", "null")
        node = root
        mark = root.start_mark
        for i, key in enumerate(keys):
            last = i == len(keys) - 1
            if not isinstance(node, yaml.MappingNode):
                raise ConfigError(path, 1, 1, f"--set {dotted}: '{'.'.join(keys[:i])}' is not "
                                              "a mapping")
            pair = next((p for p in node.value if getattr(p[0], "value", None) == key), None)
            if pair is None:  # new keys point at the enclosing section of the file
                child = value if last else yaml.MappingNode("tag:yaml.org,2002:map", [],
                                                            mark, mark)
                node.value.append((yaml.ScalarNode("tag:yaml.org,2002:str", key, mark, mark),
                                   child))
                node = child
            elif last:  # the new value is reported at the value it replaces
                value.start_mark, value.end_mark = pair[1].start_mark, pair[1].end_mark
                _remark(value, pair[1].start_mark)
                node.value[node.value.index(pair)] = (pair[0], value)
            else:
                mark = pair[0].start_mark
                node = pair[1]
        if pair is None:
            _remark(value, mark)
    return root


def _remark(node, mark) -> None:
    """Point a --set value (parsed from the command line) at a place in the config file."""
    node.start_mark = node.end_mark = mark
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            _remark(k, mark)
            _remark(v, mark)
    elif isinstance(node, yaml.SequenceNode):
        for v in node.value:
            _remark(v, mark)


def load_config(path: str | Path, overrides: dict[str, str] | None = None) -> Config:
    """Read, validate and normalise an ACT YAML config (either format)."""
    return loads(_decode(_read(Path(path)), str(path)), str(path), overrides)


def loads(text: str, path: str = "<string>", overrides: dict[str, str] | None = None) -> Config:
    """``load_config`` on text (``path`` is only used in messages)."""
    return _Loader(path, text).load(overrides)


def _read(path: Path) -> bytes:
    """The config's bytes; a device, FIFO or file over MAX_BYTES is refused before reading."""
    def refuse(message: str):
        return ConfigError(str(path), 1, 1, message)

    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            what = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
            raise refuse(f"cannot read the config: it is {what}")
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise refuse(f"cannot read the config: {e.strerror or e}") from None
    if len(data) > MAX_BYTES:
        raise refuse(f"the config is larger than {MAX_BYTES >> 20} MiB (ACT configs are a few KB)")
    return data


def _decode(data: bytes, path: str) -> str:
    """Text as PyYAML would read it: UTF-16 after its byte-order mark, else UTF-8 (with or
    without one). A bad byte is an error at its line and column."""
    utf16 = data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
    if not utf16 and data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    encoding = "utf-16" if utf16 else "utf-8"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        before = data[:e.start].decode(encoding, errors="replace")
        line, col = _line_col(before, len(before))
        raise ConfigError(path, line, col, f"not valid {encoding.upper()}: {e.reason} (byte "
                                           f"0x{data[e.start]:02x}); save the config as UTF-8"
                          ) from None


def _line_col(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of ``text[index]``, counting line breaks as PyYAML's marks do."""
    line, start = 1, 0
    for m in _LINE_BREAK.finditer(text, 0, index):
        line, start = line + 1, m.end()
    return line, index - start + 1


def _bad_character(code) -> str:
    code = ord(code) if isinstance(code, str) else int(code)
    return (f"character U+{code:04X} is not allowed in YAML (a control character; is this a "
            "binary file?)")


def _unreadable(node, e: Exception) -> str:
    """Why a scalar cannot be built, in the user's terms."""
    shown = node.value if len(node.value) <= 40 else node.value[:37] + "..."
    kind = node.tag[len(_YAML):] if node.tag.startswith(_YAML) else node.tag
    if kind == "timestamp":
        return f"'{shown}' is not a date ({e}) though YAML reads it as one; quote it"
    if "digits" in str(e):
        return f"'{shown}' has too many digits for a number"
    what = _SCALAR_WORDS.get(kind, f"a valid {_short_tag(node.tag)} value")
    return f"'{shown}' is not {what} (tagged {_short_tag(node.tag)})"


def _a(word: str) -> str:
    return f"an {word}" if word[:1] in "aeiou" else f"a {word}"
