"""Installs the renderers as the report's views: ``str(report)`` is the table,
``report.to_graphviz()`` the diagram, ``report.to_html()`` the interactive page and
``report._repr_html_()`` Jupyter's inline view. Loaded by the API, so every report it returns prints
itself; the report module never imports a renderer. The HTML renderers load on first use."""
from __future__ import annotations

from typing import Any

from ..report import Report, install_view
from .graphviz import to_digraph
from .table import render_table


def _page(report: Report, **options: Any) -> str:
    from .html import to_html

    return to_html(report, **options)


def _compact(report: Report) -> str:
    from .html import compact_html

    return compact_html(report)


install_view("text", render_table)
install_view("graphviz", to_digraph)
install_view("html", _page)
install_view("html_compact", _compact)

# the comparison's views (cnnshape compare): str(comparison) and Jupyter's _repr_html_
from ..comparison import install_view as install_comparison_view  # noqa: E402
from .compare import render_compare_table  # noqa: E402
from .compare_html import render_compare_notebook  # noqa: E402

install_comparison_view("text", render_compare_table)
install_comparison_view("html", render_compare_notebook)
