"""Text and JSON for a finished :class:`~cnnshape.analyse.memory.records.MemoryReport`, and the
summary's memory footer lines (never recomputes)."""
from __future__ import annotations

import json

from ..analyse.memory.records import BatchFit, MemoryReport
from ..units import binary_bytes
from ..vocab import MEMORY_SCHEMA

#: tensors listed as alive at the inference peak
ALIVE_SHOWN = 5


def _fit_text(fit: BatchFit) -> str:
    if fit.batch is None:
        if fit.per_sample_bytes <= 0:
            return "the peak does not grow with the batch"
        return f"none: even batch 1 needs more than {binary_bytes(fit.budget_bytes)}"
    return (f"{fit.batch:,} (peak = {binary_bytes(fit.fixed_bytes)} + {binary_bytes(fit.per_sample_bytes)}"
            f" x batch, fitted on batches {fit.fitted_on[0]} and {fit.fitted_on[1]})")


def footer_lines(m: MemoryReport) -> list[str]:
    """The memory figures as the summary's footer lines."""
    i = m.inference
    amp = f", {m.amp} autocast" if m.amp else ""
    lines = [f"Inference peak memory{amp}: {binary_bytes(i.peak_bytes)} at {i.peak_at} "
             f"(weights {binary_bytes(i.weight_bytes)}, input {binary_bytes(i.input_bytes)}, "
             f"activations {binary_bytes(i.activation_peak_bytes)})"]
    t = m.training
    if t is not None:
        lines.append(f"Training step peak ({t.optimizer}{amp}): {binary_bytes(t.peak_bytes)} in the {t.peak_phase} "
                     f"(gradients {binary_bytes(t.gradient_bytes)}, optimizer state "
                     f"{binary_bytes(t.optimizer_state_bytes)}, saved for backward {binary_bytes(t.saved_bytes)})")
    if m.inference_fit is not None:
        lines.append(f"Largest batch in {binary_bytes(m.inference_fit.budget_bytes)}, inference: "
                     f"{_fit_text(m.inference_fit)}")
    if m.training_fit is not None:
        lines.append(f"Largest batch in {binary_bytes(m.training_fit.budget_bytes)}, training: "
                     f"{_fit_text(m.training_fit)}")
    return lines


def render_memory_text(m: MemoryReport, layers: bool = False) -> str:
    i = m.inference
    amp = f", {m.amp} autocast" if m.amp else ""
    lines = [f"{m.model}  (batch {m.batch}{amp}; no data, nothing computed: docs/memory.md)", "",
             "Inference (eval mode, no grad)",
             f"  peak                 {binary_bytes(i.peak_bytes):>12}  at {i.peak_at}",
             f"  weights and buffers  {binary_bytes(i.weight_bytes):>12}",
             f"  inputs               {binary_bytes(i.input_bytes):>12}",
             f"  activations at peak  {binary_bytes(i.activation_peak_bytes):>12}"]
    for t in i.alive[:ALIVE_SHOWN]:
        shape = "x".join(map(str, t.shape)) or "scalar"
        lines.append(f"    {binary_bytes(t.bytes):>12}  {shape} {t.dtype} from {t.layer} ({t.op})")
    if len(i.alive) > ALIVE_SHOWN:
        rest = sum(t.bytes for t in i.alive[ALIVE_SHOWN:])
        lines.append(f"    {binary_bytes(rest):>12}  in {len(i.alive) - ALIVE_SHOWN} more tensors")
    tr = m.training
    if tr is not None:
        lines += ["", f"Training step (train mode, optimizer {tr.optimizer}, at its steady state)",
                  f"  peak                 {binary_bytes(tr.peak_bytes):>12}  in the {tr.peak_phase}",
                  f"  weights and buffers  {binary_bytes(tr.weight_bytes):>12}",
                  f"  gradients            {binary_bytes(tr.gradient_bytes):>12}",
                  f"  optimizer state      {binary_bytes(tr.optimizer_state_bytes):>12}",
                  f"  saved for backward   {binary_bytes(tr.saved_bytes):>12}",
                  f"  end of forward       {binary_bytes(tr.forward_end_bytes):>12}  (state not counted)",
                  f"  backward peak        {binary_bytes(tr.backward_peak_bytes):>12}  (state not counted)",
                  f"  optimizer step       {binary_bytes(tr.step_peak_bytes):>12}  "
                  f"(temporaries {binary_bytes(tr.step_transient_bytes)})"]
    for title, fit in (("inference", m.inference_fit), ("training", m.training_fit)):
        if fit is not None:
            lines += ["", f"Largest batch in {binary_bytes(fit.budget_bytes)}, {title}: {_fit_text(fit)}"]
    if layers:
        lines += ["", "Live bytes after each layer (inference):"]
        width = max((len(layer.name) for layer in i.layers), default=0)
        lines += [f"  {layer.name.ljust(width)}  {binary_bytes(layer.live_bytes):>12}" for layer in i.layers]
    if m.checks:
        lines += ["", "Estimate beside a real run:"]
        for c in m.checks:
            cuda = "" if c.cuda_bytes is None else f", torch.cuda.max_memory_allocated {binary_bytes(c.cuda_bytes)}"
            lines.append(f"  {c.what}: estimate {binary_bytes(c.estimate_bytes)}, "
                         f"measured {binary_bytes(c.measured_bytes)} on {c.device} ({c.error:+.2%}{cuda})")
        if not any(c.cuda_bytes is not None for c in m.checks):
            lines.append("  (measured: the peak of the tensor storages alive in the real run; no CUDA device was used)")
    lines += [f"Note: {n}" for n in m.notes]
    return "\n".join(lines).rstrip() + "\n"


def render_memory_json(m: MemoryReport) -> str:
    return json.dumps({"schema": MEMORY_SCHEMA, **m.to_dict()}, indent=2) + "\n"
