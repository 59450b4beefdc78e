"""The summary tables: the op type histogram and the weight list."""
from __future__ import annotations

import numpy as np

from collections import Counter

from actc.dump.common import OpPredicate, human_bytes, human_count, shape_str, weights
from actc.ir.program import Program


def op_type_counts(program: Program, ops: OpPredicate | None = None) -> dict:
    """{"total": {type: n}, "blocks": {idx: {type: n}}}, types by count then name."""
    per_block: dict[int, Counter] = {}
    total: Counter = Counter()
    for block in program.blocks:
        c = Counter(op.type for op in block.ops if ops is None or ops(op))
        per_block[block.idx] = c
        total.update(c)
    order = sorted(total, key=lambda t: (-total[t], t))
    return {
        "total": {t: total[t] for t in order},
        "blocks": {idx: {t: c[t] for t in order if c[t]} for idx, c in per_block.items()},
    }


def op_types_text(program: Program, ops: OpPredicate | None = None) -> str:
    counts = op_type_counts(program, ops)
    total = counts["total"]
    n = sum(total.values())
    multi = len(program.blocks) > 1
    idxs = list(counts["blocks"])
    head = ["count"] + ([f"^block{i}" for i in idxs] if multi else [])
    rows = [[str(total[t])] + ([str(counts["blocks"][i].get(t, "")) for i in idxs] if multi else [])
            + [t] for t in total]
    foot = [str(n)] + ([str(sum(counts["blocks"][i].values())) for i in idxs] if multi else [])
    foot.append(f"total ({len(total)} op types)")
    table = [head + ["op type"]] + rows + [foot]
    widths = [max(len(r[c]) for r in table) for c in range(len(head))]

    def fmt(r):
        return "  ".join(cell.rjust(w) for cell, w in zip(r, widths)) + "  " + r[-1]

    out = [fmt(table[0])] + [fmt(r) for r in rows]
    out.append("  ".join("-" * w for w in widths))
    out.append(fmt(foot))
    return "\n".join(out) + "\n"


def weight_rows(program: Program, names: set[str] | None = None) -> list[dict]:
    return [{"name": n, "shape": list(s), "dtype": d, "bytes": b}
            for n, s, d, b in weights(program) if names is None or n in names]


def weights_text(program: Program, names: set[str] | None = None) -> str:
    rows = weight_rows(program, names)
    table = [["name", "shape", "dtype", "bytes"]]
    table += [[r["name"], shape_str(r["shape"]), r["dtype"], str(r["bytes"])] for r in rows]
    widths = [max(len(r[c]) for r in table) for c in range(4)]
    out = ["  ".join(cell.ljust(w) if c < 3 else cell.rjust(w)
                     for c, (cell, w) in enumerate(zip(r, widths))).rstrip() for r in table]
    total = sum(r["bytes"] for r in rows)
    values = 0
    for r in rows:
        t = program.params.get(r["name"])
        if t is not None:
            values += int(t.array.size)
        elif r["bytes"]:  # declared by its VarDesc only
            values += int(np.prod(r["shape"]))
    out.append(f"total: {len(rows)} weights, {human_count(values)} values, {total} bytes "
               f"({human_bytes(total)})")
    return "\n".join(out) + "\n"


def sparsity_rows(program: Program, names: set[str] | None = None) -> list[dict]:
    """Per weight of rank >= 2: fraction zero, and whether 2:4 holds along its input (K)
    dimension as its consumer reads it (null where that op type has no K axis)."""
    import numpy as np

    from actc.prune.masks import K_AXIS, is_two_four

    rows = []
    seen = set()
    for op in program.ops(block=None):
        for slot, args in op.inputs.items():
            for n in args:
                t = program.params.get(n)
                if n in seen or t is None or (names is not None and n not in names):
                    continue
                a = np.asarray(t.array)
                if a.ndim < 2 or a.dtype.kind != "f":
                    continue
                seen.add(n)
                k = K_AXIS.get(op.type)
                if k is not None and op.type == "matmul_v2" and op.attr("trans_y", False):
                    k = 1
                zero = float(np.mean(a == 0))
                rows.append({"name": n, "shape": list(a.shape), "zero": zero,
                             "two_four": None if k is None else is_two_four(a, k)})
    return rows


def sparsity_text(program: Program, names: set[str] | None = None) -> str:
    import numpy as np

    rows = sparsity_rows(program, names)
    table = [["name", "shape", "zero", "2:4"]]
    for r in rows:
        table.append([r["name"], shape_str(r["shape"]), f"{r['zero'] * 100:.2f}%",
                      "-" if r["two_four"] is None else ("yes" if r["two_four"] else "no")])
    widths = [max(len(r[c]) for r in table) for c in range(4)]
    out = ["  ".join(cell.ljust(w) if c in (0, 1) else cell.rjust(w)
                     for c, (cell, w) in enumerate(zip(r, widths))).rstrip() for r in table]
    total = sum(int(np.prod(r["shape"])) for r in rows) if rows else 0
    zeros = sum(r["zero"] * int(np.prod(r["shape"])) for r in rows)
    out.append(f"total: {len(rows)} weights, {zeros / max(total, 1) * 100:.2f}% of "
               f"{human_count(total)} values zero; 2:4 holds for "
               f"{sum(1 for r in rows if r['two_four'])} of them")
    return "\n".join(out) + "\n"


def prune_group_rows(program: Program) -> list[dict]:
    """The channel dependency groups: what `prune_channels` can prune, or why not."""
    from actc.prune.groups import channel_groups

    rows = []
    for g in channel_groups(program):
        rows.append({"root": g.root_param, "op": g.root_op.type, "channels": g.size,
                     "out": [m.name for m in g.params("out") + g.params("dw")],
                     "in": [m.name for m in g.params("in")],
                     "weights": len(g.params()), "problem": g.problem})
    return rows


def prune_groups_text(program: Program) -> str:
    rows = prune_group_rows(program)
    out = []
    for r in rows:
        head = f"{r['root']} ({r['op']}, {r['channels']} channels)"
        if r["problem"]:
            out.append(f"{head}: not prunable: {r['problem']}")
        else:
            out.append(f"{head}: prunes {', '.join(r['out'])}; inputs of "
                       f"{', '.join(r['in']) or '-'} ({r['weights']} weights in the group)")
    ok = sum(1 for r in rows if not r["problem"])
    out.append(f"total: {len(rows)} groups, {ok} prunable")
    return "\n".join(out) + "\n"
