"""Whole-process measurement shared by the benchmark scripts.

Every run is one fresh process, started by a small wrapper process that reads
``resource.getrusage(RUSAGE_CHILDREN)`` once it exits, so wall time and peak RSS cover exactly
one command (interpreter start-up and ``import torch`` included). Rows are run interleaved
(round 1 of every row, then round 2, ...) so that a noisy moment on the machine hits all rows
alike; each row reports the median of its rounds.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
#: The floor any torch tool pays: interpreter start-up plus ``import torch``.
FLOOR = [PY, "-c", "import torch"]
K = TypeVar("K", bound=Hashable)

#: Runs argv[2:] with a timeout of argv[1] seconds (0: none) and prints one JSON line for that child.
_WRAPPER = """
import json, resource, subprocess, sys, time
timeout = float(sys.argv[1]) or None
start = time.perf_counter()
try:
    proc = subprocess.run(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          timeout=timeout)
    rc, err = proc.returncode, proc.stderr
except subprocess.TimeoutExpired:
    rc, err = None, ""
wall = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"wall_s": wall, "max_rss_kib": usage.ru_maxrss, "cpu_s": usage.ru_utime + usage.ru_stime,
                  "rc": rc, "err": err[-2000:]}))
"""


@dataclass(frozen=True)
class Result:
    """The median of one row's runs, or why there is none (``failure``)."""

    wall_s: float | None
    rss_mib: float | None
    failure: str | None = None
    #: user + system CPU seconds of the process (and its children): less sensitive than the wall
    #: time to other load on the machine, as long as the command itself runs on one core
    cpu_s: float | None = None


#: Commands run as after ``pip install .``, which byte-compiles the package: with
#: PYTHONDONTWRITEBYTECODE set (some shells and CI images set it) every process would compile
#: cnnshape's sources again, which no installed copy does.
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _byte_compile() -> None:
    subprocess.run([PY, "-m", "compileall", "-q", "cnnshape", "examples", "benchmarks"], cwd=ROOT, env=_ENV,
                   check=True, stdout=subprocess.DEVNULL)


def measure_once(argv: list[str], timeout: float | None = None) -> Result:
    out = subprocess.run([PY, "-c", _WRAPPER, str(timeout or 0), *argv], cwd=ROOT, capture_output=True,
                         text=True, check=True, env=_ENV)
    run = json.loads(out.stdout)
    if run["rc"] is None:
        return Result(None, None, f"timeout after {timeout:g} s")
    if run["rc"] != 0:
        lines = run["err"].strip().splitlines() or [""]
        return Result(None, None, f"exit {run['rc']}: {lines[-1][:200]}")
    return Result(run["wall_s"], run["max_rss_kib"] / 1024, cpu_s=run["cpu_s"])


def measure_rows(rows: Mapping[K, list[str]], repeat: int, timeout: float | None = None) -> dict[K, Result]:
    """Run every row ``repeat`` times, interleaved; a row that fails or times out once is not rerun."""
    _byte_compile()
    walls: dict[K, list[float]] = {key: [] for key in rows}
    rsss: dict[K, list[float]] = {key: [] for key in rows}
    cpus: dict[K, list[float]] = {key: [] for key in rows}
    failed: dict[K, Result] = {}
    for round_ in range(1, repeat + 1):
        for key, argv in rows.items():
            if key in failed:
                continue
            result = measure_once(argv, timeout)
            name = " ".join(str(part) for part in key if part) if isinstance(key, tuple) else key
            print(f"[round {round_}/{repeat}] {name}: {result.failure or f'{result.wall_s:.2f} s'}",
                  file=sys.stderr, flush=True)
            if result.failure or result.wall_s is None or result.rss_mib is None:
                failed[key] = result
            else:
                walls[key].append(result.wall_s)
                rsss[key].append(result.rss_mib)
                cpus[key].append(result.cpu_s or 0.0)
    return {key: failed.get(key) or Result(statistics.median(walls[key]), statistics.median(rsss[key]),
                                           cpu_s=statistics.median(cpus[key]))
            for key in rows}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def header(repeat: int | None = None) -> str:
    """The machine, Python and torch versions and the date, as one line for docs/performance.md."""
    ram_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    how = f"; median of {repeat} runs, each a fresh process, rows interleaved" if repeat else ""
    return (f"Machine: {os.cpu_count()} cores ({_cpu_model()}), {ram_gib:.0f} GiB RAM; "
            f"Python {platform.python_version()}; torch {version('torch')}; {datetime.date.today()}{how}.")
