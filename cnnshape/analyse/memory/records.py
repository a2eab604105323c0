"""The memory figures as frozen, torch-free records (docs/memory.md); ``to_dict()`` is their JSON.

Every figure is in bytes at the analysed dtypes. ``MemoryReport`` is what ``cnnshape memory``
prints, what ``Report.memory`` holds and what the check budgets read.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ...vocab import AMP_CHOICES, OPTIMIZERS

#: ``--optimizer``: how many copies of the trainable parameters each keeps as state
OPTIMIZER_STATE = dict(zip(OPTIMIZERS, (0, 0, 1, 2, 2)))
#: ``--amp``: the autocast dtypes modelled
AMP_DTYPES = AMP_CHOICES


@dataclass(frozen=True)
class LiveTensor:
    """One storage alive at the peak: who made it, its first shape and dtype, its bytes."""

    layer: str
    op: str
    shape: tuple[int, ...]
    dtype: str
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "shape": list(self.shape)}


@dataclass(frozen=True)
class LayerMemory:
    """One layer call in execution order: live bytes after it and the most alive while it ran."""

    name: str
    live_bytes: int
    peak_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class InferenceMemory:
    """Eval mode, no grad: storages live from the op that makes them to their last reader."""

    #: the most bytes alive at once, resident ones included
    peak_bytes: int
    #: the layer running at the peak
    peak_at: str
    #: parameters and buffers (each storage once)
    weight_bytes: int
    #: the model's inputs
    input_bytes: int
    #: storages alive at the peak other than weights and inputs, largest first
    alive: tuple[LiveTensor, ...]
    layers: tuple[LayerMemory, ...]

    @property
    def activation_peak_bytes(self) -> int:
        return self.peak_bytes - self.weight_bytes - self.input_bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "peak_bytes": self.peak_bytes, "peak_at": self.peak_at, "weight_bytes": self.weight_bytes,
            "input_bytes": self.input_bytes, "activation_peak_bytes": self.activation_peak_bytes,
            "alive": [t.to_dict() for t in self.alive], "layers": [layer.to_dict() for layer in self.layers],
        }


@dataclass(frozen=True)
class TrainingMemory:
    """One training step (train mode): forward, backward of the summed outputs, optimizer step,
    with the optimizer's state already there (every step after the first)."""

    optimizer: str
    #: parameters and buffers, as held during the step (fp32 master weights under autocast)
    weight_bytes: int
    input_bytes: int
    #: one per trainable parameter
    gradient_bytes: int
    optimizer_state_bytes: int
    #: tensors autograd saves for backward, each storage once, weights and inputs not counted
    saved_bytes: int
    #: bytes alive when the forward returns (state not counted)
    forward_end_bytes: int
    #: the most alive during forward and backward (state not counted)
    backward_peak_bytes: int
    #: the most the optimizer step adds beyond parameters, gradients and state (per-parameter temporaries)
    step_transient_bytes: int
    #: bytes alive at the optimizer step's peak: state, gradients and what backward leaves, plus the transient
    step_peak_bytes: int
    #: the step's peak: state plus the larger of the backward peak and the optimizer step's
    peak_bytes: int
    #: "forward", "backward" or "optimizer step"
    peak_phase: str

    @property
    def phase_peaks(self) -> tuple[int, int]:
        """(forward and backward, optimizer step) peaks, state included: each affine in the batch."""
        return self.optimizer_state_bytes + self.backward_peak_bytes, self.step_peak_bytes

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class BatchFit:
    """The largest batch whose peak fits a budget. Each phase's peak is fixed + per_sample x batch;
    the figures given are those of the phase that limits the batch."""

    budget_bytes: int
    fixed_bytes: int
    per_sample_bytes: int
    #: None when not even one sample fits
    batch: int | None
    #: the batch sizes the line was fitted on
    fitted_on: tuple[int, int]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "fitted_on": list(self.fitted_on)}


@dataclass(frozen=True)
class MemoryCheck:
    """One figure beside its measurement on a real device (``cnnshape memory --verify``)."""

    #: "inference peak", "training step peak", "saved for backward"
    what: str
    estimate_bytes: int
    #: the peak of the storages alive in the real run (docs/memory.md)
    measured_bytes: int
    device: str
    #: ``torch.cuda.max_memory_allocated`` over the same run, on CUDA
    cuda_bytes: int | None = None

    @property
    def error(self) -> float:
        """(estimate - measured) / measured."""
        return (self.estimate_bytes - self.measured_bytes) / self.measured_bytes if self.measured_bytes else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "error": round(self.error, 6)}


@dataclass(frozen=True)
class MemoryReport:
    model: str
    batch: int
    inference: InferenceMemory
    training: TrainingMemory | None = None
    #: ``"bf16"`` / ``"fp16"`` when the figures are under autocast
    amp: str | None = None
    inference_fit: BatchFit | None = None
    training_fit: BatchFit | None = None
    notes: tuple[str, ...] = ()
    #: the estimates beside a real run, when one was made (``--verify``)
    checks: tuple[MemoryCheck, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"model": self.model, "batch": self.batch, "amp": self.amp,
                             "inference": self.inference.to_dict()}
        d["training"] = self.training.to_dict() if self.training else None
        d["inference_fit"] = self.inference_fit.to_dict() if self.inference_fit else None
        d["training_fit"] = self.training_fit.to_dict() if self.training_fit else None
        d["notes"] = list(self.notes)
        d["checks"] = [c.to_dict() for c in self.checks]
        return d
