"""The finished analysis as frozen records. ``Report.to_dict()`` is the JSON schema (docs/json.md).

A torch-free schema on a low floor: the pipeline (:mod:`cnnshape.pipeline`) builds it, renderers
read it and never recompute, and nothing here imports either. :meth:`Report.collapse` is the one
place where rows are summed into their ancestors. ``str(report)`` and ``report.to_graphviz()``
are conveniences served by the views the renderers install (:func:`install_view`), so the schema
needs no import edge back up to them.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from .analyse.memory.records import MemoryReport
from .analyse.receptive_field.records import ReceptiveField
from .errors import ConfigError
from .frozen import fast_init
from .vocab import REPORT_SCHEMA

#: how a report shows itself: "text" (``str(report)``), "graphviz" (``report.to_graphviz()``);
#: filled by :func:`install_view` from the renderer modules, which import this one
_VIEWS: dict[str, Callable[..., Any]] = {}


def install_view(name: str, view: Callable[..., Any]) -> None:
    """Make ``view(report, **options)`` the report's ``name`` view ("text", "graphviz", "html" or
    "html_compact")."""
    _VIEWS[name] = view



# --- the module hierarchy, read from row names ("layer1.0.conv1", "enc.relu#2": a second call)


def depth_of(name: str) -> int:
    """How deep a row sits: ``"fc"`` 1, ``"layer1.0.conv1#2"`` 3."""
    return name.split("#")[0].count(".") + 1


def scopes_of(name: str) -> tuple[str, ...]:
    """The modules a row sits in, outermost first: ``"layer1.0.relu#2"`` -> ``("layer1", "layer1.0")``."""
    parts = name.split("#")[0].split(".")
    return tuple(".".join(parts[:i]) for i in range(1, len(parts)))


def group_at(name: str, depth: int) -> str:
    """The row a name is summed into when rows are collapsed to ``depth``: its module at that
    depth, or itself when it is not deeper."""
    scopes = scopes_of(name)
    return scopes[depth - 1] if len(scopes) >= depth else name


def leaf_of(name: str) -> str:
    """The last part of a row name: ``"layer1.0.relu#2"`` -> ``"relu#2"``."""
    return name.rpartition(".")[2]


#: Window hyper-parameters shown in the table and given in JSON where a layer has them.
WINDOW_KEYS = ("kernel_size", "stride", "padding", "dilation", "groups")


@fast_init
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
        attrs = dict(self.attrs)  # once: self.attr() builds it per key
        for key in WINDOW_KEYS:
            value = attrs.get(key)
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
class OpCost:
    """What one op (or one module formula) added up to over the whole model."""

    op: str  #: ``"aten.convolution"``, or ``"MyBlock (module formula)"``
    calls: int
    macs: int
    flops: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class TensorInfo:
    key: str
    shape: tuple[int, ...]
    dtype: str

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "shape": list(self.shape), "dtype": self.dtype}


@fast_init
@dataclass(frozen=True)
class EdgeRecord:
    source: str
    target: str
    shape: tuple[int, ...]


#: flattened outputs as a report gives them: (key, shape); key "" for a single tensor
Shapes = tuple[tuple[str, tuple[int, ...]], ...]


@dataclass(frozen=True)
class LayerCheck:
    """One traced node: what the static analysis predicted and what the real pass produced."""

    name: str
    #: None: the real pass produced this node but the report has no such row
    predicted_shapes: Shapes | None
    #: dtype of the first output as the report gives it; under ``--dtype D`` a floating
    #: prediction is read as D, since the pass casts the model and its floating inputs to D
    predicted_dtype: str | None
    #: None: the node never ran for real
    real_shapes: Shapes | None
    real_dtype: str | None
    ok: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "predicted_shape": _shapes_json(self.predicted_shapes),
            "predicted_dtype": self.predicted_dtype,
            "real_shape": _shapes_json(self.real_shapes),
            "real_dtype": self.real_dtype,
            "ok": self.ok,
        }


def _shapes_json(shapes: Shapes | None) -> Any:
    """A single tensor's shape as a list; several outputs as {key: shape}; None stays None."""
    if shapes is None:
        return None
    if len(shapes) == 1 and shapes[0][0] == "":
        return list(shapes[0][1])
    return {key: list(shape) for key, shape in shapes}


@dataclass(frozen=True)
class Verification:
    """The outcome of ``--verify``, attached to the report as ``Report.verification``."""

    #: the device the pass ran on, e.g. "cpu" or "cuda:0"
    device: str
    #: "NVIDIA H100 80GB HBM3", or the CPU's architecture and thread count
    device_name: str
    #: the dtype the pass cast the model and floating inputs to; None: the analysed dtypes
    dtype: str | None
    layers: tuple[LayerCheck, ...]
    #: timed forward calls after the warm-up
    repeats: int
    #: median wall time of one forward call, in milliseconds
    latency_ms: float
    #: memory one forward pass added at its peak, in bytes (None: not measured on this device)
    peak_bytes: int | None
    #: how ``peak_bytes`` was measured
    memory_method: str
    #: the report's activation memory (every new layer output kept), at the analysed dtypes
    static_activation_bytes: int

    @property
    def mismatches(self) -> tuple[LayerCheck, ...]:
        return tuple(c for c in self.layers if not c.ok)

    @property
    def matched(self) -> int:
        return len(self.layers) - len(self.mismatches)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "device_name": self.device_name,
            "dtype": self.dtype,
            "ok": self.ok,
            "layers_checked": len(self.layers),
            "layers_matched": self.matched,
            "latency_ms": self.latency_ms,
            "repeats": self.repeats,
            "peak_bytes": self.peak_bytes,
            "memory_method": self.memory_method,
            "static_activation_bytes": self.static_activation_bytes,
            "layers": [c.to_dict() for c in self.layers],
        }


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
    #: MACs and FLOPs per op over the whole model, most FLOPs first
    by_op: tuple[OpCost, ...] = ()
    #: memory without running the model (docs/memory.md), when asked for (``summary --memory``)
    memory: MemoryReport | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "schema": REPORT_SCHEMA,
            "model": self.model,
            "tracer": self.tracer,
            "depth": self.depth,
            "inputs": [i.to_dict() for i in self.inputs],
            "outputs": [o.to_dict() for o in self.outputs],
            "totals": self.totals.to_dict(),
            "unsupported_ops": [u.to_dict() for u in self.unsupported],
            "by_op": [o.to_dict() for o in self.by_op],
            "notes": list(self.notes),
            "warnings": list(self.warnings),
            "layers": [layer.to_dict() for layer in self.layers],
        }
        if self.verification is not None:
            d["verification"] = self.verification.to_dict()
        if self.memory is not None:
            d["memory"] = self.memory.to_dict()
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
            group = group_at(layer.name, depth)
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
        """The per-layer table (once :mod:`cnnshape.render.views` is loaded, as the API does)."""
        if "text" in _VIEWS:
            return str(_VIEWS["text"](self))
        t = self.totals
        return f"<cnnshape report of {self.model}: {t.params:,} params, {t.macs:,} MACs, {len(self.layers)} rows>"

    def to_graphviz(self, depth: int | None = None, rankdir: str = "TB") -> Any:
        """A ``graphviz.Digraph`` of the rows collapsed to ``depth``; displays inline in Jupyter."""
        if "graphviz" not in _VIEWS:
            raise ConfigError("no graphviz view is installed: import cnnshape.render.views first")
        return _VIEWS["graphviz"](self.collapse(depth), rankdir=rankdir)

    def to_html(self, sizes: Any = None, color_by: str = "macs", rankdir: str = "TB") -> str:
        """The self-contained interactive HTML page (docs/report.md); ``sizes``: a ``SizeReport``
        from ``cnnshape.sizes`` for the accepted input sizes. Write it to a file and open it."""
        if "html" not in _VIEWS:
            raise ConfigError("no html view is installed: import cnnshape.render.views first")
        return str(_VIEWS["html"](self, sizes=sizes, color_by=color_by, rankdir=rankdir))

    def _repr_html_(self) -> str | None:
        """Jupyter's inline view: totals, the per-layer table and the diagram (static HTML)."""
        if "html_compact" not in _VIEWS:
            return None
        return str(_VIEWS["html_compact"](self))
