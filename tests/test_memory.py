"""Memory without running the model (docs/memory.md), against closed forms and against torch.

The reference is a real CPU run of the same model (random weights and inputs) under
:mod:`cnnshape.memory_measure`: every storage an ATen call makes is tracked from its allocation
until no tensor uses it, and the peak of the bytes alive is taken; the tensors autograd saves
are those ``saved_tensors_hooks`` packs in that run. The estimate never runs the model: the
inference peak is a liveness walk over the storages the ATen calls read and wrote on meta
tensors; the training step runs autograd on meta tensors.
"""
from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
from torch import nn

import cnnshape
from cnnshape.analyse.memory.batch import with_batch
from cnnshape.errors import ConfigError
from cnnshape.inputs import InputSpec
from cnnshape.memory_measure import measure_inference, measure_training
from cnnshape.memory_run import run_memory, verify_memory
from cnnshape.request import Request

#: the estimate may differ from the measurement by at most this fraction
TOLERANCE = 0.05


def close(estimate: int, measured: int) -> bool:
    return abs(estimate - measured) <= TOLERANCE * measured


def chain(n: int, channels: int) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(*[nn.Conv2d(channels, channels, 3, padding=1) for _ in range(n)])


def test_chain_of_equal_layers_peaks_at_two_activations_plus_weights() -> None:
    model = chain(4, 8)
    m = cnnshape.memory(model, [(2, 8, 16, 16)])
    # one activation: 2·8·16·16 fp32 = 16,384 B; the input is one more of the same size
    # weights: 4 convs · (8·8·9 + 8) · 4 B = 4 · 584 · 4 = 9,344 B
    # from the second conv on, its input and its output are alive at once: 2 activations
    activation, weights = 2 * 8 * 16 * 16 * 4, 4 * (8 * 8 * 9 + 8) * 4
    assert m.inference.weight_bytes == weights
    assert m.inference.input_bytes == activation
    assert m.inference.peak_bytes == weights + activation + 2 * activation == 58_496
    assert m.inference.peak_at == "1"  # the first layer where two activations meet
    # torch agrees: the real run's peak of live storages
    assert measure_inference(copy.deepcopy(model), (InputSpec((2, 8, 16, 16)),)).peak_bytes == 58_496
    # after the last layer only the output is left beside weights and input
    assert m.inference.layers[-1].live_bytes == weights + 2 * activation


@pytest.mark.parametrize(("optimizer", "per_param", "scalar"), [("sgd", 0, 0), ("momentum", 4, 0),
                                                                 ("adam", 8, 4), ("adamw", 8, 4)])
def test_optimizer_state_is_a_multiple_of_the_trainable_parameters(optimizer: str, per_param: int,
                                                                   scalar: int) -> None:
    model = chain(2, 4)
    model[0].bias.requires_grad_(False)  # frozen: no gradient, no state
    trainable = [p for p in model.parameters() if p.requires_grad]
    p = sum(t.numel() for t in trainable)  # 4·4·9 + 4·4·9 + 4 = 292
    assert p == 292
    t = cnnshape.memory(model, [(2, 4, 8, 8)], train=True, optimizer=optimizer).training
    assert t is not None
    # Adam: exp_avg and exp_avg_sq, 2 · 4 B = 8 B per fp32 parameter, plus a 4 B step count per
    # tensor; momentum: one buffer (4 B each); plain SGD: nothing
    assert t.optimizer_state_bytes == per_param * p + scalar * len(trainable)
    assert t.gradient_bytes == 4 * p
    # torch's own optimizer keeps exactly that after a step
    real = copy.deepcopy(model)
    opt = {"sgd": lambda ps: torch.optim.SGD(ps, lr=0.1), "momentum": lambda ps: torch.optim.SGD(ps, 0.1, 0.9),
           "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[optimizer](
        [q for q in real.parameters() if q.requires_grad])
    real(torch.randn(2, 4, 8, 8)).sum().backward()
    opt.step()
    kept = sum(v.untyped_storage().nbytes() for s in opt.state.values() for v in s.values()
               if isinstance(v, torch.Tensor))
    assert kept == t.optimizer_state_bytes


class Saves(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.drop = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.pool(self.relu(self.conv(x))))


def test_saved_for_backward_closed_form_and_as_autograd_saves_it() -> None:
    model = Saves()
    t = cnnshape.memory(model, [(2, 3, 8, 8)], train=True, optimizer="sgd").training
    assert t is not None
    # conv keeps its input (the model input: not counted) and weight (resident); ReLU its output,
    # 2·8·8·8 fp32 = 4,096 B; max-pooling that same tensor (counted once) and its int64 indices,
    # 2·8·4·4 · 8 B = 2,048 B; dropout its mask, which off CUDA torch makes as a float tensor
    # (input * bernoulli(1 - p) / (1 - p); CUDA's fused kernel keeps a bool one): 2·8·4·4 · 4 B = 1,024 B
    assert t.saved_bytes == 4096 + 2048 + 1024
    measured = measure_training(copy.deepcopy(model), (InputSpec((2, 3, 8, 8)),), "sgd")
    assert measured.saved_bytes == t.saved_bytes


def test_in_place_relu_shares_its_input_storage() -> None:
    def net(inplace: bool) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=inplace), nn.Conv2d(8, 8, 1))

    # out-of-place: conv output and ReLU output (2·8·8·8·4 = 4,096 B each) meet, then the ReLU
    # output and the last conv's output; in place the ReLU writes into the conv output: at most
    # one of them plus the last conv's output is alive, so the peak is the same but one tensor
    # less is ever made: the live bytes after the ReLU row are equal, the peak is at the second conv
    plain = cnnshape.memory(net(False), [(2, 3, 8, 8)]).inference
    inplace = cnnshape.memory(net(True), [(2, 3, 8, 8)]).inference
    relu_made = [t for t in plain.alive if t.op == "aten.relu"]
    assert not [t for t in inplace.alive if t.op.startswith("aten.relu")]
    assert relu_made and relu_made[0].bytes == 4096
    for model, m in ((net(False), plain), (net(True), inplace)):
        assert m.peak_bytes == measure_inference(model, (InputSpec((2, 3, 8, 8)),)).peak_bytes


def test_batch_is_affine_and_the_fit_is_the_largest_batch_that_fits() -> None:
    model = chain(3, 4)
    peaks = {b: cnnshape.memory(model, [(b, 4, 8, 8)], train=True).training for b in (2, 4, 7)}
    # each phase's peak is affine in the batch: the line through batches 2 and 4 gives batch 7
    for phase in (0, 1):
        at2, at4, at7 = (peaks[b].phase_peaks[phase] for b in (2, 4, 7))
        assert at7 == at2 + (at4 - at2) * (7 - 2) // (4 - 2)
    budget = peaks[7].peak_bytes + 100
    m = cnnshape.memory(model, [(2, 4, 8, 8)], train=True, fits=budget)
    assert m.training_fit is not None and m.training_fit.batch == 7
    assert m.inference_fit is not None and m.inference_fit.batch is not None
    fitted = m.inference_fit.batch
    assert cnnshape.memory(model, [(fitted, 4, 8, 8)]).inference.peak_bytes <= budget
    assert cnnshape.memory(model, [(fitted + 1, 4, 8, 8)]).inference.peak_bytes > budget


def test_fits_says_none_when_one_sample_does_not_fit() -> None:
    m = cnnshape.memory(chain(2, 4), [(1, 4, 8, 8)], fits="1KiB")
    assert m.inference_fit is not None and m.inference_fit.batch is None


def test_with_batch_changes_the_first_axis_of_every_input() -> None:
    specs = (InputSpec((2, 3, 8, 8)), InputSpec((2, 10), "int64", "mask"), InputSpec(()))
    assert [s.shape for s in with_batch(specs, 5)] == [(5, 3, 8, 8), (5, 10), ()]


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_autocast_against_a_real_autocast_run(amp: str) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
    specs = (InputSpec((2, 3, 16, 16)),)
    m = cnnshape.memory(model, [(2, 3, 16, 16)], train=True, optimizer="adam", amp=amp)
    fp32 = cnnshape.memory(model, [(2, 3, 16, 16)], train=True, optimizer="adam")
    assert m.training is not None and fp32.training is not None
    # the low-precision copies of the weights (2 B per parameter) are kept for the whole forward
    # by autocast's cache, beside the fp32 master weights
    params = sum(p.numel() for p in model.parameters())
    assert m.inference.peak_bytes >= fp32.inference.weight_bytes + 2 * params - 2 * 10  # Linear bias stays fp32
    inference = measure_inference(copy.deepcopy(model), specs, amp=amp)
    step = measure_training(copy.deepcopy(model), specs, "adam", amp=amp)
    assert close(m.inference.peak_bytes, inference.peak_bytes), (m.inference.peak_bytes, inference.peak_bytes)
    assert close(m.training.peak_bytes, step.peak_bytes), (m.training.peak_bytes, step.peak_bytes)
    assert close(m.training.saved_bytes, step.saved_bytes or 0)


def test_layer_names_are_the_report_rows() -> None:
    spec = "examples/resnet.py:ResNet18"
    report = cnnshape.analyze(spec, [(2, 3, 32, 32)], memory=True)
    assert report.memory is not None
    rows = {layer.name for layer in report.layers}
    names = [layer.name for layer in report.memory.inference.layers]
    # every module call is a row of the summary under the same name ("layer1.0.relu#2"), and so
    # is an op in a container's own forward ("layer1.0.add" for `out += identity`); those are named
    # by the ATen op, which for torch.flatten is a view (the summary's row is "flatten")
    assert set(names) - rows == {"view"}
    assert "flatten" in rows
    assert report.memory.inference.peak_at in rows
    assert report.to_dict()["memory"]["inference"]["peak_bytes"] == report.memory.inference.peak_bytes


def test_a_failing_memory_analysis_leaves_the_report_and_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    import cnnshape.memory_run as memory_run

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(memory_run, "run_memory", broken)
    report = cnnshape.analyze(chain(2, 4), [(1, 4, 8, 8)], memory=True)
    assert report.memory is None
    assert report.totals.params == 2 * (4 * 4 * 9 + 4)
    assert any("memory analysis failed (RuntimeError: simulated bug)" in n for n in report.notes)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"optimizer": "lion"}, "optimizer 'lion': choose one of none, sgd, momentum, adam, adamw"),
    ({"amp": "fp8"}, "amp 'fp8': choose one of bf16, fp16"),
    ({"fits": "12 apples"}, "fits"),
    ({"fits": 0}, "give a positive memory size"),
])
def test_bad_options_are_config_errors(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        cnnshape.memory(chain(1, 2), [(1, 2, 4, 4)], **kwargs)  # type: ignore[arg-type]


def test_verify_puts_the_measurement_beside_the_estimate() -> None:
    model = chain(2, 4)
    request = Request.of(model, [(2, 4, 8, 8)], train=True)
    checks = verify_memory(request, run_memory(request, train=True, optimizer="sgd"), optimizer="sgd").checks
    assert [c.what for c in checks] == ["inference peak", "training step peak", "saved for backward"]
    for c in checks:
        assert c.device == "cpu" and c.cuda_bytes is None
        assert close(c.estimate_bytes, c.measured_bytes), c


def test_the_report_without_memory_has_no_memory_key() -> None:
    report = cnnshape.analyze(chain(1, 2), [(1, 2, 4, 4)])
    assert report.memory is None and "memory" not in report.to_dict()
    assert dataclasses.replace(report).memory is None
