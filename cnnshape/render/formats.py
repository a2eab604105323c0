"""Format name -> renderer."""
from __future__ import annotations

from collections.abc import Callable

from ..report import Report
from .json import render_json
from .table import render_csv, render_markdown, render_table

RENDERERS: dict[str, Callable[[Report], str]] = {
    "table": render_table,
    "markdown": render_markdown,
    "csv": render_csv,
    "json": render_json,
}


def render(report: Report, fmt: str) -> str:
    return RENDERERS[fmt](report)
