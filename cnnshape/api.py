"""The Python API: ``analyze(model_or_spec, inputs) -> Report``. The CLI is a thin layer over it.

load -> trace -> graph -> analyse -> report.
"""
from __future__ import annotations

import contextlib
import gc
import importlib
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

from .analyse import analyse
from .analyse.sizes import Retrace, SizeReport, analyse_sizes, minimum_note
from .errors import CnnshapeError, ConfigError
from .graph import ModelGraph, build_graph
from .inputs import InputSpec, normalise_inputs
from .load import load_model
from .report import Report, build_report
from .trace import trace


@contextlib.contextmanager
def on_meta(model: nn.Module, train: bool = False) -> Iterator[nn.Module]:
    """Temporarily give ``model`` meta copies of its parameters and buffers, in eval (or train)
    mode; everything is put back on exit. Tied parameters stay tied."""
    saved: list[tuple[dict[str, Any], str, Any]] = []
    memo: dict[int, Any] = {}
    modes = [(m, m.training) for m in model.modules()]

    def meta_copy(t: torch.Tensor) -> torch.Tensor:
        if id(t) not in memo:
            copy = torch.empty_like(t, device="meta")
            memo[id(t)] = nn.Parameter(copy, t.requires_grad) if isinstance(t, nn.Parameter) else copy
        return memo[id(t)]

    try:
        for m in model.modules():
            tables: tuple[dict[str, Any], ...] = (m._parameters, m._buffers)
            for table in tables:
                for key, value in table.items():
                    if value is not None and value.device.type != "meta":
                        saved.append((table, key, value))
                        table[key] = meta_copy(value)
        model.train(train)
        yield model
    finally:
        for table, key, value in saved:
            table[key] = value
        for m, training in modes:
            m.training = training


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
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


def _same_class(a: type, b: type) -> bool:
    """``b`` is ``a`` or the same class from the same file imported under another module name
    (a model file loaded by path and also imported as a package module)."""
    def file_of(cls: type) -> str | None:
        return getattr(sys.modules.get(cls.__module__), "__file__", None)

    return a is b or (a.__qualname__ == b.__qualname__ and file_of(a) is not None and file_of(a) == file_of(b))


def resolve_leaves(names: Sequence[str | type], model: nn.Module | None = None) -> tuple[type, ...]:
    """``"pkg.mod.Block"``, a class, or (given ``model``) a bare class name of one of the model's
    submodules (``"Bottleneck"``) -> the classes to keep as leaves (for ``--leaf``)."""
    present = {type(m) for m in model.modules()} if model is not None else set()
    classes = []
    for name in names:
        if isinstance(name, type):
            cls = name
        elif "." not in name and model is not None:
            matches = [c for c in present if c.__name__ == name]
            if not matches:
                known = ", ".join(sorted({c.__name__ for c in present}))
                raise ConfigError(f"--leaf {name!r}: the model has no submodule of that class (it has: {known})")
            cls = matches[0]
        else:
            module_name, _, attr = name.rpartition(".")
            try:
                cls = getattr(importlib.import_module(module_name), attr)
            except (ImportError, AttributeError, ValueError) as e:
                raise ConfigError(
                    f"--leaf {name!r}: cannot import it ({e}). Give pkg.module.ClassName, or the bare "
                    f"class name of one of the model's submodules."
                ) from e
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise ConfigError(f"--leaf {name!r} is not an nn.Module subclass")
        classes.append(cls)
        classes += [c for c in present if c is not cls and _same_class(cls, c)]
    return tuple(classes)


def _resolve_model(model: nn.Module | str, args: dict[str, Any] | None) -> tuple[nn.Module, str, tuple[str, ...]]:
    """(module, label for the report, notes) for a spec or a module instance."""
    if isinstance(model, str):
        loaded = load_model(model, args)
        return loaded.module, model, (loaded.note,) if loaded.note else ()
    if isinstance(model, nn.Module):
        if args:
            raise ConfigError("args apply to a model spec, not to a module instance")
        return model, type(model).__name__, ()
    raise ConfigError(f"model must be an nn.Module or a 'file.py:Name' spec, not {type(model).__name__}")


def analyze(
    model: nn.Module | str,
    inputs: Any = ((1, 3, 224, 224),),
    *,
    args: dict[str, Any] | None = None,
    tracer: str = "auto",
    leaves: Sequence[str | type] = (),
    train: bool = False,
    depth: int | None = None,
    cross_check: bool | None = None,
) -> Report:
    """Analyse ``model`` (an ``nn.Module`` or a spec such as ``"examples/resnet.py:ResNet50"``) on
    ``inputs`` (shapes such as ``[(1, 3, 224, 224)]``, ``"1,3,224,224"`` or ``InputSpec`` s).

    Nothing is computed for real: the model runs on the meta device, with cnnshape's own meta
    kernels for the common ops; ``cross_check`` also runs torch's and fails on any difference
    (default: the ``CNNSHAPE_CROSS_CHECK`` environment variable). The model is analysed in eval
    mode unless ``train``; a module passed in is left exactly as it was.
    """
    specs = normalise_inputs(inputs)
    with _no_gc():
        module, label, notes = _resolve_model(model, args)
        return _analyze(module, label, notes, specs, tracer, leaves, train, depth, cross_check)


def _analyze(module: nn.Module, label: str, notes: tuple[str, ...], specs: tuple[InputSpec, ...], tracer: str,
             leaves: Sequence[str | type], train: bool, depth: int | None, cross_check: bool | None) -> Report:
    with on_meta(module, train):
        graph = build_graph(trace(module, specs, tracer, resolve_leaves(leaves, module), cross_check), module)
        analysis = analyse(graph)
        size_note = minimum_note(graph)
        notes += (size_note,) if size_note else ()
        report = build_report(graph, analysis, model=label, inputs=specs, notes=notes)
    return report.collapse(depth)


def _retracer(module: nn.Module, specs: tuple[InputSpec, ...], tracer: str, leaves: tuple[type, ...]) -> Retrace:
    """Traces ``module`` (already on meta) again with one dim of the first input changed, with the
    tracer that produced the first trace; a model that rejects the size gives the error text."""
    def retrace(axis: int, size: int) -> ModelGraph | str:
        shape = list(specs[0].shape)
        shape[axis] = size
        changed = (InputSpec(tuple(shape), specs[0].dtype), *specs[1:])
        try:
            return build_graph(trace(module, changed, tracer, leaves), module)
        except Exception as e:  # the model's own check (an assert, a ValueError) rejects the size too
            return str(e) if isinstance(e, CnnshapeError) else f"{type(e).__name__}: {e}"
    return retrace


def sizes(
    model: nn.Module | str,
    inputs: Any = ((1, 3, 224, 224),),
    *,
    axes: Sequence[int] | None = None,
    layers: bool = False,
    args: dict[str, Any] | None = None,
    tracer: str = "auto",
    leaves: Sequence[str | type] = (),
) -> SizeReport:
    """Which sizes of the first input's ``axes`` (default: its spatial axes) ``model`` accepts,
    derived from the layer arithmetic of one meta trace on ``inputs`` (a working example) and
    checked by re-tracing at a few other sizes."""
    specs = normalise_inputs(inputs)
    with _no_gc():
        module, label, _ = _resolve_model(model, args)
        return _sizes(module, label, specs, axes, layers, tracer, leaves)


def _sizes(module: nn.Module, label: str, specs: tuple[InputSpec, ...], axes: Sequence[int] | None, layers: bool,
           tracer: str, leaves: Sequence[str | type]) -> SizeReport:
    with on_meta(module):
        leaf_classes = resolve_leaves(leaves, module)
        graph = build_graph(trace(module, specs, tracer, leaf_classes), module)
        retrace = _retracer(module, specs, graph.trace.tracer, leaf_classes)
        return analyse_sizes(graph, label, axes, layers, retrace)
