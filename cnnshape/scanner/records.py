"""One scanned model as a frozen record: a line of the scan's JSONL (docs/json.md, docs/scan.md).

Torch-free: the client, the renderers and a reader of an old results file use it without torch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..vocab import SCAN_ERROR_KINDS, SCAN_SCHEMA, SCAN_STATUSES

#: the totals a record keeps (Report.totals' names)
TOTALS = ("params", "macs", "flops", "activation_bytes", "param_bytes", "complete")


@dataclass(frozen=True)
class Violation:
    """A budget the model exceeded: ``figure`` (a key of check.FIGURES) is ``value`` > ``limit``."""

    figure: str
    value: int
    limit: int

    def to_dict(self) -> dict[str, Any]:
        return {"figure": self.figure, "value": self.value, "limit": self.limit}


@dataclass(frozen=True)
class ScanRecord:
    """What a scan found for one model.

    ``status``: ``pass`` (analysed, within every budget given; no budget: analysed), ``fail``
    (analysed, over a budget: ``violations``) or ``error`` (not analysed: ``error_kind`` says whether
    the analysis raised, ran past the timeout or its worker died, ``error`` the message)."""

    name: str
    status: str
    #: the spec, or where the model came from (``space.py:candidates``, ``module``)
    model: str = ""
    inputs: tuple[tuple[int, ...], ...] = ()
    #: the figures of ``TOTALS`` (None: not analysed)
    totals: tuple[tuple[str, int | bool], ...] | None = None
    outputs: tuple[tuple[int, ...], ...] = ()
    #: smallest accepted size of each spatial axis of the first input, by symbol (None where the
    #: layer arithmetic of one trace cannot tell; ``()``: not derived)
    minimum: tuple[tuple[str, int | None], ...] = ()
    tracer: str | None = None
    duration_s: float = 0.0
    violations: tuple[Violation, ...] = ()
    #: ops with no cost formula: the MACs/FLOPs are then lower bounds (totals' ``complete`` False)
    unsupported_ops: tuple[str, ...] = ()
    error_kind: str | None = None
    error: str | None = None
    #: the peaks of the memory analysis (check.MEMORY_FIGURES: ``inference_memory``, and
    #: ``train_memory`` for a training step with Adam), in bytes; None: not run (it runs only for a
    #: ``max-inference-memory``/``max-train-memory`` budget, as in ``cnnshape check``)
    memory: tuple[tuple[str, int], ...] | None = None

    def __post_init__(self) -> None:
        if self.status not in SCAN_STATUSES:
            raise ConfigError(f"scan record {self.name!r}: unknown status {self.status!r}")
        if self.error_kind is not None and self.error_kind not in SCAN_ERROR_KINDS:
            raise ConfigError(f"scan record {self.name!r}: unknown error kind {self.error_kind!r}")

    @property
    def ok(self) -> bool:
        """Analysed (whether or not within budget)."""
        return self.status != "error"

    def total(self, key: str) -> Any:
        return dict(self.totals or ()).get(key)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCAN_SCHEMA,
            "name": self.name,
            "model": self.model,
            "status": self.status,
            "inputs": [list(s) for s in self.inputs],
            "totals": dict(self.totals) if self.totals is not None else None,
            "outputs": [list(s) for s in self.outputs],
            "minimum": dict(self.minimum) if self.minimum else None,
            "tracer": self.tracer,
            "duration_s": round(self.duration_s, 4),
            "violations": [v.to_dict() for v in self.violations],
            "unsupported_ops": list(self.unsupported_ops),
            "error_kind": self.error_kind,
            "error": self.error,
            # only where a memory budget ran the analysis: the lines of a scan without one stay as they were
            **({"memory": dict(self.memory)} if self.memory is not None else {}),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ScanRecord:
        """The record a line of a results file holds; a ConfigError when it is not one."""
        if not isinstance(d, dict) or d.get("schema") != SCAN_SCHEMA or not isinstance(d.get("name"), str):
            raise ConfigError(f"not a cnnshape scan record (expected \"schema\": \"{SCAN_SCHEMA}\" and a name)")
        try:
            totals = d.get("totals")
            return cls(
                name=d["name"], status=d["status"], model=d.get("model", ""),
                inputs=tuple(tuple(s) for s in d.get("inputs", [])),
                totals=tuple(totals.items()) if totals is not None else None,
                outputs=tuple(tuple(s) for s in d.get("outputs", [])),
                minimum=tuple((d.get("minimum") or {}).items()),
                tracer=d.get("tracer"), duration_s=float(d.get("duration_s", 0.0)),
                violations=tuple(Violation(**v) for v in d.get("violations", [])),
                unsupported_ops=tuple(d.get("unsupported_ops", [])),
                error_kind=d.get("error_kind"), error=d.get("error"),
                memory=tuple(d["memory"].items()) if d.get("memory") is not None else None,
            )
        except (KeyError, TypeError, AttributeError, ValueError) as e:
            raise ConfigError(f"scan record {d.get('name')!r} is malformed ({type(e).__name__}: {e})") from None


def error_record(name: str, kind: str, message: str, *, model: str = "",
                 inputs: tuple[tuple[int, ...], ...] = (), duration_s: float = 0.0) -> ScanRecord:
    return ScanRecord(name, "error", model=model, inputs=inputs, duration_s=duration_s,
                      error_kind=kind, error=message)
