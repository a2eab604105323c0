"""The what-if: the groups of one traced model, the channels each keeps at the requested ratios,
and the figures of the pruned model, re-traced and re-analysed on meta beside the unpruned one.

The pruned model's trace is checked against the plan: every tensor must have the shape the kept
channels predict. A layer where it does not (a ``view`` with a literal size) or where the pruned
model fails makes the groups it reads unprunable, with the reason, and the plan is made again."""
from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

from torch import nn

from ..analyse.analysis import analyse
from ..errors import CnnshapeError, ConfigError, InternalError, param
from ..graph import ModelGraph, build_graph
from ..pipeline import build_report, no_gc, on_meta, resolve_model
from ..report import Report
from ..request import Request
from ..trace.leaves import resolve_leaves
from ..trace.tracers import trace
from .groups import Followed, Group, follow, regroup
from .options import PruneOptions
from .rebuild import pruned_copy
from .records import GroupRecord, LayerChange, MemberRecord, PrunePlan

#: how many times a plan is made again after the pruned model showed a size fixed in its code
ATTEMPTS = 6


@dataclass(frozen=True)
class _Decision:
    group: Group
    kept: int
    ratio: float
    status: str
    #: the units removed
    removed: frozenset[int] = frozenset()


def run_prune(request: Request, options: PruneOptions) -> PrunePlan:
    with no_gc():
        module, notes = resolve_model(request)
        with on_meta(module, request.train):
            leaves = resolve_leaves(request.leaves, module)
            graph = build_graph(trace(module, request.inputs, request.tracer, leaves, request.cross_check), module)
            before = build_report(graph, analyse(graph, dict(request.formulas)), model=request.label, notes=notes)
            followed = follow(graph, prune_outputs=options.prune_outputs)
            _check_patterns(options, followed)
            for _ in range(ATTEMPTS):
                decisions = [_decide(followed, g, options) for g in followed.groups]
                removed = _removed(followed, decisions)
                pruned = pruned_copy(module, _sizes(followed, removed))
                culprit = _check(graph, followed, removed, pruned, request, leaves)
                if isinstance(culprit, ModelGraph):
                    after = build_report(culprit, analyse(culprit, dict(request.formulas)), model=request.label)
                    return _plan(request, options, decisions, followed, removed, before, after)
                followed = culprit
    raise InternalError(f"the pruning plan still did not fit the model after {ATTEMPTS} attempts; please report it")


def _check_patterns(options: PruneOptions, followed: Followed) -> None:
    """Every pattern the user gave names some layer the groups run through: a typo is an error,
    not a plan that silently prunes everything (or nothing)."""
    names = sorted({m.layer for g in followed.groups for m, _ in g.members})
    given = [("layers", p) for p in options.layers] + [("keep", p) for p in options.keep] + \
        [("ratios", p) for p, _ in options.ratios]
    dotted = [n for n in names if "." in n]
    example = dotted[0].split(".")[0] + ".*" if dotted else (names[0] if names else "conv1")
    for what, pattern in given:
        if not any(fnmatch.fnmatchcase(name, pattern) for name in names):
            shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
            raise ConfigError(f"{param(what)} {pattern!r} matches no layer with channels to prune; layers are "
                              f"named by module path ({shown}): give a pattern such as {example!r}")


def _decide(followed: Followed, group: Group, options: PruneOptions) -> _Decision:
    n = len(group.units)
    if group.reasons:
        return _Decision(group, n, 0.0, "fixed")
    if not options.selected(group.producers):
        return _Decision(group, n, 0.0, "not selected")
    if options.keep and options.kept([m.layer for m, _ in group.members if m.role != "in"]):
        return _Decision(group, n, 0.0, "kept")
    ratio = options.ratio_for(group.producers)
    per_unit = max((c for m, c in group.members if m.role == "out" and m.axis == 0), default=n) // max(n, 1)
    kept = _choose(followed, group, options.channels_kept(n, ratio, per_unit))
    return _Decision(group, len(kept), ratio, "pruned" if len(kept) < n else "unchanged",
                     frozenset(group.units) - frozenset(kept))


def _choose(followed: Followed, group: Group, k: int) -> list[int]:
    """The ``k`` units a group keeps: its first ones, except that every layer making some of its
    channels keeps at least one (a concatenation's branch tied to others through a grouped conv
    could otherwise lose all of its outputs); where that needs more units, the group keeps more."""
    kept = list(group.units[:k])
    if k == len(group.units):
        return kept
    units = set(group.units)
    makers = [{followed.root_of[i] for i in followed.channels.params[(m.layer, m.tensor, m.axis)]} & units
              for m, _ in group.members if m.role == "out"]
    for roots in makers:
        if roots and not roots.intersection(kept):
            spare = next((u for u in reversed(kept) if all(u not in r or len(r.intersection(kept)) > 1
                                                              for r in makers)), None)
            if spare is not None:
                kept.remove(spare)
            kept.append(next(u for u in group.units if u in roots))
    return kept


def _removed(followed: Followed, decisions: list[_Decision]) -> list[bool]:
    """id -> whether its unit is removed."""
    removed: set[int] = set()
    for d in decisions:
        removed.update(d.removed)
    return [root in removed for root in followed.root_of]


def _kept(followed: Followed, ids: tuple[int, ...], removed: list[bool]) -> list[int]:
    return [k for k, i in enumerate(ids) if not removed[i]]


def _sizes(followed: Followed, removed: list[bool]) -> dict[tuple[str, str, int], int]:
    sizes = {}
    for key, ids in followed.channels.params.items():
        n = len(_kept(followed, ids, removed))
        if n < len(ids):
            sizes[key] = n
    return sizes


def _check(graph: ModelGraph, followed: Followed, removed: list[bool], pruned: nn.Module, request: Request,
           leaves: tuple[type, ...]) -> ModelGraph | Followed:
    """The pruned model's graph when every tensor has the predicted shape; else the groups again,
    with the first layer where it does not (or where the pruned model fails) fixing those it reads."""
    try:
        after = build_graph(trace(pruned, request.inputs, graph.trace.tracer, leaves), pruned)
    except CnnshapeError as e:
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        named = [n for n in graph.nodes if re.search(rf"'{re.escape(n.name)}'", str(e))]
        if not named:
            raise InternalError(f"the pruned model does not run and cnnshape cannot tell which layer fixes "
                                f"its channels: {text}; please report it") from e
        return _fix_at(followed, graph, named[0].name, f"the pruned model fails there: {text}")
    for node in graph.nodes:
        label = followed.labels.get(node.name)
        if node.kind in ("input", "output") or node.output is None or node.name not in after._by_name:
            continue
        got = after.node(node.name).output
        want = list(node.output.shape)
        if label is not None and label.outer:
            want[label.axis:label.axis + 2] = label.sizes(len(_kept(followed, label.ids, removed)))
        elif label is not None:
            want[label.axis] = len(_kept(followed, label.ids, removed))
        if got is not None and list(got.shape) != want:
            return _fix_at(followed, graph, node.name, f"a size fixed in the model's code: the pruned model gives "
                           f"{'x'.join(map(str, got.shape))} where {'x'.join(map(str, want))} was planned")
    return after


def _fix_at(followed: Followed, graph: ModelGraph, name: str, reason: str) -> Followed:
    """Fix the groups that reach ``name``; when no pruned channels arrive there (the size comes
    from elsewhere in the module: ``x.shape`` read earlier), those that reach its module, then
    the module around that, ..."""
    node = graph.node(name)
    scope: str | None = node.scope
    nodes = [node]
    while True:
        names = [i for n in nodes for i in n.inputs] + [n.name for n in nodes]
        labels = [label for label in map(followed.labels.get, names) if label is not None]
        if labels:
            for label in labels:
                followed.channels.fix(label.ids, f"{reason} (at {name!r})")
            return regroup(followed)
        if scope is None:
            raise InternalError(f"the pruned model differs from the plan at {name!r} ({reason}), where no "
                                "pruned channels arrive; please report it")
        nodes = [n for n in graph.nodes if n.scope == scope or n.scope.startswith(scope + ".")] if scope else \
            list(graph.nodes)
        scope = scope.rpartition(".")[0] if scope else None


def _plan(request: Request, options: PruneOptions, decisions: list[_Decision], followed: Followed,
          removed: list[bool], before: Report, after: Report) -> PrunePlan:
    groups = []
    for d in decisions:
        batch = followed.batch_of[d.group.units[0]]
        members = tuple(MemberRecord(m.layer, m.tensor, m.axis, m.role, n, sum(
            1 for i in followed.channels.params[(m.layer, m.tensor, m.axis)]
            if followed.batch_of[i] == batch and not removed[i])) for m, n in d.group.members)
        lead = next((m for m in members if m.role == "out"), members[0])
        groups.append(GroupRecord(d.group.index, d.group.name, lead.channels, lead.kept, len(d.group.units), d.kept,
                                  d.ratio, d.status, d.group.reasons, members))
    kept = {key: tuple(_kept(followed, ids, removed)) for key, ids in followed.channels.params.items()}
    slices = tuple((*key, k) for key, k in kept.items() if len(k) < len(followed.channels.params[key]))
    rows = {r.name: r for r in after.layers}
    layers = tuple(LayerChange.of(r, rows.get(r.name)) for r in before.layers if r.kind not in ("input", "output"))
    notes: tuple[str, ...] = ()
    if not after.totals.complete:
        notes = ("some ops have no MAC formula: MACs before and after are lower bounds",)
    return PrunePlan(request.label, options.ratio, options.ratios, options.round_to, options.prune_outputs,
                     tuple(groups), layers, before, after, slices, notes)
