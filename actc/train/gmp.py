"""Gradual magnitude pruning while training: the masks a `sparsify(strategy: gmp)` step put
into the IR are recomputed from the current weights whenever the cubic schedule's ratio
changes (actc.prune.masks.gmp_ratio). The schedule lives in the mask ops' actc_gmp attr."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from actc.ir.program import Program
from actc.prune.masks import decode, gmp_ratio, gmp_schedule, magnitude_masks


@dataclass
class GmpGroup:
    """The masks of one sparsify step (a global ratio spans all of them)."""
    target: float
    local: bool
    schedule: dict
    pairs: list[tuple[str, str]] = field(default_factory=list)  # (weight, mask)
    current: float | None = None


def gmp_groups(program: Program, total_iters: int) -> list[GmpGroup]:
    groups: dict[str, GmpGroup] = {}
    for op in program.ops():
        text = op.attr("actc_gmp") if op.has_attr("actc_mask") else None
        if not text:
            continue
        if text not in groups:
            cfg = decode(text)
            groups[text] = GmpGroup(cfg["ratio"], cfg["local"],
                                    gmp_schedule(cfg["gmp"], total_iters))
        groups[text].pairs.append((op.input("X")[0], op.input("Y")[0]))
    return list(groups.values())


def update_masks(groups: list[GmpGroup], iteration: int, scope, place) -> list[str]:
    """Recompute masks whose ratio changes at ``iteration``; returns notes."""
    notes = []
    for g in groups:
        ratio = gmp_ratio(iteration, g.target, g.schedule)
        if g.current is not None and abs(ratio - g.current) < 1e-12:
            continue
        weights = [np.array(scope.find_var(w).get_tensor()) for w, _ in g.pairs]
        masks = magnitude_masks(weights, "ratio", min(ratio, 0.9999), 0.0, g.local)
        for (_, m), values in zip(g.pairs, masks):
            scope.var(m).get_tensor().set(values.astype(np.float32), place)
        if g.current is None or ratio == g.target:
            notes.append(f"train: GMP ratio {ratio:.4f} at iteration {iteration}")
        g.current = ratio
    return notes


def describe(groups: list[GmpGroup]) -> list[str]:
    return [f"train: GMP on {len(g.pairs)} weights to {g.target:.2f} "
            f"({'each' if g.local else 'overall'}): stable {g.schedule['stable']}, pruning "
            f"{g.schedule['pruning']} in {g.schedule['steps']} steps from "
            f"{g.schedule['initial']:.2f}, then tuning {g.schedule['tunning']} iterations"
            for g in groups]
