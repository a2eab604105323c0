"""The pruning what-if as frozen records; ``PrunePlan.to_dict()`` is its JSON (docs/json.md).
Torch-free: renderers read it and never recompute."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ..report import LayerRecord, Report
from ..vocab import PRUNE_SCHEMA

#: what happened to a group: "pruned", "unchanged" (its ratio left every channel), "fixed" (it
#: cannot be pruned: see reasons), "not selected" (outside ``layers``), "kept" (matched ``keep``)
STATUSES = ("pruned", "unchanged", "fixed", "not selected", "kept")


@dataclass(frozen=True)
class MemberRecord:
    """One parameter (or buffer) axis a group's channels run through."""

    layer: str
    tensor: str
    axis: int
    role: str  #: "out" (makes the channels), "in" (reads them), "norm" (follows them)
    channels: int
    kept: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class GroupRecord:
    index: int
    name: str  #: the first layer that makes the group's channels
    #: the channels of that layer (of the first member, when no layer makes them) before and after
    channels: int
    kept: int
    #: units: what is removed together; one channel of each producing layer, or more where the
    #: channels are tied (one per group of a grouped conv, of a channel shuffle, of a chunk)
    units: int
    kept_units: int
    ratio: float
    status: str
    reasons: tuple[str, ...]
    members: tuple[MemberRecord, ...]

    @property
    def producers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(m.layer for m in self.members if m.role == "out"))

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(m.layer for m in self.members))

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "name": self.name, "channels": self.channels, "kept": self.kept,
                "units": self.units, "kept_units": self.kept_units, "ratio": self.ratio, "status": self.status,
                "reasons": list(self.reasons), "members": [m.to_dict() for m in self.members]}


Pair = tuple[Any, Any]
#: where a layer's channel counts are read from its hyper-parameters, per side
CHANNEL_KEYS = {"in_channels": ("in_channels", "in_features", "num_features", "num_channels"),
                "out_channels": ("out_channels", "out_features", "num_features", "num_channels")}


@dataclass(frozen=True)
class LayerChange:
    """One layer before and after: (before, after) pairs; channel pairs None where it has none."""

    name: str
    type: str
    in_channels: Pair | None
    out_channels: Pair | None
    params: Pair
    macs: Pair
    activation_bytes: Pair
    output_shape: Pair

    @classmethod
    def of(cls, b: LayerRecord, a: LayerRecord | None) -> LayerChange:
        """The row ``b`` of the unpruned report beside its namesake ``a`` of the pruned one."""
        a = a or b
        channels = {}
        for key, names in CHANNEL_KEYS.items():
            old = next((b.attr(n) for n in names if b.attr(n) is not None), None)
            new = next((a.attr(n) for n in names if a.attr(n) is not None), None)
            channels[key] = (old, new) if old is not None else None
        return cls(b.name, b.type, channels["in_channels"], channels["out_channels"], (b.params, a.params),
                   (b.macs, a.macs), (b.activation_bytes, a.activation_bytes), (b.output_shape, a.output_shape))

    @property
    def changed(self) -> bool:
        return any(p is not None and p[0] != p[1] for p in (self.in_channels, self.out_channels, self.params,
                                                             self.macs, self.output_shape))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "type": self.type}
        for key in ("in_channels", "out_channels", "params", "macs", "activation_bytes", "output_shape"):
            pair = getattr(self, key)
            if pair is not None:
                d[key] = {"before": _json(pair[0]), "after": _json(pair[1])}
        return d


@dataclass(frozen=True)
class PrunePlan:
    model: str
    ratio: float
    #: (layer pattern, ratio) pairs that override ``ratio`` for the groups whose producer matches
    ratios: tuple[tuple[str, float], ...]
    round_to: int
    prune_outputs: bool
    groups: tuple[GroupRecord, ...]
    layers: tuple[LayerChange, ...]
    before: Report
    after: Report
    #: which channels each module tensor keeps: (layer, tensor, axis, kept indices), for the axes
    #: that lose some; what a script slicing trained weights needs (not in the JSON)
    slices: tuple[tuple[str, str, int, tuple[int, ...]], ...] = ()
    notes: tuple[str, ...] = ()
    #: the per-layer channel counts when ``layers`` are collapsed rows (set by :meth:`collapse`)
    channel_counts: dict[str, dict[str, int]] | None = None

    def collapse(self, depth: int | None) -> PrunePlan:
        """The plan with its layer rows summed into their modules at ``depth`` (both reports
        collapsed alike); ``channels()`` still reads every layer."""
        if depth is None or depth <= 0:
            return self
        before, after = self.before.collapse(depth), self.after.collapse(depth)
        rows = {r.name: r for r in after.layers}
        layers = tuple(LayerChange.of(r, rows.get(r.name)) for r in before.layers if r.kind not in ("input", "output"))
        return replace(self, layers=layers, channel_counts=self.channels())

    def channels(self) -> dict[str, dict[str, int]]:
        """The new channel counts per layer that has any: {layer: {"out_channels": n, ...}}."""
        if self.channel_counts is not None:
            return self.channel_counts
        out: dict[str, dict[str, int]] = {}
        for row in self.layers:
            for key in ("in_channels", "out_channels"):
                pair = getattr(row, key)
                if pair is not None:
                    out.setdefault(row.name, {})[key] = pair[1]
        return out

    def to_dict(self) -> dict[str, Any]:
        b, a = self.before.totals, self.after.totals
        return {
            "schema": PRUNE_SCHEMA,
            "model": self.model,
            "ratio": self.ratio,
            "ratios": {pattern: r for pattern, r in self.ratios},
            "round_to": self.round_to,
            "prune_outputs": self.prune_outputs,
            "totals": {key: {"before": getattr(b, key), "after": getattr(a, key)}
                       for key in ("params", "macs", "flops", "activation_bytes")},
            "complete": b.complete and a.complete,
            "channels": self.channels(),
            "groups": [g.to_dict() for g in self.groups],
            "layers": [row.to_dict() for row in self.layers],
            "notes": list(self.notes),
        }


def _json(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
