"""``cnnshape memory``, ``summary --memory`` and the memory budgets of ``cnnshape check``."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cnnshape.check import Budget
from cnnshape.cli import app
from cnnshape.config import load_config

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()

CHAIN = textwrap.dedent("""\
    from torch import nn


    class Chain(nn.Sequential):
        def __init__(self, n: int = 4, channels: int = 8) -> None:
            super().__init__(*[nn.Conv2d(channels, channels, 3, padding=1) for _ in range(n)])
""")
#: one activation 2·8·16·16·4 = 16,384 B (the input is one more); weights 4·(8·8·9 + 8)·4 = 9,344 B;
#: the peak: weights + input + two activations (a layer's input and output) = 58,496 B
ACTIVATION, WEIGHTS, PEAK = 16_384, 9_344, 58_496


@pytest.fixture
def chain(tmp_path: Path) -> str:
    (tmp_path / "chain.py").write_text(CHAIN)
    return f"{tmp_path / 'chain.py'}:Chain"


def cli(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_memory_json_closed_form(chain: str) -> None:
    code, out, err = cli("memory", chain, "-i", "2,8,16,16", "--format", "json")
    assert code == 0, err
    data = json.loads(out)
    assert data["schema"] == "cnnshape.memory/1"
    i = data["inference"]
    assert (i["peak_bytes"], i["weight_bytes"], i["input_bytes"]) == (PEAK, WEIGHTS, ACTIVATION)
    assert i["activation_peak_bytes"] == 2 * ACTIVATION and i["peak_at"] == "1"
    assert data["training"] is None and data["inference_fit"] is None


def test_memory_table_train_fits(chain: str) -> None:
    # per sample the inference peak grows by one input and two activations: 3 · 8,192 = 24,576 B,
    # so 1 MiB holds (1,048,576 - 9,344) // 24,576 = 42 samples
    code, out, err = cli("memory", chain, "-i", "2,8,16,16", "--train", "--optimizer", "momentum",
                         "--fits", "1MiB", "--layers")
    assert code == 0, err
    assert "Inference (eval mode, no grad)" in out and "57.12 KiB  at 1" in out
    assert "Training step (train mode, optimizer momentum, at its steady state)" in out
    assert "Largest batch in 1.00 MiB, inference: 42 (peak = 9.12 KiB + 24.00 KiB x batch" in out
    assert "Largest batch in 1.00 MiB, training:" in out
    assert "Live bytes after each layer (inference):" in out


@pytest.mark.parametrize(("args", "fragment"), [
    (("--fits", "12 apples"), "--fits"),
    (("--fits", "0"), "--fits 0: give a positive memory size"),
    (("--input", "scalar"), "there is no batch axis"),
])
def test_bad_values_exit_2_with_a_message(chain: str, args: tuple[str, ...], fragment: str) -> None:
    code, _, err = cli("memory", chain, *(args if "--input" in args else ("-i", "2,8,16,16", *args)))
    assert code == 2, err
    assert fragment in err and "Traceback" not in err


def test_a_forward_that_needs_values_is_named(tmp_path: Path) -> None:
    (tmp_path / "branchy.py").write_text(textwrap.dedent("""\
        from torch import nn


        class Net(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.conv = nn.Conv2d(3, 4, 3)

            def forward(self, x):
                y = self.conv(x)
                if y.sum() > 0:
                    return y
                return -y
    """))
    code, _, err = cli("memory", f"{tmp_path / 'branchy.py'}:Net", "-i", "1,3,8,8")
    assert code == 2 and "Traceback" not in err
    assert "on meta tensors, without values" in err and "branchy.py:11: if y.sum() > 0:" in err


def test_a_distribution_output_is_sized() -> None:
    code, out, err = cli("memory", "examples/constructs.py:GaussianPolicy", "-i", "2,8", "--format", "json")
    assert code == 0, err
    # the outputs are the Normal's loc and scale, 2·2 fp32 each, alive at the end beside the weights
    data = json.loads(out)["inference"]
    assert data["peak_bytes"] >= data["weight_bytes"] + data["input_bytes"] + 2 * 16


def test_unknown_optimizer_is_refused_by_the_parser(chain: str) -> None:
    code, _, err = cli("memory", chain, "--optimizer", "lion")
    assert code == 2 and "'lion'" in err and "Traceback" not in err


def test_summary_memory_footer_and_json(chain: str) -> None:
    code, out, err = cli("summary", chain, "-i", "2,8,16,16", "--memory")
    assert code == 0, err
    assert "Inference peak memory: 57.12 KiB at 1 (weights 9.12 KiB, input 16.00 KiB, activations 32.00 KiB)" in out
    code, out, err = cli("summary", chain, "-i", "2,8,16,16", "--memory", "--format", "json")
    assert code == 0, err
    assert json.loads(out)["memory"]["inference"]["peak_bytes"] == PEAK


def test_summary_without_memory_is_unchanged(chain: str) -> None:
    code, out, _ = cli("summary", chain, "-i", "2,8,16,16")
    assert code == 0 and "peak memory" not in out


@pytest.mark.parametrize(("limit", "code"), [(str(PEAK), 0), (str(PEAK - 1), 1)])
def test_check_inference_memory_budget_at_its_boundary(chain: str, limit: str, code: int) -> None:
    got, out, err = cli("check", chain, "-i", "2,8,16,16", "--max-inference-memory", limit)
    assert got == code, (out, err)
    assert "inference peak memory" in out and f"{PEAK:,} B" in out


def test_check_train_memory_budget(chain: str) -> None:
    code, out, err = cli("check", chain, "-i", "2,8,16,16", "--max-train-memory", "1KiB")
    assert code == 1, err
    assert "training step peak memory" in out and "FAIL" in out


def test_memory_budgets_in_pyproject(tmp_path: Path, chain: str) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text(f'[tool.cnnshape.models.chain]\nmodel = "{chain}"\ninput = ["2,8,16,16"]\n'
                    f'max-inference-memory = "{PEAK}"\nmax-train-memory = "64MiB"\n')
    (m,) = load_config(path)
    assert m.budgets == (Budget("inference_memory", PEAK), Budget("train_memory", 64 * 2**20))
    code, out, err = cli("check", "--config", str(path))
    assert code == 0, (out, err)
    assert "all 2 checks passed" in out


def test_assert_within_budget_memory(chain: str) -> None:
    from cnnshape.testing import assert_within_budget

    results = assert_within_budget(chain, [(2, 8, 16, 16)], max_inference_memory=PEAK)
    assert [(r.figure, r.value, r.passed) for r in results] == [("inference_memory", PEAK, True)]
    with pytest.raises(AssertionError, match="training step peak memory"):
        assert_within_budget(chain, [(2, 8, 16, 16)], max_train_memory="1KiB")


def test_console_script_memory_verify(chain: str) -> None:
    # the training step beside a real one: tests/test_memory.py::test_verify_puts_the_measurement_beside_the_estimate
    result = subprocess.run([sys.executable, "-m", "cnnshape", "memory", chain, "-i", "2,8,16,16", "--verify"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "inference peak: estimate 57.12 KiB, measured 57.12 KiB on cpu (+0.00%)" in result.stdout
    assert "no CUDA device was used" in result.stdout
