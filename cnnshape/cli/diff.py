"""``cnnshape diff OLD.json NEW.json``: before/after figures of two JSON reports."""
from __future__ import annotations

from typing import Annotated, Any

import typer

from .common import EXIT_FAIL, Traceback, guarded, write_output


def diff(
    old: Annotated[str, typer.Argument(help="Earlier report: `cnnshape summary ... --format json -o old.json`.")],
    new: Annotated[str, typer.Argument(help="Later report, same schema.")],
    max_growth: Annotated[str | None, typer.Option(
        "--max-growth", help="Exit 1 when a total grows more than this, e.g. 5%.")] = None,
    traceback: Traceback = False,
) -> None:
    """Compare two JSON reports: each total and each top-level module's params and MACs."""

    def run() -> int:
        from .. import check as chk
        from ..render import check as render
        from ..units import parse_percent

        growth = chk.check_growth(parse_percent(max_growth, "--max-growth")) if max_growth is not None else None
        before, after = (chk.snapshot_from_report_dict(_read_json(p), p) for p in (old, new))
        comparison = chk.compare(before, after, growth)
        parts = [render.render_comparison(comparison)]
        if comparison.results:
            parts.append(render.render_text(comparison.results))
        write_output("\n\n".join(parts), None)
        return EXIT_FAIL if chk.failed(comparison.results) else 0

    code = guarded(run, traceback)
    if code:
        raise typer.Exit(code)


def _read_json(path: str) -> Any:
    from ..files import read_json

    return read_json(path, "report")
