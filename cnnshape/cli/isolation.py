"""Running the model's code without letting it take over the command.

cnnshape executes the model's file (its import, ``__init__`` and ``forward``) the way pytest
executes a test file. While that code runs, :func:`isolated`:

* gives it a ``sys.argv`` of its own (``[model file]``), so a file that parses arguments at import
  sees none of cnnshape's and gets its defaults;
* sends everything written to stdout (``print``, ``sys.stdout``, ``sys.__stdout__``, C code writing
  to file descriptor 1) to stderr, so that stdout carries only cnnshape's own output; that output,
  and every file cnnshape writes, is deferred with :func:`after_run` until the model's code is done
  (so ``-o /dev/stdout`` is the real stdout, and a run that fails writes nothing);
* records whether a ``KeyboardInterrupt`` came from the user's Ctrl-C (a real SIGINT) or from the
  model's code raising it.

Isolation, not a sandbox: the model's code can still do whatever Python code can (docs/security.md).
Nothing here imports torch.
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import sysconfig
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

import typer

_PACKAGE_DIR = str(Path(__file__).resolve().parent.parent)


class ModelRun:
    """The state of one isolated run: cnnshape's deferred writes and whether Ctrl-C was pressed."""

    def __init__(self, argv0: str) -> None:
        self.argv0 = argv0
        self.after: list[Callable[[], object]] = []  #: writes to do once the model's code is done
        self.interrupted = False  #: a real SIGINT arrived while the run was active


_current: ModelRun | None = None


def model_argv0(spec: str | None) -> str:
    """What ``sys.argv[0]`` would be if the model were run as a script: its file, or its module."""
    if not spec:
        return "model"
    where, sep, _ = spec.rpartition(":")
    return where if sep and where else spec


def after_run(action: Callable[[], object]) -> None:
    """Do ``action`` (write cnnshape's output to stdout or a file) once the model's code is done
    and stdout is the real one again: deferred inside :func:`isolated`, else at once."""
    if _current is not None:
        _current.after.append(action)
    else:
        action()


def emit(text: str) -> None:
    """Write cnnshape's own ``text`` to the real stdout (see :func:`after_run`). When the reader has
    gone (``cnnshape ... | head``), stop quietly with 141, as a tool killed by SIGPIPE does."""
    def write() -> None:
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except BrokenPipeError:
            with contextlib.suppress(OSError, ValueError):  # no second error when Python flushes at exit
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(141) from None

    after_run(write)


@contextlib.contextmanager
def model_scope(spec: str) -> Iterator[None]:
    """One model of several (``cnnshape check`` with a config): ``sys.argv`` is ``[its file]``
    inside, and the working folder is restored after it, in case its code changed it."""
    saved, cwd = sys.argv, os.getcwd()
    sys.argv = [model_argv0(spec)]
    try:
        yield
    finally:
        sys.argv = saved
        _chdir_back(cwd)


def _chdir_back(cwd: str) -> None:
    """Return to ``cwd``: relative output paths and config paths mean what they meant before the
    model's code ran (it may ``os.chdir``)."""
    with contextlib.suppress(OSError):
        if os.getcwd() != cwd:
            os.chdir(cwd)


@contextlib.contextmanager
def isolated(argv0: str) -> Iterator[ModelRun]:
    """Run the body with the model's code isolated (see the module docstring). On exit, sys.argv,
    stdout, the working folder and the SIGINT handler are restored; the deferred writes are left in ``run.after``."""
    global _current
    run = ModelRun(argv0)
    saved_argv, saved_stdout, outer, cwd = sys.argv, sys.stdout, _current, os.getcwd()
    saved_fd = _redirect_stdout_fd()
    restore_sigint = _watch_sigint(run)
    sys.argv = [argv0]
    sys.stdout = sys.stderr
    _current = run
    try:
        yield run
    finally:
        _current = outer
        sys.argv = saved_argv
        sys.stdout = saved_stdout
        _chdir_back(cwd)
        _restore_stdout_fd(saved_fd)
        restore_sigint()


def _redirect_stdout_fd() -> tuple[int, int] | None:
    """Point stdout's file descriptor at stderr's (for C code and ``sys.__stdout__``); returns
    (stdout's fd, a copy of the original) or None where stdout is not a real file (CliRunner)."""
    try:
        sys.stdout.flush()
        out_fd, err_fd = sys.stdout.fileno(), sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
        return None
    if out_fd == err_fd:
        return None
    saved = os.dup(out_fd)
    os.dup2(err_fd, out_fd)
    return out_fd, saved


def _restore_stdout_fd(saved: tuple[int, int] | None) -> None:
    if saved is None:
        return
    _flush_c_stdio()
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.flush()
    out_fd, copy = saved
    os.dup2(copy, out_fd)
    os.close(copy)


def _flush_c_stdio() -> None:
    """Flush C's stdio buffers, so what C code printed during the run lands on stderr too."""
    try:
        import ctypes

        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError, TypeError):  # no C library to flush (Windows, odd builds)
        pass


def _watch_sigint(run: ModelRun) -> Callable[[], object]:
    """Install a SIGINT handler that records a real Ctrl-C; returns the function that restores
    Python's default handler (a no-op where SIGINT is not Python's default: ignored, handled by
    an embedding program, or outside the main thread, where handlers cannot be set)."""
    def on_sigint(signum: int, frame: FrameType | None) -> None:
        run.interrupted = True
        raise KeyboardInterrupt

    try:
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            return lambda: None  # SIGINT ignored (a background job) or handled by the embedding program
        signal.signal(signal.SIGINT, on_sigint)
    except ValueError:  # not the main thread
        return lambda: None
    return lambda: signal.signal(signal.SIGINT, signal.default_int_handler)


# ---------------------------------------------------------------- explaining a model's exit

def library_dirs() -> tuple[str, ...]:
    dirs = [_PACKAGE_DIR, sysconfig.get_paths()["stdlib"]]
    for name in ("torch", "typer", "click"):
        module = sys.modules.get(name)
        if module is not None and getattr(module, "__file__", None):
            dirs.append(str(Path(module.__file__).resolve().parent))  # type: ignore[arg-type]  # checked above
    return tuple(dirs)


def _model_frame(exc: BaseException) -> traceback.FrameSummary | None:
    """The innermost frame of ``exc``'s traceback in the model's code (not cnnshape, torch or the
    standard library)."""
    skip = library_dirs()
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        name = frame.filename
        if name.startswith("<") or str(Path(name).resolve()).startswith(skip):
            continue
        return frame
    return None


def _at(exc: BaseException) -> str:
    frame = _model_frame(exc)
    if frame is None:
        return ""
    line = f": {frame.line.strip()}" if frame.line else ""
    return f" at {frame.filename}:{frame.lineno}{line}"


def exit_message(exc: SystemExit, argv0: str) -> str:
    """Why the run stopped when the model's code raised ``SystemExit`` (``sys.exit``, ``exit()``,
    an argparse error)."""
    files = [f.filename for f in traceback.extract_tb(exc.__traceback__)]
    code = f"SystemExit({exc.code!r})" if exc.code is not None else "SystemExit()"
    if any(Path(f).name == "argparse.py" for f in files):
        return (f"the model's code parsed command-line arguments and exited ({code}, argparse){_at(exc)}.\n"
                f"While model code runs, sys.argv is [{argv0!r}]: cnnshape's own arguments are not "
                "passed on. Give the model's options defaults, or parse arguments only under "
                "`if __name__ == \"__main__\":`.")
    return (f"the model's code called sys.exit ({code}){_at(exc)}, so nothing was analysed.\n"
            "cnnshape runs the model's code (its import, __init__ and forward) to analyse it: remove "
            "the call, or move it under `if __name__ == \"__main__\":`.")


def interrupt_message(exc: KeyboardInterrupt) -> str:
    """The model's code raised KeyboardInterrupt itself (no Ctrl-C was pressed)."""
    return (f"the model's code raised KeyboardInterrupt{_at(exc)} (no Ctrl-C was pressed), so nothing "
            "was analysed. Remove the raise from the model's import, __init__ and forward.")
