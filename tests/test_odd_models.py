"""Constructs beyond plain layers (issue 13, item 7) and forwards that need tensor values (issue 13,
item 10 of the hardening list).

* models returning ``torch.distributions`` objects: their argument checks test values, which meta
  tensors lack; the outputs open into the distributions' parameter tensors;
* TorchScript: a whole scripted model is one node, scripted submodules are leaves;
* ``torch.nn.utils.prune``: parameters counted as torch counts them, with a note;
* a branch on a value, ``.item()``, ``torch.nonzero``: a TraceError that says why and where.

Figures are torch's own: ``sum(p.numel())``, a real CPU forward's output shapes, FlopCounterMode's
total / 2 (it counts a multiply-add as 2 FLOPs).
"""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Distribution, Independent, Normal
from torch.nn.utils import prune
from torch.utils.flop_counter import FlopCounterMode

import cnnshape
from cnnshape.analyse.params import pruning_note
from examples.constructs import (
    ActorCritic,
    GaussianPolicy,
    PartlyScripted,
    SmallConvNet,
    pruned_convnet,
    scripted_mlp,
)

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).name


def real_run(model: nn.Module, shape: tuple[int, ...]) -> tuple[int, Any]:
    """FlopCounterMode's MACs and the output of one real CPU forward."""
    torch.manual_seed(0)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        out = model(torch.randn(shape))
    return counter.get_total_flops() // 2, out


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cnnshape", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


# -- torch.distributions ----------------------------------------------------------------------------

def test_gaussian_policy_returns_a_normal():
    model = GaussianPolicy().eval()
    macs, dist = real_run(model, (1, 8))
    report = cnnshape.analyze(model, [(1, 8)])
    # 8*64 + 64 + 64*64 + 64 + 64*2 + 2 + 2 (log_std) = 4,868
    assert report.totals.params == sum(p.numel() for p in model.parameters()) == 4_868
    assert [(o.key, o.shape) for o in report.outputs] == [(".loc", tuple(dist.loc.shape)),
                                                         (".scale", tuple(dist.scale.shape))]
    assert report.totals.macs == macs  # 8*64 + 64*64 + 64*2 = 4,736
    assert report.tracer == "eager"
    assert any("inside torch.distributions" in note for note in report.notes)


@pytest.mark.parametrize("tracer", ["auto", "eager"])
def test_actor_critic_returns_a_categorical_and_a_value(tracer):
    model = ActorCritic().eval()
    macs, (dist, value) = real_run(model, (3, 16))
    report = cnnshape.analyze(model, [(3, 16)], tracer=tracer)
    assert report.totals.params == sum(p.numel() for p in model.parameters()) == 1_413
    # Categorical(logits=...) holds its normalised logits; probs is computed only when read
    assert [(o.key, o.shape) for o in report.outputs] == [("[0].logits", tuple(dist.logits.shape)),
                                                         ("[1]", tuple(value.shape))]
    assert report.totals.macs == macs


class IndependentHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> Independent:
        return Independent(Normal(self.fc(x), torch.ones(4)), 1)


class SamplingPolicy(nn.Module):
    """A nested distribution, sampled and scored inside forward."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(8, 8)
        self.head = IndependentHead()

    def forward(self, x: torch.Tensor) -> tuple[Independent, torch.Tensor, torch.Tensor]:
        dist = self.head(self.body(x))
        action = dist.rsample()
        return dist, action, dist.log_prob(action)


@pytest.mark.parametrize("tracer, leaves", [("auto", ()), ("eager", ()), ("fx", (IndependentHead,)),
                                            ("eager", (IndependentHead,))])
def test_nested_distribution_sampled_in_forward(tracer, leaves):
    model = SamplingPolicy().eval()
    macs, (dist, action, log_prob) = real_run(model, (2, 8))
    report = cnnshape.analyze(model, [(2, 8)], tracer=tracer, leaves=leaves)
    assert [(o.key, o.shape) for o in report.outputs] == [
        ("[0].base_dist.loc", tuple(dist.base_dist.loc.shape)),
        ("[0].base_dist.scale", tuple(dist.base_dist.scale.shape)),
        ("[1]", tuple(action.shape)), ("[2]", tuple(log_prob.shape))]
    assert report.totals.params == sum(p.numel() for p in model.parameters())
    assert report.totals.macs == macs


class StrictNormal(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> Normal:
        return Normal(self.fc(x), torch.ones(4), validate_args=True)


def test_explicit_validation_is_a_value_dependence_with_its_fix():
    before = Distribution._validate_args
    with pytest.raises(cnnshape.TraceError, match=r"(?s)StrictNormal\.forward needs tensor values.*"
                                                  r"validate_args=False.*test_odd_models\.py:\d+: return Normal"):
        cnnshape.analyze(StrictNormal(), [(2, 8)])
    assert Distribution._validate_args == before  # the default is restored, also after a failure
    cnnshape.analyze(GaussianPolicy(), [(1, 8)])
    assert Distribution._validate_args == before


def test_distribution_outputs_through_the_console_script():
    import json

    result = cli("summary", "examples/constructs.py:ActorCritic", "--input", "1,16", "--format", "json")
    assert result.returncode == 0, result.stderr
    outputs = json.loads(result.stdout)["outputs"]
    assert [(o["key"], o["shape"]) for o in outputs] == [("[0].logits", [1, 4]), ("[1]", [1, 1])]


# -- TorchScript ----------------------------------------------------------------------------------

def test_fully_scripted_model_is_one_node():
    model = scripted_mlp().eval()
    macs, out = real_run(model, (2, 8))
    report = cnnshape.analyze(model, [(2, 8)])
    assert report.tracer == "eager"
    modules = [layer for layer in report.layers if layer.kind == "module"]
    assert [(m.name, m.type) for m in modules] == [("MLP", "MLP (TorchScript)")]
    # 8*16 + 16 + 16*4 + 4 = 212 parameters; 2*(8*16 + 16*4) = 384 MACs
    assert report.totals.params == modules[0].params == sum(p.numel() for p in model.parameters()) == 212
    assert report.totals.macs == macs == 384
    assert [o.shape for o in report.outputs] == [tuple(out.shape)]
    assert any("it is a TorchScript module" in note for note in report.notes)


def test_fully_scripted_model_with_fx_says_what_to_do():
    with pytest.raises(cnnshape.TraceError, match=r"torch\.fx cannot trace MLP: it is a TorchScript module.*"
                                                  r"tracer=eager, or auto.*before it is scripted"):
        cnnshape.analyze(scripted_mlp(), [(2, 8)], tracer="fx")


@pytest.mark.slow  # > 10 s in docs/test-durations.md
def test_fully_scripted_model_through_the_console_script():
    ok = cli("summary", "examples/constructs.py:scripted_mlp", "--input", "2,8")
    assert ok.returncode == 0, ok.stderr
    assert "MLP (TorchScript)" in ok.stdout and "Total params: 212" in ok.stdout
    refused = cli("summary", "examples/constructs.py:scripted_mlp", "--input", "2,8", "--tracer", "fx")
    assert refused.returncode == 2
    assert refused.stderr.startswith("error: torch.fx cannot trace MLP: it is a TorchScript module")
    assert "--tracer=eager" in refused.stderr and "Traceback" not in refused.stderr


@pytest.mark.parametrize("tracer", ["fx", "eager"])
def test_scripted_submodules_are_leaves(tracer):
    model = PartlyScripted().eval()
    macs, out = real_run(model, (2, 3, 8, 8))
    report = cnnshape.analyze(model, [(2, 3, 8, 8)], tracer=tracer)
    layers = {layer.name: layer for layer in report.layers}
    # fc1: 32*16 + 16 = 528, fc2: 16*4 + 4 = 68, read from the TorchScript attributes like a Linear's
    assert (layers["fc1"].type, layers["fc1"].params, layers["fc1"].attr("in_features")) == ("Linear", 528, 32)
    assert (layers["fc2"].type, layers["fc2"].params, layers["fc2"].attr("out_features")) == ("Linear", 68, 4)
    assert layers["fc1"].output_shape == (2, 16)
    assert report.totals.params == sum(p.numel() for p in model.parameters()) == 820
    assert report.totals.unused_params == 0
    assert report.totals.macs == macs
    assert [o.shape for o in report.outputs] == [tuple(out.shape)]


def test_both_tracers_give_the_same_rows_for_scripted_submodules():
    def rows(tracer: str) -> list[tuple[Any, ...]]:
        report = cnnshape.analyze(PartlyScripted(), [(1, 3, 8, 8)], tracer=tracer)
        return [(r.name, r.type, r.output_shapes, r.params, r.macs) for r in report.layers]

    assert rows("fx") == rows("eager")


class ScriptedBlocks(nn.Module):
    """A scripted container (its layers run inside TorchScript) and a torch.jit.trace-d layer."""

    def __init__(self) -> None:
        super().__init__()
        self.block = torch.jit.script(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU()))
        self.head = torch.jit.trace(nn.Linear(8, 5), torch.randn(1, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.adaptive_avg_pool2d(self.block(x), 1).flatten(1))


@pytest.mark.parametrize("tracer", ["auto", "eager"])
def test_scripted_container_and_traced_layer(tracer):
    model = ScriptedBlocks().eval()
    macs, out = real_run(model, (1, 3, 8, 8))
    report = cnnshape.analyze(model, [(1, 3, 8, 8)], tracer=tracer)
    layers = {layer.name: layer for layer in report.layers}
    assert layers["block"].type == "Sequential (TorchScript)"
    assert "block.0" not in layers  # inside TorchScript: no row of its own
    # conv 3*8*9 + 8 = 224, head 8*5 + 5 = 45
    assert (layers["block"].params, layers["head"].params) == (224, 45)
    assert report.totals.params == sum(p.numel() for p in model.parameters()) == 269
    assert report.totals.macs == macs  # 8*8*8*27 + 8*5 = 13,864
    assert [o.shape for o in report.outputs] == [tuple(out.shape)]


def test_traced_model_is_one_node_too():
    # torch.jit.trace keeps no Python signature: the TorchScript schema names the input
    model = torch.jit.trace(SmallConvNet().eval(), torch.randn(1, 3, 16, 16))
    macs, out = real_run(model, (1, 3, 16, 16))
    report = cnnshape.analyze(model, [(1, 3, 16, 16)])
    assert [(r.name, r.type) for r in report.layers] == [("x", "input"), ("SmallConvNet", "SmallConvNet (TorchScript)"),
                                                         ("output", "output")]
    assert report.totals.params == sum(p.numel() for p in model.parameters()) == 5_418
    assert report.totals.macs == macs
    assert [o.shape for o in report.outputs] == [tuple(out.shape)]


class ScriptedBranch(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if bool(x.sum() > 0):
            return self.fc(x)
        return self.fc(-x)


class WithScriptedBranch(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block = torch.jit.script(ScriptedBranch())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x) * 2


@pytest.mark.parametrize("tracer", ["auto", "eager", "fx"])
def test_value_dependence_inside_torchscript_names_the_scripted_line(tracer):
    # TorchScript re-raises the meta kernel's error without its message; the line is TorchScript's own
    with pytest.raises(cnnshape.TraceError, match=rf"(?s)^WithScriptedBranch\.forward in 'block' needs tensor "
                                                  rf"values: it reads a tensor's value.*\n    at .*{HERE}:\d+: "
                                                  rf"if bool\(x\.sum\(\) > 0\):$"):
        cnnshape.analyze(WithScriptedBranch(), [(2, 8)], tracer=tracer)


# -- torch.nn.utils.prune -------------------------------------------------------------------------

@pytest.mark.parametrize("tracer", ["fx", "eager"])
def test_pruned_model_counts_as_torch_does(tracer):
    model = pruned_convnet().eval()
    assert {"conv1.weight_orig", "conv2.weight_orig"} <= {n for n, _ in model.named_parameters()}
    macs, out = real_run(model, (1, 3, 16, 16))
    report = cnnshape.analyze(model, [(1, 3, 16, 16)], tracer=tracer)
    # torch counts weight_orig (dense): 3*16*9 + 16 + 16*32*9 + 32 + 32*10 + 10 = 5,418
    assert report.totals.params == sum(p.numel() for p in model.parameters()) == 5_418
    assert report.totals.buffers == 432 + 4_608  # the masks
    assert report.totals.macs == macs  # the dense convolutions run, masked weights included
    assert [o.shape for o in report.outputs] == [tuple(out.shape)]
    # the masking (weight_orig * weight_mask, in prune's forward pre-hook) is part of the conv's row
    assert [r.name for r in report.layers if r.kind == "module"] == ["conv1", "conv2", "fc"]


def test_pruning_note_counts_the_masked_weights():
    model = pruned_convnet()
    zeros = sum(int((b == 0).sum()) for name, b in model.named_buffers() if name.endswith("_mask"))
    assert zeros == 216 + 1_382  # round(0.5 * 432) + round(0.3 * 4,608)
    note = pruning_note(model)
    assert note is not None
    assert note.startswith("pruned with torch.nn.utils.prune (conv1.weight, conv2.weight): parameters are "
                           "counted as torch counts them, the dense weight_orig of each pruned tensor")
    assert note.endswith(f"{zeros:,} of their 5,040 weights are masked to zero")
    assert pruning_note(SmallConvNet()) is None


def test_pruning_note_on_meta_reads_the_amounts():
    # meta masks have no values: the count follows from the amount of an L1/random method applied once
    with torch.device("meta"):
        model = pruned_convnet()
        prune.random_structured(model.fc, "weight", amount=0.3, dim=0)  # round(0.3 * 10) = 3 rows of 32
    note = pruning_note(model)
    assert note is not None and note.endswith(f"{216 + 1_382 + 3 * 32:,} of their 5,360 weights are masked to zero")
    with torch.device("meta"):
        prune.custom_from_mask(model.fc, "bias", torch.ones(10))
    assert (pruning_note(model) or "").endswith("which of their 5,370 weights are masked is not known on the "
                                                "meta device (the masks have no values)")


# -- forwards that need tensor values --------------------------------------------------------------

class ValueBranch(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return self.fc(x)
        return -self.fc(x)


class ItemSize(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = int(x.abs().max().item())
        return self.fc(x)[:, :k]


class NonzeroIndex(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keep = torch.nonzero(x[:, 0] > 0).flatten()
        return self.fc(x[keep])


class MaskSelect(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc(x)
        return y[y > 0]


class Outer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block = ValueBranch()
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.block(x))


READS = r"needs tensor values: it reads a tensor's value into Python"
NONZERO = r"needs tensor values: it calls torch\.nonzero"
EXPLAINED = (r".*Static analysis runs the model on meta tensors, which have shapes but no values, so it cannot "
             r"know which way a value-dependent branch goes.*branch on sizes.*")


@pytest.mark.parametrize("tracer", ["auto", "eager", "fx"])
@pytest.mark.parametrize("model, what, line", [
    (ValueBranch, READS, r"if x\.sum\(\) > 0:"),
    (ItemSize, READS, r"k = int\(x\.abs\(\)\.max\(\)\.item\(\)\)"),
    (NonzeroIndex, NONZERO, r"keep = torch\.nonzero\(x\[:, 0\] > 0\)\.flatten\(\)"),
    (MaskSelect, NONZERO, r"return y\[y > 0\]"),
], ids=["branch", "item", "nonzero", "mask"])
def test_value_dependence_is_a_trace_error_naming_the_line(model, what, line, tracer):
    if tracer == "fx" and model in (ValueBranch, ItemSize):
        # symbolic tracing stops first, at the same line, in fx's words
        with pytest.raises(cnnshape.TraceError, match=rf"torch\.fx cannot trace {model.__name__} "
                                                      rf"\(at .*{HERE}:\d+: {line}\)"):
            cnnshape.analyze(model(), [(2, 8)], tracer=tracer)
        return
    with pytest.raises(cnnshape.TraceError, match=rf"(?s)^{model.__name__}\.forward {what}{EXPLAINED}"
                                                  rf"\n    at .*{HERE}:\d+: {line}$"):
        cnnshape.analyze(model(), [(2, 8)], tracer=tracer)


def test_value_dependence_names_the_module():
    with pytest.raises(cnnshape.TraceError, match=r"^Outer\.forward in 'block' needs tensor values"):
        cnnshape.analyze(Outer(), [(2, 8)])


def test_value_dependence_inside_a_leaf_is_still_a_value_dependence():
    # a leaf keeps the block one node, but its forward still runs on meta tensors
    with pytest.raises(cnnshape.TraceError, match=r"^Outer\.forward in 'block' needs tensor values"):
        cnnshape.analyze(Outer(), [(2, 8)], leaves=[ValueBranch])


@pytest.mark.slow  # > 10 s in docs/test-durations.md
def test_value_dependence_through_the_console_script(tmp_path):
    spec = tmp_path / "branchy.py"
    spec.write_text(textwrap.dedent("""
        import torch
        from torch import nn


        class Branchy(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(8, 4)

            def forward(self, x):
                if x.mean() > 0.5:
                    return self.fc(x)
                return self.fc(x) * 2
    """))
    result = cli("summary", f"{spec}:Branchy", "--input", "2,8")
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.startswith("error: Branchy.forward needs tensor values: it reads a tensor's value")
    assert f"at {spec}:12: if x.mean() > 0.5:" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
