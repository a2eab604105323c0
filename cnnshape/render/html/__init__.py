"""The report as HTML: the self-contained interactive page (:func:`to_html`, ``cnnshape report``) and
the compact view Jupyter shows inline (:func:`compact_html`, ``Report._repr_html_``)."""
from __future__ import annotations

from .compact import compact_html
from .page import to_html

__all__ = ["compact_html", "to_html"]
