"""The typer app: one module per command, each a thin layer over the Python API."""
from __future__ import annotations

import typer

from .check import check
from .compare import compare
from .diff import diff
from .graph import graph
from .memory import memory
from .prune import prune
from .report import report
from .rf import rf
from .scan import scan
from .sizes import sizes
from .summary import summary

app = typer.Typer(
    name="cnnshape",
    help="Static analysis of PyTorch CNNs: shapes, parameters, MACs, receptive fields, input sizes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Static analysis of PyTorch CNNs: shapes, parameters, MACs, receptive fields, input sizes."""


for command in (summary, graph, rf, sizes, check, diff, compare, report, prune, memory, scan):
    app.command()(command)


def main() -> None:
    app()
