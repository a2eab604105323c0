"""`cnnshape report` and Report.to_html / Report._repr_html_ without a browser: the page is one
self-contained file (no external reference, a policy forbidding every fetch), its data carries the
closed-form numbers, and it degrades to "everything but the diagram" without Graphviz.
tests/test_html_browser.py checks what the page does in Chromium."""
from __future__ import annotations

import base64
import gzip
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import cnnshape
from cnnshape.errors import ConfigError
from cnnshape.render.html.page import NO_DOT
from cnnshape.units import binary_bytes

ROOT = Path(__file__).resolve().parent.parent
SMALL = "examples/textbook.py:Conv7Pool3"  # conv 7x7/2 p3 + maxpool 3/2 p1, 3 -> 64 channels


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cnnshape", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=180)


def page_data(page: str) -> dict[str, Any]:
    found = re.search(r'<script type="application/json" id="cnnshape-data">(.*?)</script>', page, re.S)
    assert found, "no data block"
    return json.loads(found.group(1))


def hide_dot(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """PATH holding only an empty folder: neither shutil.which nor subprocess can find `dot`."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


@pytest.fixture(scope="module")
def small_page(tmp_path_factory: pytest.TempPathFactory) -> str:
    target = tmp_path_factory.mktemp("report") / "small.html"
    result = run("report", SMALL, "--input", "1,3,224,224", "-o", str(target))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    return target.read_text(encoding="utf-8")


def test_cli_page_is_self_contained(small_page: str) -> None:
    assert small_page.startswith("<!DOCTYPE html>")
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)"', small_page)
    assert csp and "default-src &#x27;none&#x27;" in csp.group(1)
    # nothing is loaded from anywhere: no src/href attribute, no stylesheet link, no @import or url()
    assert not re.search(r"<(script|img|link|iframe)[^>]*\s(src|href)=", small_page)
    assert "@import" not in small_page and "url(" not in small_page
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", small_page))
    assert urls <= {"http://www.w3.org/2000/svg"}, urls  # an XML namespace name, never fetched


def test_cli_page_data_has_the_closed_form_numbers(small_page: str) -> None:
    data = page_data(small_page)
    conv = next(layer for layer in data["layers"] if layer["type"] == "Conv2d")
    # conv 7x7/2 p3 on 224: out 112; params 7·7·3·64 = 9,408; MACs 9,408·112·112 = 118,013,952
    assert conv["output_shape"] == [1, 64, 112, 112]
    assert (conv["params"], conv["macs"]) == (9408, 118_013_952)
    assert conv["kernel_size"] == [7, 7] and conv["stride"] == [2, 2] and conv["padding"] == [3, 3]
    # RF of conv1: 7, jump 2; after the pool 3/2: 7 + (3 - 1)·2 = 11, jump 4
    pool = next(layer for layer in data["layers"] if layer["type"] == "MaxPool2d")
    assert (conv["rf"]["size"], conv["rf"]["jump"]) == ([7, 7], [2, 2])
    assert (pool["rf"]["size"], pool["rf"]["jump"]) == ([11, 11], [4, 4])
    # the centre unit (28, 28) of the pool's 56x56 output: centre 4·28 = 112 (start 0), box 112 ± 5
    assert [a["box"] for a in pool["rf"]["centre"]["axes"]] == [[107, 117], [107, 117]]
    assert data["totals"]["macs"] == sum(layer["macs"] for layer in data["layers"])
    # the accepted input sizes, checked by the size analysis: any size ≥ 1 works for conv+pool
    assert [a["accepted"] for a in data["sizes"]["axes"]] == ["every size ≥ 1", "every size ≥ 1"]


def test_cli_page_has_the_diagram_at_every_depth(small_page: str) -> None:
    diagrams = page_data(small_page)["diagrams"]
    assert list(diagrams) == ["0"]  # no module above the rows: one diagram
    svg = gzip.decompress(base64.b64decode(diagrams["0"])).decode("utf-8")
    assert svg.startswith("<svg") and "<title>conv1</title>" in svg and "1×64×112×112" in svg


def test_without_dot_the_page_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    report = cnnshape.analyze(str(ROOT / SMALL), [(1, 3, 32, 32)])
    hide_dot(monkeypatch, tmp_path)
    page = report.to_html()
    assert NO_DOT in page and "apt-get install graphviz" in page
    data = page_data(page)
    assert data["diagrams"] == {}
    assert len(data["layers"]) == len(report.layers)
    compact = report._repr_html_()
    assert "<table>" in compact and "<svg" not in compact and "not on PATH" in compact


def test_repr_html_is_the_table_and_the_diagram() -> None:
    report = cnnshape.analyze(str(ROOT / SMALL), [(1, 3, 32, 32)])
    compact = report._repr_html_()
    assert compact is not None
    rows = re.findall(r'<tr data-name="([^"]*)"', compact)
    assert rows == [layer.name for layer in report.layers]
    assert "<svg" in compact and "<script" not in compact
    # conv 7x7/2 p3 on 32: out 16; MACs 9,408·16·16 = 2,408,448 (2.41 M)
    assert 'title="2,408,448">2.41 M</td>' in compact


def test_lower_bound_is_marked() -> None:
    class FFT(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.fft.fft2(self.conv(x)).real

    report = cnnshape.analyze(FFT(), [(1, 1, 6, 6)])
    data = page_data(report.to_html())
    assert data["totals"]["complete"] is False
    assert [u["op"] for u in data["unsupported_ops"]] == ["aten._fft_c2c"]
    assert "lower bounds" in report._repr_html_()


def test_memory_is_shown_when_the_report_has_it() -> None:
    report = cnnshape.analyze(str(ROOT / SMALL), [(1, 3, 32, 32)])
    assert "memory" not in page_data(report.to_html())
    report = cnnshape.analyze(str(ROOT / SMALL), [(1, 3, 32, 32)], memory=True)
    assert report.memory is not None
    data = page_data(report.to_html())
    # the summary's footer lines (render/memory.py), as label: figures
    peak = report.memory.inference
    assert data["memory"]["Inference peak memory"].startswith(f"{binary_bytes(peak.peak_bytes)} at {peak.peak_at}")
    # the live bytes after each layer, for the details panel
    assert data["memory_layers"] == {layer.name: layer.live_bytes for layer in peak.layers}
    assert set(data["memory_layers"]) <= {row["name"] for row in data["layers"]}


def test_script_cannot_be_closed_from_the_data(tmp_path: Path) -> None:
    class Odd(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.add_module("x</script><script>alert(1)</script>", nn.Conv2d(1, 1, 3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return getattr(self, "x</script><script>alert(1)</script>")(x)

    page = cnnshape.analyze(Odd(), [(1, 1, 8, 8)]).to_html()
    assert page.count("</script>") == 2  # the data block's and the page script's own
    assert any("alert(1)" in layer["name"] for layer in page_data(page)["layers"])


def test_bad_options_are_clear_errors(tmp_path: Path) -> None:
    result = run("report", SMALL, "--color-by", "weight", "-o", str(tmp_path / "x.html"))
    assert result.returncode == 2 and "'weight' is not one of type, macs, params," in result.stderr
    report = cnnshape.analyze(str(ROOT / SMALL), [(1, 3, 32, 32)])
    with pytest.raises(ConfigError, match="color_by must be one of"):
        report.to_html(color_by="weight")
    result = run("report", SMALL, "-o", str(ROOT / "examples/textbook.py"))
    assert result.returncode == 2 and "is the model's source file" in result.stderr


def test_color_by_choices_are_the_vocabulary() -> None:
    from typer.main import get_command

    from cnnshape import vocab
    from cnnshape.cli import app

    command = get_command(app).commands["report"]  # type: ignore[attr-defined]
    option = next(p for p in command.params if "--color-by" in p.opts)
    assert option.metavar == "[" + "|".join(vocab.COLOR_BY) + "]"


def test_a_bug_in_the_drawing_leaves_the_rest_of_the_page(monkeypatch: pytest.MonkeyPatch) -> None:
    from cnnshape.render.html import page

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("boom")

    report = cnnshape.analyze(str(ROOT / SMALL), [(1, 3, 32, 32)])
    monkeypatch.setattr(page, "to_digraph", broken)
    html = report.to_html()
    assert "cnnshape bug drawing the diagram (KeyError: &#x27;boom&#x27;)" in html
    assert len(page_data(html)["layers"]) == len(report.layers)


def test_without_a_size_report_the_page_gives_the_traces_estimate() -> None:
    report = cnnshape.analyze(str(ROOT / SMALL), [(1, 3, 64, 64)])
    sizes = page_data(report.to_html())["sizes"]
    # without the size analysis the page shows the first trace's own estimate, from the report's notes
    assert sizes["axes"] is None and sizes["note"].startswith("accepted input sizes")
    assert page_data(report.to_html(sizes="it failed"))["sizes"]["error"] == "it failed"
