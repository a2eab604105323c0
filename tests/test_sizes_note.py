"""The summary's size note states the accepted rule as `cnnshape sizes` does (issue 13, item 5): a
bounded range, an exact size, multiples from a minimum, a short list; one wording for both, and
both equal to meta forward passes at every size 1..64 (tests/test_sizes.py's oracle)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnshape.api import analyze, sizes

from .test_sizes import accepted_by_torch


class PoolToLinear(nn.Module):
    """AvgPool2d(4), then a Linear over 4x4 maps: floor(H/4) = 4, i.e. 16 ≤ H ≤ 19."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(4)
        self.fc = nn.Linear(16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(x).flatten(1))


class ConvToLinear(nn.Module):
    """Conv2d k3 (H − 2 rows), then a Linear over 14x14 maps: H − 2 = 14, exactly 16."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3)
        self.fc = nn.Linear(14 * 14, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).flatten(1))


class TwoLevelSkip(nn.Module):
    """U-Net in small: two 2x2 pools, two x2 upsamplings, a skip add at each level:
    2·floor(H/2) = H and 2·floor(floor(H/2)/2) = floor(H/2), i.e. H a multiple of 4."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(2)
        self.up = nn.Upsample(scale_factor=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = self.pool(x)
        quarter = self.pool(half)
        return x + self.up(half + self.up(quarter))


class StridedSkipToLinear(nn.Module):
    """TwoLevelSkip's multiples of 4, then an AvgPool2d(4) and a Linear over 2..5 rows x 4 columns:
    floor(H/4) in 2..5 and H a multiple of 4, so exactly 8, 12, 16 and 20: a short list."""

    def __init__(self) -> None:
        super().__init__()
        self.skip = TwoLevelSkip()
        self.pool = nn.AvgPool2d(4)
        self.norm = nn.LayerNorm(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pool(self.skip(x))          # (1, 1, H/4, 4)
        if not 2 <= y.shape[-2] <= 5:
            raise ValueError("2 to 5 rows of 4x4 patches")
        return self.norm(y)


CASES = [
    # (model, working example, the rule along H in words)
    (PoolToLinear, (1, 1, 16, 16), "every size from 16 to 19"),
    (ConvToLinear, (1, 1, 16, 16), "exactly 16"),
    (TwoLevelSkip, (1, 1, 16, 16), "multiples of 4 from 4 up"),
]


@pytest.mark.parametrize("cls,shape,words", CASES, ids=[c[0].__name__ for c in CASES])
def test_the_note_states_the_rule_as_sizes_does(cls: type[nn.Module], shape: tuple[int, ...], words: str) -> None:
    model = cls()
    h = sizes(model, [shape], axes=[2]).axes[0]
    assert h.accepted is not None and h.accepted.words() == words
    assert [s for s in range(1, 65) if h.accepted.contains(s)] == accepted_by_torch(model, shape, 2, range(1, 65))
    notes = [n for n in analyze(model, [shape]).notes if n.startswith("accepted input sizes")]
    assert len(notes) == 1 and notes[0].startswith(f"accepted input sizes: H: {words}; W: "), notes


def test_a_short_list_is_listed_by_sizes() -> None:
    # the model's own row check reads a size into a Python value, so the rule comes from torch's symbolic
    # shapes; the summary's note, from one trace, names the line instead (it states no rule it cannot know)
    model = StridedSkipToLinear()
    h = sizes(model, [(1, 1, 16, 16)], axes=[2]).axes[0]
    assert h.engine == "symbolic" and h.accepted is not None and h.accepted.words() == "only 8, 12, 16, 20"
    assert [s for s in range(1, 65) if h.accepted.contains(s)] == accepted_by_torch(model, (1, 1, 16, 16), 2,
                                                                                     range(1, 65))
    notes = [n for n in analyze(model, [(1, 1, 16, 16)]).notes if n.startswith("accepted input sizes")]
    assert notes and notes[0].startswith("accepted input sizes: not derived from one trace"), notes
