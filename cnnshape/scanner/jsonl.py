"""The scan's results file: one JSON record a line, appended as each model finishes.

Resumable: :func:`open_results` reads the records already there (their names are skipped) and
appends after them. A line torn by a killed client (no newline at its end, or not JSON) is cut off
before appending; a line that is not a scan record in the middle of the file means it is some other
file, which is never written to. One client at a time: the file is locked (``flock``) while open.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from .records import ScanRecord


@dataclass
class Results:
    path: str | None
    #: the records already in the file when it was opened, in file order
    done: list[ScanRecord] = field(default_factory=list)
    #: bytes of a torn last line that were cut off
    cut: int = 0
    _fd: int | None = None

    def write(self, record: ScanRecord) -> None:
        """Append one line with a single write(2): a kill leaves the line whole or torn, never mixed."""
        if self._fd is None:
            return
        data = (json.dumps(record.to_dict(), separators=(",", ":")) + "\n").encode()
        while data:
            written = os.write(self._fd, data)
            data = data[written:]


def read_records(path: str | Path) -> tuple[list[ScanRecord], int]:
    """The records of a results file and the byte length of its whole, valid lines (a torn last
    line excluded). A ConfigError when a complete line is not a scan record."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read the results file {path}: {e.strerror or e}") from None
    records: list[ScanRecord] = []
    good = 0
    lines = data.split(b"\n")
    for number, line in enumerate(lines, 1):
        complete = number < len(lines)  # the part after the last newline is never complete
        if not line.strip():
            good += len(line) + complete
            continue
        try:
            record = ScanRecord.from_dict(json.loads(line))
        except (ValueError, ConfigError) as e:
            if not complete or number == len(lines) - 1 and not lines[-1]:
                break  # the last line, torn by a kill: cut off
            raise ConfigError(f"{path}:{number} is not a cnnshape scan record ({e}); it is not a scan "
                              "results file: give another --output, or remove it") from None
        if not complete:
            break  # a whole record without its newline: written again
        records.append(record)
        good += len(line) + 1
    return records, good


@contextmanager
def open_results(path: str | None) -> Iterator[Results]:
    """The results file ``path`` opened for appending (None: records kept in memory only)."""
    if path is None or path == "-":
        yield Results(None)
        return
    import fcntl

    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise ConfigError(f"cannot open the results file {path}: {e.strerror or e}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ConfigError(f"{path} is being written by another scan; wait for it or give another "
                              "--output") from None
        records, good = read_records(path)
        size = os.fstat(fd).st_size
        if good < size:
            os.ftruncate(fd, good)
        os.lseek(fd, 0, os.SEEK_END)
        yield Results(path, records, size - good, fd)
        os.fsync(fd)
    finally:
        os.close(fd)
