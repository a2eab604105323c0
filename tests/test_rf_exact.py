"""Exact unit boxes (issue 13, item 8): what each unit reads, clipped to what exists.

Every box is checked against the gradient of a linearised float64 copy (``empirical_extent`` and
``linearise`` of tests/test_receptive_field.py; ``gradient_box`` of tests/test_rf_random.py where
a unit reads nothing). The closed form (size, jump, start) is unchanged; these are the boxes of
``input_box`` and ``cnnshape rf --layer/--at``.
"""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from typer.testing import CliRunner

from cnnshape import analyze
from cnnshape.analyse.receptive_field import Refused, input_box, unit_box
from cnnshape.cli import app
from cnnshape.errors import ConfigError
from cnnshape.query import unit_box as query_box

from .test_receptive_field import empirical_extent, rf_of
from .test_rf_random import gradient_box

runner = CliRunner()


def pixels(model: nn.Module, shape: tuple[int, ...], index: tuple[int, ...], tracer: str = "auto"):
    rf = rf_of(analyze(model, [shape], tracer=tracer), "output")
    return list(input_box(rf, index).pixels)


class CropThenPad(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        return self.conv(x[..., 1:-1, 1:-1])


def test_crop_then_zero_padding_reads_the_padding_not_the_cropped_pixel():
    # the crop keeps pixels 1..14; the conv's unit 0 reads cropped units −1, 0, 1 = pixels 0, 1, 2
    # by the closed form, but unit −1 is the conv's zero padding: pixel 0 was cut away
    model = CropThenPad()
    assert pixels(model, (1, 4, 16, 16), (0, 0)) == [(1, 2), (1, 2)] == empirical_extent(model, (1, 4, 16, 16), (0, 0))
    rf = rf_of(analyze(model, [(1, 4, 16, 16)]), "output")
    # per axis: the nominal box [0, 2] (one position of it padding), the pixels [1, 2]
    assert [unit_box(a, 0, 16) for a in rf.axes] == [(0, 2, 1, 2)] * 2
    box = query_box(analyze(model, [(1, 4, 16, 16)]), "conv", (0, 0))
    assert box["axes"][0] == {"index": 0, "box": [0, 2], "clipped": [1, 2], "inside": 2, "padding": 1}


class ReflectAfterGrouped(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 8, 3, padding=1, groups=4)
        self.pad = nn.ReflectionPad2d(2)

    def forward(self, x):
        return self.pad(self.conv(x))


def test_reflection_padding_reads_reflected_pixels():
    # unit 0 of the pad is conv unit |0 − 2| = 2 (reflected), which reads pixels 1..3; zero
    # padding would have put it at conv unit −2, pixels −3..−1, outside the image
    model = ReflectAfterGrouped()
    for index in ((0, 0), (1, 67), (33, 2)):
        assert pixels(model, (1, 4, 64, 64), index) == empirical_extent(model, (1, 4, 64, 64), index)
    assert pixels(model, (1, 4, 64, 64), (0, 0)) == [(1, 3), (1, 3)]


def test_replication_padding_reads_the_border_unit():
    model = nn.Sequential(nn.Conv2d(2, 2, 3), nn.ReplicationPad2d((3, 1, 0, 2)), nn.Conv2d(2, 2, 3, padding=1))
    for index in ((0, 0), (13, 17), (7, 1)):
        assert pixels(model, (1, 2, 16, 16), index) == empirical_extent(model, (1, 2, 16, 16), index)


class ShiftedChain(nn.Module):
    """A crop, a ceil_mode pool whose last window hangs over the edge, a transposed conv, bilinear
    upsampling and adaptive pooling: each shifts or clips the boxes."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(1, 3, ceil_mode=True)
        self.up_conv = nn.ConvTranspose2d(4, 4, 4, 2, 1)
        self.up = nn.Upsample(scale_factor=2, mode="bilinear")
        self.adapt = nn.AdaptiveAvgPool2d((2, 2))

    def forward(self, x):
        return self.adapt(self.up(self.up_conv(self.pool(x[..., 1:-1, 1:-1]))))


@pytest.mark.parametrize("tracer", ["fx", "eager"])
def test_transposed_upsampled_ceil_mode_and_adaptive_chain(tracer):
    # 64 -> crop 62 -> pool 21 -> transposed 42 -> bilinear 84 -> adaptive 2: unit 0 pools units
    # 0..41 of the upsample, which read transposed units 0..20, pool units 0..10, crop units
    # 0..30: pixels 1..31 and, through the transposed kernel's reach, up to 34
    model = ShiftedChain()
    assert pixels(model, (1, 4, 64, 64), (0, 0), tracer) == [(1, 34), (1, 34)]
    for index in ((0, 0), (1, 1), (0, 1)):
        assert pixels(model, (1, 4, 64, 64), index, tracer) == empirical_extent(model, (1, 4, 64, 64), index)


def test_transposed_conv_holes_read_nothing():
    # kernel 1 stride 2: odd output units receive no input unit (only the bias)
    model = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.ConvTranspose2d(1, 1, 1, stride=2))
    rf = rf_of(analyze(model, [(1, 1, 8, 8)]), "output")
    assert input_box(rf, (1, 2)).pixels is None
    assert gradient_box(model, (1, 1, 8, 8), (1, 2)) is None
    assert list(input_box(rf, (2, 4)).pixels) == empirical_extent(model, (1, 1, 8, 8), (2, 4)) == [(0, 2), (1, 3)]
    lo, hi, clo, chi = unit_box(rf.axes[0], 1, 8)
    assert clo > chi  # no pixel


class Shuffles(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 16, 3, padding=1)
        self.shuffle = nn.PixelShuffle(2)
        self.unshuffle = nn.PixelUnshuffle(2)
        self.mix = nn.Conv2d(16, 4, 3, stride=2)

    def forward(self, x):
        return self.mix(self.unshuffle(self.shuffle(self.conv(x))))


def test_pixel_shuffle_and_unshuffle():
    # conv 3x3: r 3, j 1. pixel_shuffle(2): unit y reads unit y // 2: r 3, j 1/2. pixel_unshuffle(2):
    # unit h reads units 2h, 2h + 1: r = 3 + 1·1/2 = 3.5, j 1. conv 3x3 s2: r = 3.5 + 2·1 = 5.5, j 2
    report = analyze(Shuffles(), [(1, 4, 16, 16)])
    assert [(a.size, a.jump) for a in rf_of(report, "shuffle").axes] == [(3, 0.5)] * 2
    assert [(a.size, a.jump) for a in rf_of(report, "unshuffle").axes] == [(3.5, 1)] * 2
    assert [(a.size, a.jump) for a in rf_of(report, "output").axes] == [(5.5, 2)] * 2
    assert rf_of(report, "output").kind == "spatial"
    for index in ((0, 0), (3, 2), (6, 6)):
        assert pixels(Shuffles(), (1, 4, 16, 16), index) == empirical_extent(Shuffles(), (1, 4, 16, 16), index)


class CatThenChunk(nn.Module):
    """The first half of a concatenation of the input (one pixel) and a 5x5 conv (25)."""

    def __init__(self, half: int) -> None:
        super().__init__()
        self.half = half
        self.conv = nn.Conv2d(4, 4, 5, padding=2)

    def forward(self, x):
        return torch.cat([x, self.conv(x)], 1).chunk(2, 1)[self.half]


@pytest.mark.parametrize("tracer", ["fx", "eager"])
def test_a_piece_of_channels_that_differ_gets_no_box(tracer):
    # the union over all channels is 5x5, the first half sees 1 pixel: no box rather than 5x5
    report = analyze(CatThenChunk(0), [(1, 4, 16, 16)], tracer=tracer)
    with pytest.raises(Refused, match="some of the channels"):
        input_box(rf_of(report, "output"), (5, 5))
    with pytest.raises(ConfigError, match="no exact input box for this unit: it reads some of the channels"):
        query_box(report, report.layers[-2].name, (5, 5))


class InterleavedHalves(nn.Module):
    """cat, then a channel shuffle (view, transpose, view), then chunk: each half holds channels
    of both parts, so its units see what the whole sees (ShuffleNetV2)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 5, padding=2)

    def forward(self, x):
        a, b = x.chunk(2, 1)
        y = torch.cat([a, self.conv(b)], 1)
        y = y.view(1, 2, 2, 16, 16).transpose(1, 2).reshape(1, 4, 16, 16)
        return y.chunk(2, 1)[1]


def test_a_piece_holding_every_kind_of_channel_gets_its_box():
    for index in ((5, 5), (0, 15)):
        assert pixels(InterleavedHalves(), (1, 4, 16, 16), index) == \
            empirical_extent(InterleavedHalves(), (1, 4, 16, 16), index)


def test_pixel_shuffle_of_channels_that_differ():
    # cat(x, conv(x)) puts x in channels 0-3 and the conv in 4-7: each phase of pixel_shuffle(2)
    # reads channels c·4 + phase, one of each part, so every unit sees the union: exact
    class Both(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 5, padding=2)

        def forward(self, x):
            return F.pixel_shuffle(torch.cat([x, self.conv(x)], 1), 2)

    assert pixels(Both(), (1, 4, 16, 16), (5, 6)) == empirical_extent(Both(), (1, 4, 16, 16), (5, 6))

    # with the parts interleaved in pairs, phases 0 and 1 read only x, phases 2 and 3 only the conv
    class Split(Both):
        def forward(self, x):
            y = torch.cat([x[:, :2], self.conv(x)[:, :2], x[:, 2:], self.conv(x)[:, 2:]], 1)
            return F.pixel_shuffle(y, 2)

    with pytest.raises(Refused, match="pixel_shuffle"):
        input_box(rf_of(analyze(Split(), [(1, 4, 16, 16)]), "output"), (5, 6))


class CroppedGlobal(nn.Module):
    def forward(self, x):
        return x[..., 2:-2, 3:].mean((2, 3))


def test_global_pooling_of_a_crop_sees_the_crop():
    report = analyze(CroppedGlobal(), [(1, 1, 10, 10)])
    rf = rf_of(report, "output")
    assert rf.is_global
    assert list(input_box(rf).pixels) == [(2, 7), (3, 9)]
    box = query_box(report, "output", (0, 0))
    assert not box["global"] and [a["clipped"] for a in box["axes"]] == [[2, 7], [3, 9]]


def test_se_gate_stays_global_over_the_whole_input():
    from examples.senet import SEBlock

    report = analyze(SEBlock(), [(1, 64, 9, 9)])
    assert query_box(report, "mul", (0, 0)) == {"layer": "mul", "global": True}


@pytest.mark.parametrize("mode, size", [("nearest", (10, 7)), ("nearest-exact", (13, 5)), ("bilinear", (12, 12)),
                                        ("bilinear", (15, 9))])
def test_upsampling_to_a_size(mode, size):
    # torch's index arithmetic (float32, as torch's kernels compute it) with scales W_in/W_out
    model = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.Upsample(size=size, mode=mode))
    for index in ((0, 0), (size[0] - 1, size[1] - 1), (size[0] // 2, 3)):
        assert pixels(model, (1, 1, 8, 6), index) == empirical_extent(model, (1, 1, 8, 6), index)


MODELS = """
import torch
from torch import nn


class CropThenPad(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        return self.conv(x[..., 1:-1, 1:-1])


class CatThenChunk(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 5, padding=2)

    def forward(self, x):
        return torch.cat([x, self.conv(x)], 1).chunk(2, 1)[0]
"""


def test_cli_unit_box_exact_and_refused(tmp_path):
    (tmp_path / "models.py").write_text(MODELS)
    result = runner.invoke(app, ["rf", f"{tmp_path}/models.py:CropThenPad", "--input", "1,4,16,16",
                                 "--layer", "conv", "--at", "0,0", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["axes"][1]["clipped"] == [1, 2]
    result = runner.invoke(app, ["rf", f"{tmp_path}/models.py:CatThenChunk", "--input", "1,4,16,16",
                                 "--layer", "getitem", "--at", "5,5"])
    assert result.exit_code == 2 and "no exact input box" in result.output, result.output


class Stacked(nn.Module):
    """stack, then a view back to channels, then a piece: the stacked dim is a channel dim."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 5, padding=2)
        self.mix = nn.Conv2d(4, 4, 3, padding=1, groups=2)

    def forward(self, x):
        y = torch.stack([x, self.conv(x)], 1).reshape(1, 4, 12, 12)
        return self.mix(y)


def test_stack_keeps_each_part_apart():
    # stack dim 1 then view: channels 0-1 are x (1 pixel), 2-3 the 5x5 conv; the grouped 3x3
    # keeps the halves apart, and a unit sees their union: 5 + 2 = 7 pixels
    for index in ((0, 0), (5, 6), (11, 3)):
        assert pixels(Stacked(), (1, 2, 12, 12), index) == empirical_extent(Stacked(), (1, 2, 12, 12), index)
