"""The pruning what-if (issue 18): closed forms worked out by hand, and, for the example models,
the pruned model built for real (trained-weight slicing along the plan's channels) run by torch,
its parameters counted and its MACs measured by FlopCounterMode."""
from __future__ import annotations

import json
import random

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from typer.testing import CliRunner

import cnnshape
from cnnshape.cli import app
from cnnshape.errors import ConfigError
from examples.plain import PlainConv8

runner = CliRunner()
PLAIN = "examples/plain.py:PlainConv8"


# --- closed forms


def test_plain_eight_convs_at_half_keep_the_outputs_by_default() -> None:
    plan = cnnshape.prune_plan(PLAIN, [(1, 3, 8, 8)], ratio=0.5)
    # Σ 9·c_in·c_out over 3→32→…→4096 = 9·11,184,224 (examples/plain.py)
    assert plan.before.totals.params == 100_658_016
    # every inner conv halves; the last keeps its 4096 outputs (the model's output):
    # 9·(3·16 + 16·32 + … + 512·1024 + 1024·4096) = 9·4,893,232
    assert plan.after.totals.params == 44_039_088
    # no bias, 8x8 maps with padding 1: MACs = 64 · params
    assert plan.after.totals.macs == 64 * 44_039_088
    assert plan.channels()["convs.7"] == {"in_channels": 1024, "out_channels": 4096}


def test_plain_eight_convs_pruning_the_outputs_too() -> None:
    plan = cnnshape.prune_plan(PLAIN, [(1, 3, 8, 8)], ratio=0.5, prune_outputs=True)
    # 9·(3·16 + 16·32 + 32·64 + 64·128 + 128·256 + 256·512 + 512·1024 + 1024·2048) = 9·2,796,080
    assert plan.after.totals.params == 25_164_720
    assert plan.after.totals.macs == 64 * 25_164_720
    fixed = [g for g in plan.groups if g.status == "fixed"]
    assert [g.channels for g in fixed] == [3]  # the image's RGB channels stay


@pytest.mark.slow
def test_resnet50_at_half_beside_torch_pruning() -> None:
    # Torch-Pruning's published ResNet-50 at 0.5, classifier pruned too: 6.41 M parameters
    pruned = cnnshape.prune_plan("examples/resnet.py:ResNet50", [(1, 3, 224, 224)], ratio=0.5, prune_outputs=True)
    assert round(pruned.after.totals.params / 1e6, 2) == 6.41
    # keeping the 1000 classes keeps 500 more rows of fc (1024 inputs each) and 500 more biases
    kept = cnnshape.prune_plan("examples/resnet.py:ResNet50", [(1, 3, 224, 224)], ratio=0.5)
    assert kept.after.totals.params - pruned.after.totals.params == 500 * 1024 + 500


class Residual(nn.Module):
    """stem 3→16, then conv1 16→8, conv2 8→16 added back to the stem's output (3x3, no bias)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.conv1 = nn.Conv2d(16, 8, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1, bias=False)
        self.head = nn.Conv2d(16, 4, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(x))
        x = x + self.conv2(torch.relu(self.conv1(x)))
        return self.head(x)


def test_residual_branches_lose_the_same_channels() -> None:
    plan = cnnshape.prune_plan(Residual(), [(1, 3, 6, 6)], ratio=0.5)
    skip = next(g for g in plan.groups if "stem" in g.producers)
    assert set(skip.producers) == {"stem", "conv2"} and (skip.channels, skip.kept) == (16, 8)
    # stem 3·8·9 + conv1 8·4·9 + conv2 4·8·9 + head 8·4·1 = 216 + 288 + 288 + 32
    assert plan.after.totals.params == 824
    kept = {(layer, tensor, axis): k for layer, tensor, axis, k in plan.slices}
    assert kept[("stem", "weight", 0)] == kept[("conv2", "weight", 0)] == kept[("head", "weight", 1)]
    assert_real(Residual(), plan, (1, 3, 6, 6))


def test_inception_concat_consumer_loses_branch_channels_at_their_offsets() -> None:
    plan = cnnshape.prune_plan("examples/inception.py:InceptionNet", [(1, 3, 32, 32)], ratio=0.5)
    kept = {(layer, tensor, axis): k for layer, tensor, axis, k in plan.slices}
    # branches of 64, 128, 32, 32 channels at offsets 0, 64, 192, 224; each keeps its first half
    expected = (*range(0, 32), *range(64, 128), *range(192, 208), *range(224, 240))
    assert kept[("fc", "weight", 1)] == expected
    # the four branch groups stay apart: one per branch conv
    assert {g.name: (g.channels, g.kept) for g in plan.groups if g.name.endswith(".1.0") or
            g.name == "inception3a.branch1.0"} == {
        "inception3a.branch1.0": (64, 32), "inception3a.branch2.1.0": (128, 64),
        "inception3a.branch3.1.0": (32, 16), "inception3a.branch4.1.0": (32, 16)}


class DepthwiseBlock(nn.Module):
    """conv 3→32 (3x3), depthwise 3x3 on 32 (groups=32), pointwise 32→64; no bias."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 32, 3, padding=1, bias=False)
        self.dw = nn.Conv2d(32, 32, 3, padding=1, groups=32, bias=False)
        self.pw = nn.Conv2d(32, 64, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.dw(self.conv(x)))


def test_depthwise_separable_groups_shrink_with_the_channels() -> None:
    plan = cnnshape.prune_plan(DepthwiseBlock(), [(1, 3, 5, 5)], ratio=0.5, prune_outputs=True)
    # conv 3·16·9 = 432; depthwise 16·1·9 = 144 (groups 16); pointwise 16·32 = 512
    assert plan.after.totals.params == 432 + 144 + 512
    dw = next(r for r in plan.after.layers if r.name == "dw")
    assert dw.attr("groups") == 16 and dw.attr("in_channels") == dw.attr("out_channels") == 16
    assert_real(DepthwiseBlock(), plan, (1, 3, 5, 5))


class FlattenHead(nn.Module):
    """conv 3→8 (3x3, bias) on 4x4 (padding 1), flatten to 8·16 = 128 features, linear 128→10."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(torch.relu(self.conv(x)), 1))


def test_flatten_linear_loses_h_w_inputs_per_channel() -> None:
    plan = cnnshape.prune_plan(FlattenHead(), [(1, 3, 4, 4)], ratio=0.5)
    # conv 3·4·9 + 4 = 112; fc (4·16)·10 + 10 = 650
    assert plan.after.totals.params == 112 + 650
    kept = {(layer, tensor, axis): k for layer, tensor, axis, k in plan.slices}
    assert kept[("fc", "weight", 1)] == tuple(range(64))  # channels 0..3, 16 features each
    assert_real(FlattenHead(), plan, (1, 3, 4, 4))


class GroupedConv(nn.Module):
    """stem 3→8 (3x3), grouped 3x3 conv 8→8 in 2 groups, head 8→4 (1x1); no bias."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.grouped = nn.Conv2d(8, 8, 3, padding=1, groups=2, bias=False)
        self.head = nn.Conv2d(8, 4, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.grouped(self.stem(x)))


def test_grouped_conv_keeps_its_groups_equal() -> None:
    plan = cnnshape.prune_plan(GroupedConv(), [(1, 3, 5, 5)], ratio=0.5)
    kept = {(layer, tensor, axis): k for layer, tensor, axis, k in plan.slices}
    # each group of 4 input channels keeps the same 2 slots: channels 0,1 of group 0 and 4,5 of group 1
    assert kept[("stem", "weight", 0)] == (0, 1, 4, 5)
    assert kept[("grouped", "weight", 1)] == (0, 1) and kept[("grouped", "weight", 0)] == (0, 1, 4, 5)
    # stem 3·4·9 = 108; grouped 4 outputs · 2 inputs per group · 9 = 72; head 4·4 = 16
    assert plan.after.totals.params == 108 + 72 + 16
    assert_real(GroupedConv(), plan, (1, 3, 5, 5))


class ShuffleChunk(nn.Module):
    """conv 3→16, channel shuffle in 4 groups, chunk into halves, conv 8→8 on the second, concat, conv 16→4."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 16, 1)
        self.b = nn.Conv2d(8, 8, 1)
        self.c = nn.Conv2d(16, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.a(x)
        n, c, h, w = x.shape
        x = x.view(n, 4, c // 4, h, w).transpose(1, 2).contiguous().view(n, -1, h, w)
        x1, x2 = x.chunk(2, dim=1)
        return self.c(torch.cat([x1, self.b(x2)], 1))


def test_channel_shuffle_and_chunk() -> None:
    plan = cnnshape.prune_plan(ShuffleChunk(), [(1, 3, 4, 4)], ratio=0.5)
    kept = {(layer, tensor, axis): k for layer, tensor, axis, k in plan.slices}
    # a's channel g·4 + k goes to position k·4 + g; the halves 0..7 / 8..15 are slots k 0,1 / 2,3 and
    # stay equal, so slot k goes with slot k+2: one unit of slots {0, 2} stays, every group keeps 2
    assert kept[("a", "weight", 0)] == (0, 2, 4, 6, 8, 10, 12, 14)
    # kept shuffled positions 0..3 (first half) and 8..11 (second half, b's input 0..3); b keeps 4
    assert kept[("b", "weight", 1)] == (0, 1, 2, 3)
    assert kept[("c", "weight", 1)] == (0, 1, 2, 3, 8, 9, 10, 11)
    # a 3·8 + 8 = 32; b 4·4 + 4 = 20; c 4·8 + 4 = 36
    assert plan.after.totals.params == 32 + 20 + 36
    assert_real(ShuffleChunk(), plan, (1, 3, 4, 4))


def test_rows_sum_to_the_totals_also_collapsed() -> None:
    plan = cnnshape.prune_plan("examples/senet.py:SENet", [(1, 3, 16, 16)], ratio=0.5)
    for rows in (plan.layers, plan.collapse(1).layers):
        for i, total in ((0, plan.before.totals), (1, plan.after.totals)):
            assert sum(r.params[i] for r in rows) == total.params
            assert sum(r.macs[i] for r in rows) == total.macs
            assert sum(r.activation_bytes[i] for r in rows) == total.activation_bytes
    assert plan.collapse(1).channels() == plan.channels()  # the counts still name every layer


def test_round_to_and_keep_and_layers() -> None:
    # 0.3 of 32 removes floor(9.6) = 9, keeps 23 -> nearest multiple of 8: 24
    plan = cnnshape.prune_plan(PLAIN, [(1, 3, 4, 4)], ratio=0.3, round_to=8, args={"widths": (3, 32, 64)})
    assert plan.channels()["convs.0"]["out_channels"] == 24
    kept = cnnshape.prune_plan(PLAIN, [(1, 3, 4, 4)], ratio=0.5, keep=["convs.0"],
                               args={"widths": (3, 32, 64, 64)})
    assert kept.channels()["convs.0"]["out_channels"] == 32 and kept.channels()["convs.1"]["out_channels"] == 32
    only = cnnshape.prune_plan(PLAIN, [(1, 3, 4, 4)], ratio=0.5, layers=["convs.1"],
                               args={"widths": (3, 32, 64, 64)})
    assert only.channels()["convs.0"]["out_channels"] == 32 and only.channels()["convs.1"]["out_channels"] == 32


def test_per_layer_ratios_from_a_file(tmp_path: object) -> None:
    path = tmp_path / "ratios.toml"  # type: ignore[operator]
    path.write_text('[ratios]\n"convs.0" = 0.25\n"convs.1" = 0.75\n')
    plan = cnnshape.prune_plan(PLAIN, [(1, 3, 4, 4)], ratios=str(path), args={"widths": (3, 32, 64, 64)})
    # 32 - floor(8) = 24; 64 - floor(48) = 16; convs.2 unlisted: ratio 0 (its outputs are kept anyway)
    assert plan.channels()["convs.0"]["out_channels"] == 24 and plan.channels()["convs.1"]["out_channels"] == 16


class LiteralView(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).view(-1, 8 * 16))


def test_a_literal_view_makes_its_group_unprunable_with_the_reason() -> None:
    plan = cnnshape.prune_plan(LiteralView(), [(2, 3, 4, 4)], ratio=0.5)
    conv = next(g for g in plan.groups if g.name == "conv")
    # with batch 2, view(-1, 128) of 2·4·16 = 128 values gives 1x128: the batch changes, then fc refuses
    assert conv.status == "fixed" and any("(at 'view')" in r for r in conv.reasons), conv.reasons
    assert plan.after.totals.params == plan.before.totals.params


class ChannelsLast(nn.Module):
    """Linear 8→16, LayerNorm(16), GELU, crop the sequence to its first 3 tokens, Linear 16→4."""

    def __init__(self) -> None:
        super().__init__()
        self.up = nn.Linear(8, 16)
        self.norm = nn.LayerNorm(16)
        self.down = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(nn.functional.gelu(self.norm(self.up(x)))[:, :3])


def test_layer_norm_over_the_channels_and_a_crop_of_another_axis() -> None:
    plan = cnnshape.prune_plan(ChannelsLast(), [(1, 5, 8)], ratio=0.5)
    # up 8·8 + 8 = 72; norm 8 + 8 = 16; down 8·4 + 4 = 36
    assert plan.after.totals.params == 72 + 16 + 36
    assert "norm" in next(g for g in plan.groups if g.name == "up").layers
    assert_real(ChannelsLast(), plan, (1, 5, 8))


class Tied(nn.Module):
    """stem 3→8, then two 1x1 convs 8→8 sharing one weight (own biases), head 8→4."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 1)
        self.a = nn.Conv2d(8, 8, 1)
        self.b = nn.Conv2d(8, 8, 1)
        self.b.weight = self.a.weight
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.b(torch.relu(self.a(self.stem(x)))))


def test_tied_weights_are_pruned_once_and_stay_tied() -> None:
    plan = cnnshape.prune_plan(Tied(), [(1, 3, 4, 4)], ratio=0.5)
    # the shared weight reads what it makes: stem, a and b keep the same 4 channels.
    # stem 3·4 + 4 = 16; shared weight 4·4 = 16 counted once, biases 4 + 4; head 4·4 + 4 = 20
    assert plan.after.totals.params == 16 + 16 + 8 + 20
    assert_real(Tied(), plan, (1, 3, 4, 4))


class CumsumChannels(nn.Module):
    """conv 3→8, then a cumulative sum over the channels (an op with no channel rule), conv 8→4."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 8, 1)
        self.b = nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.cumsum(self.a(x), 1))


def test_an_op_without_a_rule_keeps_the_channels_it_meets_and_says_why() -> None:
    plan = cnnshape.prune_plan(CumsumChannels(), [(1, 3, 4, 4)], ratio=0.5)
    groups = {g.name: g for g in plan.groups}
    assert groups["a"].status == "fixed" and groups["a"].reasons == ("aten.cumsum has no channel rule (at 'cumsum')",)
    assert groups["input of b"].status == "fixed"  # b reads channels cnnshape could not follow
    assert plan.after.totals.params == plan.before.totals.params == (3 * 8 + 8) + (8 * 4 + 4)


def test_a_bug_in_a_channel_rule_leaves_the_figures_standing(monkeypatch: pytest.MonkeyPatch) -> None:
    from cnnshape.prune import rules

    def broken(ctx: object) -> None:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setitem(rules.RULES, "aten.relu", broken)
    plan = cnnshape.prune_plan(PLAIN, [(1, 3, 4, 4)], ratio=0.5, args={"widths": (3, 32, 64)})
    assert plan.before.totals.params == 9 * (3 * 32 + 32 * 64)  # the unpruned figures are intact
    group = next(g for g in plan.groups if g.name == "convs.0")
    assert group.status == "fixed" and "cnnshape bug in the channel rule of aten.relu" in group.reasons[0]


def test_bad_options_are_clear() -> None:
    with pytest.raises(ConfigError, match="ratio 1.0: a pruning ratio"):
        cnnshape.prune_plan(PLAIN, [(1, 3, 4, 4)], ratio=1.0)
    with pytest.raises(ConfigError, match="round_to 0"):
        cnnshape.prune_plan(PLAIN, [(1, 3, 4, 4)], round_to=0)
    result = runner.invoke(app, ["prune", PLAIN, "-i", "1,3,4,4", "--ratios", "/nonexistent.json"])
    assert result.exit_code == 2 and "--ratios /nonexistent.json: cannot read it" in result.output
    result = runner.invoke(app, ["prune", PLAIN, "-i", "1,3,4,4", "--layers", "conv.*"])
    assert result.exit_code == 2 and "--layers 'conv.*' matches no layer" in result.output
    assert "'convs.*'" in result.output


def test_cli_ratios_file_and_keep(tmp_path: object) -> None:
    path = tmp_path / "ratios.json"  # type: ignore[operator]
    path.write_text('{"convs.1": 0.75}')
    args = ["prune", PLAIN, "-i", "1,3,4,4", "--arg", "widths=(3, 32, 64, 64)", "--ratios", str(path),
            "--ratio", "0.5", "--keep", "convs.0", "-f", "json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    channels = json.loads(result.output)["channels"]
    # convs.0 kept whole (--keep); convs.1 64 - floor(48) = 16; convs.2 makes the output: kept
    assert [channels[f"convs.{i}"]["out_channels"] for i in range(3)] == [32, 16, 64]


def test_cli_table_and_json() -> None:
    args = ["prune", PLAIN, "-i", "1,3,4,4", "--arg", "widths=(3, 32, 64)", "--groups"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Dependency groups (3):" in result.output and "convs.0: 32 -> 16" in result.output
    result = runner.invoke(app, [*args[:6], "--prune-outputs", "-f", "json"])
    data = json.loads(result.output)
    # 9·(3·16 + 16·32) = 5,040
    assert data["schema"] == "cnnshape.prune/1" and data["totals"]["params"]["after"] == 5_040
    assert data["channels"]["convs.1"] == {"in_channels": 16, "out_channels": 32}


# --- against torch: the pruned model built for real


def build_pruned(model: nn.Module, plan: object) -> nn.Module:
    """Slice ``model``'s trained tensors along the plan's kept channels, fix the layers' sizes."""
    before = {name: (m.in_channels, m.out_channels, m.weight.shape[1]) for name, m in model.named_modules()
              if isinstance(m, nn.modules.conv._ConvNd)}
    holders: dict[int, list[tuple[nn.Module, str]]] = {}  # tied tensors stay tied
    for m in model.modules():
        for name, t in [*m._parameters.items(), *m._buffers.items()]:
            holders.setdefault(id(t), []).append((m, name))
    cuts: dict[tuple[str, str], list[tuple[int, tuple[int, ...]]]] = {}
    for layer, tensor, axis, kept in plan.slices:  # type: ignore[attr-defined]
        cuts.setdefault((layer, tensor), []).append((axis, kept))
    for (layer, tensor), axes in cuts.items():
        module = model.get_submodule(layer)
        old = getattr(module, tensor)
        value = old.detach()
        for axis, kept in axes:
            value = value.index_select(axis, torch.tensor(kept, dtype=torch.long))
        new = nn.Parameter(value) if tensor in module._parameters else value
        for holder, name in holders[id(old)]:
            (holder._parameters if name in holder._parameters else holder._buffers)[name] = new
    for name, m in model.named_modules():
        if isinstance(m, nn.modules.conv._ConvTransposeNd):  # weight (in, out / groups, k...)
            m.in_channels, m.out_channels = m.weight.shape[0], m.weight.shape[1] * m.groups
        elif isinstance(m, nn.modules.conv._ConvNd):
            old_in, old_out, old_per_group = before[name]
            m.out_channels = m.weight.shape[0]
            if m.groups > 1 and old_per_group == 1:  # depthwise: one group per input channel
                m.in_channels = m.groups = m.out_channels * old_in // old_out
            else:
                m.in_channels = m.weight.shape[1] * m.groups
        elif isinstance(m, nn.Linear):
            m.out_features, m.in_features = m.weight.shape
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.num_features = m.weight.shape[0]
        elif isinstance(m, nn.LayerNorm):
            m.normalized_shape = tuple(m.weight.shape)
    return model


REAL = [("examples/resnet.py:ResNet50", [(1, 3, 32, 32)], {}),
        pytest.param("examples/mobilenet.py:MobileNetV2", [(1, 3, 32, 32)], {}, marks=pytest.mark.slow),
        ("examples/inception.py:InceptionNet", [(1, 3, 32, 32)], {}),
        ("examples/densenet.py:DenseNet", [(1, 3, 32, 32)], {}),
        ("examples/senet.py:SENet", [(1, 3, 32, 32)], {}),
        ("examples/lenet.py:LeNet5", [(1, 1, 32, 32)], {}),
        ("examples/unet.py:UNet", [(1, 1, 32, 32)], {}),
        ("examples/decoder.py:TransposedDecoder", [(1, 100, 1, 1)], {}),
        ("examples/dilated.py:DilatedStack", [(1, 3, 32, 32)], {}),
        ("examples/dilated.py:DilatedConv1dStack", [(1, 1, 2000)], {}),
        ("examples/multi_io.py:TwoInputNet", [(1, 3, 16, 16), (1, 10)], {}),
        pytest.param("examples/regnet.py:regnet_x_400mf", [(1, 3, 32, 32)], {}, marks=pytest.mark.slow),
        (PLAIN, [(1, 3, 8, 8)], {"widths": (3, 32, 64, 128, 256)})]


@pytest.mark.parametrize(("spec", "shapes", "args"), REAL, ids=lambda v: v.split(":")[-1] if isinstance(v, str) else "")
def test_pruned_model_built_for_real_matches_the_plan(spec: str, shapes: list, args: dict) -> None:
    plan = cnnshape.prune_plan(spec, shapes, ratio=0.5, round_to=4, args=args)
    # every channel of these models can be followed: only the input's and the outputs' stay
    reasons = {r.split(" (")[0] for g in plan.groups for r in g.reasons}
    assert reasons <= {"the model's input channels", "a model output"}, reasons
    assert plan.after.totals.params < plan.before.totals.params
    torch.manual_seed(0)
    assert_real(_real(spec, args), plan, *shapes)


def assert_real(model: nn.Module, plan: object, *shapes: tuple[int, ...]) -> None:
    """``model`` (real weights) pruned along the plan runs; its parameter count, its MACs
    (FlopCounterMode / 2) and its output shape are the plan's."""
    model = build_pruned(model, plan)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        out = model(*(torch.randn(s) for s in shapes))
    after = plan.after  # type: ignore[attr-defined]
    assert sum(p.numel() for p in model.parameters()) == after.totals.params
    assert counter.get_total_flops() == 2 * after.totals.macs
    first = out[0] if isinstance(out, tuple) else out
    assert tuple(first.shape) == after.outputs[0].shape


def _real(spec: str, args: dict) -> nn.Module:
    """The model with real (random) weights on the CPU."""
    return PlainConv8(**args).eval() if spec == PLAIN else _construct(spec)


def _construct(spec: str) -> nn.Module:
    import importlib.util

    path, name = spec.split(":")
    module_spec = importlib.util.spec_from_file_location(f"_prune_{name}", path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return getattr(module, name)().eval()


# --- random networks of the patterns above, pruned for real


class RandomNet(nn.Module):
    """A random chain of convs, batch norms, depthwise and grouped convs, residual adds,
    concatenations, channel shuffles and chunks, ending in a flatten -> linear head."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        rng = random.Random(seed)
        self.steps: list[tuple[str, int]] = []
        self.mods = nn.ModuleList()
        c = 3
        for _ in range(rng.randint(3, 7)):
            kind = rng.choice(["conv", "bn", "dw", "res", "cat", "grouped", "shuffle", "chunk"])
            if kind in ("grouped", "shuffle", "chunk") and c % 2:
                kind = "conv"
            c = self._add(kind, c, rng)
        self.head = nn.Linear(c * 4, 10)

    def _add(self, kind: str, c: int, rng: random.Random) -> int:
        first = len(self.mods)
        width = rng.choice([4, 6, 8, 12])
        if kind == "conv":
            self.mods.append(nn.Conv2d(c, width, 3, padding=1, bias=rng.random() < 0.5))
            c = width
        elif kind == "bn":
            self.mods.append(nn.BatchNorm2d(c))
        elif kind == "dw":
            m = rng.choice([1, 2])
            self.mods.append(nn.Conv2d(c, c * m, 3, padding=1, groups=c, bias=False))
            c *= m
        elif kind == "res":
            self.mods.extend([nn.Conv2d(c, width, 1), nn.Conv2d(width, c, 3, padding=1)])
        elif kind == "cat":
            self.mods.extend([nn.Conv2d(c, width, 1), nn.Conv2d(c, 4, 3, padding=1)])
            c = width + 4
        elif kind == "grouped":
            self.mods.append(nn.Conv2d(c, 2 * width, 3, padding=1, groups=2))
            c = 2 * width
        elif kind == "chunk":
            self.mods.append(nn.Conv2d(c // 2, c // 2, 1))
        self.steps.append((kind, first))
        return c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for kind, i in self.steps:
            if kind == "res":
                x = x + self.mods[i + 1](torch.relu(self.mods[i](x)))
            elif kind == "cat":
                x = torch.cat([self.mods[i](x), self.mods[i + 1](x)], 1)
            elif kind == "shuffle":
                n, c, h, w = x.shape
                x = x.view(n, 2, c // 2, h, w).transpose(1, 2).contiguous().view(n, c, h, w)
            elif kind == "chunk":
                a, b = x.chunk(2, dim=1)
                x = torch.cat([b, self.mods[i](a)], 1)
            else:
                x = torch.relu(self.mods[i](x))
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 2), 1))


@pytest.mark.parametrize("seed", range(12))
def test_random_network_pruned_for_real(seed: int) -> None:
    ratio, round_to = random.Random(seed).choice([(0.25, 1), (0.5, 2), (0.75, 1), (0.4, 4)])
    net = RandomNet(seed)
    plan = cnnshape.prune_plan(net, [(1, 3, 6, 6)], ratio=ratio, round_to=round_to)
    reasons = {r.split(" (")[0] for g in plan.groups for r in g.reasons}
    assert reasons <= {"the model's input channels", "a model output"}, (net.steps, reasons)
    torch.manual_seed(seed)
    assert_real(net, plan, (1, 3, 6, 6))
