"""The shortcuts of construction on meta (construct.py) against what they stand in for.

``OnMetaSkippingInit`` answers ``torch.zeros``/``torch.ones`` bound for meta with ``torch.empty``
and runs the calls that need no decision without torch's ``DeviceContext``: both compared with
``torch.device("meta")`` itself on varied calls. torch.nn's own ``reset_parameters`` are skipped
for layers on meta: every layer of :func:`construct._resets` built both ways, and built on the CPU
inside the patch (initialised as usual). ``off_meta`` walks the modules once: compared
with ``named_parameters``/``named_buffers`` on shared, tied and partly-CPU modules.
"""
from __future__ import annotations

from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cnnshape import construct
from cnnshape.construct import OnMetaSkippingInit, build_on_meta, init_skipped_on_meta, off_meta


def _looks(t: torch.Tensor) -> tuple[Any, ...]:
    """Everything a meta tensor has: no values."""
    return (type(t), tuple(t.shape), t.dtype, t.device, t.layout, t.requires_grad, t.stride(), t.is_leaf)


def _outcome(call: Any) -> Any:
    """The tensor ``call`` makes, or the type and message of what it raises."""
    try:
        return call()
    except Exception as e:
        return type(e), str(e)


def _both(call: Any) -> tuple[Any, Any]:
    with torch.device("meta"):
        expected = _outcome(call)
    with OnMetaSkippingInit():
        got = _outcome(call)
    return expected, got


def _same(expected: Any, got: Any) -> None:
    if isinstance(expected, tuple):  # raised: the same error
        assert got == expected
        return
    assert _looks(got) == _looks(expected)
    if not expected.is_meta:  # real values: the same
        assert torch.equal(got, expected)


FLOAT_DTYPES = [None, torch.float32, torch.float64, torch.float16, torch.bfloat16]
OTHER_DTYPES = [torch.int64, torch.int32, torch.uint8, torch.bool, torch.complex64]


@settings(max_examples=80, deadline=None)
@given(shape=st.lists(st.integers(0, 5), max_size=4), form=st.sampled_from(["varargs", "tuple", "list", "Size"]),
       factory=st.sampled_from(["zeros", "ones"]), dtype=st.sampled_from(FLOAT_DTYPES + OTHER_DTYPES),
       grad=st.booleans(), device=st.sampled_from([None, "meta", torch.device("meta")]))
def test_zeros_and_ones_make_what_torch_device_meta_makes(shape: list[int], form: str, factory: str,
                                                          dtype: torch.dtype | None, grad: bool, device: Any) -> None:
    grad = grad and dtype in FLOAT_DTYPES  # only floating tensors can require gradients
    size: Any = {"tuple": tuple(shape), "list": list(shape), "Size": torch.Size(shape)}.get(form)
    args = tuple(shape) if form == "varargs" else (size,)
    kwargs = {k: v for k, v in {"dtype": dtype, "requires_grad": grad, "device": device}.items() if v is not None}
    _same(*_both(lambda: getattr(torch, factory)(*args, **kwargs)))


@pytest.mark.parametrize("call", [
    lambda: torch.zeros(2, 3, device="cpu"),                # another device: torch's own path, real values
    lambda: torch.ones((2,), dtype=torch.int64, device="cpu"),
    lambda: torch.zeros(2, 3, names=("a", "b")),            # keywords beyond the plain ones (torch refuses this one)
    lambda: torch.zeros(),                                  # bad arguments: torch.zeros' own errors
    lambda: torch.ones(-1),
    lambda: torch.ones("2"),
    lambda: torch.zeros(2, dtype="float"),
    lambda: torch.ones(4, layout=torch.strided, pin_memory=False),
    lambda: torch.zeros(3, out=torch.empty(5, device="meta")),
    lambda: torch.full((2, 2), 3),                          # a factory the shortcut leaves alone (dtype from the value)
    lambda: torch.empty_like(torch.empty(2, 3, device="meta")),
    lambda: torch.empty(2, 3, device="meta").new_zeros(4),
    lambda: torch.arange(6).view(2, 3).t(),                  # calls needing no decision
    lambda: torch.randn(3, 4, requires_grad=True),
    lambda: torch.tensor([1.0, 2.0]),
    lambda: nn.Parameter(torch.ones(3)).grad_fn is None and torch.empty(1),
])
def test_other_calls_are_as_under_torch_device_meta(call: Any) -> None:
    _same(*_both(call))


def test_real_values_stay_real() -> None:
    with OnMetaSkippingInit():
        zeros = torch.zeros(3, device="cpu")
        ones = torch.ones(2, 2, device="cpu", dtype=torch.int32)
    assert torch.equal(zeros, torch.tensor([0.0, 0.0, 0.0]))
    assert torch.equal(ones, torch.tensor([[1, 1], [1, 1]], dtype=torch.int32))


def _reference_off_meta(module: nn.Module) -> tuple[str, ...]:
    """The walk off_meta replaces: torch's own named_parameters and named_buffers."""
    tensors = [*module.named_parameters(remove_duplicate=False), *module.named_buffers(remove_duplicate=False)]
    return tuple(name for name, t in tensors if t.device.type != "meta")


def _partly_cpu() -> nn.Module:
    shared = nn.Sequential(nn.Conv2d(2, 2, 1), nn.BatchNorm2d(2))
    with torch.device("meta"):
        on_meta = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    model = nn.ModuleDict({"a": shared, "b": nn.Sequential(shared, on_meta), "c": on_meta})
    model["b"][1]._parameters["bypass"] = nn.Parameter(torch.ones(2))  # written past register_parameter
    model["c"]._buffers["raw"] = torch.zeros(1)
    model.register_parameter("none", None)
    model.register_buffer("missing", None)
    tied = nn.Linear(2, 2, device="meta")
    tied.weight = model["a"][0].weight  # a CPU parameter under a second name
    model["tied"] = tied
    return model


#: one layer of each class whose ``reset_parameters`` is skipped on meta, in its usual variants
_RESET_LAYERS = [
    lambda: nn.Conv2d(3, 8, 3), lambda: nn.Conv1d(2, 4, 5, bias=False), lambda: nn.ConvTranspose2d(4, 2, 3, groups=2),
    lambda: nn.Conv3d(1, 2, (1, 3, 3)), lambda: nn.Linear(5, 7), lambda: nn.Linear(0, 3),
    lambda: nn.BatchNorm2d(6), lambda: nn.BatchNorm1d(4, affine=False),
    lambda: nn.BatchNorm3d(2, track_running_stats=False), lambda: nn.InstanceNorm2d(3, affine=True),
    lambda: nn.SyncBatchNorm(4), lambda: nn.LayerNorm([4, 5]),
    lambda: nn.LayerNorm(3, bias=False), lambda: nn.GroupNorm(2, 6), lambda: nn.RMSNorm(8), lambda: nn.PReLU(3),
]


@pytest.mark.parametrize("make", _RESET_LAYERS)
def test_reset_skipped_on_meta_builds_what_torch_device_meta_builds(make: Any) -> None:
    """torch's own construction on meta (the initialisers run, on meta) against cnnshape's."""
    with torch.device("meta"):
        expected = make()
    built = build_on_meta(make)
    assert built.meta_error is None
    assert [(n, _looks(t)) for n, t in built.module.state_dict(keep_vars=True).items()] == \
        [(n, _looks(t)) for n, t in expected.state_dict(keep_vars=True).items()]
    assert vars(built.module).keys() == vars(expected).keys()  # no attribute left unset by the skip


def test_reset_skipped_only_inside_and_only_on_meta() -> None:
    """A layer built on the CPU inside the patch is initialised as torch initialises it: the
    default ``Linear(4, 3)`` draws its weight from U(-1/2, 1/2) (kaiming_uniform with a = sqrt(5):
    bound = 1/sqrt(fan_in) = 1/2), BatchNorm's running variance is ones, its weight ones."""
    originals = [vars(owner)[name] for owner, name in construct._resets()]
    with init_skipped_on_meta():
        assert [vars(owner)[name] for owner, name in construct._resets()] != originals
        linear, norm = nn.Linear(4, 3), nn.BatchNorm2d(5)
        meta = nn.BatchNorm2d(5, device="meta")
    assert [vars(owner)[name] for owner, name in construct._resets()] == originals  # restored
    assert linear.weight.abs().max() <= 0.5 and linear.weight.abs().sum() > 0
    assert norm.running_var.tolist() == [1.0] * 5 and norm.weight.tolist() == [1.0] * 5
    assert meta.running_var.is_meta and meta.weight.is_meta


@pytest.mark.parametrize("make", [
    _partly_cpu,
    lambda: nn.Sequential(nn.Conv2d(1, 1, 1)),                                    # all CPU
    lambda: nn.Sequential(nn.Conv2d(1, 1, 1, device="meta")),                     # all meta
    lambda: nn.Module(),                                                          # nothing at all
])
def test_off_meta_names_what_named_parameters_and_buffers_name(make: Any) -> None:
    model = make()
    assert off_meta(model) == _reference_off_meta(model)


def test_off_meta_on_the_partly_cpu_model() -> None:
    # the CPU tensors by every path torch names them: shared "a" also as "b.0", the meta block
    # "c" also as "b.1" (its "bypass" and "raw" were written past registration), the tied weight
    # also as "tied.weight"; parameters before buffers
    assert off_meta(_partly_cpu()) == (
        "a.0.weight", "a.0.bias", "a.1.weight", "a.1.bias",
        "b.0.0.weight", "b.0.0.bias", "b.0.1.weight", "b.0.1.bias", "b.1.bypass", "c.bypass",
        "tied.weight",
        "a.1.running_mean", "a.1.running_var", "a.1.num_batches_tracked",
        "b.0.1.running_mean", "b.0.1.running_var", "b.0.1.num_batches_tracked",
        "b.1.raw", "c.raw",
    )
