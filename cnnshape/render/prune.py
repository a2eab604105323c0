"""Text and JSON for a finished :class:`~cnnshape.prune.records.PrunePlan` (never recomputes)."""
from __future__ import annotations

import json
from typing import Any

from tabulate import tabulate

from ..prune.records import GroupRecord, PrunePlan
from ..units import binary_bytes, grouped, si


def _pair(pair: Any, fmt: Any = str) -> str:
    if pair is None:
        return ""
    before, after = pair
    if before == after:
        return fmt(before)
    return f"{fmt(before)} -> {fmt(after)}"


def _shape(shape: Any) -> str:
    return "x".join(map(str, shape)) if shape is not None else ""


def _change(before: int, after: int) -> str:
    return f"{(after - before) / before:+.1%}" if before else ""


def render_prune_text(plan: PrunePlan, groups: bool = False, all_layers: bool = False) -> str:
    """The totals side by side, the layers that change, and the groups that stay whole (with
    ``groups``: every group with its member layers and channel counts)."""
    b, a = plan.before.totals, plan.after.totals
    ratio = f"ratio {plan.ratio:g}" + (" with per-layer ratios" if plan.ratios else "")
    lines = [f"{plan.model}  ({ratio}; kept channels a multiple of {plan.round_to}; "
             f"outputs {'pruned' if plan.prune_outputs else 'kept'})", ""]
    totals = [["params", grouped(b.params), grouped(a.params), _change(b.params, a.params)],
              ["MACs", si(b.macs), si(a.macs), _change(b.macs, a.macs)],
              ["FLOPs", si(b.flops), si(a.flops), _change(b.flops, a.flops)],
              ["activations", binary_bytes(b.activation_bytes), binary_bytes(a.activation_bytes),
               _change(b.activation_bytes, a.activation_bytes)]]
    lines.append(tabulate(totals, headers=["", "before", "after", "change"], tablefmt="simple",
                          colalign=("left", "right", "right", "right"), disable_numparse=True))
    if not (b.complete and a.complete):
        lines.append("(some ops have no MAC formula: MACs are lower bounds)")
    rows = [[r.name, r.type, _pair(r.in_channels), _pair(r.out_channels), _pair(r.params, grouped),
             _pair(r.macs, si), _pair(r.activation_bytes, binary_bytes), _pair(r.output_shape, _shape)]
            for r in plan.layers if all_layers or r.changed]
    lines += ["", tabulate(rows, headers=["layer", "type", "in", "out", "params", "MACs", "activations",
                                          "output"], tablefmt="simple", disable_numparse=True)
              if rows else "No layer changes."]
    if groups:
        lines += ["", f"Dependency groups ({len(plan.groups)}):"]
        for g in plan.groups:
            lines += _group_lines(g)
    else:
        whole = [g for g in plan.groups if g.status == "fixed"]
        if whole:
            lines += ["", f"Groups that cannot be pruned ({len(whole)}; --groups lists every group):"]
            lines += [f"  {g.name} ({g.channels} channels): {'; '.join(g.reasons)}" for g in whole]
    lines += [f"note: {n}" for n in plan.notes]
    return "\n".join(lines).rstrip() + "\n"


def _group_lines(g: GroupRecord) -> list[str]:
    tied = f", in {g.units} units of {g.channels // g.units}" if g.units and g.units != g.channels else ""
    head = f"  [{g.index}] {g.name}: {g.channels} -> {g.kept} channels ({g.status}{tied}"
    head += f"; ratio {g.ratio:g})" if g.status in ("pruned", "unchanged") else ")"
    lines = [head]
    lines += [f"      because {reason}" for reason in g.reasons]
    by_layer: dict[tuple[str, str], tuple[int, int]] = {}
    for m in g.members:
        by_layer.setdefault((m.layer, m.role), (m.channels, m.kept))
    lines += [f"      {role:4} {layer}: {n} -> {k}" for (layer, role), (n, k) in by_layer.items()]
    return lines


def render_prune_json(plan: PrunePlan) -> str:
    return json.dumps(plan.to_dict(), indent=2, ensure_ascii=False) + "\n"
