"""The ``--verify`` outcome as text lines, printed after the table (JSON carries it in the report)."""
from __future__ import annotations

from ..report import LayerCheck, Shapes, Verification
from ..units import binary_bytes
from .text import shape_text


def _shapes_text(shapes: Shapes | None) -> str:
    if shapes is None:
        return "(no such node)"
    if len(shapes) == 1 and shapes[0][0] == "":
        return shape_text(shapes[0][1])
    return ", ".join(f"{key}: {shape_text(shape)}" for key, shape in shapes)


def _side(shapes: Shapes | None, dtype: str | None) -> str:
    text = _shapes_text(shapes)
    return f"{text} {dtype}" if shapes is not None and dtype else text


def mismatch_text(check: LayerCheck) -> str:
    return (f"mismatch {check.name}: predicted {_side(check.predicted_shapes, check.predicted_dtype)}, "
            f"real {_side(check.real_shapes, check.real_dtype)}")


def verification_lines(v: Verification) -> list[str]:
    where = v.device if v.dtype is None else f"{v.device} in {v.dtype}"
    head = f"verified: {v.matched}/{len(v.layers)} layers match on {where}"
    lines = [head if v.ok else f"{head}; {len(v.mismatches)} mismatch(es):"]
    lines += [f"  {mismatch_text(c)}" for c in v.mismatches]
    lines.append(f"latency: {v.latency_ms:.3f} ms (median of {v.repeats} runs after a warm-up; {v.device_name})")
    peak = "not measured" if v.peak_bytes is None else binary_bytes(v.peak_bytes)
    lines.append(f"peak memory of one pass: {peak} ({v.memory_method})")
    lines.append(f"static activation estimate: {binary_bytes(v.static_activation_bytes)} "
                 f"(every new layer output kept, at the analysed dtypes)")
    return lines


def render_verification(v: Verification, fmt: str = "table") -> str:
    """Plain lines for the table and CSV (the CLI sends the latter to stderr); bullets for markdown."""
    lines = verification_lines(v)
    if fmt == "markdown":
        bullets = (f"  - {line.strip()}" if line.startswith("  ") else f"- {line}" for line in lines)
        return "\n".join(bullets) + "\n"
    return "\n".join(lines) + "\n"
