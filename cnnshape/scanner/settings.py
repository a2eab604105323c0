"""How every model of a scan is analysed and judged: one frozen, picklable value sent to each
worker (torch-free)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..check import FIGURES, MEMORY_FIGURES, Budget
from ..errors import ConfigError
from ..vocab import TRACERS

#: seconds a worker stuck in C code gets past the timeout before the client kills it
KILL_GRACE = 3.0


@dataclass(frozen=True)
class ScanSettings:
    budgets: tuple[Budget, ...] = ()
    #: seconds per model (None: no limit)
    timeout: float | None = None
    tracer: str = "auto"
    #: derive the smallest accepted input size of each spatial axis (layer arithmetic, no re-trace)
    minimum: bool = True

    def __post_init__(self) -> None:
        if self.tracer not in TRACERS:
            raise ConfigError(f"tracer {self.tracer!r}: choose one of {', '.join(TRACERS)}")
        if self.timeout is not None and not self.timeout > 0:
            raise ConfigError(f"timeout {self.timeout!r}: give a number of seconds above 0")

    @property
    def memory(self) -> frozenset[str]:
        """The memory figures the budgets ask for (the memory analysis runs only then)."""
        return frozenset(b.figure for b in self.budgets if b.figure in MEMORY_FIGURES)


def budgets_from(limits: Mapping[str, int | str] | None) -> tuple[Budget, ...]:
    """``{"params": "5M", "macs": 600_000_000}`` -> budgets, parsed as ``cnnshape check`` parses them."""
    from ..config import BUDGET_KEYS

    parsers = {figure: parse for _, (figure, parse) in BUDGET_KEYS.items()}
    out = []
    for figure, limit in (limits or {}).items():
        if figure not in FIGURES and figure not in MEMORY_FIGURES:
            raise ConfigError(f"budgets: unknown figure {figure!r}; known: {', '.join([*FIGURES, *MEMORY_FIGURES])}")
        out.append(Budget(figure, parsers[figure](limit, f"budgets[{figure!r}]")))
    return tuple(out)
