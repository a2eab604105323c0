"""Human units: SI prefixes for counts (K, M, G, T), binary prefixes for bytes (KiB, MiB, GiB)."""
from __future__ import annotations

_SI = ((10**12, "T"), (10**9, "G"), (10**6, "M"), (10**3, "K"))
_BINARY = ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB"))


def si(n: int | float, digits: int = 2) -> str:
    """``25_557_032`` -> ``"25.56 M"``; values under 1000 stay as they are."""
    for scale, prefix in _SI:
        if abs(n) >= scale:
            return f"{n / scale:.{digits}f} {prefix}"
    return f"{n:,}" if isinstance(n, int) else f"{n:.{digits}f}"


def binary_bytes(n: int) -> str:
    """``102_760_448`` -> ``"98.00 MiB"``."""
    for scale, unit in _BINARY:
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"


def grouped(n: int) -> str:
    """``25557032`` -> ``"25,557,032"``."""
    return f"{n:,}"
