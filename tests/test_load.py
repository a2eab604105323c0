"""Model construction: parameters and buffers on meta without running initialisers, for models
whose ``__init__`` computes with tensors too; published RegNet figures; the CPU fallback.

Expected figures come from torchvision's model table (params; GFLOPS there are multiply-
accumulates at 224x224), from torch's FlopCounterMode on a real CPU forward, or from hand
arithmetic in the comments.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

import cnnshape
from cnnshape.load import load_model

ROOT = Path(__file__).resolve().parent.parent
HERE = "tests.test_load"

# torchvision model table: (params, GFLOPS in the multiply-accumulate convention) at 224x224
PUBLISHED_REGNETS = [
    ("regnet_y_400mf", 4_344_144, 0.40),
    ("regnet_x_400mf", 5_495_976, 0.41),
]


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(("name", "params", "gmacs"), PUBLISHED_REGNETS, ids=[r[0] for r in PUBLISHED_REGNETS])
def test_regnet_published_figures(name: str, params: int, gmacs: float) -> None:
    spec = f"examples/regnet.py:{name}"
    report = cnnshape.analyze(spec, [(1, 3, 224, 224)])
    assert report.totals.params == params
    assert report.totals.complete, report.unsupported
    cpu = load_model(spec, device="cpu").module.eval()
    assert _params(cpu) == params
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        cpu(torch.randn(1, 3, 224, 224))
    assert report.totals.macs == counter.get_total_flops() // 2
    assert round(report.totals.macs / 1e9, 2) == gmacs


def test_regnet_y_128gf_is_built_on_meta() -> None:
    # its __init__ computes widths with torch.arange(...) arithmetic and .tolist(): impossible
    # under torch.device("meta"), so the registration interception builds it
    loaded = load_model("examples/regnet.py:regnet_y_128gf")
    assert (loaded.constructed_on, loaded.note) == ("meta", None)
    assert all(t.is_meta for t in [*loaded.module.parameters(), *loaded.module.buffers()])
    # torchvision model table: 644,812,894 params, 127.52 GFLOPS (multiply-accumulates)
    assert _params(loaded.module) == 644_812_894
    report = cnnshape.analyze(loaded.module, [(1, 3, 224, 224)])
    assert report.totals.params == 644_812_894
    assert round(report.totals.macs / 1e9, 2) == 127.52


def test_construction_does_not_import_dynamo() -> None:
    code = (
        "import sys\n"
        "from cnnshape.load import load_model\n"
        "loaded = load_model('examples/resnet.py:ResNet50')\n"
        "assert loaded.constructed_on == 'meta', loaded\n"
        "assert 'torch._dynamo' not in sys.modules, 'construction imported torch._dynamo'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


class ComputedWidths(nn.Module):
    """Widths from real tensor values: fill_ and cumsum give [8, 16, 24], and a buffer of
    sum(widths) = 48 elements whose length is known only from ``.item()``."""

    def __init__(self) -> None:
        super().__init__()
        widths = torch.empty(3).fill_(8).cumsum(0).int().tolist()
        self.convs = nn.Sequential(*[
            nn.Conv2d(c_in, c_out, 3, padding=1) for c_in, c_out in zip([3, *widths], widths)
        ])
        total = int(torch.tensor(widths).sum().item())
        self.register_buffer("scale", torch.linspace(0.0, 1.0, total))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.convs(x)  # 24 channels
        return x * self.scale[: x.shape[1]].view(1, -1, 1, 1)


def test_tensor_arithmetic_in_init_builds_on_meta() -> None:
    loaded = load_model(f"{HERE}:ComputedWidths")
    assert (loaded.constructed_on, loaded.note) == ("meta", None)
    model = loaded.module
    assert model.scale.is_meta and model.scale.shape == (48,)
    assert all(p.is_meta for p in model.parameters())
    report = cnnshape.analyze(model, [(1, 3, 16, 16)])
    assert report.outputs[0].shape == (1, 24, 16, 16)
    # convs 3->8, 8->16, 16->24, 3x3 with bias: 216+8 + 1,152+16 + 3,456+24 = 4,872
    assert report.totals.params == 3 * 8 * 9 + 8 + 8 * 16 * 9 + 16 + 16 * 24 * 9 + 24 == 4_872
    # 16x16 outputs: 256 · (8·27 + 16·72 + 24·144) = 256 · 4,824
    assert report.totals.macs == 16 * 16 * (8 * 27 + 16 * 72 + 24 * 144)


class Tagged(nn.Parameter):
    """A Parameter subclass carrying an attribute."""


class TiedAfterTolist(nn.Module):
    """Built by the interception strategy (``.tolist()`` in ``__init__``), with a parameter
    registered twice before it is moved, one tied after, and a frozen Parameter subclass."""

    def __init__(self) -> None:
        super().__init__()
        (n,) = torch.tensor([16]).tolist()
        shared = nn.Parameter(torch.empty(n, n))
        self.a = nn.Linear(n, n, bias=False)
        self.b = nn.Linear(n, n, bias=False)
        self.a.weight = shared
        self.b.weight = shared
        self.head = nn.Linear(n, n)
        self.tail = nn.Linear(n, n)
        self.tail.weight = self.head.weight
        gain = Tagged(torch.ones(n), requires_grad=False)
        gain.kind = "gain"
        self.gain = gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.head(self.b(self.a(x)))) * self.gain


def test_tied_parameters_stay_tied() -> None:
    loaded = load_model(f"{HERE}:TiedAfterTolist")
    assert (loaded.constructed_on, loaded.note) == ("meta", None)
    model = loaded.module
    assert model.a.weight is model.b.weight and model.a.weight.is_meta
    assert model.tail.weight is model.head.weight
    assert isinstance(model.gain, Tagged) and model.gain.kind == "gain"
    assert not model.gain.requires_grad and model.gain.is_meta
    report = cnnshape.analyze(model, [(1, 16)])
    # shared 16·16, head/tail weight 16·16 once, two biases 16 each, gain 16 (frozen)
    assert report.totals.params == 256 + 256 + 16 + 16 + 16 == 560
    assert report.totals.non_trainable_params == 16


class _Calls(TorchDispatchMode):
    """Records the name of every ATen op that reaches the dispatcher (below every torch function
    mode, the construction's own included)."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    @classmethod
    def _should_skip_dynamo(cls) -> bool:  # torch's opt-out of importing torch._dynamo (see meta.OpRecorder)
        return False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        self.names.add(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


def test_initialisers_skipped_on_meta_but_run_on_cpu() -> None:
    # what the construction skips never reaches ATen
    with _Calls() as calls:
        loaded = load_model("examples/resnet.py:ResNet18")
    assert loaded.constructed_on == "meta"
    assert "empty" in calls.names  # the recorder sees the constructors' calls
    assert not calls.names & {"normal_", "uniform_", "fill_", "zero_", "kaiming_uniform_", "constant_"}

    cpu = load_model("examples/resnet.py:ResNet18", device="cpu").module
    # kaiming_normal_(mode="fan_out", relu): std = sqrt(2 / (64·7·7)) = 0.02525 for conv1
    std = cpu.conv1.weight.std().item()
    assert abs(std - (2 / (64 * 7 * 7)) ** 0.5) < 0.1 * std
    assert torch.equal(cpu.bn1.weight, torch.ones(64))  # constant_(weight, 1)
    assert cpu.fc.weight.abs().sum() > 0  # Linear's own kaiming_uniform_


class ReadsItsBuffer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("channels", torch.tensor(4))
        self.conv = nn.Conv2d(3, int(self.channels.item()), 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def test_cpu_fallback_says_why() -> None:
    # the buffer is on meta as soon as it is registered, so reading it back fails until the CPU
    loaded = load_model(f"{HERE}:ReadsItsBuffer")
    assert loaded.constructed_on == "cpu"
    assert loaded.note is not None and loaded.note.startswith("constructed on the CPU")
    assert "test_load.py" in loaded.note and "self.channels.item()" in loaded.note
    assert not loaded.module.conv.weight.is_meta
    assert cnnshape.analyze(loaded.module, [(1, 3, 8, 8)]).outputs[0].shape == (1, 4, 6, 6)
