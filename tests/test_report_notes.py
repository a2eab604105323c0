"""Notes the pipeline adds to a report, each checked against torch's own count."""
from __future__ import annotations

from torch import nn
from torch.nn.utils import prune

import cnnshape


def test_a_pruned_model_is_counted_as_torch_counts_it_and_says_so() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())
    prune.l1_unstructured(model[0], "weight", amount=0.5)
    report = cnnshape.analyze(model, [(1, 3, 8, 8)])
    # weight_orig 8x3x3x3 = 216 plus the bias 8: what torch's parameters() holds
    assert report.totals.params == sum(p.numel() for p in model.parameters()) == 224
    note = next(n for n in report.notes if n.startswith("pruned with torch.nn.utils.prune"))
    assert "108 of their 216 weights are masked to zero" in note  # amount 0.5 of 216
    # the module is left as it was: its mask still real, its forward still runs
    assert model[0].weight_mask.device.type == "cpu" and int(model[0].weight_mask.sum()) == 108


def test_an_unpruned_model_has_no_pruning_note() -> None:
    report = cnnshape.analyze(nn.Conv2d(3, 8, 3), [(1, 3, 8, 8)])
    assert not any("prune" in n for n in report.notes)
