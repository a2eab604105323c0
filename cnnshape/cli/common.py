"""Options shared by the commands, and the one place where errors become messages and exit codes.

Nothing here imports torch: ``cnnshape --help`` stays fast.
"""
from __future__ import annotations

import sys
import traceback as tb
from collections.abc import Callable
from enum import Enum
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from ..errors import CnnshapeError

T = TypeVar("T")

EXIT_OK, EXIT_FAIL, EXIT_ERROR = 0, 1, 2
DEFAULT_INPUT = "1,3,224,224"


class Format(str, Enum):
    table = "table"
    markdown = "markdown"
    csv = "csv"
    json = "json"


class TableOrJson(str, Enum):
    """``--format`` of the commands that print a table or its JSON (rf, sizes)."""

    table = "table"
    json = "json"


class Tracer(str, Enum):
    auto = "auto"
    fx = "fx"
    eager = "eager"


Spec = Annotated[str, typer.Argument(help="Model: path/to/file.py:Name or package.module:Name.")]
Inputs = Annotated[
    list[str] | None,
    typer.Option("--input", "-i", help="Input shape, e.g. 1,3,224,224 or 1,128:int64. Repeat for several inputs."),
]
Args = Annotated[
    list[str] | None,
    typer.Option("--arg", "-a", help="Constructor/factory argument KEY=VALUE (Python literal). Repeatable."),
]
TracerOpt = Annotated[Tracer, typer.Option("--tracer", help="fx, eager, or auto (fx, falling back to eager).")]
Leaves = Annotated[
    list[str] | None,
    typer.Option("--leaf", help="Keep this module class as one row, e.g. mypkg.blocks.Block. Repeatable."),
]
Depth = Annotated[
    int | None, typer.Option("--depth", "-d", min=1, help="Collapse modules below this depth into one row.")
]
Output = Annotated[str | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")]
Traceback = Annotated[bool, typer.Option("--traceback", help="Show the full Python traceback on errors.")]
Train = Annotated[bool, typer.Option("--train", help="Analyse in training mode (default: eval mode).")]


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def guarded(fn: Callable[[], T], show_traceback: bool) -> T:
    """Run ``fn``; a cnnshape error becomes its message and exit 2, anything else a one-line
    report of an unexpected failure (exit 2). ``--traceback`` adds the Python traceback."""
    try:
        return fn()
    except typer.Exit:
        raise
    except CnnshapeError as e:
        if show_traceback:
            tb.print_exc()
        fail(str(e))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except Exception as e:  # a bug in cnnshape or the model's code that no diagnosis covered
        if show_traceback:
            tb.print_exc()
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        fail(f"unexpected {type(e).__name__}: {first}\n(run again with --traceback for the full trace)")


def parse_inputs(inputs: list[str] | None) -> list[Any]:
    """The ``--input`` values as InputSpecs; one 1x3x224x224 image when none is given."""
    from ..inputs import parse_input

    return [parse_input(text) for text in (inputs or [DEFAULT_INPUT])]


def analyze_from_cli(spec: str, inputs: list[str] | None, args: list[str] | None, tracer: Tracer,
                     leaves: list[str] | None, train: bool = False, depth: int | None = None) -> Any:
    """Parse the shared options and call :func:`cnnshape.analyze` (imports torch)."""
    from ..api import analyze
    from ..load import parse_args

    return analyze(spec, parse_inputs(inputs), args=parse_args(args), tracer=tracer.value,
                   leaves=leaves or (), train=train, depth=depth)


def write_output(text: str, path: str | None) -> None:
    """Print ``text``, or write it to ``path`` atomically."""
    if path is None or path == "-":
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return
    from ..files import atomic_write_text

    atomic_write_text(path, text)
