"""``--tracer auto`` falls back to eager when the fx graph traces but then fails to run (issue 13,
item 2), on a faithful small reproduction of torchvision's Video Swin (``swin3d_t``): its helpers
are ``torch.fx.wrap``-ed so that fx records them as calls, and ``_get_window_and_shift_size``
assigns into its list arguments, which fx hands over as ``immutable_list``s."""
from __future__ import annotations

import pytest
import torch
import torch.fx
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cnnshape.api import analyze
from cnnshape.errors import ShapeError
from tests import broken_models as broken

# --- torchvision/models/video/swin_transformer.py, reduced to one stage -------------------------


def _get_window_and_shift_size(shift_size: list[int], size_dhw: list[int],
                               window_size: list[int]) -> tuple[list[int], list[int]]:
    for i in range(3):
        if size_dhw[i] <= window_size[i]:
            # the window adapts to the input size, and there is no need to shift
            window_size[i] = size_dhw[i]
            shift_size[i] = 0
    return window_size, shift_size


torch.fx.wrap("_get_window_and_shift_size")


def _get_relative_position_bias(table: torch.Tensor, index: torch.Tensor, window_size: list[int]) -> torch.Tensor:
    window_vol = window_size[0] * window_size[1] * window_size[2]
    bias = table[index[:window_vol, :window_vol].flatten()]
    return bias.view(window_vol, window_vol, -1).permute(2, 0, 1).contiguous().unsqueeze(0)


torch.fx.wrap("_get_relative_position_bias")


def _compute_pad_size_3d(size_dhw: tuple[int, int, int], patch_size: tuple[int, int, int]) -> tuple[int, int, int]:
    pad = [(patch_size[i] - size_dhw[i] % patch_size[i]) % patch_size[i] for i in range(3)]
    return pad[0], pad[1], pad[2]


torch.fx.wrap("_compute_pad_size_3d")


def _compute_attention_mask_3d(x: torch.Tensor, size_dhw: tuple[int, int, int], window_size: tuple[int, int, int],
                               shift_size: tuple[int, int, int]) -> torch.Tensor:
    attn_mask = x.new_zeros(*size_dhw)
    num_windows = (size_dhw[0] // window_size[0]) * (size_dhw[1] // window_size[1]) * (size_dhw[2] // window_size[2])
    slices = [((0, -window_size[i]), (-window_size[i], -shift_size[i]), (-shift_size[i], None)) for i in range(3)]
    count = 0
    for d in slices[0]:
        for h in slices[1]:
            for w in slices[2]:
                attn_mask[d[0]:d[1], h[0]:h[1], w[0]:w[1]] = count
                count += 1
    attn_mask = attn_mask.view(size_dhw[0] // window_size[0], window_size[0], size_dhw[1] // window_size[1],
                               window_size[1], size_dhw[2] // window_size[2], window_size[2])
    attn_mask = attn_mask.permute(0, 2, 4, 1, 3, 5).reshape(num_windows, -1)
    attn_mask = attn_mask.unsqueeze(1) - attn_mask.unsqueeze(2)
    return attn_mask.masked_fill(attn_mask != 0, -100.0).masked_fill(attn_mask == 0, 0.0)


torch.fx.wrap("_compute_attention_mask_3d")


def shifted_window_attention_3d(x: torch.Tensor, qkv_weight: torch.Tensor, proj_weight: torch.Tensor,
                                relative_position_bias: torch.Tensor, window_size: list[int], num_heads: int,
                                shift_size: list[int], qkv_bias: torch.Tensor, proj_bias: torch.Tensor) -> torch.Tensor:
    b, t, h, w, c = x.shape
    pad_size = _compute_pad_size_3d((t, h, w), (window_size[0], window_size[1], window_size[2]))
    x = F.pad(x, (0, 0, 0, pad_size[2], 0, pad_size[1], 0, pad_size[0]))
    _, tp, hp, wp, _ = x.shape
    padded_size = (tp, hp, wp)
    if sum(shift_size) > 0:
        x = torch.roll(x, shifts=(-shift_size[0], -shift_size[1], -shift_size[2]), dims=(1, 2, 3))
    num_windows = ((padded_size[0] // window_size[0]) * (padded_size[1] // window_size[1])
                   * (padded_size[2] // window_size[2]))
    x = x.view(b, padded_size[0] // window_size[0], window_size[0], padded_size[1] // window_size[1],
               window_size[1], padded_size[2] // window_size[2], window_size[2], c)
    x = x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(b * num_windows, window_size[0] * window_size[1] * window_size[2], c)
    qkv = F.linear(x, qkv_weight, qkv_bias)
    qkv = qkv.reshape(x.size(0), x.size(1), 3, num_heads, c // num_heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    q = q * (c // num_heads) ** -0.5
    attn = q.matmul(k.transpose(-2, -1)) + relative_position_bias
    if sum(shift_size) > 0:
        mask = _compute_attention_mask_3d(x, (padded_size[0], padded_size[1], padded_size[2]),
                                          (window_size[0], window_size[1], window_size[2]),
                                          (shift_size[0], shift_size[1], shift_size[2]))
        attn = attn.view(x.size(0) // num_windows, num_windows, num_heads, x.size(1), x.size(1))
        attn = (attn + mask.unsqueeze(1).unsqueeze(0)).view(-1, num_heads, x.size(1), x.size(1))
    attn = F.softmax(attn, dim=-1)
    x = attn.matmul(v).transpose(1, 2).reshape(x.size(0), x.size(1), c)
    x = F.linear(x, proj_weight, proj_bias)
    x = x.view(b, padded_size[0] // window_size[0], padded_size[1] // window_size[1],
               padded_size[2] // window_size[2], window_size[0], window_size[1], window_size[2], c)
    x = x.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(b, tp, hp, wp, c)
    if sum(shift_size) > 0:
        x = torch.roll(x, shifts=(shift_size[0], shift_size[1], shift_size[2]), dims=(1, 2, 3))
    return x[:, :t, :h, :w, :].contiguous()


torch.fx.wrap("shifted_window_attention_3d")


class ShiftedWindowAttention3d(nn.Module):
    def __init__(self, dim: int, window_size: list[int], shift_size: list[int], num_heads: int) -> None:
        super().__init__()
        self.window_size, self.shift_size, self.num_heads = window_size, shift_size, num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        size = (2 * window_size[0] - 1) * (2 * window_size[1] - 1) * (2 * window_size[2] - 1)
        self.relative_position_bias_table = nn.Parameter(torch.zeros(size, num_heads))
        coords = torch.stack(torch.meshgrid([torch.arange(n) for n in window_size], indexing="ij")).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).contiguous()
        for i in range(3):
            rel[:, :, i] += window_size[i] - 1
        rel[:, :, 0] *= (2 * window_size[1] - 1) * (2 * window_size[2] - 1)
        rel[:, :, 1] *= 2 * window_size[2] - 1
        self.register_buffer("relative_position_index", rel.sum(-1).flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, t, h, w, _ = x.shape
        size_dhw = [t, h, w]
        window_size, shift_size = self.window_size.copy(), self.shift_size.copy()
        window_size, shift_size = _get_window_and_shift_size(shift_size, size_dhw, window_size)
        n = self.window_size[0] * self.window_size[1] * self.window_size[2]
        bias = _get_relative_position_bias(self.relative_position_bias_table,
                                           self.relative_position_index.view(n, n), window_size)
        return shifted_window_attention_3d(x, self.qkv.weight, self.proj.weight, bias, window_size, self.num_heads,
                                           shift_size, self.qkv.bias, self.proj.bias)


class SwinBlock3d(nn.Module):
    def __init__(self, dim: int, window_size: list[int], shift_size: list[int]) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = ShiftedWindowAttention3d(dim, window_size, shift_size, num_heads=2)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VideoSwinSmall(nn.Module):
    """swin3d_t's patch embedding (2x4x4), one stage of a plain and a shifted block with window
    (8, 7, 7) and shift (4, 3, 3), norm, pooling and head. At 8 frames the 4 token frames are
    fewer than the window's 8, so the window adapts: the helper assigns into its lists."""

    def __init__(self, dim: int = 16, classes: int = 10, head_features: int | None = None) -> None:
        super().__init__()
        self.patch_embed = nn.Conv3d(3, dim, (2, 4, 4), stride=(2, 4, 4))
        self.embed_norm = nn.LayerNorm(dim)
        self.blocks = nn.Sequential(SwinBlock3d(dim, [8, 7, 7], [0, 0, 0]), SwinBlock3d(dim, [8, 7, 7], [4, 3, 3]))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(head_features or dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed_norm(self.patch_embed(x).permute(0, 2, 3, 4, 1))
        x = self.norm(self.blocks(x)).permute(0, 4, 1, 2, 3)
        return self.head(F.adaptive_avg_pool3d(x, 1).flatten(1))


SHAPE = (1, 3, 8, 56, 56)


def test_fx_graph_of_video_swin_fails_to_run():
    with pytest.raises(ShapeError, match="'immutable_list' object does not support mutation"):
        analyze(VideoSwinSmall(), [SHAPE], tracer="fx")


def test_auto_falls_back_to_eager_when_the_fx_graph_fails_to_run():
    model = VideoSwinSmall()
    report = analyze(model, [SHAPE])
    assert report.tracer == "eager"
    note = next(n for n in report.notes if n.startswith("traced with the eager tracer"))
    assert "the torch.fx graph of VideoSwinSmall failed to run" in note
    assert "immutable_list" in note and "_get_window_and_shift_size(shift_size, size_dhw, window_size)" in note
    # torch itself: the parameter count, a real forward's output shape, FlopCounterMode's MACs
    assert report.totals.params == sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        real = model.eval()(torch.randn(SHAPE))
        counter = FlopCounterMode(display=False)
        with counter:
            model(torch.randn(SHAPE))
    assert [o.shape for o in report.outputs] == [tuple(real.shape)]
    assert report.totals.macs == counter.get_total_flops() // 2  # it counts a multiply-add as 2 FLOPs


def test_a_model_that_also_fails_with_eager_reports_its_own_error():
    # the same head too wide for the pooled 16 features: fx stops at the wrapped helper, eager at
    # the head, which is the model's error and what auto reports
    model = VideoSwinSmall(head_features=32)
    with pytest.raises(ShapeError) as eager:
        analyze(model, [SHAPE], tracer="eager")
    with pytest.raises(ShapeError) as auto:
        analyze(model, [SHAPE])
    assert "Linear 'head' expects in_features=32" in str(auto.value)
    assert str(auto.value) == str(eager.value)


@pytest.mark.parametrize("name, shape", [("WrongInFeatures", (1, 1, 32, 32)), ("WrongInChannels", (1, 3, 8, 8)),
                                         ("TooSmall", (1, 3, 4, 4))])
def test_shape_errors_under_auto_are_the_fx_message(name, shape):
    # the fx graph fails to run on the model's own error and eager fails alike: the message is
    # exactly the one the fx tracer gives, no fallback note, nothing added
    with pytest.raises(ShapeError) as fx:
        analyze(getattr(broken, name)(), [shape], tracer="fx")
    with pytest.raises(ShapeError) as auto:
        analyze(getattr(broken, name)(), [shape])
    assert str(auto.value) == str(fx.value)
