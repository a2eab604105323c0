"""The Python API: ``analyze(model_or_spec, inputs) -> Report``. The CLI is a thin layer over it.

Each function takes what to analyse as a :class:`~cnnshape.request.Request`, or the model and
the request's fields as arguments (``Request.of`` builds it); the work is done by
:mod:`cnnshape.pipeline`. Reports returned here print themselves (the renderers' views are
installed on import).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from . import pipeline
from .analyse.memory.records import MemoryReport
from .analyse.sizes.records import SizeReport
from .errors import param
from .render import views  # noqa: F401  installs str(report) and report.to_graphviz()
from .report import Report, Verification
from .request import Request
from .vocab import DEFAULT_SHAPE

on_meta = pipeline.on_meta


def analyze(
    model: Any,
    inputs: Any = (DEFAULT_SHAPE,),
    *,
    args: Mapping[str, Any] | None = None,
    tracer: str = "auto",
    leaves: Sequence[str | type] = (),
    train: bool = False,
    depth: int | None = None,
    cross_check: bool | None = None,
    formulas: Mapping[Any, Callable[[Any], Any]] | None = None,
    memory: bool = False,
) -> Report:
    """Analyse ``model`` (an ``nn.Module``, a spec such as ``"examples/resnet.py:ResNet50"``, or a
    :class:`Request`) on ``inputs`` (shapes such as ``[(1, 3, 224, 224)]``, ``"1,3,224,224"`` or
    ``InputSpec`` s).

    Nothing is computed for real: the model runs on the meta device, with cnnshape's own meta
    kernels for the common ops; ``cross_check`` also runs torch's and fails on any difference
    (default: the ``CNNSHAPE_CROSS_CHECK`` environment variable). The model is analysed in eval
    mode unless ``train``; a module passed in is left exactly as it was. ``depth`` collapses the
    rows below it into their module.

    ``formulas`` counts what the built-in table does not know, for this analysis only (docs/flops.md):
    ``{"mylib.fused_op": lambda call: Cost(macs, flops)}`` for an op, or ``{MyBlock: lambda node: macs}``
    for every call of a module class (kept as a leaf), replacing the cost of the ops it ran.

    ``memory`` also fills ``report.memory`` (docs/memory.md): the inference peak, and with ``train``
    one training step with Adam; see :func:`memory` for the other options.
    """
    request = Request.of(model, inputs, args=args, tracer=tracer, leaves=leaves, train=train,
                         cross_check=cross_check, formulas=formulas)
    report = pipeline.run_analysis(request, depth)
    if memory:
        from .memory_run import with_memory

        report = with_memory(request, report)
    return report


def memory(
    model: Any,
    inputs: Any = (DEFAULT_SHAPE,),
    *,
    train: bool = False,
    optimizer: str = "adam",
    amp: str | None = None,
    fits: int | str | None = None,
    args: Mapping[str, Any] | None = None,
    tracer: str = "auto",
    leaves: Sequence[str | type] = (),
) -> MemoryReport:
    """Memory of ``model`` on ``inputs`` without running it (docs/memory.md): the inference peak by
    tensor liveness; with ``train`` one training step (``optimizer``: none, sgd, momentum, adam or
    adamw, at its steady state); ``amp``: "bf16" or "fp16" autocast; ``fits``: a memory size
    ("16GiB" or bytes) for which the largest fitting batch is given."""
    from .memory_run import run_memory
    from .units import parse_bytes

    request = Request.of(model, inputs, args=args, tracer=tracer, leaves=leaves, train=train)
    budget = None if fits is None else parse_bytes(fits, param("fits"))
    return run_memory(request, train=train, optimizer=optimizer, amp=amp, fits=budget)


def sizes(
    model: Any,
    inputs: Any = (DEFAULT_SHAPE,),
    *,
    axes: Sequence[int] | None = None,
    layers: bool = False,
    args: Mapping[str, Any] | None = None,
    tracer: str = "auto",
    leaves: Sequence[str | type] = (),
    symbolic: bool = True,
) -> SizeReport:
    """Which sizes of the first input's ``axes`` (default: its spatial axes) ``model`` accepts,
    derived from the layer arithmetic of one meta trace on ``inputs`` (a working example) and
    checked by re-tracing at a few other sizes. Axes the layer arithmetic cannot characterise go to
    torch's symbolic shapes unless ``symbolic`` is False (docs/sizes.md)."""
    request = Request.of(model, inputs, args=args, tracer=tracer, leaves=leaves)
    return pipeline.run_sizes(request, axes, layers, symbolic)


def verify(request: Request, report: Report, *, device: str = "cpu", dtype: str | None = None,
           repeat: int = 10) -> Verification:
    """Confirm ``report`` (the uncollapsed analysis of ``request``) with one real forward pass on
    ``device``; see :mod:`cnnshape.verify`."""
    from .verify import verify as run_verify

    return run_verify(request, report, device=device, dtype=dtype, repeat=repeat)
