"""``--timeout SECONDS``: stop a run whose model code does not finish (a ``while True`` in forward).

Two mechanisms, because Python can only interrupt Python code:

* ``SIGALRM`` (POSIX, main thread): an interval timer whose handler raises :class:`ModelTimeout` in
  the main thread, at the line the model's code is executing. It is a ``BaseException``, so model
  code that catches ``Exception`` does not swallow it, and the timer fires again every second in
  case the model's code catches everything. The run ends through cnnshape's normal error path:
  exit 2, nothing on stdout, no file written.
* a watchdog thread, for code the signal cannot interrupt (C code that never returns to Python, a
  model that catches the exception) and for platforms without SIGALRM: after the limit (plus a
  grace period where the signal had its chance), it reads the main thread's frame with
  ``sys._current_frames()``, writes the message to stderr and ends the process with exit code 2
  (``os._exit``: nothing else can stop code that never returns to Python).
* a last resort in C, for C code that holds the interpreter lock (``sum(itertools.repeat(0))``),
  where no Python thread can run: ``faulthandler`` prints the main thread's Python stack, and a
  POSIX timer (``timer_create`` with ``SIGEV_THREAD``, through ctypes) calls ``_exit(2)`` from a
  thread of its own. Where that timer is missing, faulthandler itself ends the process (exit 1).

Nothing here imports torch.
"""
from __future__ import annotations

import contextlib
import faulthandler
import math
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

from ..errors import ConfigError

#: seconds the watchdog waits after the limit, giving SIGALRM the chance to end the run cleanly
GRACE = 2.0
#: the longest --timeout (about 115 days): longer ones are beyond what timers can be set to
MAX_SECONDS = 10_000_000
_PACKAGE_DIR = str(Path(__file__).resolve().parent.parent)


class ModelTimeout(BaseException):
    """The model's code ran past ``--timeout``. A BaseException, as KeyboardInterrupt is: model code
    (and cnnshape's tracer fallbacks) that catch Exception let it through."""


def check_seconds(seconds: float | None) -> float | None:
    """``seconds`` if it is a usable limit (positive, finite, at most MAX_SECONDS)."""
    if seconds is not None and not (0 < seconds <= MAX_SECONDS and math.isfinite(seconds)):
        raise ConfigError(f"--timeout {seconds:g}: give a number of seconds above 0 and at most {MAX_SECONDS:,}, "
                          "e.g. --timeout 60")
    return seconds


@contextlib.contextmanager
def time_limit(seconds: float | None, what: str = "the model's code") -> Iterator[None]:
    """Raise :class:`ModelTimeout` in the body when it runs longer than ``seconds`` (None: no limit);
    see the module docstring. ``what`` names what ran out of time in the message."""
    if seconds is None:
        yield
        return
    check_seconds(seconds)
    from .. import api  # noqa: F401  (torch and the analysers: their import is not the model's time)

    main = threading.current_thread() is threading.main_thread()
    use_signal = main and hasattr(signal, "SIGALRM") and hasattr(signal, "setitimer")
    previous = None
    fired = threading.Event()  # the signal's exception was raised (and maybe caught by the model)
    if use_signal:
        def on_alarm(signum: int, frame: FrameType | None) -> None:
            fired.set()
            raise ModelTimeout(message(seconds, frame, what))

        previous = signal.signal(signal.SIGALRM, on_alarm)
    why = None if use_signal else ("this platform has no SIGALRM" if main or not hasattr(signal, "SIGALRM")
                                   else "cnnshape does not run in the main thread")
    watchdog = _Watchdog(seconds + (GRACE if use_signal else 0.0), seconds, what, threading.main_thread().ident, why,
                         fired)
    watchdog.start()
    last_resort = _last_resort(seconds + (GRACE if use_signal else 0.0) + 1.0)
    try:
        if use_signal:  # armed last, inside the try: a very short limit must not fire before the clean-up is due
            signal.setitimer(signal.ITIMER_REAL, seconds, 1.0)
        yield
    finally:
        if use_signal:  # first: a timer firing again must not interrupt the rest of the clean-up
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        last_resort()
        watchdog.cancel()


class _Watchdog(threading.Thread):
    """Ends the process (exit 2) unless cancelled within ``wait`` seconds."""

    def __init__(self, wait: float, seconds: float, what: str, target: int | None, why: str | None,
                 fired: threading.Event) -> None:
        super().__init__(name="cnnshape-timeout", daemon=True)
        self.wait, self.seconds, self.what, self.target, self.why = wait, seconds, what, target, why
        self.fired = fired
        self.done = threading.Event()

    def cancel(self) -> None:
        self.done.set()

    def run(self) -> None:
        if self.done.wait(self.wait):
            return
        frame = sys._current_frames().get(self.target) if self.target is not None else None
        if self.why:
            how = f" ({self.why}: the run was ended from a watchdog thread)"
        elif self.fired.is_set():
            how = (" (the model's code caught the timeout's exception, in an `except BaseException:` or a bare "
                   "`except:`, and went on: the run was ended from a watchdog thread)")
        else:
            how = (" (in code that Python's signal handler could not interrupt, such as a C extension: the run "
                   "was ended from a watchdog thread)")
        text = f"error: {message(self.seconds, frame, self.what)}{how}\n"
        with contextlib.suppress(OSError):
            os.write(2, text.encode("utf-8", "replace"))
        os._exit(2)


def message(seconds: float, frame: FrameType | None, what: str) -> str:
    """``what`` ran past the limit, and where it was (the model's innermost line, else the innermost
    line at all)."""
    where = _where(frame)
    return (f"{what} did not finish within --timeout {seconds:g} s{where}. If it loops for ever, fix that "
            "line; if it is only slow, give a larger --timeout.")


def _where(frame: FrameType | None) -> str:
    from .isolation import library_dirs

    skip = library_dirs()
    innermost, found = frame, None
    while frame is not None:
        name = frame.f_code.co_filename
        if not name.startswith("<") and not str(Path(name).resolve()).startswith(skip):
            found = frame
            break
        frame = frame.f_back
    chosen = found or innermost
    if chosen is None:
        return ""
    import linecache

    name, line = chosen.f_code.co_filename, chosen.f_lineno
    code = linecache.getline(name, line).strip()
    whose = "" if found is not None else (" (in cnnshape's own analysis)" if name.startswith(_PACKAGE_DIR)
                                          else " (in library code)")
    return f": it was running {name}:{line} in {chosen.f_code.co_name}{whose}" + (f": {code}" if code else "")


def _last_resort(after: float) -> Callable[[], None]:
    """In ``after`` seconds, with no Python involved: faulthandler prints the Python stacks to
    stderr, and half a second later a POSIX timer thread calls ``_exit(2)`` (where there is none,
    faulthandler exits, with code 1). Returns the function that cancels both."""
    try:
        out = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # a captured stderr (CliRunner): the process's own
        out = 2
    cancel_timer = _exit_timer(after + 0.5)
    try:
        faulthandler.dump_traceback_later(after, exit=cancel_timer is None, file=out)
    except (OSError, ValueError, RuntimeError):  # no usable stderr
        pass

    def cancel() -> None:
        faulthandler.cancel_dump_traceback_later()
        if cancel_timer is not None:
            cancel_timer()

    return cancel


def _exit_timer(after: float) -> Callable[[], None] | None:
    """A POSIX timer whose expiry calls ``_exit(2)`` in a thread of its own (``SIGEV_THREAD``): it
    needs no interpreter lock. Returns the function that deletes it, or None where libc has no
    such timers (macOS, Windows)."""
    import ctypes

    class _SigEvent(ctypes.Structure):  # struct sigevent (Linux): sigval, signo, notify, then the thread's
        _fields_ = [("value", ctypes.c_void_p), ("signo", ctypes.c_int), ("notify", ctypes.c_int),
                    ("function", ctypes.c_void_p), ("attribute", ctypes.c_void_p), ("pad", ctypes.c_int * 8)]

    class _TimeSpec(ctypes.Structure):
        _fields_ = [("sec", ctypes.c_long), ("nsec", ctypes.c_long)]

    class _ITimerSpec(ctypes.Structure):
        _fields_ = [("interval", _TimeSpec), ("value", _TimeSpec)]

    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        exit_now = ctypes.cast(libc._exit, ctypes.c_void_p).value
        event = _SigEvent(value=2, notify=2, function=exit_now)  # SIGEV_THREAD: _exit(sigval) = _exit(2)
        timer = ctypes.c_void_p()
        if libc.timer_create(1, ctypes.byref(event), ctypes.byref(timer)) != 0:  # CLOCK_MONOTONIC
            return None
        whole = int(after)
        when = _ITimerSpec(value=_TimeSpec(whole, int((after - whole) * 1e9)))
        if libc.timer_settime(timer, 0, ctypes.byref(when), None) != 0:
            libc.timer_delete(timer)
            return None
    except (OSError, AttributeError, TypeError):
        return None
    return lambda: libc.timer_delete(timer)
