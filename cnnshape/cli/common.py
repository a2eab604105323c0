"""Options shared by the commands, and the one place where errors become messages and exit codes.

Nothing here imports torch: ``cnnshape --help`` stays fast.
"""
from __future__ import annotations

import contextlib
import traceback as tb
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

from ..errors import CnnshapeError, speaking
from ..vocab import DEFAULT_INPUT, TRACERS

if TYPE_CHECKING:
    from ..request import Request

T = TypeVar("T")

EXIT_OK, EXIT_FAIL, EXIT_ERROR = 0, 1, 2

#: API parameter -> the flag that sets it: messages from below the CLI name the flag
FLAGS = {
    "inputs": "--input", "args": "--arg", "tracer": "--tracer", "leaves": "--leaf", "depth": "--depth",
    "device": "--device", "dtype": "--dtype", "repeat": "--repeat", "layer": "--layer", "at": "--at",
    "axes": "--axis", "max_growth": "--max-growth", "model": "SPEC",
    "optimizer": "--optimizer", "amp": "--amp", "fits": "--fits",
}


def choice(flag: str, values: tuple[str, ...], help: str, short: str | None = None) -> Any:
    """A ``str`` option that takes one of ``values`` (a vocabulary tuple from :mod:`cnnshape.vocab`)."""
    def check(value: str | None) -> str | None:
        if value is not None and value not in values:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(values)}")
        return value

    names = (flag, short) if short else (flag,)
    return typer.Option(*names, help=help, metavar="[" + "|".join(values) + "]", callback=check)


def format_option(values: tuple[str, ...]) -> Any:
    """``--format/-f`` choosing one of ``values``."""
    return choice("--format", values, "Output format.", "-f")


Spec = Annotated[str, typer.Argument(help="Model: path/to/file.py:Name or package.module:Name.")]
Inputs = Annotated[
    list[str] | None,
    typer.Option("--input", "-i", help="Input shape, e.g. 1,3,224,224 or 1,128:int64; NAME=SHAPE for an input "
                 "passed by keyword, e.g. mask=1,1,224,224. Repeat for several inputs."),
]
Args = Annotated[
    list[str] | None,
    typer.Option("--arg", "-a", help="Constructor/factory argument KEY=VALUE (Python literal). Repeatable."),
]
TracerOpt = Annotated[str, choice("--tracer", TRACERS, "fx, eager, or auto (fx, falling back to eager).")]
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
Timeout = Annotated[float | None, typer.Option(
    "--timeout", metavar="SECONDS",
    help="Stop with exit 2, naming the line it was running, when the model's code (import, construction, "
         "forward; each model's, with check) takes longer than this.")]


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def guarded(fn: Callable[[], T], show_traceback: bool, model: str | None = None, timeout: float | None = None,
            several: bool = False) -> T:
    """Run ``fn`` with the model's code isolated (``isolation.isolated``: its own sys.argv, its
    stdout sent to stderr), then do cnnshape's deferred writes (stdout, ``-o`` files), only if
    ``fn`` succeeded.

    A cnnshape error becomes its message and exit 2; a ``sys.exit`` or ``KeyboardInterrupt`` from
    the model's code a message saying so and exit 2 (cnnshape's own code raises ``typer.Exit``,
    never ``SystemExit``, and the user's Ctrl-C is exit 130); anything else a one-line report of an
    unexpected failure (exit 2). ``--traceback`` adds the Python traceback. ``timeout``: the
    ``--timeout`` limit on ``fn`` (:mod:`.timeout`), also exit 2 with where the code was.

    A command on one ``model`` runs with the cyclic collector paused (the analysis pauses it
    already, pipeline.no_gc): what it leaves in reference cycles (the fx graph, the records) would
    otherwise be walked and freed by the first full collection while the table is rendered (0.5 s
    for 5000 residual blocks), though the process ends right after (cli.main leaves it to the OS).
    A command on ``several`` models (compare) keeps the collector, so one model's garbage is freed
    before the next is built."""
    from . import isolation
    from .timeout import ModelTimeout, time_limit

    argv0 = isolation.model_argv0(model)
    run = isolation.ModelRun(argv0)
    model_done = False
    try:
        paused: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
        if model is not None:
            _import_the_analysis()
            if not several:
                from ..pipeline import no_gc

                paused = no_gc()
        with isolation.isolated(argv0) as run, speaking(FLAGS), time_limit(timeout), paused:
            result = fn()
        model_done = True
        for write in run.after:
            write()
        return result
    except typer.Exit:
        raise
    except CnnshapeError as e:
        if show_traceback:
            tb.print_exc()
        fail(str(e))
    except SystemExit as e:
        if show_traceback:
            tb.print_exc()
        fail(isolation.exit_message(e, argv0))
    except ModelTimeout as e:
        if show_traceback:
            tb.print_exc()
        fail(str(e))
    except KeyboardInterrupt as e:
        if run.interrupted or model_done:  # the user's Ctrl-C
            raise typer.Exit(130) from None
        if show_traceback:
            tb.print_exc()
        fail(isolation.interrupt_message(e))
    except Exception as e:  # a bug in cnnshape or the model's code that no diagnosis covered
        if show_traceback:
            tb.print_exc()
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        fail(f"unexpected {type(e).__name__}: {first}\n(run again with --traceback for the full trace)")


def parse_inputs(inputs: list[str] | None) -> list[Any]:
    """The ``--input`` values as InputSpecs; one 1x3x224x224 image when none is given."""
    from ..inputs import parse_input

    return [parse_input(text) for text in (inputs or [DEFAULT_INPUT])]


def parse_cli_args(args: list[str] | None) -> dict[str, Any]:
    """The ``--arg KEY=VALUE`` values as keyword arguments. Values are read as Python literals
    (``ast.literal_eval``: never evaluated as code); a bare word stays a string. A key given twice,
    or a value too deeply nested or too long to read, is an error naming the ``--arg``."""
    from ..errors import ConfigError
    from ..load import parse_args

    kwargs: dict[str, Any] = {}
    for pair in args or []:
        shown = pair if len(pair) <= 60 else pair[:57] + "..."
        try:
            parsed = parse_args([pair])
        except (MemoryError, RecursionError) as e:
            raise ConfigError(f"--arg {shown!r}: the value is too long or too deeply nested to read as a "
                              f"Python literal ({type(e).__name__}); pass a simpler value") from None
        except (TypeError, ValueError) as e:  # e.g. {{}}: a set of dicts, not a literal
            raise ConfigError(f"--arg {shown!r}: the value is not a valid Python literal ({e})") from None
        for key, value in parsed.items():
            if key in kwargs:
                raise ConfigError(f"--arg {key}=... is given twice; give each constructor argument once")
            kwargs[key] = value
    return kwargs


def _import_the_analysis() -> None:
    """Import torch and the analysis with the cyclic collector paused, then freeze what is alive:
    about 250,000 objects that live as long as the process. Otherwise a full collection comes due
    during these imports and walks all of torch's objects (0.1-0.15 s, a third of a ResNet-50
    summary past ``import torch``), and every later one walks them again. Freezing only moves them
    out of the collector's sight (they were never going to be freed); the command's own objects
    are collected as usual."""
    import gc

    enabled = gc.isenabled()
    gc.disable()
    try:
        from .. import pipeline  # noqa: F401  torch, the tracers, the analyses
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def request_from_cli(spec: str, inputs: list[str] | None, args: list[str] | None, tracer: str,
                     leaves: list[str] | None, train: bool = False, cross_check: bool = False) -> Request:
    """The shared options as one :class:`~cnnshape.request.Request` (torch-free)."""
    from ..request import Request

    return Request.of(spec, parse_inputs(inputs), args=parse_cli_args(args), tracer=tracer, leaves=leaves or (),
                      train=train, cross_check=cross_check or None)


def model_file(spec: str) -> str | None:
    """The file of a ``file.py:Name`` spec (None for ``package.module:Name``)."""
    from ..request import spec_file

    return spec_file(spec)


def check_outputs(outputs: dict[str, str | None], keep: dict[str, str | None]) -> None:
    """Before the analysis: every output path (option -> path) can be a file, none is one of the
    files to ``keep`` (what -> path: the model's source, the config, the baseline), and no two
    options write the same file."""
    import os

    from ..errors import ConfigError
    from ..files import check_writable

    def same(a: str, b: str) -> bool:
        return os.path.realpath(a) == os.path.realpath(b)

    given = [(option, path) for option, path in outputs.items() if path is not None and path != "-"]
    for i, (option, path) in enumerate(given):
        check_writable(path, option)
        for what, kept in keep.items():
            if kept is not None and same(path, kept):
                raise ConfigError(f"{option} {path} is {what}: writing there would overwrite it. Give another file.")
        for other, other_path in given[:i]:
            if same(path, other_path):
                raise ConfigError(f"{other} and {option} name the same file {path}: give each its own.")


def write_output(text: str, path: str | None, what: str = "--output") -> None:
    """Print ``text`` (to the real stdout, after the model's code has run), or write it to
    ``path`` atomically; ``what`` names the option in error messages."""
    from .isolation import after_run, emit

    if path is None or path == "-":
        emit(text if text.endswith("\n") else text + "\n")
        return
    from ..files import atomic_write_text

    after_run(lambda: atomic_write_text(path, text, what))
