"""The finished analysis as frozen records. ``Report.to_dict()`` is the JSON schema (docs/json.md).

Renderers read a Report and never recompute; :meth:`Report.collapse` is the one place where rows
are summed into their ancestors.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .analyse import Analysis
from .analyse.receptive_field import ReceptiveField
from .graph import ModelGraph
from .inputs import InputSpec
from .trace.records import Node, TensorMeta

if TYPE_CHECKING:
    from .verify import Verification

SCHEMA = "cnnshape.report/1"

#: Window hyper-parameters shown in the table and given in JSON where a layer has them.
WINDOW_KEYS = ("kernel_size", "stride", "padding", "dilation", "groups")


@dataclass(frozen=True)
class LayerRecord:
    """One row: a traced node, or (after :meth:`Report.collapse`) a module with its nodes summed."""

    name: str
    kind: str  #: input | module | function | method | attribute | output | group
    type: str
    depth: int
    input_shapes: tuple[tuple[int, ...], ...]
    #: flattened outputs (key, shape); key "" for a single tensor
    output_shapes: tuple[tuple[str, tuple[int, ...]], ...]
    dtype: str | None
    params: int
    #: parameters first counted at this row (0 when all are shared with an earlier row)
    new_params: int
    shared_with: str | None
    macs: int
    flops: int
    output_bytes: int
    activation_bytes: int
    attrs: tuple[tuple[str, Any], ...] = ()
    unsupported: tuple[str, ...] = ()
    source: str | None = None
    #: number of traced nodes this row stands for (1 unless collapsed)
    nodes: int = 1
    #: receptive field of the output (None: not derived from a spatial input)
    receptive_field: ReceptiveField | None = None

    @property
    def output_shape(self) -> tuple[int, ...] | None:
        return self.output_shapes[0][1] if self.output_shapes else None

    def attr(self, key: str, default: Any = None) -> Any:
        return dict(self.attrs).get(key, default)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "type": self.type,
            "depth": self.depth,
            "input_shapes": [list(s) for s in self.input_shapes],
            "output_shape": list(self.output_shape) if self.output_shape is not None else None,
            "dtype": self.dtype,
            "params": self.params,
            "shared_with": self.shared_with,
            "macs": self.macs,
            "flops": self.flops,
            "output_bytes": self.output_bytes,
            "activation_bytes": self.activation_bytes,
        }
        if len(self.output_shapes) > 1:
            d["output_shapes"] = {k: list(s) for k, s in self.output_shapes}
        for key in WINDOW_KEYS:
            value = self.attr(key)
            if value is not None:
                d[key] = list(value) if isinstance(value, tuple) else value
        if self.unsupported:
            d["unsupported_ops"] = list(self.unsupported)
        if self.source:
            d["source"] = self.source
        if self.nodes != 1:
            d["nodes"] = self.nodes
        d["receptive_field"] = self.receptive_field.to_dict() if self.receptive_field else None
        return d


@dataclass(frozen=True)
class Totals:
    params: int
    trainable_params: int
    non_trainable_params: int
    buffers: int
    param_bytes: int
    buffer_bytes: int
    unused_params: int
    macs: int
    flops: int
    activation_bytes: int
    input_bytes: int
    #: False when some op had no formula: MACs/FLOPs are then lower bounds
    complete: bool

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class UnsupportedOp:
    op: str
    count: int
    layers: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "count": self.count, "layers": list(self.layers)}


@dataclass(frozen=True)
class TensorInfo:
    key: str
    shape: tuple[int, ...]
    dtype: str

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "shape": list(self.shape), "dtype": self.dtype}


@dataclass(frozen=True)
class EdgeRecord:
    source: str
    target: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Report:
    model: str
    tracer: str
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    totals: Totals
    layers: tuple[LayerRecord, ...]
    edges: tuple[EdgeRecord, ...]
    unsupported: tuple[UnsupportedOp, ...] = ()
    #: one-line notes: CPU construction, tracer fallback, unused parameters
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    #: qualified module name -> class name, for grouping rows by hierarchy
    modules: dict[str, str] = field(default_factory=dict)
    #: depth the rows were collapsed to (None: every traced node)
    depth: int | None = None
    #: the outcome of a real forward pass (``--verify``), when one was made
    verification: Verification | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "schema": SCHEMA,
            "model": self.model,
            "tracer": self.tracer,
            "depth": self.depth,
            "inputs": [i.to_dict() for i in self.inputs],
            "outputs": [o.to_dict() for o in self.outputs],
            "totals": self.totals.to_dict(),
            "unsupported_ops": [u.to_dict() for u in self.unsupported],
            "notes": list(self.notes),
            "warnings": list(self.warnings),
            "layers": [layer.to_dict() for layer in self.layers],
        }
        if self.verification is not None:
            d["verification"] = self.verification.to_dict()
        return d

    def collapse(self, depth: int | None) -> Report:
        """Rows below ``depth`` summed into their ancestor at ``depth`` (None or ≤ 0: unchanged)."""
        if depth is None or depth <= 0:
            return self
        rows: list[LayerRecord] = []
        index: dict[str, int] = {}
        for layer in self.layers:
            if layer.depth <= depth or layer.kind in ("input", "output"):
                rows.append(layer)
                continue
            group = ".".join(layer.name.split(".")[:depth])
            if group not in index:
                index[group] = len(rows)
                rows.append(LayerRecord(
                    name=group, kind="group", type=self.modules.get(group, "?"), depth=depth,
                    input_shapes=layer.input_shapes, output_shapes=layer.output_shapes,
                    dtype=layer.dtype, params=0, new_params=0, shared_with=None, macs=0, flops=0,
                    output_bytes=0, activation_bytes=0, nodes=0,
                ))
            g = rows[index[group]]
            rows[index[group]] = replace(
                g,
                output_shapes=layer.output_shapes,
                dtype=layer.dtype,
                params=g.params + layer.new_params,
                new_params=g.new_params + layer.new_params,
                macs=g.macs + layer.macs,
                flops=g.flops + layer.flops,
                output_bytes=layer.output_bytes,
                activation_bytes=g.activation_bytes + layer.activation_bytes,
                unsupported=g.unsupported + layer.unsupported,
                nodes=g.nodes + layer.nodes,
                receptive_field=layer.receptive_field,
            )
        return replace(self, layers=tuple(rows), depth=depth)

    def __str__(self) -> str:
        from .render.table import render_table  # the renderer comes after the report

        return render_table(self)

    def to_graphviz(self, depth: int | None = None, rankdir: str = "TB") -> Any:
        """A ``graphviz.Digraph`` of the rows collapsed to ``depth``; displays inline in Jupyter."""
        from .render.graphviz import to_digraph

        return to_digraph(self.collapse(depth), rankdir=rankdir)


def _depth(node: Node) -> int:
    if node.kind in ("input", "output"):
        return 0
    return node.name.split("#")[0].count(".") + 1


def _shape_list(metas: tuple[TensorMeta, ...]) -> tuple[tuple[int, ...], ...]:
    return tuple(m.shape for m in metas)


def build_report(
    graph: ModelGraph,
    analysis: Analysis,
    *,
    model: str,
    inputs: tuple[InputSpec, ...],
    notes: tuple[str, ...] = (),
) -> Report:
    layers: list[LayerRecord] = []
    unsupported: Counter[str] = Counter()
    unsupported_at: dict[str, list[str]] = {}
    for node in graph.nodes:
        a = analysis.nodes[node.name]
        p = a.params
        layers.append(LayerRecord(
            name=node.name,
            kind=node.kind,
            type=node.type,
            depth=_depth(node),
            input_shapes=_shape_list(node.input_metas),
            output_shapes=tuple((k, m.shape) for k, m in node.outputs),
            dtype=node.output.dtype if node.output else None,
            params=p.params if p else 0,
            new_params=p.new_params if p else 0,
            shared_with=p.shared_with if p else None,
            macs=a.cost.macs,
            flops=a.cost.flops,
            output_bytes=0 if node.kind == "output" else sum(m.nbytes for _, m in node.outputs),
            activation_bytes=0 if node.kind == "input" else node.new_bytes,
            attrs=node.attrs,
            unsupported=a.unsupported,
            source=node.source,
            receptive_field=a.receptive_field,
        ))
        for op in a.unsupported:
            unsupported[op] += 1
            unsupported_at.setdefault(op, [])
            if node.name not in unsupported_at[op]:
                unsupported_at[op].append(node.name)
    input_nodes = [n for n in graph.nodes if n.kind == "input"]
    output_node = next((n for n in graph.nodes if n.kind == "output"), None)
    pt = analysis.params
    totals = Totals(
        params=pt.params,
        trainable_params=pt.trainable_params,
        non_trainable_params=pt.non_trainable_params,
        buffers=pt.buffers,
        param_bytes=pt.param_bytes,
        buffer_bytes=pt.buffer_bytes,
        unused_params=pt.unused_params,
        macs=sum(r.macs for r in layers),
        flops=sum(r.flops for r in layers),
        activation_bytes=sum(r.activation_bytes for r in layers),
        input_bytes=sum(n.output.nbytes for n in input_nodes if n.output),
        complete=not unsupported,
    )
    all_notes = list(notes) + list(analysis.notes)
    if graph.trace.fallback_reason:
        all_notes.append(f"traced with the eager tracer: {graph.trace.fallback_reason}")
    if pt.unused_params:
        all_notes.append(f"{pt.unused_params:,} parameters belong to modules the forward pass never uses")
    return Report(
        model=model,
        tracer=graph.trace.tracer,
        inputs=tuple(TensorInfo(n.name, n.output.shape, n.output.dtype) for n in input_nodes if n.output),
        outputs=tuple(TensorInfo(k, m.shape, m.dtype) for k, m in output_node.outputs) if output_node else (),
        totals=totals,
        layers=tuple(layers),
        edges=tuple(EdgeRecord(e.source, e.target, e.meta.shape) for e in graph.edges()),
        unsupported=tuple(UnsupportedOp(op, c, tuple(unsupported_at[op])) for op, c in unsupported.most_common()),
        notes=tuple(all_notes),
        warnings=graph.trace.warnings,
        modules=graph.modules,
    )
