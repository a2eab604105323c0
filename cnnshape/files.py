"""Writing and reading the files cnnshape is pointed at (``-o``, ``--write-baseline``,
``--junit-file``, ``--baseline``, ``diff``'s reports).

A write goes to the path's *resolved* target: through a symlink to the file it points at (the link
stays a link), keeping an existing file's permission bits. It is atomic (a temporary file in the
target's folder, then a rename), so a crash never leaves a truncated file behind, except where a
rename would break something: a file with several hard links is rewritten in place (after the new
content has been rendered in full), and a device, a pipe or an open file descriptor
(``/dev/stdout``, a FIFO, ``/dev/fd/3``) is written to as named. Every failure is an
:class:`~cnnshape.errors.OutputError` or a :class:`~cnnshape.errors.ConfigError` naming the option
and the path.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from .errors import ConfigError, OutputError


def _resolved(path: str | Path, what: str) -> Path:
    """``path`` with symlinks followed (a dangling link gives the file it would create)."""
    try:
        return Path(os.path.realpath(path))
    except (OSError, RuntimeError) as e:  # a symlink loop
        raise OutputError(f"cannot write {what} {path}: {e}") from e


def _through_fd(path: str | Path) -> bool:
    """``path`` is, or links to, an open file descriptor (``/dev/stdout``, ``/dev/fd/3``,
    ``/proc/self/fd/1``): the file behind it is the caller's, opened by the shell (maybe with
    ``>>``), so it is appended to as named, never replaced."""
    p = os.path.abspath(path)
    for _ in range(40):
        if p.startswith(("/proc/", "/dev/fd/")):
            return True
        if not os.path.islink(p):
            return False
        p = os.path.join(os.path.dirname(p), os.readlink(p))
    return False


def _why(e: OSError) -> str:
    return e.strerror or str(e)


def _target(path: str | Path, what: str) -> tuple[Path, str, os.stat_result | None]:
    """The resolved target of ``path``, how to show it, and its stat (None: it does not exist yet);
    an OutputError when it is a folder or cannot be a file."""
    if not str(path):
        raise OutputError(f"{what} is an empty path: give a file name")
    try:
        st: os.stat_result | None = os.stat(path)  # through symlinks
    except FileNotFoundError:  # not there yet, or a dangling symlink
        st = None
    except OSError as e:  # a file where a folder should be, a symlink loop, no permission
        hint = "; a parent of it is a file, not a folder" if e.errno == errno.ENOTDIR else ""
        raise OutputError(f"cannot write {what} {path}: {_why(e)}{hint}") from e
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise OutputError(f"cannot write {what} {path}: it is a folder. Give a file name, e.g. "
                          f"{Path(path) / 'out.txt'}")
    if st is not None and (not stat.S_ISREG(st.st_mode) or _through_fd(path)):
        return Path(path), str(path), st  # /dev/stdout, a FIFO: opened as named, never resolved
    target = _resolved(path, what)
    shown = str(path) if Path(os.path.abspath(path)) == target else f"{path} (-> {target})"
    return target, shown, st


def check_writable(path: str | Path | None, what: str = "output file") -> None:
    """Fail early (before a long analysis) when ``path`` is a folder or lies under a file; the
    write itself reports everything else. ``None`` and ``"-"`` (stdout) pass."""
    if path is None or str(path) == "-":
        return
    target, shown, st = _target(path, what)
    if st is not None and stat.S_ISREG(st.st_mode) and not os.access(target, os.W_OK):
        raise OutputError(f"cannot write {what} {shown}: the file is read-only. Make it writable "
                          "(chmod u+w) or give another file.")
    if st is None:
        for parent in target.parents:
            if parent.exists():
                if not parent.is_dir():
                    raise OutputError(f"cannot write {what} {shown}: {parent} is a file, not a folder")
                break


def atomic_write_bytes(path: str | Path, data: bytes, what: str = "output file") -> None:
    """Write ``data`` to ``path`` (see the module docstring); ``what`` (``"--output"``,
    ``"--write-baseline"``) goes into the messages."""
    target, shown, st = _target(path, what)
    if st is not None and stat.S_ISREG(st.st_mode) and not os.access(target, os.W_OK):
        # a rename would replace it anyway: a read-only file is the user's "do not overwrite"
        raise OutputError(f"cannot write {what} {shown}: the file is read-only. Make it writable "
                          "(chmod u+w) or give another file.")
    try:
        if st is not None and (not stat.S_ISREG(st.st_mode) or _through_fd(path)):
            _write_in_place(target, data)  # a device, a pipe, the shell's stdout: never replace it
            return
        _make_parent(target, what, shown)
        if st is not None and st.st_nlink > 1:
            _rewrite_hard_linked(target, data)
        else:
            _replace(target, data, st)
    except OutputError:
        raise
    except OSError as e:
        raise OutputError(f"cannot write {what} {shown}: {_why(e)}") from e


def _make_parent(target: Path, what: str, shown: str) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as e:
        raise OutputError(f"cannot write {what} {shown}: {e.filename or target.parent} is a file, "
                          "not a folder") from e


def _write_in_place(target: Path, data: bytes) -> None:
    """Append: a file behind ``/dev/stdout`` was opened (and truncated, unless ``>>``) by the shell."""
    with open(target, "ab") as f:
        f.write(data)


def _replace(target: Path, data: bytes, st: os.stat_result | None) -> None:
    """Write a temporary file next to ``target`` and rename it over ``target``, with the mode
    (and, where permitted, the owner) of the file it replaces."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        if st is not None:
            mode = stat.S_IMODE(st.st_mode)
            with contextlib.suppress(OSError):  # only root may give a file away
                os.chown(tmp, st.st_uid, st.st_gid)
        else:  # a new file gets the mode a plain open() would give it (0666 less the umask)
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _rewrite_hard_linked(target: Path, data: bytes) -> None:
    """Overwrite a file that has other hard links in place, so every link sees the new content (a
    rename would detach ``target`` from them). The content is complete before the file is opened."""
    with open(target, "r+b") as f:
        f.write(data)
        f.truncate()
        f.flush()
        os.fsync(f.fileno())


def atomic_write_text(path: str | Path, text: str, what: str = "output file") -> None:
    atomic_write_bytes(path, text.encode("utf-8"), what)


def read_json(path: str | Path, what: str, hint: str = "") -> Any:
    """Parse the JSON file ``path``; a missing, unreadable or malformed file is a ConfigError
    naming ``what``."""
    tail = f" {hint}" if hint else ""
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
    except IsADirectoryError as e:
        raise ConfigError(f"cannot read {what} {path}: it is a folder, not a JSON file.{tail}") from e
    except OSError as e:
        raise ConfigError(f"cannot read {what} {path}: {_why(e)}.{tail}") from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"{what} {path} is not a JSON file: it is not UTF-8 text (byte {e.start} "
                          f"is 0x{e.object[e.start]:02x}).{tail}") from e
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{what} {path} is not valid JSON: {e}") from e
    except (ValueError, RecursionError) as e:  # a 5,000-digit number; arrays nested 100,000 deep
        raise ConfigError(f"{what} {path} cannot be read as JSON: {e}") from e
