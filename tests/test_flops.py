"""MACs and FLOPs against torch's own FlopCounterMode and closed forms.

FlopCounterMode counts 2 FLOPs per multiply-accumulate of convolutions and matrix products and
nothing else, so cnnshape's MAC total must equal its total / 2 on any model made of those ops.
The reference runs on a meta copy of the model (FlopCounterMode's formulas only read shapes).
"""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import cnnshape
from cnnshape.analyse.flops import FLOPS
from cnnshape.load import load_model

from .cases import EXAMPLES, Example


def reference_macs(model: nn.Module, inputs: list[tuple[int, ...]]) -> int:
    """FlopCounterMode total / 2 on a meta forward of ``model`` (left untouched)."""
    meta = copy.deepcopy(model).to("meta").eval() if not _on_meta(model) else model.eval()
    xs = [torch.empty(s, device="meta") for s in inputs]
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        meta(*xs)
    total = counter.get_total_flops()
    assert total % 2 == 0
    return total // 2


def _on_meta(model: nn.Module) -> bool:
    return all(p.device.type == "meta" for p in model.parameters())


@pytest.mark.parametrize("case", EXAMPLES, ids=lambda c: c.spec.split("/")[-1])
def test_macs_equal_flop_counter_on_examples(case: Example) -> None:
    report = cnnshape.analyze(case.spec, case.inputs)
    assert report.totals.complete, report.unsupported
    assert report.totals.macs == reference_macs(load_model(case.spec).module, case.inputs)


def test_resnet50_published_gmacs() -> None:
    report = cnnshape.analyze("examples/resnet.py:ResNet50", [(1, 3, 224, 224)])
    # published 4.089 GMACs (torchvision model card: 4.09 GFLOPS in the MAC convention)
    assert report.totals.macs == 4_089_184_256
    assert round(report.totals.macs / 1e9, 3) == 4.089
    assert report.totals.macs == reference_macs(load_model("examples/resnet.py:ResNet50").module, [(1, 3, 224, 224)])


def _layers(report: cnnshape.Report) -> dict[str, cnnshape.LayerRecord]:
    return {layer.name: layer for layer in report.layers}


def test_closed_form_per_layer_resnet50_stem() -> None:
    layers = _layers(cnnshape.analyze("examples/resnet.py:ResNet50", [(1, 3, 224, 224)]))
    # conv1 3→64 k7 s2 p3 on 224: out 112x112; 64·112·112·3·7·7 = 118,013,952; no bias
    assert layers["conv1"].macs == 64 * 112 * 112 * 3 * 7 * 7 == 118_013_952
    assert layers["conv1"].flops == 2 * 118_013_952
    # bn1 in eval: scale and shift, 2 per element of 64·112·112 = 802,816
    assert layers["bn1"].flops == 2 * 64 * 112 * 112
    # fc 2048→1000: 2048·1000 MACs; FLOPs 2·MACs + 1000 bias adds
    assert layers["fc"].macs == 2048 * 1000
    assert layers["fc"].flops == 2 * 2048 * 1000 + 1000
    # layer1.0.conv2 64→64 3x3 p1 on 56x56: 64·56·56·64·9 = 115,605,504
    assert layers["layer1.0.conv2"].macs == 64 * 56 * 56 * 64 * 9


def test_closed_form_conv_with_bias_flops() -> None:
    # Conv5x5x3: 10 filters on 32x32 → 28x28: 10·28·28·(5·5·3) = 588,000 MACs;
    # FLOPs = 2·MACs + one bias add per output element (10·28·28 = 7,840)
    report = cnnshape.analyze("examples/textbook.py:Conv5x5x3", [(1, 3, 32, 32)])
    conv = _layers(report)["conv"]
    assert conv.macs == 10 * 28 * 28 * 75 == 588_000
    assert conv.flops == 2 * 588_000 + 7_840


def test_closed_form_grouped_dilated_transposed_1d_3d() -> None:
    model = nn.Sequential(
        # depthwise 8 ch, k3 p2 d2 on 16x16 → 16x16: 8·16·16·(1·3·3) = 18,432
        nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=8, bias=False),
        # transposed 8→4 k4 s2 p1 on 16x16 → 32x32: each input scatters over 4·4·4:
        # 16·16·8·4·4·4 = 131,072
        nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1, bias=False),
    )
    layers = _layers(cnnshape.analyze(model, [(1, 8, 16, 16)]))
    assert layers["0"].macs == 8 * 16 * 16 * 9 == 18_432
    assert layers["1"].macs == 16 * 16 * 8 * 4 * 4 * 4 == 131_072
    # Conv1d 2→4 k5 on 100 → 96: 4·96·2·5 = 3,840; Conv3d 2→3 k(1,3,3) on 4x8x8 → 4x6x6: 3·144·2·9
    one_d = cnnshape.analyze(nn.Sequential(nn.Conv1d(2, 4, 5)), [(1, 2, 100)])
    assert one_d.totals.macs == 4 * 96 * 2 * 5 == 3_840
    three_d = cnnshape.analyze(nn.Sequential(nn.Conv3d(2, 3, (1, 3, 3))), [(1, 2, 4, 8, 8)])
    assert three_d.totals.macs == 3 * 4 * 6 * 6 * 2 * 9 == 7_776


class Products(nn.Module):
    """matmul, bmm, einsum, SDPA and MultiheadAttention in one forward."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(16, 16)
        self.mha = nn.MultiheadAttention(16, 4, batch_first=True)
        self.mha_seq_first = nn.MultiheadAttention(16, 2, kdim=8, vdim=12)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        q = self.proj(x)  # (2, 6, 16)
        heads = q.view(2, 6, 4, 4).transpose(1, 2)  # (2, 4, 6, 4)
        att = F.scaled_dot_product_attention(heads, heads, heads, is_causal=True)
        scores = torch.einsum("bhsd,bhtd->bhst", heads, att)
        mixed = torch.bmm(x, x.transpose(1, 2))  # (2, 6, 6)
        y = torch.matmul(mixed, q)  # (2, 6, 16)
        out, _ = self.mha(y, y, y)
        seq_first, _ = self.mha_seq_first(out.transpose(0, 1), k, v, need_weights=False)
        return scores.sum() + seq_first.sum()


def test_products_and_attention_equal_flop_counter() -> None:
    model = Products()
    inputs = [(2, 6, 16), (2, 6, 16), (5, 2, 8), (5, 2, 12)]
    report = cnnshape.analyze(model, inputs)
    assert report.totals.complete, report.unsupported
    assert report.totals.macs == reference_macs(model, inputs)
    layers = _layers(report)
    # bmm (2, 6, 16)·(2, 16, 6): 2·6·6·16 = 1,152; matmul (2, 6, 6)·(2, 6, 16): 2·6·16·6 = 1,152
    assert layers["bmm"].macs == 2 * 6 * 6 * 16
    assert layers["matmul"].macs == 2 * 6 * 16 * 6
    # SDPA with Q, K, V (2, 4, 6, 4): scores 2·4·6·6 = 288, each 4 MACs for Q·Kᵀ and 4 for ·V
    assert layers["scaled_dot_product_attention"].macs == 2 * 4 * 6 * 6 * (4 + 4) == 2_304
    # einsum (2,4,6,4)x(2,4,6,4) over d: 2·4·6·6·4
    assert layers["einsum"].macs == 2 * 4 * 6 * 6 * 4


def test_elementwise_conventions() -> None:
    model = nn.Sequential(nn.ReLU(), nn.Sigmoid(), nn.Softmax(dim=1), nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(1))
    layers = _layers(cnnshape.analyze(model, [(1, 3, 8, 8)]))
    # activations: 1 FLOP per element of 3·8·8 = 192; softmax 3 per element
    assert (layers["0"].flops, layers["1"].flops, layers["2"].flops) == (192, 192, 3 * 192)
    # max pool 2x2 → 3·4·4 outputs, 4 comparisons each; adaptive avg: one per input element (48)
    assert layers["3"].flops == 4 * 3 * 4 * 4
    assert layers["4"].flops == 3 * 4 * 4
    assert all(layers[str(i)].macs == 0 for i in range(5))


class QR(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, _ = torch.linalg.qr(self.conv(x))
        return q


class FFT(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.fft.fft2(self.conv(x)).real  # .real is aten.view_as_real: a free view


@pytest.mark.parametrize(("model", "op", "layer"), [
    (QR(), "aten.linalg_qr", "linalg_qr"),
    (FFT(), "aten._fft_c2c", "fft_fft2"),
])
def test_unsupported_op_is_reported_not_zero(model: nn.Module, op: str, layer: str) -> None:
    report = cnnshape.analyze(model, [(1, 1, 6, 6)])
    assert not report.totals.complete
    unsupported = {u.op: u for u in report.unsupported}
    assert set(unsupported) == {op} and unsupported[op].layers == (layer,)
    assert op in next(row for row in report.layers if row.name == layer).unsupported
    # the conv (2·4·4·9 or 1·4·4·9 MACs) is still counted
    assert report.totals.macs == model.conv.out_channels * 4 * 4 * 9
    text = str(report)
    assert "lower bound" in text and op in text and layer in text
    assert report.to_dict()["totals"]["complete"] is False
    assert report.to_dict()["unsupported_ops"][0]["op"] in unsupported


def test_registry_rejects_duplicates() -> None:
    with pytest.raises(ValueError, match=r"flops: a formula for 'aten.mm' is already registered"):
        FLOPS.register("aten.mm")(lambda call: None)
    assert "aten.mm" in FLOPS
