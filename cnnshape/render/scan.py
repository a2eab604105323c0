"""Scan records -> a table, CSV, and the one-line count. Pure: records in, a string out."""
from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Sequence

from tabulate import tabulate

from ..check import FIGURES, MEMORY_FIGURES, label
from ..scanner.records import ScanRecord
from ..units import binary_bytes, si

CSV_COLUMNS = ("name", "status", "params", "macs", "flops", "activation_bytes", "param_bytes", "complete",
               "outputs", "minimum", "tracer", "duration_s", "violations", "error_kind", "error")


def _shapes(shapes: Sequence[tuple[int, ...]]) -> str:
    return ", ".join("x".join(map(str, s)) for s in shapes)


def _minimum(r: ScanRecord) -> str:
    return " ".join(f"{axis}≥{'?' if size is None else size}" for axis, size in r.minimum)


def _amount(figure: str, value: float) -> str:
    unit = {**FIGURES, **MEMORY_FIGURES}.get(figure, ("count",))[0]
    return binary_bytes(int(value)) if unit == "bytes" else si(value)


def _why(r: ScanRecord) -> str:
    if r.error is not None:
        first = r.error.splitlines()[0]
        return f"{r.error_kind}: {first if len(first) <= 100 else first[:97] + '...'}"
    return "; ".join(f"{label(v.figure)} {_amount(v.figure, v.value)} > {_amount(v.figure, v.limit)}"
                     for v in r.violations)


def _memory_figures(records: Sequence[ScanRecord]) -> list[str]:
    """The memory figures some record holds (a memory budget ran the analysis), in
    ``check.MEMORY_FIGURES`` order: a column each; none for a scan without memory budgets."""
    held = {figure for r in records for figure, _ in (r.memory or ())}
    return [figure for figure in MEMORY_FIGURES if figure in held]


#: the table's column for each memory figure
_MEMORY_HEADERS = {"inference_memory": "inference peak", "train_memory": "train peak"}


def _memory(r: ScanRecord, figure: str, text: bool) -> str:
    value = dict(r.memory or ()).get(figure)
    if value is None:
        return "-" if text else ""
    return binary_bytes(value) if text else str(value)


def _count(r: ScanRecord, key: str) -> str:
    value = r.total(key)
    if value is None:
        return "-"
    text = binary_bytes(value) if key.endswith("bytes") else si(value)
    return text + ("+" if key in ("macs", "flops") and not r.total("complete") else "")


def render_table(records: Sequence[ScanRecord]) -> str:
    """One row per record; MACs marked + where some op had no formula (a lower bound)."""
    memory = _memory_figures(records)
    rows = [[r.name, r.status, _count(r, "params"), _count(r, "macs"), _count(r, "activation_bytes"),
             *(_memory(r, figure, text=True) for figure in memory),
             _shapes(r.outputs), _minimum(r), r.tracer or "-", f"{r.duration_s:.2f}", _why(r)] for r in records]
    headers = ["model", "status", "params", "MACs", "activations", *(_MEMORY_HEADERS[f] for f in memory),
               "output", "min input", "tracer", "s", "why"]
    return tabulate(rows, headers=headers, disable_numparse=True)


def render_csv(records: Sequence[ScanRecord]) -> str:
    """Exact figures, one row per record; the memory peaks (bytes) in columns after the others when
    a memory budget ran the analysis."""
    memory = _memory_figures(records)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow((*CSV_COLUMNS, *memory))
    for r in records:
        totals = [r.total(k) for k in ("params", "macs", "flops", "activation_bytes", "param_bytes", "complete")]
        writer.writerow([r.name, r.status, *("" if v is None else v for v in totals), _shapes(r.outputs),
                         _minimum(r), r.tracer or "", f"{r.duration_s:.4f}",
                         "; ".join(f"{v.figure}>{v.limit}" for v in r.violations), r.error_kind or "", r.error or "",
                         *(_memory(r, figure, text=False) for figure in memory)])
    return out.getvalue()


def render_counts(records: Sequence[ScanRecord], new: int, output: str | None) -> str:
    """``15625 models: 15000 pass, 600 fail, 25 error (30 new; results in r.jsonl)``."""
    counts = Counter(r.status for r in records)
    kinds = Counter(r.error_kind for r in records if r.error_kind)
    parts = [f"{counts[s]} {s}" for s in ("pass", "fail", "error") if counts[s]]
    detail = f" ({', '.join(f'{n} {k}' for k, n in kinds.items())})" if kinds else ""
    where = f"; results in {output}" if output else ""
    return f"{len(records)} model(s): {', '.join(parts) or 'none'}{detail} ({new} analysed now{where})"
