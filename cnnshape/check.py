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
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:
    from .report import Report

BASELINE_SCHEMA = "cnnshape.baseline/1"
REPORT_SCHEMA = "cnnshape.report/1"

#: figure name -> (unit, Report.totals attribute, human label)
FIGURES: dict[str, tuple[str, str, str]] = {
    "params": ("count", "params", "params"),
    "macs": ("count", "macs", "MACs"),
    "activation_memory": ("bytes", "activation_bytes", "activation memory"),
    "param_memory": ("bytes", "param_bytes", "param memory"),
}
OUTPUT_SHAPE = "output_shape"

Shape = tuple[int, ...]


def label(figure: str) -> str:
    """``"activation_memory"`` -> ``"activation memory"``."""
    return FIGURES[figure][2] if figure in FIGURES else figure.replace("_", " ")


@dataclass(frozen=True)
class Budget:
    figure: str  #: a key of FIGURES
    limit: int

    def __post_init__(self) -> None:
        if self.figure not in FIGURES:
            raise ConfigError(f"unknown figure {self.figure!r}; known: {', '.join(FIGURES)}")
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
        return next(f.value for f in self.figures if f.name == figure)

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
        return 100.0 * self.difference / self.before


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
    return Snapshot(
        model=model or report.model,
        figures=tuple(Figure(name, getattr(t, attr)) for name, (_, attr, _) in FIGURES.items()),
        outputs=tuple(o.shape for o in report.outputs),
        modules=modules,
    )


def snapshot_from_report_dict(data: Mapping[str, Any], where: str) -> Snapshot:
    """A :class:`Snapshot` from a JSON report (schema ``cnnshape.report/1``) at any depth: rows
    are summed by their top-level name; a row whose parameters are shared with an earlier row
    adds none."""
    if not isinstance(data, Mapping) or data.get("schema") != REPORT_SCHEMA:
        raise ConfigError(
            f"{where}: not a cnnshape JSON report (expected \"schema\": \"{REPORT_SCHEMA}\"). "
            "Write one with `cnnshape summary SPEC --format json -o FILE`."
        )
    try:
        totals = data["totals"]
        figures = tuple(Figure(name, int(totals[attr])) for name, (_, attr, _) in FIGURES.items())
        outputs = tuple(tuple(int(d) for d in o["shape"]) for o in data["outputs"])
        sums: dict[str, list[int]] = {}
        for row in data["layers"]:
            if row["kind"] in ("input", "output") or row["depth"] < 1:
                continue
            top = row["name"] if row["depth"] == 1 else row["name"].split(".")[0]
            acc = sums.setdefault(top, [0, 0])
            acc[0] += int(row["params"]) if row.get("shared_with") is None else 0
            acc[1] += int(row["macs"])
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"{where}: malformed cnnshape JSON report ({type(e).__name__}: {e})") from e
    modules = tuple(ModuleFigures(name, p, m) for name, (p, m) in sums.items())
    return Snapshot(str(data.get("model", where)), figures, outputs, modules)


def baseline_to_dict(snapshots: Sequence[Snapshot]) -> dict[str, Any]:
    return {"schema": BASELINE_SCHEMA, "models": {s.model: s.to_dict() for s in snapshots}}


def baseline_from_dict(data: Any, where: str) -> dict[str, Snapshot]:
    """Parse a baseline file's JSON (schema ``cnnshape.baseline/1``) into snapshots by model."""
    if not isinstance(data, dict) or data.get("schema") != BASELINE_SCHEMA:
        raise ConfigError(
            f"{where}: not a cnnshape baseline (expected \"schema\": \"{BASELINE_SCHEMA}\"). "
            "Write one with `cnnshape check --write-baseline FILE`."
        )
    out: dict[str, Snapshot] = {}
    try:
        for name, entry in data["models"].items():
            out[name] = Snapshot(
                model=name,
                figures=tuple(Figure(f, int(entry["figures"][f])) for f in FIGURES if f in entry["figures"]),
                outputs=tuple(tuple(int(d) for d in s) for s in entry.get("outputs", [])),
                modules=tuple(
                    ModuleFigures(m, int(v["params"]), int(v["macs"]))
                    for m, v in entry.get("modules", {}).items()
                ),
            )
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ConfigError(f"{where}: malformed baseline ({type(e).__name__}: {e})") from e
    return out


def check_budgets(snap: Snapshot, budgets: Sequence[Budget],
                  expect_output: Sequence[Shape] | None = None) -> tuple[Result, ...]:
    """One result per budget (in FIGURES order) and one for the expected output shapes."""
    results = []
    for figure in FIGURES:
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
