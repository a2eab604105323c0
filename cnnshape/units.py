"""Human units: SI prefixes for counts (K, M, G, T), binary prefixes for bytes (KiB, MiB, GiB)."""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from .errors import ConfigError

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


#: Suffixes accepted by :func:`parse_count` (SI, 1000-based), upper-cased.
COUNT_UNITS: dict[str, int] = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
#: Suffixes accepted by :func:`parse_bytes`, upper-cased: KB/MB/... are 1000-based, KiB/MiB/... 1024-based.
BYTE_UNITS: dict[str, int] = {
    "": 1, "B": 1,
    "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
    "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40,
}
COUNT_FORMS = "a plain integer or a number with K, M, G or T (1000-based), e.g. 61706, 25M, 4.5G"
BYTE_FORMS = (
    "a plain integer (bytes) or a number with B, KB, MB, GB, TB (1000-based) "
    "or KiB, MiB, GiB, TiB (1024-based), e.g. 100MB, 300MiB, 1.5GiB"
)
_NUMBER = re.compile(r"^\s*(\d[\d_]*(?:\.\d+)?|\.\d+)\s*([A-Za-z]*)\s*$")


def _parse_scaled(value: str | int, units: dict[str, int], name: str, forms: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{name}: {value!r} is not a number. Use {forms}.")
    if isinstance(value, int):
        if value < 0:
            raise ConfigError(f"{name}: {value} is negative. Use {forms}.")
        return value
    if not isinstance(value, str):
        raise ConfigError(f"{name}: {value!r} is a {type(value).__name__}, not a number. Use {forms}.")
    m = _NUMBER.match(value)
    if m is None or m.group(2).upper() not in units:
        raise ConfigError(f"{name}: cannot read {_clip(value)!r}. Use {forms}.")
    try:
        scaled = Decimal(m.group(1).replace("_", "")) * units[m.group(2).upper()]
    except InvalidOperation:
        raise ConfigError(f"{name}: cannot read {_clip(value)!r}. Use {forms}.") from None
    if scaled.adjusted() >= MAX_DIGITS:  # int() of it would pass Python's 4,300-digit conversion limit
        raise ConfigError(f"{name}: {_clip(value)!r} is a number of more than {MAX_DIGITS:,} digits. Use {forms}.")
    if scaled != scaled.to_integral_value():
        raise ConfigError(f"{name}: {_clip(value)!r} is {scaled}, not a whole number. Use {forms}.")
    return int(scaled)


#: the most digits a budget may have (far above any real count; below Python's int conversion limit)
MAX_DIGITS = 1000


def _clip(text: str, width: int = 60) -> str:
    """``text``, shortened with "..." when longer than ``width`` (a 5,000-digit number in a message)."""
    return text if len(text) <= width else text[:width - 3] + "..."


def parse_count(value: str | int, name: str = "count") -> int:
    """``"25M"`` -> 25_000_000, ``"4.5G"`` -> 4_500_000_000, ``"61706"`` -> 61706 (SI, 1000-based)."""
    return _parse_scaled(value, COUNT_UNITS, name, COUNT_FORMS)


def parse_bytes(value: str | int, name: str = "size") -> int:
    """``"100MB"`` -> 100_000_000, ``"300MiB"`` -> 314_572_800, ``"512"`` -> 512 bytes."""
    return _parse_scaled(value, BYTE_UNITS, name, BYTE_FORMS)


def parse_percent(value: str | int | float, name: str = "percentage") -> Decimal:
    """``"5%"`` or ``"5"`` or ``5`` -> ``Decimal("5")``; negative values are rejected."""
    text = str(value).strip()
    number = text[:-1].strip() if text.endswith("%") else text
    try:
        result = Decimal(number) if not isinstance(value, bool) else Decimal("NaN")
    except InvalidOperation:
        result = Decimal("NaN")
    if not result.is_finite() or result < 0:
        raise ConfigError(f"{name}: cannot read {_clip(text)!r}. Use a non-negative percentage, e.g. 5% or 0.5%.")
    if result.adjusted() >= MAX_DIGITS:
        raise ConfigError(f"{name}: {_clip(text)!r} is a number of more than {MAX_DIGITS:,} digits. Use a "
                          "non-negative percentage, e.g. 5% or 0.5%.")
    return +result  # to the context's 28 significant digits: a 500-digit limit is shown as 1.0E+500
