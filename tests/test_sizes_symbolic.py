"""The second engine (issue 13, item 4): accepted sizes by torch's symbolic shapes where the layer
arithmetic cannot characterise an axis, checked against meta forward passes (the oracle of
tests/test_sizes.py: a forward that raises, or computes with empty tensors, rejects the size).

The four model families of tests/size_models.py, as torchvision writes them. Each test studies H
(W stays at 224: the models treat both alike) and compares the engine's rule with the oracle on
every size 1..T and then on a stride of 9 through T..512 (a meta forward pass of these models costs
0.1-0.3 s here, so all of 1..512 would take minutes). Justification of the subset: these models see
H only through chains of floor maps (ConvNeXt and ShuffleNetV2: five halvings, period 32; Swin: H//4
padded to a multiple of the window 7, halved with padding, padded to 7 again: period 4·2·7 = 56)
and through thresholds (a map of 1, a window as large as the map) that all lie below T; from T on
the verdict at H is the verdict at H + period, and a stride of 9, co-prime to both periods, visits
every residue class mod 32 and 51 of the 56 mod 56. ViT rejects every size but 224 at its first
line, so it is checked on all of 1..512.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sympy
import torch
from torch import nn
from typer.testing import CliRunner

from cnnshape.analyse.sizes import ARITHMETIC, SYMBOLIC
from cnnshape.analyse.sizes.symtext import formula_text
from cnnshape.api import analyze, sizes
from cnnshape.cli import app

from .size_models import ConvNeXt, ShuffleNetV2, SwinTransformer, ViT
from .test_sizes import accepted_by_torch

ROOT = Path(__file__).resolve().parent.parent
SHAPE = (1, 3, 224, 224)


def small_swin() -> nn.Module:
    """Two stages (a regular and a shifted window block each) and one PatchMerging: every Swin
    construct, at a fraction of the full four stages' symbolic cost (docs/sizes.md)."""
    return SwinTransformer(depths=(2, 2), num_heads=(1, 1))


def sample(exhaustive_to: int, stride: int) -> list[int]:
    return [*range(1, exhaustive_to + 1), *range(exhaustive_to + 1, 513, stride)]


FAMILIES = [
    # (model, truth in words, the engine that answers, sizes checked against the oracle)
    # ViT: torch._assert(h == 224): exactly 224 (the arithmetic has no rule for x[:, 0] on the sequence)
    (ViT, "exactly 224", SYMBOLIC, list(range(1, 513))),
    # ConvNeXt: stem k4 s4, three k2 s2 downsamplers: floor(H/32) ≥ 1, every size ≥ 32; the arithmetic
    # follows the Linear layers' fold and unfold; decisions (a map of 1) below 64, period 32
    (ConvNeXt, "every size ≥ 32", ARITHMETIC, sample(64, 9)),
    # ShuffleNetV2: five k3 s2 p1 windows, floor((H − 1)/2) + 1 ≥ 1 each: every size ≥ 1; the views
    # read x.size(); decisions (a map of 1) at H ≤ 32, period 32
    (ShuffleNetV2, "every size ≥ 1", SYMBOLIC, sample(40, 9)),
    # Swin: stem k4 s4 needs floor(H/4) ≥ 1; every later map is padded to what it needs: H ≥ 4;
    # decisions (a window as large as the map, a single window) below 60, period 56
    (small_swin, "every size ≥ 4", SYMBOLIC, sample(60, 9)),
]


@pytest.mark.slow
@pytest.mark.parametrize("make,words,engine,checked", FAMILIES, ids=["ViT", "ConvNeXt", "ShuffleNetV2", "Swin"])
def test_python_valued_families_against_meta_forward_passes(make: Any, words: str, engine: str,
                                                            checked: list[int]) -> None:
    model = make()
    start = time.perf_counter()
    a = sizes(model, [SHAPE], axes=[2]).axes[0]
    took = time.perf_counter() - start
    assert a.reason is None, a.reason
    assert a.engine == engine and (a.arithmetic_reason is not None) == (engine == SYMBOLIC)
    assert a.accepted is not None and a.accepted.words() == words
    truth = accepted_by_torch(model, SHAPE, 2, checked)
    assert [s for s in checked if a.accepted.contains(s)] == truth
    # the classifiers' outputs do not depend on H
    assert a.outputs == ()
    print(f"{make.__name__}: {took:.1f} s, {a.engine_note}")


def test_vit_names_both_engines_in_the_text_and_json() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["sizes", "tests/size_models.py:ViT", "--axis", "2"])
    assert result.exit_code == 0, result.output
    assert "  accepted: exactly 224\n" in result.output
    assert "  engine: torch's symbolic shapes (1 symbolic trace covered 1 of the sizes 1..512" in result.output
    # x[:, 0] picks the class token out of the sequence, whose length depends on H, and the model
    # asserts H == 224 on a Python value: the arithmetic says why it has no rule (either of the two)
    reasons = ("indexing into a size-dependent dim", "the model's sizes depend on the input through Python values")
    assert "  layer arithmetic: cannot characterise" in result.output
    assert any(reason in result.output for reason in reasons), result.output
    result = runner.invoke(app, ["sizes", "tests/size_models.py:ViT", "--axis", "2", "-f", "json"])
    import json
    axis = json.loads(result.output)["axes"][0]
    assert axis["engine"] == "symbolic" and any(reason in axis["arithmetic_reason"] for reason in reasons)
    assert axis["accepted"] == {"kind": "arithmetic", "minimum": 224, "step": 1, "offset": 0, "maximum": 224}


def test_the_arithmetic_answers_where_it_can() -> None:
    a = sizes(nn.Sequential(nn.Conv2d(3, 4, 3, stride=2)), [(1, 3, 32, 32)]).axes[0]
    assert a.engine == ARITHMETIC and a.engine_note is None and a.arithmetic_reason is None
    # conv k3 s2: floor((H − 3)/2) + 1 ≥ 1 <=> H ≥ 3
    assert a.accepted is not None and a.accepted.words() == "every size ≥ 3"


def test_torch_dynamo_is_imported_only_on_the_symbolic_path() -> None:
    # the layer arithmetic answers ResNet-18 (`sizes`) and the summary's note never calls the symbolic
    # engine, not even for a model that reads sizes into Python values (YoloHead): neither imports
    # torch._dynamo (about a second) nor the engine's module; `sizes` of YoloHead does
    code = (
        "import sys\n"
        "from cnnshape.api import analyze, sizes\n"
        "from tests.test_sizes import YoloHead\n"
        "sizes('examples/resnet.py:ResNet18', [(1, 3, 64, 64)])\n"
        "analyze(YoloHead(), [(1, 3, 640, 640)])\n"
        "print('torch._dynamo' in sys.modules, 'cnnshape.analyse.sizes.symbolic' in sys.modules)\n"
        "sizes(YoloHead(), [(1, 3, 640, 640)], axes=[2])\n"
        "print('cnnshape.analyse.sizes.symbolic' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "CNNSHAPE_CROSS_CHECK"}  # torch's meta kernels import it
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False", "True"], result.stdout


class MaskSlice(nn.Module):
    """Swin's attention mask in small: ``mask[0:-7] = 1`` selects nothing when the map is at most 7
    high, which is no error."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = x.new_zeros((x.shape[-2], x.shape[-1]))
        mask[0:-7, :] = 1
        return x + mask


def test_an_empty_selection_does_not_reject_a_size() -> None:
    # a real CPU forward runs at every H (the slice is empty up to H = 7)
    for h in range(1, 12):
        with torch.no_grad():
            assert MaskSlice()(torch.zeros(1, 1, h, 4)).shape == (1, 1, h, 4)
    assert accepted_by_torch(MaskSlice(), (1, 1, 16, 4), 2, range(1, 40)) == list(range(1, 40))
    a = sizes(MaskSlice(), [(1, 1, 16, 4)], axes=[2]).axes[0]
    assert a.engine == SYMBOLIC and a.accepted is not None and a.accepted.words() == "every size ≥ 1"
    assert [f.formula for f in a.outputs] == ["H"]


class TransposedThenPool(nn.Module):
    """ConvTranspose2d k2 p3 d3 op2 outputs W − 1 columns (empty at W = 1, which the adaptive pool
    turns back into 2 columns without an error on meta), and a Python-valued check the arithmetic
    cannot follow."""

    def __init__(self) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(1, 1, 2, padding=3, dilation=3, output_padding=2)
        self.pool = nn.AdaptiveAvgPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] > 100:
            raise ValueError("too wide")
        return self.pool(self.up(x))


def test_an_empty_intermediate_rejects_a_size_on_the_symbolic_path() -> None:
    # every W from 2 to 100: W − 1 ≥ 1 and the model's own check
    assert accepted_by_torch(TransposedThenPool(), (1, 1, 8, 8), 3, range(1, 120)) == list(range(2, 101))
    a = sizes(TransposedThenPool(), [(1, 1, 8, 8)], axes=[3]).axes[0]
    assert a.engine == SYMBOLIC and a.accepted is not None and a.accepted.words() == "every size from 2 to 100"


def test_when_neither_engine_can_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    from cnnshape.analyse.sizes import fallback
    from cnnshape.analyse.sizes.symbolic import SymbolicFailure

    def fails(*args: Any, **kwargs: Any) -> Any:
        raise SymbolicFailure("at size 64: UnsupportedOperatorException: mylib.op")

    monkeypatch.setattr(fallback, "explore", fails)
    # with no rule from the arithmetic, the axis says why neither engine answers
    from .test_sizes import Crop
    a = sizes(Crop(), [(1, 3, 16, 16)], axes=[2]).axes[0]
    assert a.accepted is None and a.minimum is None and a.engine is None
    assert a.reason.startswith("cannot characterise the accepted sizes: getitem (getitem): slicing")
    assert a.reason.endswith("; torch's symbolic shapes could not either: at size 64: "
                             "UnsupportedOperatorException: mylib.op")
    # where the arithmetic's rule stands on one trace of a model that reads sizes, it stays, with the note
    b = sizes(TransposedThenPool(), [(1, 1, 8, 8)], axes=[3]).axes[0]
    assert b.engine == ARITHMETIC and b.accepted is not None and b.accepted.words() == "every size ≥ 2"
    assert b.engine_note == ("torch's symbolic shapes could not check it: at size 64: "
                             "UnsupportedOperatorException: mylib.op")


def test_summary_note_stays_on_the_one_trace() -> None:
    # the note never runs the symbolic engine (seconds, and torch._dynamo): it states the arithmetic's
    # rule where there is one (torchvision's ConvNeXt, whose Linear layers on channels-last maps torch
    # folds into (N·H·W, C) and back), and points to `cnnshape sizes` where there is none
    notes = analyze(ConvNeXt(), [SHAPE]).notes
    assert ("accepted input sizes: H: every size ≥ 32; W: every size ≥ 32 (layer arithmetic; `cnnshape sizes` "
            "validates)") in notes, notes
    from .test_sizes import Crop
    notes = analyze(Crop(), [(1, 3, 16, 16)]).notes
    assert ("accepted input sizes: H: not characterised; W: every size ≥ 1 (layer arithmetic; `cnnshape sizes` "
            "validates and tries torch's symbolic shapes where it has no rule)") in notes, notes
    notes = analyze(ViT(), [SHAPE]).notes
    assert any(n.startswith("accepted input sizes: not derived from one trace, the model reads tensor sizes")
               and n.endswith("`cnnshape sizes` finds them with torch's symbolic shapes") for n in notes), notes


H = sympy.Symbol("s0", integer=True, positive=True)


@pytest.mark.parametrize("expr,text", [
    (H, "H"),
    (2 * H + 3, "2·H + 3"),
    (sympy.Integer(7), "7"),
], ids=["symbol", "affine", "constant"])
def test_formula_text_of_plain_expressions(expr: Any, text: str) -> None:
    assert formula_text(expr, H, "H") == text


def test_formula_text_of_torchs_floor_and_mod() -> None:
    from torch.utils._sympy.functions import FloorDiv, PythonMod

    # floor((H − 1)/32) + 1, the remainder written negative as the layer arithmetic writes it
    assert formula_text(FloorDiv(H - 1, 32) + 1, H, "H") == "floor((H − 1)/32) + 1"
    assert formula_text(FloorDiv(H + 31, 32), H, "H") == "floor((H − 1)/32) + 1"
    assert formula_text(FloorDiv(H, 4), H, "H") == "floor(H/4)"
    # Swin's padded height: H + (7 − H mod 7) mod 7
    padded = H + PythonMod(7 - PythonMod(H, 7), 7)
    assert formula_text(padded, H, "H") == "H + ((7 − (H mod 7)) mod 7)"
    for s in range(1, 30):
        assert int(padded.xreplace({H: s})) == s + (7 - s % 7) % 7
