"""Memory for one :class:`~cnnshape.request.Request`: the model loaded, put on meta, and the
figures of :mod:`cnnshape.analyse.memory` taken (docs/memory.md). The measured reference beside
them is :mod:`cnnshape.memory_measure`."""
from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from dataclasses import replace

from .analyse.memory.batch import batch_of, fit, with_batch
from .analyse.memory.inference import inference_memory
from .analyse.memory.records import (
    AMP_DTYPES,
    OPTIMIZER_STATE,
    InferenceMemory,
    MemoryCheck,
    MemoryReport,
    TrainingMemory,
)
from .analyse.memory.training import training_memory
from .errors import CnnshapeError, ConfigError, TraceError, param
from .inputs import InputSpec
from .pipeline import on_meta, resolve_model
from .report import Report
from .request import Request
from .trace.meta import exception_source
from .trace.values import distributions_unchecked


def check_options(optimizer: str, amp: str | None, fits: int | None) -> None:
    if optimizer not in OPTIMIZER_STATE:
        raise ConfigError(f"{param('optimizer')} {optimizer!r}: choose one of {', '.join(OPTIMIZER_STATE)}")
    if amp is not None and amp not in AMP_DTYPES:
        raise ConfigError(f"{param('amp')} {amp!r}: choose one of {', '.join(AMP_DTYPES)}")
    if fits is not None and fits <= 0:
        raise ConfigError(f"{param('fits')} {fits}: give a positive memory size, e.g. 16GiB")


def run_memory(request: Request, *, train: bool = False, optimizer: str = "adam", amp: str | None = None,
               fits: int | None = None) -> MemoryReport:
    """The inference peak of ``request``'s model, and with ``train`` one training step with
    ``optimizer``; ``amp``: under autocast; ``fits``: the largest batch whose peak fits in that
    many bytes."""
    check_options(optimizer, amp, fits)
    # the cyclic collector stays on (unlike the other analyses: pipeline.no_gc): the first call of
    # some of torch's Python meta kernels leaves a reference cycle holding its arguments, which
    # would keep a tensor alive here that a real run frees
    gc.collect()
    module, _ = resolve_model(request)

    def figures(specs: tuple[InputSpec, ...]) -> tuple[InferenceMemory, TrainingMemory | None]:
        with distributions_unchecked(), failures_named(request.label):
            with on_meta(module, False):
                inference = inference_memory(module, specs, amp)
            if not train:
                return inference, None
            with on_meta(module, True):
                return inference, training_memory(module, specs, optimizer, amp)

    batch = batch_of(request.inputs)
    inference, training = figures(request.inputs)
    notes = []
    if train:
        notes.append("training: the loss is the sum of the outputs" + (
            "" if optimizer == "none" else f"; the optimizer's temporaries are those of torch's single-tensor "
            f"{optimizer} (foreach=False; the foreach one, CUDA's default, makes more)"))
    if amp:
        notes.append("autocast: the op lists of CPU autocast; CUDA autocast casts some other ops")
    report = MemoryReport(model=request.label, batch=batch, inference=inference, training=training, amp=amp,
                          notes=tuple(notes))
    if fits is None:
        return report
    other = batch * 2
    inference2, training2 = figures(with_batch(request.inputs, other))
    return replace(
        report,
        inference_fit=fit(fits, (batch, other), [(inference.peak_bytes, inference2.peak_bytes)]),
        training_fit=(fit(fits, (batch, other), list(zip(training.phase_peaks, training2.phase_peaks)))
                      if training and training2 else None),
    )


@contextlib.contextmanager
def failures_named(model: str) -> Iterator[None]:
    """A failure of the model's forward on meta tensors as a :class:`TraceError` naming the line."""
    try:
        yield
    except CnnshapeError:
        raise
    except Exception as e:
        where = exception_source(e)
        first = (str(e).strip().splitlines() or [""])[0]
        raise TraceError(
            f"the memory analysis runs {model}'s forward (and backward) on meta tensors, without values, and it "
            f"failed ({type(e).__name__}: {first}){' at ' + where if where else ''}. A forward that needs tensor "
            "values (.item(), a branch on a value) cannot be sized without running it."
        ) from e


def with_memory(request: Request, report: Report, *, optimizer: str = "adam") -> Report:
    """``report`` with its ``memory`` filled (a training step too when the request is in train
    mode); a failure of the memory analysis becomes a note, never the loss of the report."""
    try:
        memory = run_memory(request, train=request.train, optimizer=optimizer)
    except Exception as e:  # a bug in a secondary analysis never takes down the primary numbers
        note = f"memory analysis failed ({type(e).__name__}: {e}); the other figures are unaffected"
        return replace(report, notes=(*report.notes, note))
    return replace(report, memory=memory)


def verify_memory(request: Request, memory: MemoryReport, *, device: str = "cpu",
                  optimizer: str = "adam") -> MemoryReport:
    """``memory`` with its figures beside a real run of the model on ``device`` (random weights
    and inputs, :mod:`cnnshape.memory_measure`)."""
    from .memory_measure import measure_inference, measure_training
    from .verify import real_copy, resolve_device

    where = resolve_device(device)
    checks = []
    model = real_copy(request.model, request.kwargs, where)
    inference = measure_inference(model, request.inputs, str(where), memory.amp)
    checks.append(MemoryCheck("inference peak", memory.inference.peak_bytes, inference.peak_bytes, str(where),
                              inference.cuda_peak_bytes))
    if memory.training is not None:
        del model
        model = real_copy(request.model, request.kwargs, where, train=True)
        step = measure_training(model, request.inputs, optimizer, str(where), memory.amp)
        checks.append(MemoryCheck("training step peak", memory.training.peak_bytes, step.peak_bytes, str(where),
                                  step.cuda_peak_bytes))
        checks.append(MemoryCheck("saved for backward", memory.training.saved_bytes, step.saved_bytes or 0,
                                  str(where)))
    return replace(memory, checks=tuple(checks))
