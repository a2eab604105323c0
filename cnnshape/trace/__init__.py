"""Tracers turn a module plus input specs into a :class:`Trace` of frozen node records.

Each tracer is a function ``(model, meta_inputs, leaves) -> Trace``; :func:`trace` picks one.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import torch
from torch import nn

from ..errors import ConfigError, TraceError
from ..inputs import InputSpec
from .eager import trace_eager
from .fx import trace_fx
from .meta import cross_check_default, make_inputs
from .records import Node, OpCall, TensorMeta, Trace
from .warnings import batch_warnings

TracerFn = Callable[[nn.Module, list[torch.Tensor], tuple[type, ...], bool], Trace]

TRACERS: dict[str, TracerFn] = {"fx": trace_fx, "eager": trace_eager}
TRACER_CHOICES = ("auto", "fx", "eager")


def trace(
    model: nn.Module,
    specs: tuple[InputSpec, ...],
    tracer: str = "auto",
    leaves: tuple[type, ...] = (),
    cross_check: bool | None = None,
) -> Trace:
    """Trace ``model`` on meta inputs built from ``specs``.

    ``auto`` uses torch.fx and falls back to the eager tracer when symbolic tracing fails.
    ``cross_check`` also runs torch's meta kernel for every call cnnshape computes itself and
    raises on any difference (default: the ``CNNSHAPE_CROSS_CHECK`` environment variable).
    """
    check = cross_check_default() if cross_check is None else cross_check
    if tracer not in TRACER_CHOICES:
        raise ConfigError(f"unknown tracer {tracer!r}; choose one of {', '.join(TRACER_CHOICES)}")
    inputs = make_inputs(specs)
    if tracer != "auto":
        if tracer not in TRACERS:
            raise ConfigError(f"the {tracer!r} tracer is not available in this version")
        result = TRACERS[tracer](model, inputs, leaves, check)
    else:
        try:
            result = TRACERS["fx"](model, inputs, leaves, check)
        except TraceError as e:
            if "eager" not in TRACERS:
                raise
            result = TRACERS["eager"](model, inputs, leaves, check)
            result = replace(result, fallback_reason=str(e))
    return replace(result, warnings=result.warnings + batch_warnings(result.nodes))


__all__ = ["Node", "OpCall", "TensorMeta", "Trace", "trace", "TRACERS", "TRACER_CHOICES"]
