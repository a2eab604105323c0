"""The pipeline: load -> trace -> graph -> analyse -> report, for one :class:`Request`.

Everything that turns a request into records lives here; :mod:`cnnshape.api` is the public face
over it and :mod:`cnnshape.report` the schema it fills.
"""
from __future__ import annotations

import contextlib
import gc
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from .analyse.analysis import Analysis, analyse
from .analyse.params import pruning_note
from .analyse.sizes import Retrace, SizeReport, analyse_sizes, minimum_note
from .errors import CnnshapeError, ConfigError, param
from .graph import ModelGraph, build_graph
from .inputs import InputSpec
from .load import load_model
from .report import EdgeRecord, LayerRecord, OpCost, Report, TensorInfo, Totals, UnsupportedOp, depth_of
from .request import Request
from .trace.leaves import resolve_leaves
from .trace.records import Node
from .trace.tracers import trace
from .trace.walk import module_paths, set_modes, set_training, unique_modules


@contextlib.contextmanager
def on_meta(model: nn.Module, train: bool = False) -> Iterator[nn.Module]:
    """Temporarily give ``model`` meta copies of its parameters and buffers, in eval (or train)
    mode; everything is put back on exit. Tied parameters stay tied."""
    saved: list[tuple[dict[str, Any], str, Any]] = []
    memo: dict[int, Any] = {}
    modules = unique_modules(module_paths(model), model)  # one walk for the copies, the modes and the switch
    modes = [(m, m.training) for m in modules]

    def meta_copy(t: torch.Tensor) -> torch.Tensor:
        if id(t) not in memo:
            copy = torch.empty_like(t, device="meta")
            memo[id(t)] = nn.Parameter(copy, t.requires_grad) if isinstance(t, nn.Parameter) else copy
        return memo[id(t)]

    try:
        for m in modules:
            tables: tuple[dict[str, Any], ...] = (m._parameters, m._buffers)
            for table in tables:
                for key, value in table.items():
                    if value is not None and not value.is_meta:
                        saved.append((table, key, value))
                        table[key] = meta_copy(value)
        set_training(model, modules, train)
        yield model
    finally:
        for table, key, value in saved:
            table[key] = value
        set_modes(modes)


@contextlib.contextmanager
def no_gc() -> Iterator[None]:
    """The cyclic garbage collector paused: an analysis allocates hundreds of thousands of small
    records that all stay alive until it ends, and each full collection would walk all of them
    (a third of the time on deep networks). Reference counting still frees everything else."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def resolve_model(request: Request) -> tuple[nn.Module, tuple[str, ...]]:
    """The request's module (a spec is loaded and constructed) and the loader's notes."""
    model = request.model
    if isinstance(model, str):
        loaded = load_model(model, request.kwargs)
        return loaded.module, (loaded.note,) if loaded.note else ()
    if isinstance(model, nn.Module):
        return model, ()
    raise ConfigError(f"{param('model')} must be an nn.Module or a 'file.py:Name' spec, not {type(model).__name__}")


def run_analysis(request: Request, depth: int | None = None) -> Report:
    """The report of ``request``, its rows collapsed to ``depth``."""
    # The collector resumes once the model, its trace and its graph are freed (_report's locals):
    # resumed with them alive, its first collection would walk them all only to find them alive.
    with no_gc():
        return _report(request).collapse(depth)


def _report(request: Request) -> Report:
    """The unreduced report of ``request`` (run_analysis's, under its collector pause)."""
    module, notes = resolve_model(request)
    pruned = pruning_note(module)  # before on_meta: it reads the masks' values where they exist
    notes += (pruned,) if pruned else ()
    with on_meta(module, request.train):
        leaves = resolve_leaves(request.leaves, module)
        graph = build_graph(trace(module, request.inputs, request.tracer, leaves, request.cross_check), module)
        analysis = analyse(graph, dict(request.formulas))
        size_note = minimum_note(graph)
        notes += (size_note,) if size_note else ()
        return build_report(graph, analysis, model=request.label, notes=notes)


def run_sizes(request: Request, axes: Any = None, layers: bool = False, symbolic: bool = True) -> SizeReport:
    """Which sizes of the first input's ``axes`` the request's model accepts; ``symbolic``: torch's
    symbolic shapes answer the axes the layer arithmetic cannot."""
    with no_gc():
        module, _ = resolve_model(request)
        with on_meta(module):
            leaves = resolve_leaves(request.leaves, module)
            graph = build_graph(trace(module, request.inputs, request.tracer, leaves), module)
            retrace = retracer(module, request.inputs, graph.trace.tracer, leaves)
            return analyse_sizes(graph, request.label, axes, layers, retrace, symbolic=symbolic)


def retracer(module: nn.Module, specs: tuple[InputSpec, ...], tracer: str, leaves: tuple[type, ...]) -> Retrace:
    """Traces ``module`` (already on meta) again with one dim of the first input changed, with the
    tracer that produced the first trace; a model that rejects the size gives the error text."""
    def retrace(axis: int, size: int) -> ModelGraph | str:
        shape = list(specs[0].shape)
        shape[axis] = size
        changed = (replace(specs[0], shape=tuple(shape)), *specs[1:])  # its dtype and name kept
        try:
            return build_graph(trace(module, changed, tracer, leaves), module)
        except Exception as e:  # the model's own check (an assert, a ValueError) rejects the size too
            return str(e) if isinstance(e, CnnshapeError) else f"{type(e).__name__}: {e}"
    return retrace


def build_report(
    graph: ModelGraph,
    analysis: Analysis,
    *,
    model: str,
    notes: tuple[str, ...] = (),
) -> Report:
    layers: list[LayerRecord] = []
    per_node = analysis.nodes
    for node in graph.nodes:
        a = per_node[node.name]
        p = a.params
        kind = node.kind
        outputs = node.outputs
        layers.append(LayerRecord(
            name=node.name,
            kind=kind,
            type=node.type,
            depth=0 if kind == "input" or kind == "output" else depth_of(node.name),
            input_shapes=tuple([m.shape for m in node.input_metas]),
            output_shapes=tuple([(k, m.shape) for k, m in outputs]),
            dtype=outputs[0][1].dtype if outputs else None,
            params=p.params if p else 0,
            new_params=p.new_params if p else 0,
            shared_with=p.shared_with if p else None,
            macs=a.cost.macs,
            flops=a.cost.flops,
            output_bytes=0 if kind == "output" else sum([m.nbytes for _, m in outputs]),
            activation_bytes=_activation_bytes(node),
            attrs=node.attrs,
            unsupported=a.unsupported,
            source=node.source,
            receptive_field=a.receptive_field,
        ))
    pt = analysis.params
    totals = totals_of(graph, analysis)
    all_notes = list(notes) + list(analysis.notes)
    if graph.trace.fallback_reason:
        all_notes.append(f"traced with the eager tracer: {graph.trace.fallback_reason}")
    if pt.unused_params:
        all_notes.append(f"{pt.unused_params:,} parameters belong to modules the forward pass never uses")
    return Report(
        model=model,
        tracer=graph.trace.tracer,
        inputs=tuple(TensorInfo(n.name, n.output.shape, n.output.dtype) for n in _inputs(graph) if n.output),
        outputs=outputs_of(graph),
        totals=totals,
        layers=tuple(layers),
        edges=tuple([EdgeRecord(e.source, e.target, e.meta.shape) for e in graph.edges()]),
        unsupported=unsupported_of(graph, analysis),
        by_op=tuple(OpCost(op, calls, cost.macs, cost.flops) for op, calls, cost in analysis.by_op),
        notes=tuple(all_notes),
        warnings=graph.trace.warnings,
        modules=graph.modules,
    )


# The report's figures that a scan record keeps, each computed once here for build_report and for
# the scan worker (which reads them without building the layer records: about 4 ms of a NAS-201
# network's 100).

def _inputs(graph: ModelGraph) -> list[Node]:
    return [n for n in graph.nodes if n.kind == "input"]


def _activation_bytes(node: Node) -> int:
    return 0 if node.kind == "input" else node.new_bytes


def totals_of(graph: ModelGraph, analysis: Analysis) -> Totals:
    """The report's totals: the parameters' from ``analysis.params``, the rest summed over the nodes."""
    pt = analysis.params
    costs = [analysis.nodes[node.name] for node in graph.nodes]
    return Totals(
        params=pt.params,
        trainable_params=pt.trainable_params,
        non_trainable_params=pt.non_trainable_params,
        buffers=pt.buffers,
        param_bytes=pt.param_bytes,
        buffer_bytes=pt.buffer_bytes,
        unused_params=pt.unused_params,
        macs=sum(a.cost.macs for a in costs),
        flops=sum(a.cost.flops for a in costs),
        activation_bytes=sum(_activation_bytes(node) for node in graph.nodes),
        input_bytes=sum(n.output.nbytes for n in _inputs(graph) if n.output),
        complete=not any(a.unsupported for a in costs),
    )


def unsupported_of(graph: ModelGraph, analysis: Analysis) -> tuple[UnsupportedOp, ...]:
    """Ops without a cost formula, the most called first, each with its calls and the layers calling it."""
    calls: Counter[str] = Counter()
    where: dict[str, list[str]] = {}
    for node in graph.nodes:
        for op in analysis.nodes[node.name].unsupported:
            calls[op] += 1
            layers = where.setdefault(op, [])
            if node.name not in layers:
                layers.append(node.name)
    return tuple(UnsupportedOp(op, count, tuple(where[op])) for op, count in calls.most_common())


def outputs_of(graph: ModelGraph) -> tuple[TensorInfo, ...]:
    """The model's outputs: the output node's, by name."""
    output = next((n for n in graph.nodes if n.kind == "output"), None)
    return tuple(TensorInfo(k, m.shape, m.dtype) for k, m in output.outputs) if output else ()
