"""Dependency groups from a traced graph: walk the nodes in execution order, give each tensor's
channels ids (:mod:`.channels`), let each ATen op's rule (:mod:`.rules`) join the ids that must
go together, then read off the groups."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..graph import ModelGraph
from ..trace.records import Node, TensorMeta
from .channels import Channels, Label, Member, TensorAxis
from .rules import RULES, OpContext, elementwise, flat_tensors, keep_channels, layer_norm, other_axis, unknown
from .views import chunk, permute, view

#: the rules that follow channels split into (groups, rest) by a view
SPLIT_AWARE = (keep_channels, elementwise, view, permute, layer_norm, other_axis)


@dataclass(frozen=True)
class Group:
    """Channels that must be pruned together, and the module tensors that lose them."""

    index: int
    #: the units (sets of joined ids), in the order they were created: removing one removes a
    #: channel from every member
    units: tuple[int, ...]
    #: (member, how many of its channels along that axis belong to the group)
    members: tuple[tuple[Member, int], ...]
    #: why the group cannot be pruned (empty: it can)
    reasons: tuple[str, ...]

    @property
    def producers(self) -> tuple[str, ...]:
        """The layers that make these channels (a conv's, a linear's output), in order."""
        return _unique(m.layer for m, _ in self.members if m.role == "out")

    @property
    def layers(self) -> tuple[str, ...]:
        return _unique(m.layer for m, _ in self.members)

    @property
    def name(self) -> str:
        if self.producers:
            return self.producers[0]
        return f"input of {self.layers[0]}" if self.layers else f"group {self.index}"


@dataclass(frozen=True)
class Followed:
    """What the walk found: the ids, the groups, and each node output's label."""

    channels: Channels
    groups: tuple[Group, ...]
    labels: dict[str, Label | None]
    #: id -> its unit (root), and id -> its group's batch, as they stood when the groups were read
    root_of: list[int]
    batch_of: list[int]


def follow(graph: ModelGraph, *, prune_outputs: bool = False, prune_inputs: bool = False) -> Followed:
    """The dependency groups of ``graph`` (traced on meta). The model's input channels and the
    channels of its outputs are fixed unless ``prune_inputs`` / ``prune_outputs``."""
    ch = Channels()
    labels: dict[str, Label | None] = {}
    pieces: dict[str, list[Label]] = {}  # a chunk node -> the labels of its outputs
    taken: dict[str, int] = {}  # a chunk node -> how many of its pieces getitem nodes took
    owned, aliases = _own_tensors(graph.model)
    for node in graph.nodes:
        ins = [labels.get(name) for name in node.inputs]
        if node.kind == "input":
            labels[node.name] = _input(node, ch, prune_inputs)
        elif node.kind == "output":
            if not prune_outputs:
                for label in ins:
                    if label is not None:
                        ch.fix(label.ids, f"a model output ({node.name!r}; pruned only on request)")
        elif node.inputs and node.inputs[0] in pieces and not node.ops and node.output is not None:
            source = node.inputs[0]  # getitem: the k-th taken; the pieces are tied, so any order holds
            k = taken.get(source, 0)
            taken[source] = k + 1
            labels[node.name] = pieces[source][k] if k < len(pieces[source]) else None
        elif len(node.outputs) > 1:
            got = _chunk(node, ins, ch)
            if got:
                pieces[node.name] = got
            labels[node.name] = got[0] if got else None
        else:
            module = node.kind == "module"
            labels[node.name] = _node(node, ins, ch, owned.get(node.target, {}) if module else {},
                                      aliases.get(node.target, {}) if module else {})
    return _assemble(ch, labels)


def _input(node: Node, ch: Channels, prune: bool) -> Label | None:
    out = node.output
    if out is None or len(out.shape) < 2:
        return None
    ids = ch.fresh(out.shape[1], f"input {node.name}")
    if not prune:
        ch.fix(ids, f"the model's input channels ({node.name!r})")
    return Label(1, ids)


def _own_tensors(model: nn.Module) -> tuple[dict[str, dict[str, tuple[int, ...]]],
                                             dict[str, dict[str, tuple[str, str]]]]:
    """Each module's own tensors (name -> shape), and those it shares with a module registered
    before it (name -> that module's path and name): tied weights are one tensor."""
    own: dict[str, dict[str, tuple[int, ...]]] = {}
    aliases: dict[str, dict[str, tuple[str, str]]] = {}
    first: dict[int, tuple[str, str]] = {}
    for path, module in model.named_modules(remove_duplicate=False):
        tensors = {**{k: v for k, v in module._parameters.items() if v is not None},
                   **{k: v for k, v in module._buffers.items() if v is not None}}
        own[path] = {k: tuple(v.shape) for k, v in tensors.items()}
        for name, value in tensors.items():
            where = first.setdefault(id(value), (path, name))
            if where != (path, name):
                aliases.setdefault(path, {})[name] = where
    return own, aliases


def _chunk(node: Node, ins: list[Label | None], ch: Channels) -> list[Label] | None:
    """The pieces of ``x.chunk(n, dim)`` (recorded as ``aten.split``); any other node with several
    outputs fixes the channels it reads."""
    metas = [m for _, m in node.outputs]
    call = node.ops[0] if len(node.ops) == 1 else None
    x = ins[0] if len(ins) == 1 else None
    if (node.type == "chunk" and call is not None and call.op == "aten.split" and x is not None
            and len({m.shape for m in metas}) == 1):
        dim = int(call.arg("dim", default=0)) % len(metas[0].shape)
        return chunk(ch, x, dim, len(metas), metas[0].shape[dim], node.name)
    why = "splits its input into pieces of a literal size" if node.type == "split" else \
        f"has {len(node.outputs)} outputs the channel rules do not follow"
    for label in ins:
        if label is not None:
            ch.fix(label.ids, f"{node.type} {why} (at {node.name!r})")
    return None


def _node(node: Node, ins: list[Label | None], ch: Channels, own: dict[str, tuple[int, ...]],
          aliases: dict[str, tuple[str, str]]) -> Label | None:
    """Run the rules of the node's ops in order; the node's output label is that of the last op
    output with the node output's shape."""
    out = node.output
    env_in = list(zip(node.input_metas, ins))
    made: list[tuple[TensorMeta, Label | None]] = []
    module = node.target if node.kind == "module" else None
    for call in node.ops:
        used_in: set[int] = set()
        tensors = []
        for meta in flat_tensors(call):
            tensors.append((meta, _take(meta, made, env_in, used_in)))
        ctx = OpContext(call, node.name, tensors, ch, module, own, aliases)
        rule = RULES.get(call.op)
        if rule is not None and rule not in SPLIT_AWARE and any(t is not None and t.outer for _, t in tensors):
            rule = None  # channels split into groups reach an op that only follows whole channel axes
        try:
            if rule is None:
                unknown(ctx)
                label = None
            else:
                label = rule(ctx)
        except Exception as e:  # a bug in a rule: its channels stay, the walk goes on
            for _, t in tensors:
                ctx.fix(t, f"cnnshape bug in the channel rule of {call.op} ({type(e).__name__}: {e}); please report it")
            label = None
        if call.outputs:
            made.append((call.outputs[0], label))
    if out is None:
        return None
    if not node.ops:  # an identity (Dropout in eval mode, nn.Identity)
        return next((label for meta, label in env_in if meta.shape == out.shape), None)
    return next((label for meta, label in reversed(made) if meta.shape == out.shape), None)


def _take(meta: TensorMeta, made: list[tuple[TensorMeta, Label | None]],
          env_in: list[tuple[TensorMeta, Label | None]], used_in: set[int]) -> Label | None:
    """The label of the tensor an op received: the latest op output of that shape in this node,
    else the first node input of that shape not yet given to this op (argument order)."""
    for m, label in reversed(made):
        if m.shape == meta.shape:
            return label
    for i, (m, label) in enumerate(env_in):
        if i not in used_in and m.shape == meta.shape:
            used_in.add(i)
            return label
    return None


def regroup(followed: Followed) -> Followed:
    """The groups again, after more reasons were added to ``followed.channels``."""
    return _assemble(followed.channels, followed.labels)


def _assemble(ch: Channels, labels: dict[str, Label | None]) -> Followed:
    root_of = [ch.find(i) for i in range(ch.size)]
    batch_of = [ch.batch(i) for i in range(ch.size)]
    units: dict[int, dict[int, None]] = {}  # batch -> its unit roots in order
    for i in range(ch.size):
        units.setdefault(batch_of[i], {})[root_of[i]] = None
    counts: dict[int, dict[TensorAxis, int]] = {}
    for key, ids in ch.params.items():
        for i in ids:
            per = counts.setdefault(batch_of[i], {})
            per[key] = per.get(key, 0) + 1
    groups: list[Group] = []
    for batch, roots in units.items():
        if batch not in counts:
            continue  # nothing with parameters meets these channels
        index = len(groups)
        members = tuple((ch.members[key], n) for key, n in counts[batch].items())
        groups.append(Group(index, tuple(roots), members, tuple(ch.reasons.get(batch, ()))))
    return Followed(ch, tuple(groups), labels, root_of, batch_of)


def _unique(names: object) -> tuple[str, ...]:
    return tuple(dict.fromkeys(names))  # type: ignore[call-overload]
