"""Random small 2-d CNNs: every reported unit box equals the gradient's, or none is given.

A seeded generator (hypothesis, derandomized: the same networks on every run) strings together
convs (stride, padding, dilation, groups), max/avg pools (ceil_mode), transposed convs, nearest
and bilinear upsampling, zero/negative (crop), reflection and replication padding, crops and
strided slices, residual adds with strided 1x1 projections, concatenations along channels and
along the width, pixel (un)shuffle, channel chunks, adaptive pooling and squeeze-and-excitation
gates (a global branch multiplied onto the map). For a few output units
the input box cnnshape reports (``input_box``, and ``--layer/--at`` through ``query.unit_box``
where the layer is aligned) is compared with the bounding box of the non-zero input gradient of a
linearised float64 copy (``linearise`` of tests/test_receptive_field.py: positive weights,
activations to identity; max-pools here become positive windows of the same geometry,
ceil_mode included). Each unit is counted as exact, refused (no box, with a reason; or the RF is
unknown), or wrong; wrong must stay 0. ``COUNTS`` holds the tally; the last test prints it.
"""
from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from cnnshape import analyze
from cnnshape.analyse.receptive_field import Refused, input_box
from cnnshape.arith import pool_out
from cnnshape.errors import ConfigError
from cnnshape.query import unit_box as query_box

from .test_receptive_field import linearise

COUNTS: Counter[str] = Counter()
MAX_SIDE = 40

Step = tuple[Any, ...]


class RandomNet(nn.Module):
    """A chain of steps (see ``steps``); ``linear``: max-pools as positive windows."""

    def __init__(self, steps: list[Step], linear: bool = False) -> None:
        super().__init__()
        self.steps = steps
        self.linear = linear
        self.layers = nn.ModuleList(_modules(steps))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for step in self.steps:
            x = self.run(step, x)
        return x

    def run(self, step: Step, x: torch.Tensor) -> torch.Tensor:
        kind, *a = step
        if kind in ("conv", "tconv"):
            return a[0](x)
        if kind == "maxpool":
            k, s, p, d, ceil, size = a
            if not self.linear:
                return F.max_pool2d(x, k, s, p, d, ceil_mode=ceil)
            # the window as positive weights; extra zeros on the right give ceil_mode's last units
            extra = [max(0, (o - 1) * s + d * (k - 1) + 1 - (n + 2 * p)) for o, n in zip(size[1], size[0])]
            x = F.pad(x, (p, p + extra[1], p, p + extra[0]))
            w = torch.ones(x.shape[1], 1, k, k, dtype=x.dtype) / (k * k)
            return F.conv2d(x, w, stride=s, dilation=d, groups=x.shape[1])
        if kind == "avgpool":
            k, s, p, ceil = a
            return F.avg_pool2d(x, k, s, p, ceil_mode=ceil)
        if kind == "up":
            mode, align, size = a
            return F.interpolate(x, size=size, mode=mode, align_corners=align)
        if kind == "up2":
            mode, align = a
            return F.interpolate(x, scale_factor=2, mode=mode, align_corners=align)
        if kind == "pad":
            mode, pads = a
            return F.pad(x, pads, mode=mode)
        if kind == "crop":
            t, b, left, right, step, h, w = a
            return x[..., t:h - b:step, left:w - right:step]
        if kind == "croppad":
            t, b, h, w = a
            return F.pad(x[..., t:h - b, t:w - b], (t, b, t, b))
        if kind == "res":
            branch, proj = a
            return branch(x) + proj(x)
        if kind == "cat":
            branch, dim = a
            return torch.cat([x, self.run(branch, x)], dim)
        if kind == "shuffle":
            return F.pixel_shuffle(x, 2)
        if kind == "unshuffle":
            return F.pixel_unshuffle(x, 2)
        if kind == "chunk":
            return x.chunk(2, 1)[a[0]]
        if kind == "adapt":
            return F.adaptive_avg_pool2d(x, a[0])
        if kind == "gate":  # squeeze-and-excitation: a global gate multiplied back onto the map
            return x * torch.sigmoid(a[0](x.mean((2, 3), keepdim=True)))
        raise AssertionError(kind)


def _modules(value: Any) -> list[nn.Module]:
    if isinstance(value, nn.Module):
        return [value]
    if isinstance(value, (list, tuple)):
        return [m for v in value for m in _modules(v)]
    return []


@st.composite
def networks(draw: st.DrawFn) -> tuple[list[Step], tuple[int, int, int, int]]:
    c, h, w = 4, draw(st.integers(8, 20)), draw(st.integers(8, 20))
    shape = (1, c, h, w)
    steps: list[Step] = []
    for _ in range(draw(st.integers(2, 6))):
        made = _step(draw, c, h, w)
        if made is None:
            continue
        step, (c, h, w) = made
        if min(h, w) < 1 or max(h, w) > MAX_SIDE or c > 32:
            break
        steps.append(step)
    return steps, shape


def _conv(draw: st.DrawFn, c: int, h: int, w: int, same: bool = False) -> tuple[nn.Module, tuple[int, int, int]]:
    k = draw(st.integers(1, 4))
    d = draw(st.integers(1, 2))
    if same:  # keeps the size: odd kernel, padding (k−1)/2·d, stride 1
        k = k | 1
        s, p = 1, (k - 1) // 2 * d
    else:
        s, p = draw(st.integers(1, 3)), draw(st.integers(0, k))
    groups = draw(st.sampled_from([1, c]))
    conv = nn.Conv2d(c, c, k, s, p, d, groups=groups)
    return conv, (c, (h + 2 * p - d * (k - 1) - 1) // s + 1, (w + 2 * p - d * (k - 1) - 1) // s + 1)


def _step(draw: st.DrawFn, c: int, h: int, w: int) -> tuple[Step, tuple[int, int, int]] | None:
    kind = draw(st.sampled_from(["conv", "tconv", "maxpool", "avgpool", "up", "up2", "pad", "crop", "res",
                                 "cat", "shuffle", "unshuffle", "chunk", "adapt", "gate"]))
    if kind == "conv":
        conv, out = _conv(draw, c, h, w)
        return ("conv", conv), out
    if kind == "tconv":
        k, s, d = draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(st.integers(1, 2))
        p = draw(st.integers(0, d * (k - 1)))
        op = draw(st.integers(0, max(s, d) - 1))
        size = [(n - 1) * s - 2 * p + d * (k - 1) + op + 1 for n in (h, w)]
        return ("tconv", nn.ConvTranspose2d(c, c, k, s, p, op, dilation=d)), (c, *size)
    if kind in ("maxpool", "avgpool"):
        k, s = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        d = draw(st.integers(1, 2)) if kind == "maxpool" else 1
        p = draw(st.integers(0, k // 2))  # torch: at most half the kernel (not the dilated one)
        ceil = draw(st.booleans())
        size = [pool_out(n, k, s, p, d, ceil) for n in (h, w)]
        if kind == "avgpool":
            return ("avgpool", k, s, p, ceil), (c, *size)
        return ("maxpool", k, s, p, d, ceil, ((h, w), tuple(size))), (c, *size)
    if kind in ("up", "up2"):
        mode = draw(st.sampled_from(["nearest", "bilinear"]))
        align = draw(st.booleans()) if mode == "bilinear" else None
        if kind == "up2":
            return ("up2", mode, align), (c, 2 * h, 2 * w)
        size = (draw(st.integers(max(1, h - 3), h + 9)), draw(st.integers(max(1, w - 3), w + 9)))
        return ("up", mode, align, size), (c, *size)
    if kind == "pad":
        mode = draw(st.sampled_from(["constant", "reflect", "replicate"]))
        low = -min(h, w) // 3 if mode == "constant" else 0
        high = min(h, w) - 1 if mode == "reflect" else 3
        pads = tuple(draw(st.integers(low, min(high, 3))) for _ in range(4))
        return ("pad", mode, pads), (c, h + pads[2] + pads[3], w + pads[0] + pads[1])
    if kind == "crop":
        t, b, left, right = (draw(st.integers(0, max(0, n // 3))) for n in (h, h, w, w))
        step = draw(st.sampled_from([1, 1, 2]))
        return ("crop", t, b, left, right, step, h, w), (c, -(-(h - t - b) // step), -(-(w - left - right) // step))
    if kind == "res":
        conv, out = _conv(draw, c, h, w)
        s = conv.stride[0]
        branch = nn.Conv2d(c, c, 3, s, 1)  # floor((n − 1)/s) + 1, as the strided 1x1 projection
        return ("res", branch, nn.Conv2d(c, c, 1, s)), (c, (h - 1) // s + 1, (w - 1) // s + 1)
    if kind == "cat":
        dim = draw(st.sampled_from([1, 1, 3]))
        if draw(st.booleans()):
            conv, _ = _conv(draw, c, h, w, same=True)
            branch: Step = ("conv", conv)
        else:  # crop and zero-pad back: the same size, the border cut away
            t, b = draw(st.integers(0, 2)), draw(st.integers(0, 2))
            branch = ("croppad", t, b, h, w) if t + b < min(h, w) else ("croppad", 0, 0, h, w)
        return ("cat", branch, dim), (2 * c if dim == 1 else c, h, 2 * w if dim == 3 else w)
    if kind == "shuffle" and c % 4 == 0:
        return ("shuffle",), (c // 4, 2 * h, 2 * w)
    if kind == "unshuffle" and h % 2 == 0 and w % 2 == 0:
        return ("unshuffle",), (4 * c, h // 2, w // 2)
    if kind == "chunk" and c % 2 == 0:
        return ("chunk", draw(st.integers(0, 1))), (c // 2, h, w)
    if kind == "adapt":
        size = (draw(st.integers(1, h)), draw(st.integers(1, w)))
        return ("adapt", size), (c, *size)
    if kind == "gate":
        return ("gate", nn.Conv2d(c, c, 1)), (c, h, w)
    return None


Box = tuple[tuple[int, int], ...]


def gradient_box(model: nn.Module, shape: tuple[int, ...], index: tuple[int, ...]) -> Box | None:
    """Per axis, the first and last input pixel with a non-zero gradient of output unit ``index``
    (summed over channels) of the linearised float64 copy; None when there is none."""
    lin = linearise(model)
    x = (torch.rand(shape, dtype=torch.float64) + 0.5).requires_grad_()
    lin(x)[(slice(None), slice(None), *index)].sum().backward()
    assert x.grad is not None
    nz = x.grad.abs().sum(dim=(0, 1)) > 0
    if not nz.any():
        return None
    return tuple((int(i.min()), int(i.max())) for i in (nz.any(dim=1).nonzero().flatten(),
                                                        nz.any(dim=0).nonzero().flatten()))


def _units(out: tuple[int, ...], extra: tuple[int, int]) -> list[tuple[int, int]]:
    h, w = out[-2:]
    return sorted({(0, 0), (h - 1, w - 1), (h // 2, w // 2), (0, w - 1), (extra[0] % h, extra[1] % w)})


@settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(networks(), st.tuples(st.integers(0, 99), st.integers(0, 99)))
def test_random_networks_boxes_are_exact_or_refused(net: tuple[list[Step], tuple[int, ...]],
                                                    extra: tuple[int, int]) -> None:
    steps, shape = net
    model = RandomNet(steps).eval()
    report = analyze(model, [shape])
    row = next(layer for layer in report.layers if layer.name == "output")
    rf, out = row.receptive_field, row.output_shape
    assert rf is not None and out is not None
    linear = RandomNet(steps, linear=True)
    linear.load_state_dict(model.state_dict())
    for index in _units(out, extra):
        truth = gradient_box(linear, shape, index)
        if rf.kind in ("unknown", "flat"):
            COUNTS["refused"] += 1
            continue
        try:
            box = input_box(rf, index if rf.kind == "spatial" else None, image="x").pixels
        except Refused:
            COUNTS["refused"] += 1
            continue
        COUNTS["exact" if box == truth else "wrong"] += 1
        assert box == truth, (steps, shape, index, box, truth)
        if rf.aligned and truth is not None:
            _same_through_the_query(report, index, truth)


def _same_through_the_query(report: Any, index: tuple[int, int], truth: Box) -> None:
    """``--layer output --at i,j`` reports the same pixels (or that the output is global)."""
    try:
        box = query_box(report, "output", index)
    except ConfigError as e:
        pytest.fail(f"query refused an exact box: {e}")
    if box["global"]:
        assert truth == tuple((0, n - 1) for n in report.inputs[0].shape[2:])
    else:
        assert tuple(tuple(a["clipped"]) for a in box["axes"]) == truth


def test_random_networks_tally() -> None:
    """The tally of the generated sample (run with -s to see it): no wrong box, most exact."""
    print(f"\nrandom networks, output unit boxes: {dict(COUNTS)}")
    if COUNTS:
        assert COUNTS["wrong"] == 0
        assert COUNTS["exact"] > COUNTS["refused"]
