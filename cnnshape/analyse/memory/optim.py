"""The optimizers ``--optimizer`` names, and what each step adds beyond its state.

``torch.optim``'s single-tensor (for-loop) implementations, the CPU default, update one parameter
at a time: their temporaries are a fixed multiple of the largest parameter (Adam's
``exp_avg_sq.sqrt() / bias_correction`` makes two). That multiple is taken from torch itself:
one step of the real optimizer on a small CPU tensor, its storages tracked.
"""
from __future__ import annotations

import functools
from collections.abc import Iterable

import torch

from .records import OPTIMIZER_STATE
from .storages import LiveStorages

#: elements of the probe parameter the step multiple is measured on
_PROBE = 4096


def make_optimizer(name: str, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer | None:
    """The optimizer ``name`` stands for (one of :data:`OPTIMIZER_STATE`), or None for "none" and
    for a model with no trainable parameter (nothing to step; torch refuses an empty list)."""
    params = list(params)
    if name not in OPTIMIZER_STATE:
        raise ValueError(f"unknown optimizer {name!r}; one of {', '.join(OPTIMIZER_STATE)}")
    if name == "none" or not params:
        return None
    if name == "sgd":
        return torch.optim.SGD(params, lr=0.01, foreach=False)
    if name == "momentum":
        return torch.optim.SGD(params, lr=0.01, momentum=0.9, foreach=False)
    if name == "adam":
        return torch.optim.Adam(params, foreach=False)
    if name == "adamw":
        return torch.optim.AdamW(params, foreach=False)
    raise ValueError(f"unknown optimizer {name!r}; one of {', '.join(OPTIMIZER_STATE)}")


def state_tensors(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [v for state in optimizer.state.values() for v in state.values() if isinstance(v, torch.Tensor)]


@functools.cache
def step_multiple(name: str) -> float:
    """Bytes one step of ``name`` allocates beyond parameters, gradients and state, per byte of
    the parameter it updates (at the steady state: the second step)."""
    if name == "none":
        return 0.0
    p = torch.nn.Parameter(torch.zeros(_PROBE))
    p.grad = torch.ones(_PROBE)
    opt = make_optimizer(name, [p])
    assert opt is not None
    opt.step()
    tracker = LiveStorages()
    tracker.hold([p, p.grad, *state_tensors(opt)])
    held = tracker.current
    with tracker:
        opt.step()
    return (tracker.peak - held) / p.untyped_storage().nbytes()


def scalar_state_bytes(name: str) -> int:
    """Bytes of the per-parameter scalars a step keeps (Adam's ``step`` count, a 0-dim float32)."""
    return 4 if name in ("adam", "adamw") else 0
