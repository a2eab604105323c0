"""Each tracer is a function ``(model, meta_inputs, leaves, cross_check) -> Trace``;
:func:`trace` picks one."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import torch
from torch import nn

from ..errors import CnnshapeError, ConfigError, InputError, InternalError, ShapeError, TraceError, param
from ..inputs import InputSpec
from ..vocab import TRACERS
from .eager import trace_eager
from .fx import trace_fx
from .hints import dtype_mismatch, shorten_no_meta, unsupported_on_meta
from .meta import cross_check_default, make_inputs
from .records import Trace
from .warnings import batch_warnings

TracerFn = Callable[[nn.Module, list[torch.Tensor], tuple[type, ...], bool], Trace]

#: the tracers of ``vocab.CONCRETE_TRACERS``, by name
TRACER_FNS: dict[str, TracerFn] = {"fx": trace_fx, "eager": trace_eager}


def trace(
    model: nn.Module,
    specs: tuple[InputSpec, ...],
    tracer: str = "auto",
    leaves: tuple[type, ...] = (),
    cross_check: bool | None = None,
) -> Trace:
    """Trace ``model`` on meta inputs built from ``specs``.

    ``auto`` uses torch.fx and falls back to the eager tracer when symbolic tracing fails, or when
    the traced graph fails to run (see :func:`_fx_or_eager`).
    ``cross_check`` also runs torch's meta kernel for every call cnnshape computes itself and
    raises on any difference (default: the ``CNNSHAPE_CROSS_CHECK`` environment variable).
    """
    check = cross_check_default() if cross_check is None else cross_check
    if tracer not in TRACERS:
        raise ConfigError(f"{param('tracer')} {tracer!r}: unknown tracer; choose one of {', '.join(TRACERS)}")
    inputs = make_inputs(specs)
    try:
        if tracer != "auto":
            result = TRACER_FNS[tracer](model, inputs, leaves, check)
        else:
            result = _fx_or_eager(model, inputs, leaves, check)
    except ShapeError as e:
        hint = unsupported_on_meta(e.__cause__) or dtype_mismatch(e.__cause__, model, specs)
        if hint is None:
            raise
        raise ShapeError(f"{shorten_no_meta(str(e))}\n{hint}") from e.__cause__
    return replace(result, warnings=result.warnings + batch_warnings(result.nodes))


def _fx_or_eager(model: nn.Module, inputs: list[torch.Tensor], leaves: tuple[type, ...], check: bool) -> Trace:
    """fx, else eager with the reason. Symbolic tracing fails on data-dependent Python; a graph that
    traced can still fail to run where fx's stand-ins differ from real values (an ``fx.wrap``-ed
    helper that mutates a list argument gets fx's immutable list). Either way eager runs the
    model's Python as written. Not retried: an error about the inputs given (eager checks them
    the same way) and a disagreement between cnnshape's own computations (a bug to report). When
    eager fails too, the model's own error is reported: fx's message when both fail alike (as
    shape errors do: both name the layer and the numbers), else eager's, which got further."""
    try:
        return TRACER_FNS["fx"](model, inputs, leaves, check)
    except (InputError, ConfigError, InternalError):
        raise
    except TraceError as e:
        return replace(TRACER_FNS["eager"](model, inputs, leaves, check), fallback_reason=str(e))
    except Exception as e:
        fx_error = e
    try:
        result = TRACER_FNS["eager"](model, inputs, leaves, check)
    except Exception as eager_error:
        if type(eager_error) is type(fx_error) and str(eager_error) == str(fx_error):
            raise fx_error from fx_error.__cause__
        raise
    return replace(result, fallback_reason=_run_failure(model, fx_error))


def _run_failure(model: nn.Module, e: Exception) -> str:
    """One line: why the fx graph of ``model`` did not run (the failing call and the user's line)."""
    lines = [line.strip() for line in str(e).strip().splitlines()] or [""]
    first = lines[0] if isinstance(e, CnnshapeError) else f"{type(e).__name__}: {lines[0]}"
    if len(first) > 160:  # torch's messages go on with advice: keep the first sentence
        first = first.split(". ")[0]
    where = next((line.removeprefix("called at ") for line in lines if line.startswith("called at ")), None)
    at = f" (at {where})" if where else ""
    return f"the torch.fx graph of {type(model).__name__} failed to run{at}: {first}"

