"""Integer size arithmetic of sliding-window layers: pure functions, no torch.

Shared by the shape cross-check, the diagnostics, the receptive-field and the input-size analyses.
"""
from __future__ import annotations


def conv_out(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """floor((W + 2P − D·(F−1) − 1)/S) + 1; the textbook (W − F + 2P)/S + 1 when D = 1."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def pool_out(
    size: int, kernel: int, stride: int, padding: int = 0, dilation: int = 1, ceil_mode: bool = False
) -> int:
    """Like :func:`conv_out`, rounding up with ``ceil_mode``; as in torch, a window that would
    start inside the right padding is dropped."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    if (out - 1) * stride >= size + padding:
        out -= 1
    return out


def conv_transpose_out(
    size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1, output_padding: int = 0
) -> int:
    """(W − 1)·S − 2P + D·(F − 1) + output_padding + 1."""
    return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


def same_padding(kernel: int, dilation: int = 1) -> tuple[int, int]:
    """torch's ``padding="same"`` split: total D·(F−1), the extra pixel on the right."""
    total = dilation * (kernel - 1)
    return total // 2, total - total // 2


def conv_out_text(size: int, kernel: int, stride: int, padding: int, dilation: int) -> str:
    """The arithmetic of :func:`conv_out` written out, for error messages."""
    return (
        f"floor(({size} + 2·{padding} − {dilation}·({kernel}−1) − 1)/{stride}) + 1 = "
        f"{conv_out(size, kernel, stride, padding, dilation)}"
    )


def as_tuple(value: object, n: int) -> tuple[int, ...]:
    """``3`` -> ``(3, 3)``; ``(3, 1)`` stays; the usual torch spelling of per-axis values."""
    if isinstance(value, (tuple, list)):
        if len(value) == 1:
            return tuple(int(value[0]) for _ in range(n))
        return tuple(int(v) for v in value)
    return tuple(int(value) for _ in range(n))  # type: ignore[call-overload]
