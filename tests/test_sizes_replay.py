"""The size flow replays a node's size rules for the nodes that repeat its structure (analyse/sizes/flow.py
``Transfers``) and evaluates the expressions a column at a time: the answers must be the ones torch gives,
on models whose two spatial axes differ (kernel 3x5, stride (2, 1), H ≠ W), every layer's formula included."""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from cnnshape.analyse.sizes import flow
from cnnshape.api import on_meta, sizes

from .test_sizes import formula_value, meta_output_shapes


class RoundTrip(nn.Module):
    """x + up2(conv3 s2 p1 (x)): the conv gives floor((h − 1)/2) + 1, the nearest upsampling twice that,
    so the add needs an even h (or h = 1, which broadcasts against 2)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.down = nn.Conv2d(channels, channels, 3, stride=2, padding=1)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(x + self.up(self.down(x)))


class Lopsided(nn.Module):
    """stem conv k(3, 5) s(2, 1) p(1, 0): H -> floor((H − 1)/2) + 1, W -> W − 4; ``blocks`` round trips
    (their rules build a floor, an upsampling and a merge each: the replayed case); an avg pool k(3, 1)
    s(1, 2): h − 2, floor((w − 1)/2) + 1; the map and a linear head on its global average."""

    def __init__(self, blocks: int = 3) -> None:
        super().__init__()
        self.stem = nn.Conv2d(2, 8, (3, 5), stride=(2, 1), padding=(1, 0))
        self.blocks = nn.Sequential(*[RoundTrip(8) for _ in range(blocks)])
        self.pool = nn.AvgPool2d((3, 1), stride=(1, 2))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feature = self.pool(self.blocks(self.stem(x)))
        return self.head(feature), feature


#: H 27 -> 14 (even, the round trips hold), W 38 -> 34: a working example with H ≠ W
SHAPE = (1, 2, 27, 38)


def _layer_shapes(model: nn.Module, shape: tuple[int, ...], axis: int, s: int) -> dict[str, tuple[int, ...]]:
    """torch itself: every submodule's output shape, by its qualified name, at size ``s`` on ``axis``."""
    dims = list(shape)
    dims[axis] = s
    seen: dict[str, tuple[int, ...]] = {}

    def record(name: str) -> Callable[..., None]:
        def hook(_module: nn.Module, _inputs: object, out: torch.Tensor) -> None:  # None: the output stays
            seen[name] = tuple(out.shape)
        return hook

    hooks = [m.register_forward_hook(record(name)) for name, m in model.named_modules() if name]
    try:
        with torch.no_grad():
            model(torch.empty(dims, device="meta"))
    finally:
        for h in hooks:
            h.remove()
    return seen


def test_rectangular_model_matches_torch_on_both_axes_every_layer() -> None:
    # by hand, H: the stem gives h = floor((H − 1)/2) + 1; the round trips need h even (or h = 1, whose
    # broadcast add makes it 2); the (3, 1) pool then needs h ≥ 3. W: w = W − 4 ≥ 1, even or 1 likewise,
    # and the pool's stride 2 along W gives floor((w − 1)/2) + 1. torch decides each size below.
    model = Lopsided()
    report = sizes(model, [SHAPE], layers=True)
    arithmetic = sizes(model, [SHAPE], layers=True, symbolic=False)
    assert report.to_dict(layers=True) == arithmetic.to_dict(layers=True)  # the layer arithmetic answered
    names = {name for name, _ in model.named_modules() if name}
    with on_meta(model):
        for a in report.axes:
            assert a.accepted is not None, a.reason
            layers = [f for f in a.layers if f.name in names]
            assert {f.name for f in layers} >= {"stem", "blocks.2.up", "pool"}
            for s in range(1, 61):
                outs = meta_output_shapes(model, SHAPE, a.axis, s)
                assert (outs is not None) == a.accepted.contains(s), (a.symbol, s)
                if outs is None:
                    continue
                for f in a.outputs:
                    assert outs[int(f.key.strip("[]"))][f.dim] == formula_value(f.formula, a.symbol, s), (s, f)
                real = _layer_shapes(model, SHAPE, a.axis, s)
                for f in layers:
                    assert real[f.name][f.dim] == formula_value(f.formula, a.symbol, s), (a.symbol, s, f)
    # the hand derivation above, at a few sizes: H = 3 -> h = 2 -> pool 0 (rejected); H = 5 -> h = 3 (odd)
    h_axis, w_axis = report.axes
    assert [s for s in (3, 5, 7, 9) if h_axis.accepted.contains(s)] == [7]  # h = 4 is the first ≥ 3 and even
    assert [s for s in (5, 6, 7) if w_axis.accepted.contains(s)] == [5, 6]  # w = 1, 2 pass; w = 3 is odd


def test_rules_run_once_per_structure(monkeypatch) -> None:
    # the round trips of one model share their structure: with 6 of them the rules run for exactly as
    # many nodes as with 2 (the first block's), and the later blocks replay them, with the same answer
    calls = [0]
    rules = flow.node_shapes

    def counted(*args: object) -> object:
        calls[0] += 1
        return rules(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(flow, "node_shapes", counted)
    runs, answers = [], []
    for blocks in (2, 6):
        calls[0] = 0
        model = Lopsided(blocks)
        report = sizes(model, [SHAPE], symbolic=False)
        runs.append(calls[0])
        answers.append([a.accepted for a in report.axes])
        with on_meta(model):  # torch agrees at a few sizes of each axis
            for a in report.axes:
                for s in (1, 2, 7, 8, 9, 10, 21, 40):
                    assert (meta_output_shapes(model, SHAPE, a.axis, s) is not None) == a.accepted.contains(s)
    assert runs[0] == runs[1] > 0
    assert answers[0] == answers[1]


def test_transposed_model_gives_the_transposed_answer() -> None:
    # the same network with H and W exchanged (every kernel, stride and padding transposed, the input
    # too) accepts along W exactly what the original accepts along H, and the other way round
    class Transposed(Lopsided):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Conv2d(2, 8, (5, 3), stride=(1, 2), padding=(0, 1))
            self.pool = nn.AvgPool2d((1, 3), stride=(2, 1))

    original = sizes(Lopsided(), [SHAPE], symbolic=False)
    swapped = sizes(Transposed(), [(1, 2, SHAPE[3], SHAPE[2])], symbolic=False)
    assert [a.accepted for a in original.axes] == [a.accepted for a in reversed(swapped.axes)]
    assert [[f.formula.replace(a.symbol, "X") for f in a.outputs] for a in original.axes] == \
           [[f.formula.replace(a.symbol, "X") for f in a.outputs] for a in reversed(swapped.axes)]
