"""Construction on meta in one torch function mode (construct.py's ``OnMetaSkippingInit``) builds
what ``torch.device("meta")`` with ``SkipInitOnMeta`` stacked above it builds."""
from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.overrides import _get_current_function_mode_stack

from cnnshape.construct import OnMetaSkippingInit, SkipInitOnMeta, build_on_meta, init_skipped_on_meta

from .cases import EXAMPLES

ROOT = Path(__file__).resolve().parent.parent


def _tensors(model: nn.Module) -> list[tuple[Any, ...]]:
    tables = [*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False)]
    return [(name, type(t), t.shape, t.dtype, t.device, t.requires_grad, t.stride()) for name, t in tables]


def _stacked(make: Any) -> nn.Module:
    """The two modes as construct.py stacked them before."""
    with torch.device("meta"), SkipInitOnMeta(), init_skipped_on_meta():
        return make()


def _factory(spec: str, **kwargs: Any) -> Any:
    path, name = spec.split(":")
    module_spec = importlib.util.spec_from_file_location(f"_built_{Path(path).stem}", ROOT / path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return functools.partial(getattr(module, name), **kwargs)


NAS = "|nor_conv_3x3~0|+|skip_connect~0|avg_pool_3x3~1|+|none~0|nor_conv_1x1~1|nor_conv_3x3~2|"


@pytest.mark.parametrize("spec, kwargs", [(e.spec, {}) for e in EXAMPLES]
                         + [("benchmarks/depth_models.py:residual", {"blocks": 2}),
                            ("examples/nas201.py:NAS201Network", {"arch": NAS})])
def test_one_mode_builds_what_the_stacked_pair_builds(spec: str, kwargs: dict[str, Any]) -> None:
    make = _factory(spec, **kwargs)
    built = build_on_meta(make)
    assert built.meta_error is None and not built.off_meta
    assert _tensors(built.module) == _tensors(_stacked(make))


class AsksTheDevice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.seen = torch.get_default_device()
        with torch.device("cpu"):  # a default device of its own, for a moment
            self.real = torch.ones(2)
        self.linear = nn.Linear(2, 3)
        self.linear.weight.data.normal_()
        self.register_buffer("filled", torch.empty(4).fill_(1.0))


class _Outer(torch.overrides.TorchFunctionMode):
    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("build", [lambda: build_on_meta(AsksTheDevice).module, lambda: _stacked(AsksTheDevice)])
def test_the_default_device_is_meta_inside_and_the_mode_stack_is_restored(build: Any) -> None:
    with _Outer() as outer:
        before = _get_current_function_mode_stack()
        model = build()
        assert _get_current_function_mode_stack() == before == [outer]
    assert model.seen == torch.device("meta")
    assert model.real.device.type == "cpu" and model.linear.weight.is_meta and model.filled.is_meta
    assert not _get_current_function_mode_stack()


def test_the_mode_skips_value_writes_on_meta_only() -> None:
    with OnMetaSkippingInit():
        meta = torch.empty(3)
        assert meta.is_meta
        assert meta.fill_(2.0) is meta
        cpu = torch.ones(3, device="cpu")
        cpu.mul_(2)
    assert torch.equal(cpu, torch.full((3,), 2.0))  # 1 * 2, done for real
