"""The largest batch that fits: every figure here is affine in the batch size (weights, gradients
and state are fixed; each activation scales with the batch), so two batch sizes give the line.
Torch-free."""
from __future__ import annotations

from dataclasses import replace

from ...errors import InputError, param
from ...inputs import InputSpec
from .records import BatchFit


def batch_of(specs: tuple[InputSpec, ...]) -> int:
    """The batch size: the first axis of the first input that has one."""
    for s in specs:
        if s.shape:
            return s.shape[0]
    raise InputError(f"every {param('inputs')} value is a scalar: there is no batch axis to size")


def with_batch(specs: tuple[InputSpec, ...], batch: int) -> tuple[InputSpec, ...]:
    """``specs`` with the first axis of every input that has one set to ``batch``."""
    return tuple(replace(s, shape=(batch, *s.shape[1:])) if s.shape else s for s in specs)


def _line(budget: int, b1: int, p1: int, b2: int, p2: int) -> BatchFit:
    per_sample = (p2 - p1) // (b2 - b1)
    batch: int | None = None
    if p2 > p1:  # exact integer arithmetic on the line through both points
        largest = b1 + (budget - p1) * (b2 - b1) // (p2 - p1)
        batch = largest if largest >= 1 else None
    elif p1 <= budget:
        batch = _UNBOUNDED
    return BatchFit(budget, p1 - per_sample * b1, per_sample, batch, (b1, b2))


#: a phase whose peak does not grow with the batch limits nothing
_UNBOUNDED = 2**62


def fit(budget: int, batches: tuple[int, int], peaks: list[tuple[int, int]]) -> BatchFit:
    """The largest batch whose peak is at most ``budget``, given each phase's peak at both
    ``batches``: the smallest of the phases' answers."""
    (b1, b2) = batches
    fits = [_line(budget, b1, p1, b2, p2) for p1, p2 in peaks]
    worst = min(fits, key=lambda f: -1 if f.batch is None else f.batch)
    return worst if worst.batch != _UNBOUNDED else BatchFit(budget, worst.fixed_bytes, 0, None, batches)
