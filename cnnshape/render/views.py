"""Installs the renderers as the report's views: ``str(report)`` is the table and
``report.to_graphviz()`` the diagram. Loaded by the API, so every report it returns prints itself;
the report module never imports a renderer."""
from __future__ import annotations

from ..report import install_view
from .graphviz import to_digraph
from .table import render_table

install_view("text", render_table)
install_view("graphviz", to_digraph)
