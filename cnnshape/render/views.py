"""Installs the renderers as the report's views: ``str(report)`` is the table and
``report.to_graphviz()`` the diagram. Loaded by the API, so every report it returns prints itself;
the report module never imports a renderer."""
from __future__ import annotations

from ..report import install_view
from .graphviz import to_digraph
from .table import render_table

install_view("text", render_table)
install_view("graphviz", to_digraph)

# the comparison's views (cnnshape compare): str(comparison) and Jupyter's _repr_html_
from ..comparison import install_view as install_comparison_view  # noqa: E402
from .compare import render_compare_table  # noqa: E402
from .compare_html import render_compare_notebook  # noqa: E402

install_comparison_view("text", render_compare_table)
install_comparison_view("html", render_compare_notebook)
