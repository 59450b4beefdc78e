"""``actc dump``: show a model as readable text IR, JSON or a graphviz graph, or summarise it."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from actc.cli.common import add_model_args, load_from_args
from actc.errors import ActcError, did_you_mean

SUFFIX_FORMATS = {".json": "json", ".dot": "dot", ".gv": "dot", ".svg": "dot", ".png": "dot",
                  ".pdf": "dot", ".txt": "text", ".mlir": "text"}

EPILOG = """\
text format: '%x' is an activation, '@w<64x3x7x7 f32>' a weight with its stored shape and dtype;
a var's type is shown where an op defines it; attrs at their defaults are hidden (--attrs all
shows them); sub-blocks of control-flow ops are indented under the op.

examples:
  actc dump model_dir                         # whole program as text
  actc dump model_dir --op-types              # which op types, how many
  actc dump model_dir --weights               # persistable vars: name, shape, dtype, bytes
  actc dump model_dir --sparsity              # fraction zero per weight, 2:4 pattern check
  actc dump model_dir --prune-groups          # which weights channel pruning can prune (#1588)
  actc dump model_dir --op-type conv2d,mul    # only those ops
  actc dump model_dir --var 'conv2d_3*'       # ops reading or writing matching vars
  actc dump model_dir --format json -o m.json
  actc dump model_dir -o graph.svg            # needs graphviz's dot
"""


def add_parser(sub) -> None:
    p = sub.add_parser("dump", help="show a model as text IR, JSON or graphviz; list op types "
                                    "or weights",
                       description="Show a Paddle inference model: readable text IR (default), "
                                   "JSON, or a graphviz graph; or summarise its op types or "
                                   "weights.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p)
    p.add_argument("--format", "-f", choices=("text", "json", "dot"), default=None,
                   help="output format (default: from the -o suffix, else text)")
    p.add_argument("--op-types", action="store_true",
                   help="op type histogram (count per type, per block when there are several)")
    p.add_argument("--weights", action="store_true",
                   help="persistable vars: name, shape, dtype, bytes, and the total")
    p.add_argument("--prune-groups", action="store_true",
                   help="channel dependency groups: what prune_channels can prune, or why not")
    p.add_argument("--sparsity", action="store_true",
                   help="per weight: fraction zero and whether 2:4 holds along its input dim")
    p.add_argument("--attrs", choices=("nondefault", "all"), default="nondefault",
                   help="text format: hide attrs at their defaults (default) or show all")
    g = p.add_argument_group("filters (combined with AND; sub-block owners stay as context)")
    g.add_argument("--op-type", action="append", default=[], metavar="TYPES",
                   help="only ops of these types (comma-separated; repeatable)")
    g.add_argument("--var", action="append", default=[], metavar="NAME_OR_GLOB",
                   help="only ops reading or writing a matching var (repeatable: any matches)")
    g.add_argument("--name-scope", action="append", default=[], metavar="SUBSTRING",
                   help="only ops whose name scope contains SUBSTRING (repeatable)")
    p.add_argument("--output", "-o", default=None, metavar="FILE",
                   help="write here instead of stdout; .svg/.png/.pdf render with graphviz")


def _check_filter(flt, program) -> None:
    present = {op.type for op in program.ops(block=None)}
    for t in sorted(flt.op_types):
        if t not in present:
            raise ActcError(f"--op-type: the program has no '{t}' op"
                            f"{did_you_mean(t, present)}")
    if (flt.var_globs or flt.name_scopes) and not any(flt(op) for op in program.ops(block=None)):
        raise ActcError(f"no op matches the filter ({flt.describe()})")


def _output_path(args, files) -> Path | None:
    if args.output is None:
        return None
    out = Path(args.output)
    if out.is_dir():
        raise ActcError("is a directory; give a file name", path=out)
    for src in (files.program, files.params):
        if src is not None and out.exists() and out.resolve() == Path(src).resolve():
            raise ActcError("refusing to overwrite the input model", path=out)
    if not out.parent.is_dir():
        raise ActcError(f"cannot write: directory '{out.parent}' does not exist", path=out)
    return out


def run(args) -> int:
    from actc.dump import dot, json_fmt, tables, text
    from actc.dump.common import OpFilter
    from actc.io.atomic import write_atomic

    fmt = args.format
    out_suffix = Path(args.output).suffix.lower() if args.output else ""
    if fmt is None:
        fmt = SUFFIX_FORMATS.get(out_suffix, "text")
    tables_wanted = args.op_types or args.weights or args.sparsity or args.prune_groups
    if tables_wanted and fmt == "dot":
        raise ActcError("--op-types, --weights, --sparsity and --prune-groups print tables: "
                        "use --format text or json")
    render_image = fmt == "dot" and out_suffix in dot.RENDER_FORMATS
    if out_suffix in dot.RENDER_FORMATS and fmt != "dot":
        raise ActcError(f"{out_suffix} output is a rendered graph: use --format dot",
                        path=args.output)

    program, files = load_from_args(args, need_params=bool(args.sparsity))
    if files.params is None and program.persistable_names():
        print(f"actc: note: no params file beside {files.program}: weights are shown from "
              "their VarDescs", file=sys.stderr)
    out = _output_path(args, files)
    flt = OpFilter.from_strings(args.op_type, args.var, args.name_scope)
    if flt:
        _check_filter(flt, program)
    pred = flt if flt else None

    if tables_wanted:
        names = None
        if pred is not None:
            names = {n for op in program.ops(block=None) if pred(op)
                     for n in op.input_names + op.output_names}
        if fmt == "json":
            obj = {}
            if args.op_types:
                counts = tables.op_type_counts(program, pred)
                obj["op_types"] = {"total": counts["total"],
                                   "blocks": {str(k): v for k, v in counts["blocks"].items()}}
            if args.weights:
                rows = tables.weight_rows(program, names)
                obj["weights"] = rows
                obj["weights_total_bytes"] = sum(r["bytes"] for r in rows)
            if args.sparsity:
                obj["sparsity"] = tables.sparsity_rows(program, names)
            if args.prune_groups:
                obj["prune_groups"] = tables.prune_group_rows(program)
            result = json_fmt.dumps(obj)
        else:
            parts = []
            if args.op_types:
                parts.append(tables.op_types_text(program, pred))
            if args.weights:
                parts.append(tables.weights_text(program, names))
            if args.sparsity:
                parts.append(tables.sparsity_text(program, names))
            if args.prune_groups:
                parts.append(tables.prune_groups_text(program))
            result = "\n".join(parts)
    elif fmt == "json":
        result = json_fmt.render(program, ops=pred)
    elif fmt == "dot":
        result = dot.render(program, ops=pred)
    else:
        result = text.render(program, ops=pred, show_attrs=args.attrs, title=str(files.program))

    if out is None:
        sys.stdout.write(result)
        sys.stdout.flush()
    elif render_image:
        dot.render_file(result, out)
    else:
        write_atomic(out, result.encode("utf-8"))
    return 0
