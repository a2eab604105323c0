"""Every parameter count that examples/README.md states, three ways.

For each row of the README's tables (parsed here, so a row added there is checked without touching
this file): cnnshape's total == ``sum(p.numel() for p in model.parameters())`` of the model torch
builds == the README's figure. The README's sources for the figures are in its last column
(torchvision model cards, papers, the hand arithmetic in each module's docstring).

torch's count is taken on a model built for real on the CPU when it is small, and on the meta
device for the large ones (no storage, no initialisation: the count is the same). The RegNets
compute their widths with ``.tolist()`` in ``__init__``, which ``torch.device("meta")`` cannot run;
they are built with a parameter-registration hook that moves each parameter to meta as it is
registered (torch's public ``register_module_parameter_registration_hook``), written out here so that
the count does not rest on cnnshape's own loader.
"""
from __future__ import annotations

import contextlib
import importlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import cnnshape

from .cases import EXAMPLES

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "examples" / "README.md"

#: built for real on the CPU below this many parameters (the count is the same on meta; this keeps
#: the suite quick: VGG-16's 138 M float32 weights take seconds to initialise)
REAL_BUILD_LIMIT = 30_000_000


@dataclass(frozen=True)
class Row:
    spec: str
    inputs: tuple[tuple[int, ...], ...]
    params: int
    source: str  # the README's line, for the failure message


def _shapes(cell: str) -> tuple[tuple[int, ...], ...]:
    """``--input 1,3,224,224`` (first tables) or ``image 1x3x32x32, extra 1x10`` (multi-input table)."""
    found = re.findall(r"--input (\d+(?:,\d+)+)", cell)
    if found:
        return tuple(tuple(int(d) for d in s.split(",")) for s in found)
    return tuple(tuple(int(d) for d in s.split("x")) for s in re.findall(r"\b\d+(?:x\d+)+\b", cell))


def readme_rows() -> list[Row]:
    """One row per spec in every README table with a ``Params`` column; a spec cell naming a factory
    too (``examples/vgg.py:VGG16`` (also ``vgg16()``)) gives a row for each."""
    rows: list[Row] = []
    header: list[str] | None = None
    for line in README.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
            continue
        if set("".join(cells)) <= set("-: "):
            continue  # the |---| separator
        if "Params" not in header:
            continue
        spec = re.match(r"`([^`]+)`", cells[0])
        params = re.match(r"([\d,]+)", cells[header.index("Params")])
        assert spec and params, line
        path = spec.group(1).split(":")[0]
        names = [spec.group(1).split(":")[1], *re.findall(r"also `(\w+)\(\)`", cells[0])]
        for name in names:
            rows.append(Row(f"{path}:{name}", _shapes(cells[1]), int(params.group(1).replace(",", "")), line))
    return rows


ROWS = readme_rows()


def test_the_readme_tables_were_read() -> None:
    # one row per "| `examples/..." line of the README, plus one per factory it names ("also
    # `vgg16()`"); every example the other tests use (tests/cases.py) and the RegNets among them
    text = README.read_text(encoding="utf-8")
    lines = re.findall(r"^\| `examples/[^`]+`(.*)$", text, flags=re.MULTILINE)
    factories = sum(len(re.findall(r"also `\w+\(\)`", line)) for line in lines)
    assert len(ROWS) == len(lines) + factories
    assert all(row.inputs for row in ROWS)
    assert len({row.spec for row in ROWS}) == len(ROWS)
    specs = {row.spec for row in ROWS}
    assert {case.spec for case in EXAMPLES} <= specs
    assert {"examples/regnet.py:regnet_y_128gf", "examples/vgg.py:vgg16", "examples/resnet.py:resnet50"} <= specs


def _constructor(spec: str) -> Any:
    path, name = spec.split(":")
    return getattr(importlib.import_module(path.removesuffix(".py").replace("/", ".")), name)


@contextlib.contextmanager
def _parameters_to_meta() -> Iterator[None]:
    """Every parameter and buffer is moved to meta as a module registers it, so the layers'
    initialisers run on meta tensors (no memory, no time)."""
    from torch.nn.modules import module as torch_module

    handles = [
        torch_module.register_module_parameter_registration_hook(
            lambda _m, _name, p: None if p is None else nn.Parameter(p.to("meta"), p.requires_grad)),
        torch_module.register_module_buffer_registration_hook(
            lambda _m, _name, b: None if b is None else b.to("meta")),
    ]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def torch_count(spec: str, expected: int, **kwargs: Any) -> int:
    """``sum(p.numel() for p in model.parameters())`` of the model torch builds (on the CPU when
    small, on meta otherwise)."""
    build = _constructor(spec)
    if expected < REAL_BUILD_LIMIT:
        model = build(**kwargs)
        assert all(p.device.type == "cpu" for p in model.parameters())
    else:
        try:
            with torch.device("meta"):
                model = build(**kwargs)
        except NotImplementedError:  # the RegNets' .tolist() on a meta tensor
            with _parameters_to_meta():
                model = build(**kwargs)
        assert all(p.is_meta for p in model.parameters())
    # parameters() yields a parameter shared by two modules once (examples/multi_io.py:TiedWeights)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("row", ROWS, ids=[r.spec.split(":")[1] for r in ROWS])
def test_readme_parameter_count(row: Row) -> None:
    expected = row.params
    assert torch_count(row.spec, expected) == expected, row.source
    totals = cnnshape.analyze(row.spec, list(row.inputs)).totals
    assert totals.params == expected, row.source


def test_figures_that_depend_on_a_constructor_argument() -> None:
    # examples/README.md, UNet row: "31,031,810 with `in_channels=3`". Only the first conv changes:
    # 3x3 conv in_channels -> 64, so (3 − 1)·64·9 = 1,152 more weights: 31,030,658 + 1,152 = 31,031,810
    assert torch_count("examples/unet.py:UNet", 31_031_810, in_channels=3) == 31_030_658 + 2 * 64 * 9 == 31_031_810
    report = cnnshape.analyze("examples/unet.py:UNet", [(1, 3, 256, 256)], args={"in_channels": 3})
    assert report.totals.params == 31_031_810


def test_tied_weight_counted_twice_gives_the_readme_figure() -> None:
    # examples/README.md, TiedWeights row: "8,384 unique (12,480 if the tied weight is counted
    # twice)": summing each module's own parameters counts dec.weight (64·64 = 4,096) again
    from examples.multi_io import TiedWeights

    model = TiedWeights()
    per_module = sum(p.numel() for m in model.modules() for p in m.parameters(recurse=False))
    assert per_module == 8_384 + 64 * 64 == 12_480
    report = cnnshape.analyze(model, [(1, 64)])
    assert report.totals.params == 8_384
    assert sum(layer.params for layer in report.layers if layer.kind == "module" and "#" not in layer.name) == 12_480
