"""Tracers turn a module plus input specs into a :class:`Trace` of frozen node records.

Each tracer is a function ``(model, meta_inputs, leaves) -> Trace``; :func:`trace` picks one.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..errors import ConfigError, TraceError
from ..inputs import InputSpec
from .fx import trace_fx
from .meta import make_inputs
from .records import Node, OpCall, TensorMeta, Trace

TracerFn = Callable[[nn.Module, list[torch.Tensor], tuple[type, ...]], Trace]

TRACERS: dict[str, TracerFn] = {"fx": trace_fx}
TRACER_CHOICES = ("auto", "fx", "eager")


def trace(
    model: nn.Module,
    specs: tuple[InputSpec, ...],
    tracer: str = "auto",
    leaves: tuple[type, ...] = (),
) -> Trace:
    """Trace ``model`` on meta inputs built from ``specs``.

    ``auto`` uses torch.fx and falls back to the eager tracer when symbolic tracing fails.
    """
    if tracer not in TRACER_CHOICES:
        raise ConfigError(f"unknown tracer {tracer!r}; choose one of {', '.join(TRACER_CHOICES)}")
    inputs = make_inputs(specs)
    if tracer != "auto":
        if tracer not in TRACERS:
            raise ConfigError(f"the {tracer!r} tracer is not available in this version")
        return TRACERS[tracer](model, inputs, leaves)
    try:
        return TRACERS["fx"](model, inputs, leaves)
    except TraceError as e:
        if "eager" not in TRACERS:
            raise
        result = TRACERS["eager"](model, inputs, leaves)
        return Trace(result.nodes, result.tracer, str(e), result.warnings)


__all__ = ["Node", "OpCall", "TensorMeta", "Trace", "trace", "TRACERS", "TRACER_CHOICES"]
