"""The Python API: ``analyze(model_or_spec, inputs) -> Report``. The CLI is a thin layer over it.

Each function takes what to analyse as a :class:`~cnnshape.request.Request`, or the model and
the request's fields as arguments (``Request.of`` builds it); the work is done by
:mod:`cnnshape.pipeline`. Reports returned here print themselves (the renderers' views are
installed on import).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from . import pipeline
from .analyse.memory.records import MemoryReport
from .analyse.sizes.records import SizeReport
from .comparison import Comparison
from .errors import CnnshapeError, ConfigError, param
from .render import views  # noqa: F401  installs str(report) and report.to_graphviz()
from .report import Report, Verification
from .request import Request
from .vocab import DEFAULT_SHAPE

if TYPE_CHECKING:
    from .prune.records import PrunePlan

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


def compare(
    models: Sequence[Any],
    inputs: Any = None,
    *,
    labels: Sequence[str] | None = None,
    depth: int = 1,
    align: str = "name",
    sizes: bool = True,
    args: Mapping[str, Any] | None = None,
    tracer: str = "auto",
    leaves: Sequence[str | type] = (),
    train: bool = False,
    keep_going: bool = False,
    memory: bool = True,
) -> Comparison:
    """Two or more models side by side (docs/compare.md): their totals with ratios to the first,
    and where the cost goes, stage by stage (the rows collapsed to ``depth``, aligned by ``align``:
    ``"name"`` or ``"position"``).

    Each of ``models`` is a spec (``"examples/vgg.py:VGG16"``; ``"a.py:Net@1,3,227,227"`` gives it
    its own input), an ``nn.Module``, a :class:`Request` (which carries its own inputs and
    options) or a finished, uncollapsed :class:`Report` (compared as it is, without a size
    analysis); ``inputs``, ``args``, ``tracer``, ``leaves`` and ``train`` apply to every model that
    does not carry its own (default input: 1x3x224x224). ``sizes``: also find each model's minimum
    input size (a few more traces per model). Every model is analysed; when any fails, the error
    names each failing model and the ones that worked, unless ``keep_going`` and at least two
    worked: then those are compared and the others listed in ``Comparison.failed``. ``memory``:
    also give each model's inference peak (docs/memory.md; one more meta forward pass per model).
    """
    from .comparison import FailedModel, build_comparison, check_labels, default_labels, split_spec
    from .errors import ConfigError

    if isinstance(models, (str, Request)) or len(models) < 2:
        raise ConfigError(f"{param('models')}: compare needs a list of at least two models")
    if labels is not None:
        check_labels(labels, len(models))
    requests: list[Request | Report] = []
    for i, item in enumerate(models):
        if isinstance(item, (Request, Report)):
            requests.append(item)
            continue
        try:
            own: tuple[str, ...] = ()
            if isinstance(item, str):
                item, own = split_spec(item)
            shapes = own or (inputs if inputs is not None else (DEFAULT_SHAPE,))
            requests.append(Request.of(item, shapes, args=args, tracer=tracer, leaves=leaves, train=train))
        except CnnshapeError as e:  # say which model, the way the analysis failures do
            shown = models[i] if isinstance(models[i], str) else type(models[i]).__name__
            raise type(e)(f"model {i + 1} of {len(models)} ({shown}): {e}") from e
    reports: list[Report] = []
    found: list[SizeReport | str | None] = []
    failures: list[tuple[int, Exception]] = []
    for i, request in enumerate(requests):
        if isinstance(request, Report):  # analysed already: its figures as they are
            reports.append(request)
            found.append(f"not determined: {request.model} was given as a finished report" if sizes else None)
            continue
        try:
            report = pipeline.run_analysis(request)
        except Exception as e:  # each model's failure is reported with the others'
            failures.append((i, e))
            continue
        if memory:  # fails soft: a note, and no peak for that model
            from .memory_run import with_memory

            report = with_memory(request, report)
        reports.append(report)
        found.append(_sizes_or_reason(request) if sizes else None)
    # how messages name each model: as given (with its @inputs), or its request's label
    given = [m if isinstance(m, str) else r.model if isinstance(r, Report) else r.label
             for m, r in zip(models, requests)]
    if failures and (not keep_going or len(requests) - len(failures) < 2):
        raise _compare_failure(given, failures)
    # an image's spatial sizes tell two runs of one model apart; other inputs their whole shape
    shapes_given = [r.inputs[0].shape if r.inputs else () for r in requests]
    shown_inputs = ["x".join(str(d) for d in (shape[2:] if len(shape) > 2 else shape)) for shape in shapes_given]
    names = [r.model if isinstance(r, Report) else r.label for r in requests]
    chosen = tuple(labels) if labels is not None else default_labels(names, shown_inputs)
    bad = {i for i, _ in failures}
    return build_comparison(reports, found, [label for i, label in enumerate(chosen) if i not in bad], depth, align,
                            [FailedModel(i + 1, given[i], _failure_text(e)) for i, e in failures])


def _sizes_or_reason(request: Request) -> SizeReport | str:
    """The model's accepted input sizes by the layer arithmetic, validated by a few re-traces (as
    ``cnnshape sizes --no-symbolic``); a failure here is a reason in the comparison, never a failed
    comparison: the primary numbers stand."""
    try:
        return pipeline.run_sizes(request, symbolic=False)
    except CnnshapeError as e:
        return f"not determined: {e}"
    except Exception as e:  # a bug in the size analysis must not take the comparison down with it
        return f"not determined: cnnshape bug ({type(e).__name__}: {e}); please report it"


def _failure_text(e: Exception) -> str:
    """A cnnshape error's message; anything else said to be unexpected, as the CLI says it."""
    if isinstance(e, CnnshapeError):
        return str(e)
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return (f"unexpected {type(e).__name__}: {first} (a bug in cnnshape, or an error of the model's code that "
            "no diagnosis covers; run again with --traceback for the full trace)")


def _compare_failure(given: Sequence[str], failures: Sequence[tuple[int, Exception]]) -> CnnshapeError:
    """One error naming every model that failed (its position, how it was given and its message)
    and those that worked; of the first failure's class when that is a cnnshape error, so that a
    caller can still tell a load from a shape error; the first failure is its cause."""
    from .comparison import FailedModel

    lines = [FailedModel(i + 1, given[i], _failure_text(e)).text(len(given)) for i, e in failures]
    bad = {i for i, _ in failures}
    good = [text for i, text in enumerate(given) if i not in bad]
    if good:
        lines.append(f"analysed fine: {', '.join(good)}; fix the failing model or leave it out of the comparison")
    first = failures[0][1]
    error = (type(first) if isinstance(first, CnnshapeError) else CnnshapeError)("\n".join(lines))
    error.__cause__ = first
    return error
def prune_plan(
    model: Any,
    inputs: Any = (DEFAULT_SHAPE,),
    *,
    ratio: float | None = None,
    ratios: Mapping[str, float] | str | None = None,
    layers: Sequence[str] = (),
    keep: Sequence[str] = (),
    round_to: int = 1,
    prune_outputs: bool = False,
    args: Mapping[str, Any] | None = None,
    tracer: str = "auto",
    leaves: Sequence[str | type] = (),
) -> PrunePlan:
    """What structured channel pruning would do to ``model`` (docs/prune.md): its dependency
    groups, the channels each keeps at ``ratio`` (default 0.5; ``ratios``: ``{"layer pattern":
    ratio}`` or a TOML/JSON file of them), and the pruned model's params, MACs, memory and shapes
    beside the unpruned ones, measured on a pruned meta copy. ``layers`` / ``keep``: fnmatch
    patterns of the layers whose groups are pruned / left whole; ``round_to``: kept channels are a
    multiple of it; the model's outputs keep their channels unless ``prune_outputs``."""
    from .prune.options import PruneOptions
    from .prune.plan import run_prune

    request = Request.of(model, inputs, args=args, tracer=tracer, leaves=leaves)
    options = PruneOptions.of(ratio, ratios, layers, keep, round_to, prune_outputs)
    return run_prune(request, options)
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
    mark each record pass or fail; ``"inference_memory"``/``"train_memory"`` also run the memory
    analysis (records' ``memory``). ``jobs``: local worker processes (default: the cores);
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
