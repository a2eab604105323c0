"""The results of the size analysis: frozen records, torch-free (a report holds them as they are)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ...vocab import SIZES_SCHEMA as SCHEMA

#: the engines that answer for an axis: the layer arithmetic (fast, exact, with per-layer
#: formulas) and, where it cannot characterise the axis, torch's symbolic shapes
ARITHMETIC = "arithmetic"
SYMBOLIC = "symbolic"


@dataclass(frozen=True)
class Accepted:
    """``arithmetic``: every s ≥ minimum with (s − offset) % step == 0 and s ≤ maximum (None:
    unbounded). ``set``: exactly ``sizes`` among 1..up_to."""

    kind: str
    minimum: int | None = None
    step: int | None = None
    offset: int | None = None
    maximum: int | None = None
    sizes: tuple[int, ...] = ()
    up_to: int | None = None

    def contains(self, s: int) -> bool:
        if self.kind == "set":
            return s in self.sizes
        assert self.minimum is not None and self.step is not None and self.offset is not None
        return s >= self.minimum and (s - self.offset) % self.step == 0 and (
            self.maximum is None or s <= self.maximum)

    def words(self) -> str:
        """A bounded rule with gaps and at most 4 sizes is listed (``only 1, 32``, not
        ``sizes ≡ 1 (mod 31) from 1 to 32``); a contiguous range reads ``every size from 32 to 35``."""
        if self.kind == "set":
            return f"only these sizes up to {self.up_to}: " + ", ".join(str(s) for s in self.sizes)
        lo, step, hi = self.minimum, self.step, self.maximum
        assert lo is not None and step is not None
        if hi == lo:
            return f"exactly {lo}"
        if hi is not None and step > 1 and (hi - lo) // step < 4:
            return "only " + ", ".join(str(s) for s in range(lo, hi + 1, step))
        if step == 1:
            return f"every size ≥ {lo}" if hi is None else f"every size from {lo} to {hi}"
        if self.offset == 0:
            text = f"multiples of {step} from {lo}"
        else:
            text = f"sizes ≡ {self.offset} (mod {step}) from {lo}"
        return f"{text} up" if hi is None else f"{text} to {hi}"

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "set":
            return {"kind": "set", "sizes": list(self.sizes), "up_to": self.up_to}
        return {"kind": "arithmetic", "minimum": self.minimum, "step": self.step, "offset": self.offset,
                "maximum": self.maximum}


@dataclass(frozen=True)
class SizeFormula:
    """Dim ``dim`` of output ``key`` of node ``name`` as a function of the studied input size."""

    name: str
    key: str
    dim: int
    formula: str


@dataclass(frozen=True)
class AxisSizes:
    axis: int
    symbol: str
    given: int
    minimum: int | None
    accepted: Accepted | None
    #: why the axis can't be characterised (then minimum and accepted are None)
    reason: str | None
    outputs: tuple[SizeFormula, ...]
    layers: tuple[SizeFormula, ...]
    #: the engine that answered (:data:`ARITHMETIC` or :data:`SYMBOLIC`); None when neither could
    engine: str | None = ARITHMETIC
    #: how the symbolic engine answered (traces, forward passes, seconds)
    engine_note: str | None = None
    #: why the layer arithmetic could not answer, when the symbolic engine did
    arithmetic_reason: str | None = None


@dataclass(frozen=True)
class SizeReport:
    model: str
    input_shape: tuple[int, ...]
    axes: tuple[AxisSizes, ...]

    def to_dict(self, layers: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {
            "schema": SCHEMA,
            "model": self.model,
            "input": list(self.input_shape),
            "axes": [{"axis": a.axis, "symbol": a.symbol, "minimum": a.minimum,
                      "accepted": a.accepted.to_dict() if a.accepted else None, "engine": a.engine,
                      **({"engine_note": a.engine_note} if a.engine_note else {}),
                      **({"arithmetic_reason": a.arithmetic_reason} if a.arithmetic_reason else {}),
                      **({"reason": a.reason} if a.reason else {})} for a in self.axes],
            "outputs": [{"key": f.key, "axis": a.axis, "dim": f.dim, "formula": f.formula}
                        for a in self.axes for f in a.outputs],
        }
        if layers:
            d["layers"] = [{"name": f.name, "key": f.key, "axis": a.axis, "dim": f.dim, "formula": f.formula}
                           for a in self.axes for f in a.layers]
        return d


def axis_symbol(axis: int, rank: int) -> str:
    """H and W for images, D H W for volumes, L for sequences, N and C for batch and channels."""
    spatial = {1: "L", 2: "HW", 3: "DHW"}.get(rank - 2, "")
    if axis >= 2 and axis - 2 < len(spatial):
        return spatial[axis - 2]
    return {0: "N", 1: "C"}.get(axis, f"S{axis}")


def default_axes(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(range(2, len(shape)))


#: sizes are always evaluated at least up to this bound
MIN_UP_TO = 512
#: and never beyond this one (a rule whose period needs more is reported as a set); a traced size
#: above it is checked on its own against the rule fitted below it
MAX_UP_TO = 1 << 14


def fit_rule(accepted: list[int], up_to: int, period: int) -> Accepted:
    """The arithmetic rule {minimum, step, offset, maximum} that gives exactly ``accepted`` among
    1..up_to (unbounded when the last accepted size is within a step and a ``period`` of the
    bound), else the set itself."""
    lo = accepted[0]
    step = math.gcd(*(s - lo for s in accepted[1:])) if len(accepted) > 1 else 1
    step = step or 1
    hi = None if accepted[-1] > up_to - step - period else accepted[-1]
    rule = Accepted("arithmetic", minimum=lo, step=step, offset=lo % step, maximum=hi)
    # the sizes 1..up_to the rule contains: lo, lo + step, ... up to its maximum or the bound
    if list(range(lo, (up_to if hi is None else min(hi, up_to)) + 1, step)) == accepted:
        return rule
    return Accepted("set", sizes=tuple(accepted), up_to=up_to)
