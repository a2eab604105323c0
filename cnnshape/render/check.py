"""Check results -> text table, before/after table, JSON, GitHub workflow commands, JUnit XML.

Pure: results in, a string out.
"""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any

from tabulate import tabulate

from ..check import FIGURES, MEMORY_FIGURES, Comparison, Result, Shape, label
from ..units import grouped

_SOURCE_WORD = {"budget": "budget", "expect": "expected", "baseline": "baseline"}


def _shapes(shapes: tuple[Shape, ...]) -> str:
    return ", ".join("x".join(str(d) for d in s) for s in shapes) or "(none)"


def fmt_value(figure: str, value: int | None) -> str:
    """Exact values: counts grouped, memory in bytes."""
    if value is None:
        return "-"
    unit = {**FIGURES, **MEMORY_FIGURES}.get(figure, ("count",))[0]
    return f"{grouped(value)} B" if unit == "bytes" else grouped(value)


def _value(r: Result) -> str:
    return _shapes(r.value) if isinstance(r.value, tuple) else fmt_value(r.figure, r.value)


def _limit(r: Result) -> str:
    if isinstance(r.limit, tuple):
        return _shapes(r.limit)
    text = f"≤ {fmt_value(r.figure, r.limit)}"
    return f"{text} (baseline {fmt_value(r.figure, r.baseline)})" if r.source == "baseline" else text


def _headroom(r: Result) -> str:
    h = r.headroom
    if h is None:
        return ""
    sign = "+" if h >= 0 else "-"
    text = f"{sign}{fmt_value(r.figure, abs(h))}"
    assert isinstance(r.limit, int)
    return f"{text} ({100 * h / r.limit:+.2f}%)" if r.limit else text  # int / int: no float overflow


def _status(r: Result) -> str:
    return "ok" if r.passed else "FAIL"


def _figure(r: Result) -> str:
    name = label(r.figure)
    return f"{name} (growth)" if r.source == "baseline" else name


def message(r: Result) -> str:
    """One sentence for an annotation or a JUnit failure."""
    name = label(r.figure)
    if r.source == "expect":
        verb = "is" if r.passed else "is not"
        return f"{r.model}: output shape {_value(r)} {verb} the expected {_limit(r)}"
    if r.source == "baseline":
        assert isinstance(r.value, int) and isinstance(r.limit, int) and r.baseline is not None
        growth = f"{100 * (r.value - r.baseline) / r.baseline:+.2f}%" if r.baseline else "from 0"
        verb = "within" if r.passed else "exceeds"
        return (f"{r.model}: {name} {fmt_value(r.figure, r.value)} vs baseline "
                f"{fmt_value(r.figure, r.baseline)} ({growth}) {verb} the allowed growth "
                f"(at most {fmt_value(r.figure, r.limit)})")
    verb = "within" if r.passed else "exceeds"
    assert isinstance(r.limit, int)
    return (f"{r.model}: {name} {_value(r)} {verb} the budget of {fmt_value(r.figure, r.limit)} "
            f"(headroom {_headroom(r)})")


def render_text(results: Sequence[Result]) -> str:
    """The short table: model, figure, value, budget, headroom, status, and a verdict line."""
    if not results:
        return "no budgets, expectations or baselines to check"
    several = len({r.model for r in results}) > 1
    rows = [([r.model] if several else []) + [_figure(r), _value(r), _limit(r), _headroom(r), _status(r)]
            for r in results]
    headers = (["Model"] if several else []) + ["Figure", "Value", "Budget", "Headroom", "Status"]
    table = tabulate(rows, headers=headers, disable_numparse=True)
    bad = sum(not r.passed for r in results)
    title = "" if several else f"{results[0].model}\n"
    n = len(results)
    verdict = f"{bad} of {n} checks failed" if bad else ("the check passed" if n == 1 else f"all {n} checks passed")
    return f"{title}{table}\n{verdict}"


def render_comparison(c: Comparison) -> str:
    """Before/after table: totals first, then each top-level module's params and MACs."""
    rows = []
    for ch in c.changes:
        pct = ch.percent
        change = f"{pct:+.2f}%" if pct is not None else ("new" if ch.before is None else
                                                        "removed" if ch.after is None else "")
        diff = ch.difference
        rows.append([ch.scope or "(total)", label(ch.figure), fmt_value(ch.figure, ch.before),
                     fmt_value(ch.figure, ch.after),
                     ("+" if diff > 0 else "") + fmt_value(ch.figure, diff) if diff else "0", change])
    limit = f" (allowed growth {c.max_growth}%)" if c.max_growth is not None else ""
    table = tabulate(rows, headers=["Scope", "Figure", "Before", "After", "Difference", "Change"],
                     disable_numparse=True)
    return f"{c.model}: before/after{limit}\n{table}"


def _result_dict(r: Result) -> dict[str, Any]:
    d: dict[str, Any] = {
        "model": r.model, "figure": r.figure, "source": r.source,
        "value": [list(s) for s in r.value] if isinstance(r.value, tuple) else r.value,
        "limit": [list(s) for s in r.limit] if isinstance(r.limit, tuple) else r.limit,
        "headroom": r.headroom, "passed": r.passed,
    }
    if r.baseline is not None:
        d["baseline"] = r.baseline
    return d


def render_json(results: Sequence[Result], comparisons: Sequence[Comparison] = ()) -> str:
    """Schema ``cnnshape.check/1`` (docs/ci.md)."""
    return json.dumps({
        "schema": "cnnshape.check/1",
        "passed": not any(not r.passed for r in results),
        "results": [_result_dict(r) for r in results],
        "comparisons": [{
            "model": c.model,
            "max_growth": float(c.max_growth) if c.max_growth is not None else None,
            "changes": [{"scope": ch.scope, "figure": ch.figure, "before": ch.before,
                         "after": ch.after, "difference": ch.difference, "percent": ch.percent}
                        for ch in c.changes],
        } for c in comparisons],
    }, indent=2)


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def render_github(results: Sequence[Result]) -> str:
    """GitHub Actions workflow commands: ``::error`` per failure, ``::notice`` per pass."""
    lines = []
    for r in results:
        kind = "notice" if r.passed else "error"
        title = _escape_property(f"cnnshape {r.model}: {_figure(r)} {_status(r)}")
        lines.append(f"::{kind} title={title}::{_escape_data(message(r))}")
    return "\n".join(lines)


def render_junit(results: Sequence[Result]) -> str:
    """JUnit XML: one test suite per model, one test case per checked figure."""
    root = ET.Element("testsuites", name="cnnshape check", tests=str(len(results)),
                      failures=str(sum(not r.passed for r in results)))
    suites: dict[str, ET.Element] = {}
    for r in results:
        if r.model not in suites:
            suites[r.model] = ET.SubElement(root, "testsuite", name=r.model, tests="0", failures="0")
        suite = suites[r.model]
        suite.set("tests", str(int(suite.get("tests", "0")) + 1))
        case = ET.SubElement(suite, "testcase", classname=f"cnnshape.{r.model}", name=_figure(r))
        if not r.passed:
            suite.set("failures", str(int(suite.get("failures", "0")) + 1))
            failure = ET.SubElement(case, "failure", message=message(r), type=r.source)
            failure.text = message(r)
        else:
            ET.SubElement(case, "system-out").text = message(r)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode")
