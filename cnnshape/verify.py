"""``--verify``: confirm the static analysis with one real forward pass on the CPU, CUDA or MPS.

The analysed model is never touched. A real copy is made: a spec is loaded again on the device
(constructed with random weights), a module instance with real weights is deep-copied; a module
whose weights live on the meta device has nothing to run and is refused. The copy runs once in
``torch.no_grad()`` on random inputs under the same tracer that produced the report, so every
traced node is matched by name with its static prediction (output shapes and dtype). Latency
(median of ``repeat`` plain forward calls after a warm-up) and peak memory of one pass are
measured beside the static activation-memory estimate.
"""
from __future__ import annotations

import copy
import platform
import statistics
import time
import weakref
from collections.abc import Callable, Sequence
from itertools import chain
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from .errors import ConfigError, EnvironmentFault, ShapeError, param
from .inputs import InputSpec
from .load import load_model
from .report import LayerCheck, Report, Verification
from .request import Request
from .trace.leaves import resolve_leaves
from .trace.meta import ForwardInputs, call_forward, keywords_of, make_inputs, tensors_in
from .trace.records import Trace
from .trace.tracers import TRACER_FNS
from .vocab import DEVICE_CHOICES, VERIFY_DTYPES

_FLOATING = ("float16", "bfloat16", "float32", "float64")

def resolve_device(name: str) -> torch.device:
    """``--device`` text -> a device that is present; ``auto`` is CUDA when available, else CPU."""
    text = name.strip().lower()
    if text == "auto":
        return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(text)
    except RuntimeError as e:
        raise ConfigError(f"{param('device')} {name!r} is not a device name; choose {DEVICE_CHOICES}") from e
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch build has no CUDA support" if torch.version.cuda is None else "no GPU is visible"
            flag = param("device")
            raise EnvironmentFault(
                f"{flag} {name}: CUDA is not available ({why}; torch {torch.__version__}). "
                f"Use {flag} cpu, or {flag} auto to use a GPU only when one is present."
            )
        count = torch.cuda.device_count()
        if device.index is None:
            return torch.device("cuda", torch.cuda.current_device())
        if device.index >= count:
            raise EnvironmentFault(f"{param('device')} {name}: there are {count} CUDA device(s), "
                                   f"cuda:0 to cuda:{count - 1}")
        return device
    if device.type == "mps":
        if not torch.backends.mps.is_available():
            raise EnvironmentFault(f"{param('device')} {name}: MPS is not available on this machine. "
                                   f"Use {param('device')} cpu.")
        return device
    if device.type != "cpu":
        raise ConfigError(f"{param('device')} {name}: the verification pass runs on {DEVICE_CHOICES}, "
                          f"not on {device.type}")
    return device


def real_copy(
    model: nn.Module | str,
    args: dict[str, Any] | None,
    device: torch.device,
    dtype: str | None = None,
    train: bool = False,
) -> nn.Module:
    """A copy of ``model`` with real weights on ``device`` (cast to ``dtype``), in eval or train mode.

    A spec is loaded again on ``device``, which constructs the model with random weights; the
    result is copied as well, because a spec may name a module instance (the analysed one).
    """
    source = load_model(model, args, device=str(device)).module if isinstance(model, str) else model
    on_meta = [name for name, t in chain(source.named_parameters(), source.named_buffers()) if t.is_meta]
    if on_meta:
        raise ConfigError(
            f"{type(source).__name__} has its weights on the meta device (e.g. {on_meta[0]!r}), so "
            f"there is nothing to run for real. Verify from the model spec (file.py:Name), which "
            f"constructs a copy with random weights, or pass a module with real weights."
        )
    try:
        real = copy.deepcopy(source)
    except Exception as e:
        raise ConfigError(
            f"cannot copy {type(source).__name__} for the verification pass ({type(e).__name__}: {e}); "
            f"the analysed model is never changed in place. Verify from the model spec instead."
        ) from e
    real.to(device)
    if dtype is not None:
        real.to(getattr(torch, dtype))
    return real.train(train)


def random_inputs(specs: Sequence[InputSpec], device: torch.device, dtype: str | None = None) -> list[torch.Tensor]:
    """Inputs of the given shapes: floating ones standard normal (cast to ``dtype`` when given);
    integer and bool ones 0 or 1, valid indices for any embedding table."""
    tensors = []
    made = make_inputs(specs, str(device))
    for t in made:
        if t.is_floating_point():
            t.normal_()
            if dtype is not None:
                t = t.to(getattr(torch, dtype))
        else:
            t.random_(0, 2)
        tensors.append(t)
    return ForwardInputs(tensors, keywords_of(made))  # the names of those passed by keyword


def _expected_dtype(predicted: str | None, dtype: str | None) -> str | None:
    return dtype if dtype is not None and predicted in _FLOATING else predicted


def compare(report: Report, real: Trace, dtype: str | None = None) -> tuple[LayerCheck, ...]:
    """Every report row against the real node of the same name: all output keys and shapes, and
    the first output's dtype. Rows that never ran and nodes the report lacks are mismatches."""
    real_nodes = {node.name: node for node in real.nodes}
    checks = []
    for layer in report.layers:
        expected = _expected_dtype(layer.dtype, dtype)
        node = real_nodes.pop(layer.name, None)
        if node is None:
            checks.append(LayerCheck(layer.name, layer.output_shapes, expected, None, None, False))
            continue
        shapes = tuple((key, meta.shape) for key, meta in node.outputs)
        real_dtype = node.output.dtype if node.output else None
        ok = shapes == layer.output_shapes and real_dtype == expected
        checks.append(LayerCheck(layer.name, layer.output_shapes, expected, shapes, real_dtype, ok))
    for node in real_nodes.values():
        shapes = tuple((key, meta.shape) for key, meta in node.outputs)
        checks.append(LayerCheck(node.name, None, None, shapes, node.output.dtype if node.output else None, False))
    return tuple(checks)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


class _TensorMemory(TorchDispatchMode):
    """Peak bytes of the tensor storages a pass allocates, tracked per storage: a storage counts
    from the op that creates it until the last tensor viewing it is freed. Device-independent and
    deterministic (unlike RSS, which depends on what the allocator already holds)."""

    def __init__(self) -> None:
        super().__init__()
        self.holders: dict[int, int] = {}  # storage key -> tensors alive that use it
        self.sizes: dict[int, int] = {}
        self.known: set[int] = set()  # storages that existed before the pass (weights, inputs)
        self.current = 0
        self.peak = 0

    def _release(self, key: int) -> None:
        self.holders[key] -= 1
        if self.holders[key] == 0:
            self.current -= self.sizes.pop(key)
            del self.holders[key]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        for t in tensors_in((args, kwargs)):
            key = t.untyped_storage().data_ptr()
            if key not in self.holders:
                self.known.add(key)
        out = func(*args, **(kwargs or {}))
        for t in tensors_in(out):
            storage = t.untyped_storage()
            key = storage.data_ptr()
            if key == 0 or key in self.known:
                continue
            if key not in self.holders:
                self.holders[key], self.sizes[key] = 0, storage.nbytes()
                self.current += storage.nbytes()
                self.peak = max(self.peak, self.current)
            self.holders[key] += 1
            weakref.finalize(t, self._release, key)
        return out


def _peak_memory(run: Callable[[], Any], device: torch.device) -> tuple[int | None, str]:
    """Bytes one call of ``run`` added at its peak, and how that was measured."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        run()
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) - before
        return peak, "torch.cuda.max_memory_allocated above the memory allocated before the pass"
    tracker = _TensorMemory()
    with tracker:
        run()
    return tracker.peak, "peak of the tensor storages allocated during the pass"


def _latency_ms(run: Callable[[], Any], device: torch.device, repeat: int) -> float:
    run()  # warm-up
    times = []
    for _ in range(repeat):
        _synchronize(device)
        start = time.perf_counter()
        run()
        _synchronize(device)
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple MPS"
    return f"{platform.machine() or 'cpu'} CPU, {torch.get_num_threads()} threads"


def verify(
    request: Request,
    report: Report,
    *,
    device: str = "cpu",
    dtype: str | None = None,
    repeat: int = 10,
) -> Verification:
    """Run the model of ``request`` for real on ``device`` and check every node of ``report``,
    the analysis of that same request, against it. ``report`` must not be collapsed (collapse
    after verifying)."""
    if not isinstance(request, Request):
        raise ConfigError("verify takes the Request the report was made from: "
                          "cnnshape.Request.of(model, inputs, ...), as given to cnnshape.analyze")
    if report.depth is not None:
        raise ConfigError(f"verify needs the uncollapsed report ({param('depth')}=None); collapse it after verifying")
    if dtype is not None and dtype not in VERIFY_DTYPES:
        raise ConfigError(f"{param('dtype')} {dtype!r}: the verification pass can use {' or '.join(VERIFY_DTYPES)}")
    if repeat < 1:
        raise ConfigError(f"{param('repeat')} {repeat}: give at least 1 timed run")
    if report.tracer not in TRACER_FNS:
        raise ConfigError(f"the report was made with the {report.tracer!r} tracer, which this version cannot run")
    where = resolve_device(device)
    real = real_copy(request.model, request.kwargs, where, dtype, request.train)
    tensors = random_inputs(request.inputs, where, dtype)

    def forward() -> Any:
        return call_forward(real, tensors)

    def traced_forward() -> Trace:
        try:
            return TRACER_FNS[report.tracer](real, tensors, resolve_leaves(request.leaves, real), False)
        except ShapeError as e:
            raise ShapeError(f"the verification pass on {where} failed: {e}") from e

    with torch.no_grad():
        try:
            peak, method = _peak_memory(forward, where)
        except Exception:
            traced_forward()  # fails again, with the tracer's diagnosis of the failing node
            raise
        traced = traced_forward()
        latency = _latency_ms(forward, where, repeat)
    return Verification(
        device=str(where),
        device_name=_device_name(where),
        dtype=dtype,
        layers=compare(report, traced, dtype),
        repeats=repeat,
        latency_ms=latency,
        peak_bytes=peak,
        memory_method=method,
        static_activation_bytes=report.totals.activation_bytes,
    )
