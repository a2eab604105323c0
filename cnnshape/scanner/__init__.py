"""``cnnshape scan``: many models analysed in parallel worker processes (or on a Dask cluster),
one record each, streamed to a resumable JSONL. :func:`cnnshape.scan` is the API; docs/scan.md."""
from __future__ import annotations

from .records import ScanRecord, Violation
from .settings import ScanSettings
from .sources import Task

__all__ = ["ScanRecord", "ScanSettings", "Task", "Violation"]
