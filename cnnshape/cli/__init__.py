"""The typer app: one module per command, each a thin layer over the Python API."""
from __future__ import annotations

import gc

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
    """The ``cnnshape`` command. Once it is done, what it built is left to the OS (:func:`_exiting`)."""
    try:
        app()
    finally:
        _exiting()


def _exiting() -> None:
    """The process ends now: keep the interpreter's last collection away from what the command
    built. A model's module tree, its fx graph and its records are held in reference cycles (the
    analysis pauses the collector, pipeline.no_gc), so the collection at exit would walk and free
    them all: 2-3 s after the table is printed for 5000 residual blocks, ~20% of the whole run
    (docs/performance.md). ``gc.freeze()`` moves every object out of the collector's sight;
    nothing else about the exit changes (atexit handlers run, modules are torn down, objects
    outside cycles are freed as usual). Only the CLI does this: an API caller's process goes on."""
    gc.freeze()
