"""Windowed self-attention over 3-D (time x height x width) windows, Video Swin style.

Source: Z. Liu, J. Ning, Y. Cao, Y. Wei, Z. Zhang, S. Lin, H. Hu, "Video Swin Transformer",
CVPR 2022 (arXiv:2106.13230); the window partition, padding and reverse follow its reference
code (and torchvision.models.video.swin_transformer) without the shifted windows, the relative
position bias and the patch merging, so no count is published; the counts below are by hand.

The block works on channels-last tokens (B, T, H, W, C). It pads T, H, W up to multiples of the
window (zeros after the norm, as Video Swin does, no mask), cuts the padded volume into
(T/wt)*(H/wh)*(W/ww) windows of wt*wh*ww tokens, runs multi-head attention inside each window,
puts the windows back in place and crops the padding away.

WindowAttentionBlock3d(dim=96, heads=3, window (8, 7, 7), mlp ratio 4)
    input 1x8x28x28x96 -> output 1x8x28x28x96: 1*4*4 = 16 windows of 8*7*7 = 392 tokens
    input 1x6x25x25x96 -> padded to 8x28x28, same 16 windows, output cropped to 1x6x25x25x96
    params: norm1 2*96 + qkv 96*288 + 288 + proj 96*96 + 96 + norm2 2*96
            + fc1 96*384 + 384 + fc2 384*96 + 96 = 111,840
    MACs on 8x28x28 (L = 6,272 tokens, 16 windows of N = 392, head dim 32):
            qkv L*96*288 = 173,408,256; q@k^T and attn@v each 16*3*392*392*32 = 236,027,904;
            proj L*96*96 = 57,802,752; fc1 and fc2 each L*96*384 = 231,211,008
            total 1,165,688,832
    MACs on 6x25x25: attention runs on the padded 8x28x28 windows (the same 173,408,256
            + 2*236,027,904 + 57,802,752), the MLP on the 6*25*25 = 3,750 real tokens
            (2*3,750*96*384 = 276,480,000): total 979,746,816

VideoWindowNet (Conv3d patch embedding 3->96 with kernel = stride = (2, 4, 4), two blocks, global
average pool, linear head to 400 classes):
    input 1x3x16x112x112 -> tokens 8x28x28 -> output 1x400
    params: patch embed 3*96*2*4*4 + 96 = 9,312; 2 blocks 223,680; norm 192; head 96*400 + 400
            = 38,800: total 271,984
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def pad_to_window(x: torch.Tensor, window: tuple[int, int, int]) -> torch.Tensor:
    """Zero-pad (B, T, H, W, C) at the end of T, H and W up to multiples of ``window``."""
    _, t, h, w, _ = x.shape
    pad_t, pad_h, pad_w = ((k - size % k) % k for size, k in zip((t, h, w), window))
    return F.pad(x, (0, 0, 0, pad_w, 0, pad_h, 0, pad_t))


def window_partition(x: torch.Tensor, window: tuple[int, int, int]) -> torch.Tensor:
    """(B, T, H, W, C) with T, H, W multiples of ``window`` -> (B * windows, wt*wh*ww, C)."""
    b, t, h, w, c = x.shape
    wt, wh, ww = window
    x = x.view(b, t // wt, wt, h // wh, wh, w // ww, ww, c)
    return x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(-1, wt * wh * ww, c)


def window_reverse(windows: torch.Tensor, window: tuple[int, int, int], b: int, t: int, h: int, w: int) -> torch.Tensor:
    """The inverse of :func:`window_partition`: (B * windows, wt*wh*ww, C) -> (B, T, H, W, C)."""
    wt, wh, ww = window
    x = windows.view(b, t // wt, h // wh, w // ww, wt, wh, ww, -1)
    return x.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(b, t, h, w, -1)


class WindowAttention3d(nn.Module):
    """Multi-head self-attention inside each 3-D window."""

    def __init__(self, dim: int, window: tuple[int, int, int], num_heads: int) -> None:
        super().__init__()
        self.window = window
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, h, w, c = x.shape
        padded = pad_to_window(x, self.window)
        _, tp, hp, wp, _ = padded.shape
        windows = window_partition(padded, self.window)
        n = windows.shape[1]
        qkv = self.qkv(windows).reshape(-1, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        out = self.proj((attn @ v).transpose(1, 2).reshape(-1, n, c))
        out = window_reverse(out, self.window, b, tp, hp, wp)
        return out[:, :t, :h, :w, :].contiguous()


class WindowAttentionBlock3d(nn.Module):
    """Pre-norm transformer block: windowed attention, then an MLP, each with a residual."""

    def __init__(self, dim: int = 96, num_heads: int = 3, window: tuple[int, int, int] = (8, 7, 7),
                 mlp_ratio: int = 4) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention3d(dim, window, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, dim * mlp_ratio), nn.GELU(), nn.Linear(dim * mlp_ratio, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VideoWindowNet(nn.Module):
    """Patch embedding, windowed-attention blocks, average pool, classifier; (B, C, T, H, W) in."""

    def __init__(self, dim: int = 96, depth: int = 2, num_heads: int = 3, window: tuple[int, int, int] = (8, 7, 7),
                 num_classes: int = 400) -> None:
        super().__init__()
        self.patch_embed = nn.Conv3d(3, dim, kernel_size=(2, 4, 4), stride=(2, 4, 4))
        self.blocks = nn.Sequential(*[WindowAttentionBlock3d(dim, num_heads, window) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).permute(0, 2, 3, 4, 1)  # B, T, H, W, C
        x = self.norm(self.blocks(x))
        return self.head(x.mean(dim=(1, 2, 3)))
