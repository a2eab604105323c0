"""Budgets and baselines: figures of an analysed model -> pass/fail results. Pure: nothing here
prints, reads files or imports torch.

A *figure* is one total of a :class:`~cnnshape.report.Report`: ``params`` (totals.params),
``macs`` (totals.macs), ``activation_memory`` (totals.activation_bytes) and ``param_memory``
(totals.param_bytes). A budget passes when the figure is *at most* the limit (the limit itself
passes). A baseline comparison fails when a figure grows by *more than* the allowed percentage
of its baseline value (exactly that percentage passes; any growth from 0 fails).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .errors import ConfigError, param
from .report import Report, group_at
from .vocab import BASELINE_SCHEMA, REPORT_SCHEMA

#: figure name -> (unit, Report.totals attribute, human label)
FIGURES: dict[str, tuple[str, str, str]] = {
    "params": ("count", "params", "params"),
    "macs": ("count", "macs", "MACs"),
    "activation_memory": ("bytes", "activation_bytes", "activation memory"),
    "param_memory": ("bytes", "param_bytes", "param memory"),
}
#: figures of ``Report.memory`` (docs/memory.md), there only when the memory analysis ran (a
#: budget on one asks for it): figure name -> (unit, attribute path in ``report.memory``, label)
MEMORY_FIGURES: dict[str, tuple[str, str, str]] = {
    "inference_memory": ("bytes", "inference.peak_bytes", "inference peak memory"),
    "train_memory": ("bytes", "training.peak_bytes", "training step peak memory"),
}
OUTPUT_SHAPE = "output_shape"

Shape = tuple[int, ...]


def label(figure: str) -> str:
    """``"activation_memory"`` -> ``"activation memory"``."""
    known = {**FIGURES, **MEMORY_FIGURES}
    return known[figure][2] if figure in known else figure.replace("_", " ")


@dataclass(frozen=True)
class Budget:
    figure: str  #: a key of FIGURES
    limit: int

    def __post_init__(self) -> None:
        if self.figure not in FIGURES and self.figure not in MEMORY_FIGURES:
            raise ConfigError(f"unknown figure {self.figure!r}; known: {', '.join([*FIGURES, *MEMORY_FIGURES])}")
        if self.limit < 0:
            raise ConfigError(f"budget for {label(self.figure)} is negative ({self.limit})")


@dataclass(frozen=True)
class Figure:
    name: str  #: a key of FIGURES
    value: int


@dataclass(frozen=True)
class ModuleFigures:
    """Params and MACs of one top-level module (a row of ``Report.collapse(1)``)."""

    name: str
    params: int
    macs: int


@dataclass(frozen=True)
class Snapshot:
    """What a check looks at for one model: its figures, output shapes and top-level modules."""

    model: str
    figures: tuple[Figure, ...]
    outputs: tuple[Shape, ...]
    modules: tuple[ModuleFigures, ...] = ()

    def value(self, figure: str) -> int:
        found = [f.value for f in self.figures if f.name == figure]
        if not found:
            raise ConfigError(f"{self.model}: no {label(figure)} was computed (the memory analysis failed or "
                              "was not asked for: see the report's notes)")
        return found[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "figures": {f.name: f.value for f in self.figures},
            "outputs": [list(s) for s in self.outputs],
            "modules": {m.name: {"params": m.params, "macs": m.macs} for m in self.modules},
        }


@dataclass(frozen=True)
class Result:
    """One checked figure of one model.

    ``source`` is ``"budget"`` (value against a limit), ``"expect"`` (output shapes against the
    expected ones) or ``"baseline"`` (value against ``baseline`` grown by the allowed percentage,
    ``limit`` being the largest value that passes).
    """

    model: str
    figure: str
    source: str
    value: int | tuple[Shape, ...]
    limit: int | tuple[Shape, ...]
    passed: bool
    baseline: int | None = None

    @property
    def headroom(self) -> int | None:
        """``limit - value`` for numeric figures (negative when over), None for shapes."""
        if isinstance(self.value, int) and isinstance(self.limit, int):
            return self.limit - self.value
        return None


@dataclass(frozen=True)
class Change:
    """One before/after row of a comparison: a total (``scope`` ``""``) or a top-level module."""

    scope: str
    figure: str
    before: int | None  #: None: not in the baseline
    after: int | None  #: None: gone from the current model

    @property
    def difference(self) -> int:
        return (self.after or 0) - (self.before or 0)

    @property
    def percent(self) -> float | None:
        """Growth in percent of ``before``; None where there is no non-zero ``before``."""
        if not self.before or self.after is None:
            return None
        return 100 * self.difference / self.before  # int / int: exact for any size of figure


@dataclass(frozen=True)
class Comparison:
    model: str
    changes: tuple[Change, ...]
    results: tuple[Result, ...]  #: one per total when a growth limit was given, else empty
    max_growth: Decimal | None


def snapshot(report: Report, model: str | None = None) -> Snapshot:
    """The figures of a finished report; modules from ``report.collapse(1)``."""
    t = report.totals
    modules = tuple(
        ModuleFigures(row.name, row.new_params, row.macs)
        for row in report.collapse(1).layers
        if row.depth == 1 and row.kind not in ("input", "output")
    )
    figures = [Figure(name, getattr(t, attr)) for name, (_, attr, _) in FIGURES.items()]
    for name, (_, path, _) in MEMORY_FIGURES.items():
        value: Any = report.memory
        for attr in path.split("."):
            value = getattr(value, attr, None)
        if isinstance(value, int):
            figures.append(Figure(name, value))
    return Snapshot(
        model=model or report.model,
        figures=tuple(figures),
        outputs=tuple(o.shape for o in report.outputs),
        modules=modules,
    )


#: the largest figure a file may hold: torch counts elements and bytes in int64
MAX_FIGURE = 2**63 - 1
#: the largest --max-growth, in percent: beyond it a growth limit checks nothing
MAX_GROWTH = Decimal(10**6)


_MISSING: Any = object()  #: a key a file does not have


def _count(value: Any, what: str) -> int:
    """``value`` if it is a whole number in 0..MAX_FIGURE (not a bool, float or string), else a
    ConfigError saying what ``what`` holds."""
    if type(value) is not int or not 0 <= value <= MAX_FIGURE:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        kind = "missing" if value is _MISSING else f"{shown}, not a non-negative integer"
        raise ConfigError(f"{what} is {kind}")
    return value


def _table(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{what} must be a JSON object, not {'missing' if value is _MISSING else repr(value)}")
    return value


def _shapes_of(value: Any, what: str) -> tuple[Shape, ...]:
    if not isinstance(value, list):
        raise ConfigError(f"{what} must be a list of shapes such as [[1, 1000]], not {value!r}")
    shapes = []
    for i, shape in enumerate(value):
        if not isinstance(shape, list):
            raise ConfigError(f"{what}[{i}] must be a list of sizes such as [1, 1000], not {shape!r}")
        shapes.append(tuple(_count(d, f"{what}[{i}][{j}]") for j, d in enumerate(shape)))
    return tuple(shapes)


def snapshot_from_report_dict(data: Mapping[str, Any], where: str) -> Snapshot:
    """A :class:`Snapshot` from a JSON report (schema ``cnnshape.report/1``) at any depth: rows
    are summed by their top-level name; a row whose parameters are shared with an earlier row
    adds none. Every figure it reads must be a non-negative integer."""
    if not isinstance(data, Mapping) or data.get("schema") != REPORT_SCHEMA:
        found = data.get("schema") if isinstance(data, Mapping) else None
        hint = (" It is a baseline: compare a model with it by `cnnshape check SPEC --baseline FILE`."
                if found == BASELINE_SCHEMA else "")
        raise ConfigError(
            f"{where}: not a cnnshape JSON report (expected \"schema\": \"{REPORT_SCHEMA}\"). "
            f"Write one with `cnnshape summary SPEC --format json -o FILE`.{hint}"
        )
    fix = " Write the report again with `cnnshape summary SPEC --format json -o FILE`."
    try:
        totals = _table(data.get("totals", _MISSING), f"{where}: 'totals'")
        figures = tuple(Figure(name, _count(totals.get(attr, _MISSING), f"{where}: totals.{attr}"))
                        for name, (_, attr, _) in FIGURES.items())
        outputs = tuple(_shapes_of([_table(o, f"{where}: outputs[{i}]").get("shape", _MISSING)
                                    for i, o in enumerate(data["outputs"])], f"{where}: outputs' shape"))
        sums: dict[str, list[int]] = {}
        layers = data["layers"]
        if not isinstance(layers, list):
            raise ConfigError(f"{where}: 'layers' must be a list of rows, not {layers!r}")
        for i, row in enumerate(layers):
            row = _table(row, f"{where}: layers[{i}]")
            name = row["name"]
            if not isinstance(name, str) or type(row["depth"]) is not int:
                raise ConfigError(f"{where}: layers[{i}]: 'name' must be a string and 'depth' an integer")
            if row["kind"] in ("input", "output") or row["depth"] < 1:
                continue
            top = group_at(name, 1)
            acc = sums.setdefault(top, [0, 0])
            params = _count(row["params"], f"{where}: layers[{i}] ({name}).params")
            acc[0] += params if row.get("shared_with") is None else 0
            acc[1] += _count(row["macs"], f"{where}: layers[{i}] ({name}).macs")
    except ConfigError as e:
        raise ConfigError(f"{e}.{fix}") from None
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"{where}: malformed cnnshape JSON report ({type(e).__name__}: {e}).{fix}") from e
    modules = tuple(ModuleFigures(name, p, m) for name, (p, m) in sums.items())
    return Snapshot(str(data.get("model", where)), figures, outputs, modules)


def baseline_to_dict(snapshots: Sequence[Snapshot]) -> dict[str, Any]:
    return {"schema": BASELINE_SCHEMA, "models": {s.model: s.to_dict() for s in snapshots}}


def baseline_from_dict(data: Any, where: str) -> dict[str, Snapshot]:
    """Parse a baseline file's JSON (schema ``cnnshape.baseline/1``) into snapshots by model.

    Every model must have all of FIGURES, each a non-negative integer (not 3.7, true or -5), and
    its outputs and modules must be well-formed; otherwise a ConfigError names the file, the model
    and the figure. A figure left out is never silently not compared."""
    if not isinstance(data, dict) or data.get("schema") != BASELINE_SCHEMA:
        raise ConfigError(
            f"{where}: not a cnnshape baseline (expected \"schema\": \"{BASELINE_SCHEMA}\"). "
            "Write one with `cnnshape check --write-baseline FILE`."
        )
    fix = " Record the baseline again with `cnnshape check --write-baseline FILE`."
    models = data.get("models", _MISSING)
    if not isinstance(models, dict):
        raise ConfigError(f"{where}: 'models' must be a JSON object of models, not "
                          f"{'missing' if models is _MISSING else repr(models)}.{fix}")
    out: dict[str, Snapshot] = {}
    try:
        for name, entry in models.items():
            at = f"{where}: model {name!r}"
            entry = _table(entry, at)
            figures = _table(entry.get("figures", _MISSING), f"{at}: 'figures'")
            modules = _table(entry.get("modules", {}), f"{at}: 'modules'")
            out[name] = Snapshot(
                model=name,
                figures=tuple(Figure(f, _count(figures.get(f, _MISSING), f"{at}: figure {f!r}"))
                              for f in [*FIGURES, *(m for m in MEMORY_FIGURES if m in figures)]),
                outputs=_shapes_of(entry.get("outputs", []), f"{at}: outputs"),
                modules=tuple(
                    ModuleFigures(m, *(_count(_table(v, f"{at}: module {m!r}").get(k, _MISSING),
                                              f"{at}: module {m!r} {k!r}") for k in ("params", "macs")))
                    for m, v in modules.items()
                ),
            )
    except ConfigError as e:
        raise ConfigError(f"{e}.{fix}") from None
    return out


def check_growth(max_growth: Decimal) -> Decimal:
    """``max_growth`` (percent, already non-negative) if at most MAX_GROWTH."""
    if max_growth > MAX_GROWTH:
        flag = param("max_growth")
        raise ConfigError(f"{flag} {max_growth}%: a growth limit above {MAX_GROWTH:,}% checks nothing; give a "
                          f"percentage such as 5%, or leave {flag} out to only show the before/after table")
    return max_growth


def check_budgets(snap: Snapshot, budgets: Sequence[Budget],
                  expect_output: Sequence[Shape] | None = None) -> tuple[Result, ...]:
    """One result per budget (in FIGURES order) and one for the expected output shapes."""
    results = []
    for figure in [*FIGURES, *MEMORY_FIGURES]:
        for b in budgets:
            if b.figure == figure:
                value = snap.value(figure)
                results.append(Result(snap.model, figure, "budget", value, b.limit, value <= b.limit))
    if expect_output is not None:
        expected = tuple(tuple(s) for s in expect_output)
        results.append(Result(snap.model, OUTPUT_SHAPE, "expect", snap.outputs, expected,
                              snap.outputs == expected))
    return tuple(results)


def allowed_growth(before: int, max_growth: Decimal) -> int:
    """The largest value that is at most ``max_growth`` percent above ``before``."""
    return int((Decimal(before) * (100 + max_growth) / 100).to_integral_value(rounding="ROUND_FLOOR"))


def compare(before: Snapshot, after: Snapshot, max_growth: Decimal | None = None) -> Comparison:
    """Before/after rows for every total and every top-level module's params and MACs; with
    ``max_growth`` (percent), one result per total that fails when it grew by more than that."""
    changes: list[Change] = []
    results: list[Result] = []
    old = {f.name: f.value for f in before.figures}
    for fig in after.figures:
        changes.append(Change("", fig.name, old.get(fig.name), fig.value))
        if max_growth is not None and fig.name in old:
            limit = allowed_growth(old[fig.name], max_growth)
            results.append(Result(after.model, fig.name, "baseline", fig.value, limit,
                                  fig.value <= limit, baseline=old[fig.name]))
    old_modules = {m.name: m for m in before.modules}
    new_modules = {m.name: m for m in after.modules}
    for name in [*new_modules, *(n for n in old_modules if n not in new_modules)]:
        o, n = old_modules.get(name), new_modules.get(name)
        for figure in ("params", "macs"):
            changes.append(Change(name, figure,
                                  getattr(o, figure) if o else None, getattr(n, figure) if n else None))
    return Comparison(after.model, tuple(changes), tuple(results), max_growth)


def failed(results: Sequence[Result]) -> bool:
    return any(not r.passed for r in results)
