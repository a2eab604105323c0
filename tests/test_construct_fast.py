"""The shortcuts of construction on meta (construct.py) against what they stand in for.

``OnMetaSkippingInit`` answers ``torch.zeros``/``torch.ones`` bound for meta with ``torch.empty``
and runs the calls that need no decision without torch's ``DeviceContext``: both compared with
``torch.device("meta")`` itself on varied calls. ``off_meta`` walks the modules once: compared
with ``named_parameters``/``named_buffers`` on shared, tied and partly-CPU modules.
"""
from __future__ import annotations

from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cnnshape.construct import OnMetaSkippingInit, off_meta


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
