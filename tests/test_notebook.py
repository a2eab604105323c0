"""examples/report.ipynb runs top to bottom in a Jupyter kernel (nbclient), and what it shows inline
is the report's HTML table: one row per layer, with the numbers of the analysis."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "examples" / "report.ipynb"


def test_the_example_notebook_runs_and_shows_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    # the kernel imports this checkout's cnnshape, as the test process does
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    shown = [out["data"]["text/html"] for cell in nb.cells if cell.cell_type == "code"
             for out in cell.get("outputs", []) if "text/html" in out.get("data", {})]
    assert len(shown) == 2  # the report, and the report collapsed to depth 1
    full, collapsed = shown
    assert "<table>" in full and "<table>" in collapsed
    rows = re.findall(r'<tr data-name="([^"]*)"', full)
    # ResNet-18 traced: the input, conv1 ... fc and the output; 8 basic blocks of 5 or 7 rows
    assert rows[:3] == ["x", "conv1", "bn1"] and rows[-2:] == ["fc", "output"]
    assert re.findall(r'<tr data-name="([^"]*)"', collapsed) == [
        "x", "conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "flatten", "fc",
        "output"]
    # fc: 512·1000 + 1000 = 513,000 params (torchvision's resnet18 card: 11,689,512 in all)
    assert 'title="513,000">513.00 K</td>' in full
    assert "11.69 M params" in full
    printed = "".join(out.get("text", "") for out in nb.cells[-1].get("outputs", []))
    assert "KiB, opens offline" in printed
