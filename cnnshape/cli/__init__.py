"""The typer app: one module per command, each a thin layer over the Python API."""
from __future__ import annotations

import typer

from .graph import graph
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


app.command()(summary)
app.command()(graph)


def main() -> None:
    app()
