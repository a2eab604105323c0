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
from .analyse.sizes.records import SizeReport
from .errors import ConfigError
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
    """
    request = Request.of(model, inputs, args=args, tracer=tracer, leaves=leaves, train=train,
                         cross_check=cross_check, formulas=formulas)
    return pipeline.run_analysis(request, depth)


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


def scan(
    models: Any = None,
    *,
    space: str | None = None,
    specs_file: str | None = None,
    inputs: Any = None,
    args: Mapping[str, Any] | None = None,
    output: str | None = None,
    budgets: Mapping[str, int | str] | None = None,
    jobs: int | None = None,
    timeout: float | None = None,
    tracer: str = "auto",
    minimum: bool = True,
    cluster: Any = None,
    progress: bool = False,
) -> list[Any]:
    """Analyse many models in worker processes; one :class:`~cnnshape.scanner.records.ScanRecord` each
    (docs/scan.md). What to scan: ``models`` (spec strings, ``(name, model_or_factory_or_spec[,
    inputs])`` tuples or a mapping name -> model), a ``specs_file`` (one spec a line, with
    ``--input``/``--arg``/``--name``), and/or a ``space`` (``"space.py:candidates"``, a function
    yielding such tuples). ``inputs`` and ``args``: the defaults. ``output``: a JSONL file the
    records are appended to as they finish; models already in it are skipped (resume).
    ``budgets``: ``{"params": "5M", "macs": "600M", "activation_memory": ..., "param_memory": ...}``
    mark each record pass or fail. ``jobs``: local worker processes (default: the cores);
    ``cluster``: a Dask scheduler address (``"tcp://host:8786"``) or ``Client`` instead.
    ``timeout``: seconds per model. Returns every record of ``output`` (old and new), or the new ones."""
    from .scanner import sources
    from .scanner.engine import run_scan
    from .scanner.settings import ScanSettings, budgets_from

    if models is None and space is None and specs_file is None:
        raise ConfigError("give the models to scan: models=[...], specs_file= or space=")
    settings = ScanSettings(budgets_from(budgets), timeout, tracer, minimum)
    tasks: list[Any] = []
    if models is not None:
        listed = [models] if isinstance(models, str) else models
        tasks += sources.from_specs(listed, inputs, args) if args else sources.from_objects(listed, inputs)
    if specs_file is not None:
        tasks += sources.from_file(specs_file, inputs, args)
    if space is not None:
        tasks += sources.from_space(space, inputs)
    return run_scan(tasks, settings, output=output, jobs=jobs, cluster=cluster, progress=progress)
