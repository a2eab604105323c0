"""What to prune, as one validated value; per-layer ratios read from a small TOML or JSON file."""
from __future__ import annotations

import fnmatch
import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, param


@dataclass(frozen=True)
class PruneOptions:
    #: the share of each group's channels removed (0 <= ratio < 1)
    ratio: float = 0.5
    #: (layer pattern, ratio): a group whose producing layer matches takes the first such ratio
    ratios: tuple[tuple[str, float], ...] = ()
    #: only groups made by a layer matching one of these (fnmatch) patterns are pruned (empty: all)
    layers: tuple[str, ...] = ()
    #: groups that run through a layer matching one of these are left whole
    keep: tuple[str, ...] = ()
    #: the kept channels of each pruned group are a multiple of this (at least one multiple)
    round_to: int = 1
    #: prune the channels of the model's outputs too (a classifier's classes, a last conv's maps)
    prune_outputs: bool = False

    @classmethod
    def of(cls, ratio: float | None = None, ratios: Mapping[str, float] | str | Path | None = None,
           layers: Sequence[str] = (), keep: Sequence[str] = (), round_to: int = 1,
           prune_outputs: bool = False) -> PruneOptions:
        if isinstance(ratios, (str, Path)):
            ratios = read_ratios(ratios)
        pairs = tuple((str(k), _ratio(v, f"{param('ratios')}[{k!r}]")) for k, v in (ratios or {}).items())
        if ratio is None:
            ratio = 0.0 if pairs else 0.5
        if isinstance(round_to, bool) or not isinstance(round_to, int) or round_to < 1:
            raise ConfigError(f"{param('round_to')} {round_to!r}: give a whole number of channels, 1 or more")
        for name, patterns in (("layers", layers), ("keep", keep)):
            if isinstance(patterns, str):
                raise ConfigError(f"{param(name)} takes a list of patterns, not the string {patterns!r}")
        return cls(_ratio(ratio, param("ratio")), pairs, tuple(layers), tuple(keep), round_to, bool(prune_outputs))

    def ratio_for(self, producers: Sequence[str]) -> float:
        for pattern, r in self.ratios:
            if any(fnmatch.fnmatchcase(name, pattern) for name in producers):
                return r
        return self.ratio

    def selected(self, producers: Sequence[str]) -> bool:
        return not self.layers or any(fnmatch.fnmatchcase(n, p) for n in producers for p in self.layers)

    def kept(self, layers: Sequence[str]) -> bool:
        return any(fnmatch.fnmatchcase(n, p) for n in layers for p in self.keep)

    def channels_kept(self, n: int, ratio: float, per_unit: int) -> int:
        """Of ``n`` units (each ``per_unit`` channels of the producing layer), how many stay:
        ``n - floor(n·ratio)``, then the nearest multiple of ``round_to`` channels (at least one
        multiple, at most all ``n``)."""
        kept = n - math.floor(n * ratio + 1e-9)
        step = self.round_to // math.gcd(self.round_to, max(per_unit, 1))
        if step > 1:
            kept = max(step, math.floor(kept / step + 0.5) * step)
        return max(1, min(n, kept))


def _ratio(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ConfigError(f"{where} {value!r}: a pruning ratio is the share of channels removed, "
                          "from 0 (none) up to but not including 1")
    return float(value)


def _toml(text: str) -> Any:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on Python 3.10 only
        import tomli as tomllib
    return tomllib.loads(text)


def read_ratios(path: str | Path) -> dict[str, float]:
    """``{"layer pattern": ratio}`` from a JSON object or a TOML table, at the top level or under
    ``ratios`` (``[ratios]`` in TOML)."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError(f"{param('ratios')} {path}: cannot read it ({e.strerror or e})") from e
    try:
        if p.suffix == ".toml":
            data: Any = _toml(text)
        else:
            data = json.loads(text)
    except ValueError as e:
        kind = "TOML" if p.suffix == ".toml" else "JSON"
        raise ConfigError(f"{param('ratios')} {path}: not valid {kind} ({e}); write "
                          '{"layer1.*": 0.3, "layer4.*": 0.7} (JSON) or layer1.* = 0.3 lines (TOML)') from e
    if isinstance(data, dict) and isinstance(data.get("ratios"), dict):
        data = data["ratios"]
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"{param('ratios')} {path}: give a table of layer patterns and ratios, "
                          'e.g. {"layer1.*": 0.3}')
    return {str(k): v for k, v in data.items()}
