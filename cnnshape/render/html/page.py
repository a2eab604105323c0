"""The self-contained HTML page of a report: the diagram's SVG, the data and the page's own CSS and
script inlined into one file that opens offline (docs/report.md).

The template, style sheet and script are package data beside this module. A Content-Security-Policy
meta tag forbids every fetch (``default-src 'none'``), so the page cannot reach the network even if
a label said so.
"""
from __future__ import annotations

import base64
import gzip
import html
import json
import re
import shutil
from importlib import resources
from typing import Any

from ...analyse.sizes.records import SizeReport
from ...errors import ConfigError, EnvironmentFault
from ...report import Report
from ...vocab import COLOR_BY, RANKDIRS
from ..graphviz import render_graph, to_digraph
from .data import page_data

#: forbids every network request; inline script and style only, images only as data: URIs
CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; "
       "base-uri 'none'; form-action 'none'")

#: what the page says in the diagram's place when Graphviz is missing (docs/report.md)
NO_DOT = (
    '<div class="nodiagram"><b>No diagram:</b> the Graphviz <code>dot</code> program was not installed on '
    "the machine that wrote this page. Install it (<code>apt-get install graphviz</code> on Debian/Ubuntu, "
    "<code>brew install graphviz</code> on macOS, <code>conda install -c conda-forge graphviz</code>) and run "
    "<code>cnnshape report</code> again to get the diagram. Everything else on the page is complete.</div>"
)


def asset(name: str) -> str:
    """A file shipped beside this module (page.html, page.css, page.js, compact.css)."""
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def diagram_svg(report: Report, rankdir: str = "TB") -> tuple[str | None, str | None]:
    """(the diagram as inline SVG, None), or (None, why there is none): Graphviz's ``dot`` missing
    or failing takes the diagram away, never the page."""
    try:
        svg = render_graph(to_digraph(report, rankdir=rankdir), "svg").decode("utf-8")
    except EnvironmentFault as e:
        return None, str(e)
    except Exception as e:  # a bug in the drawing never takes the table and the figures down
        return None, f"cnnshape bug drawing the diagram ({type(e).__name__}: {e}); please report it"
    svg = svg[svg.index("<svg"):]  # no XML prolog or doctype inside HTML
    return re.sub(r"<!--.*?-->\s*", "", svg, flags=re.S), None


def diagrams(report: Report, rankdir: str = "TB") -> tuple[dict[str, str], str | None]:
    """The diagram at every depth the page offers ("0": every row; "1".."k": modules below depth d
    drawn as one node), each SVG gzipped and base64-encoded (ResNet-50: 262 KB of SVG becomes 48 KB);
    or ({}, why there is none)."""
    deepest = max((layer.depth for layer in report.layers), default=1)
    found: dict[str, str] = {}
    for depth in (0, *range(1, deepest)):
        svg, why = diagram_svg(report.collapse(depth or None), rankdir)
        if svg is None:
            return {}, why
        found[str(depth)] = base64.b64encode(gzip.compress(svg.encode("utf-8"), 9, mtime=0)).decode("ascii")
    return found, None


def script_json(data: Any) -> str:
    """JSON safe inside a <script> element: no "</script>" or "<!--" can end or bend it."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _fill(template: str, parts: dict[str, str]) -> str:
    """``@@NAME@@`` markers replaced in one pass (what is inserted is never scanned again)."""
    return re.sub(r"@@([A-Z_]+)@@", lambda m: parts[m.group(1)], template)


def to_html(report: Report, sizes: SizeReport | str | None = None, color_by: str = "macs",
            rankdir: str = "TB") -> str:
    """The interactive page: diagram, per-layer table, details, totals and notes in one HTML file.

    ``sizes``: the accepted input sizes (a :class:`SizeReport` from ``cnnshape.sizes``), or a
    message saying why there is none; the report's own note on sizes is shown otherwise.
    ``color_by``: the cost the diagram's nodes are coloured by at first (the page can switch)."""
    if color_by not in COLOR_BY:
        raise ConfigError(f"color_by must be one of {', '.join(COLOR_BY)}, got {color_by!r}")
    if rankdir not in RANKDIRS:
        raise ConfigError(f"rankdir must be one of {', '.join(RANKDIRS)}, got {rankdir!r}")
    data = page_data(report, sizes, color_by)
    data["diagrams"], no_diagram = diagrams(report, rankdir)
    diagram = '<p class="hint">Unpacking the diagram…</p>'
    if no_diagram is not None:
        diagram = f'<div class="nodiagram"><b>No diagram:</b> {html.escape(no_diagram)}</div>'
        if shutil.which("dot") is None:
            diagram = NO_DOT
    return _fill(asset("page.html"), {
        "CSP": html.escape(CSP),
        "TITLE": html.escape(f"{report.model} · cnnshape report"),
        "CSS": asset("page.css"),
        "SVG": diagram,
        "DATA": script_json(data),
        "JS": asset("page.js"),
    })
