"""`cnnshape graph` and Report.to_graphviz: the drawn SVG is parsed (it is XML) and checked against
shapes taken from a real CPU forward pass with hooks, never against cnnshape's own numbers."""
from __future__ import annotations

import os
import shutil
import stat
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from cnnshape.api import analyze
from cnnshape.cli import app
from examples.multi_io import DictOutputNet
from examples.resnet import ResNet18

HAVE_DOT = shutil.which("dot") is not None
MISSING_DOT = ("the Graphviz `dot` program is not installed (apt-get install graphviz): "
               "SVG output is not checked")


def require_dot(have_dot: bool, ci: bool) -> None:
    """Skips a test that renders SVG when `dot` is missing, locally; under CI (the ``CI`` environment
    variable, set by .ci/run) a missing `dot` fails it, so a build cannot go green without them."""
    if not have_dot:
        if ci:
            pytest.fail(f"CI is set but {MISSING_DOT}", pytrace=False)
        pytest.skip(MISSING_DOT)


@pytest.fixture(scope="session")
def dot_program() -> None:
    require_dot(HAVE_DOT, bool(os.environ.get("CI")))


needs_dot = pytest.mark.usefixtures("dot_program")

SVG = "{http://www.w3.org/2000/svg}"
SMALL = "examples/textbook.py:ThreeConvs3x3"  # 1x8x32x32 -> three 3x3 convs, padding 1 -> 1x8x32x32


def shape_text(shape: torch.Size | tuple[int, ...]) -> str:
    return "×".join(str(d) for d in shape)


def parse_svg(svg: bytes | str) -> tuple[dict[str, str], list[tuple[str, str, str]], set[str]]:
    """(node title -> its text, [(source, target, edge label)], cluster titles) of a dot SVG."""
    root = ET.fromstring(svg)
    nodes: dict[str, str] = {}
    edges: list[tuple[str, str, str]] = []
    clusters: set[str] = set()
    for g in root.iter(f"{SVG}g"):
        title = g.findtext(f"{SVG}title")
        text = " ".join((t.text or "").strip() for t in g.iter(f"{SVG}text")).strip()
        if g.get("class") == "node":
            nodes[title] = text
        elif g.get("class") == "edge":
            source, target = title.split("->")
            edges.append((source, target, text))
        elif g.get("class") == "cluster":
            clusters.add(title)
    return nodes, edges, clusters


class Recorder:
    """Real CPU forward: per module call (named like cnnshape rows: ``relu``, ``relu#2``) the input
    and output shapes, and which leaf call produced each module's input tensor."""

    def __init__(self, model: nn.Module, x: torch.Tensor) -> None:
        self.calls: Counter[str] = Counter()
        self.out: dict[str, torch.Size] = {}
        self.inp: dict[str, torch.Size] = {}
        self.producer_of_input: dict[str, str] = {}
        self.leaves: list[str] = []
        self._latest: dict[int, str] = {}
        self._keep: list[torch.Tensor] = []
        handles = []
        for name, m in model.named_modules():
            if not name:
                continue
            leaf = not any(True for _ in m.children())
            handles.append(m.register_forward_pre_hook(self._pre(name)))
            handles.append(m.register_forward_hook(self._post(name, leaf)))
        with torch.no_grad():
            model.eval()(x)
        for h in handles:
            h.remove()

    def _row(self, name: str) -> str:
        n = self.calls[name]
        return name if n == 1 else f"{name}#{n}"

    def _pre(self, name: str):
        def hook(module, args):
            self.calls[name] += 1
            row = self._row(name)
            self.inp[row] = args[0].shape
            self.producer_of_input[row] = self._latest.get(id(args[0]), "input")
        return hook

    def _post(self, name: str, leaf: bool):
        def hook(module, args, output):
            row = self._row(name)
            self.out[row] = output.shape
            if leaf:
                self.leaves.append(row)
                self._latest[id(output)] = row  # in-place ops: the latest producer wins
                self._keep.append(output)
        return hook


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    model = ResNet18(num_classes=10)
    x = torch.randn(1, 3, 32, 32)
    return model, Recorder(model, x), analyze(model, [(1, 3, 32, 32)])


@pytest.fixture(scope="module")
def resnet_svg(resnet, dot_program):
    _, _, report = resnet
    return parse_svg(report.to_graphviz().pipe(format="svg"))


@needs_dot
def test_every_layer_is_a_node_and_edges_carry_real_shapes(resnet, resnet_svg):
    _, rec, report = resnet
    nodes, edges, _ = resnet_svg
    # every leaf-module call of the real forward is a node labelled with its class
    # stem conv1, bn1, relu, maxpool (4); 8 blocks x (conv1, bn1, relu, conv2, bn2, relu#2) (48);
    # 3 downsamples x (conv, bn) (6); avgpool, fc (2): 4 + 48 + 6 + 2 = 60
    assert len(rec.leaves) == 60
    for row in rec.leaves:
        assert row in nodes, row
    assert "Conv2d 3→64 k7 s2 p3" in nodes["conv1"]
    assert "Linear 512→10" in nodes["fc"]
    # and every row of the report is drawn (the renderer drops nothing)
    assert {layer.name for layer in report.layers} <= set(nodes)
    # an edge leaving a module carries that module's real output shape, one entering it its input
    checked = 0
    for source, target, label in edges:
        if source in rec.out:
            assert label == shape_text(rec.out[source]), (source, target)
            checked += 1
        if target in rec.inp:
            assert label == shape_text(rec.inp[target]), (source, target)
    assert checked >= 60
    assert ("flatten", "fc", "512") not in edges and ("flatten", "fc", "1×512") in edges


@needs_dot
def test_basic_block_skip_connections_are_edges(resnet, resnet_svg):
    _, rec, _ = resnet
    nodes, edges, clusters = resnet_svg
    # identity skip: the producer of layer1.0's input feeds both the block's first conv and the add
    source = rec.producer_of_input["layer1.0"]
    assert source == "maxpool"
    targets = {t for s, t, _ in edges if s == source}
    assert "layer1.0.conv1" in targets and len(targets) == 2
    (add,) = targets - {"layer1.0.conv1"}
    assert "add" in nodes[add]
    into_add = {s for s, t, _ in edges if t == add}
    assert into_add == {"maxpool", "layer1.0.bn2"}
    assert {label for s, t, label in edges if t == add} == {shape_text(rec.out["layer1.0.bn2"])}
    # projection skip: layer2.0's input goes to conv1 and to the downsample conv; both reach the add
    source = rec.producer_of_input["layer2.0"]
    targets = {t for s, t, _ in edges if s == source}
    assert targets == {"layer2.0.conv1", "layer2.0.downsample.0"}
    add_inputs = {t: {s for s, tt, _ in edges if tt == t} for t in nodes}
    (add2,) = [t for t, srcs in add_inputs.items()
               if srcs == {"layer2.0.bn2", "layer2.0.downsample.1"}]
    assert "add" in nodes[add2]
    assert {"cluster_layer1", "cluster_layer1.0", "cluster_layer2.0.downsample"} <= clusters


@needs_dot
def test_depth_2_collapses_blocks_and_deduplicates_edges(resnet):
    model, rec, report = resnet
    nodes, edges, clusters = parse_svg(report.to_graphviz(depth=2).pipe(format="svg"))
    blocks = [f"layer{i}.{j}" for i in range(1, 5) for j in range(2)]
    for name in ["conv1", "bn1", "relu", "maxpool", *blocks, "avgpool", "fc"]:
        assert name in nodes, name
    assert "BasicBlock" in nodes["layer1.0"]
    # nothing deeper than 2
    assert not [n for n in nodes if n.split("#")[0].count(".") > 1]
    assert {f"cluster_layer{i}" for i in range(1, 5)} <= clusters
    # maxpool -> layer1.0 was two edges (conv1 and the skip): drawn once, with the real shape
    assert [e for e in edges if e[:2] == ("maxpool", "layer1.0")] == [
        ("maxpool", "layer1.0", shape_text(rec.out["maxpool"]))]
    for a, b in zip(blocks, blocks[1:]):
        assert [e for e in edges if e[:2] == (a, b)] == [(a, b, shape_text(rec.out[a]))]
    assert all(s != t for s, t, _ in edges)


@needs_dot
def test_each_output_is_its_own_node():
    model = DictOutputNet()
    out = model(torch.randn(1, 3, 32, 32))
    report = analyze(model, [(1, 3, 32, 32)])
    nodes, edges, _ = parse_svg(report.to_graphviz().pipe(format="svg"))
    assert ("head", "output['logits']", shape_text(out["logits"].shape)) in edges
    assert ("embed", "output['embedding']", shape_text(out["embedding"].shape)) in edges
    assert "input x" in nodes["x"]
    assert "output['logits'] 1×10" in nodes["output['logits']"]


@needs_dot
def test_digraph_displays_inline_in_jupyter(resnet):
    _, _, report = resnet
    bundle = report.to_graphviz(depth=1)._repr_mimebundle_(include={"image/svg+xml"})
    assert "<svg" in bundle["image/svg+xml"]


def test_rankdir_is_checked(resnet):
    _, _, report = resnet
    assert "rankdir=LR" in report.to_graphviz(rankdir="LR").source
    from cnnshape.errors import ConfigError

    with pytest.raises(ConfigError, match="rankdir must be one of TB, LR"):
        report.to_graphviz(rankdir="BT")


runner = CliRunner()


def hide_dot(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """PATH holding only an empty folder: neither shutil.which nor subprocess can find `dot`."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert shutil.which("dot") is None
    return empty


def test_dot_source_to_stdout_without_output_option():
    result = runner.invoke(app, ["graph", SMALL, "--input", "1,8,32,32"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("digraph")
    # conv k3 s1 p1 keeps 32x32: (32 + 2*1 - 3)/1 + 1 = 32
    assert "1×8×32×32" in result.stdout


def test_dot_file_works_without_the_dot_program(monkeypatch, tmp_path):
    hide_dot(monkeypatch, tmp_path)
    target = tmp_path / "net.dot"
    result = runner.invoke(app, ["graph", SMALL, "--input", "1,8,32,32", "-o", str(target)])
    assert result.exit_code == 0, result.output
    text = target.read_text()
    assert text.startswith("digraph") and "->" in text and "1×8×32×32" in text


@pytest.mark.parametrize("ext", ["svg", "png", "pdf"])
def test_missing_dot_program_is_a_clear_error(monkeypatch, tmp_path, ext):
    hide_dot(monkeypatch, tmp_path)
    target = tmp_path / f"net.{ext}"
    result = runner.invoke(app, ["graph", SMALL, "--input", "1,8,32,32", "-o", str(target)])
    assert result.exit_code == 2
    assert "Graphviz `dot` program is not on PATH" in result.stderr
    assert "apt-get install graphviz" in result.stderr and "brew install graphviz" in result.stderr
    assert ".dot output, which needs no Graphviz program" in result.stderr
    assert "Traceback" not in result.output
    assert not target.exists()


def test_unknown_extension_lists_the_accepted_ones(tmp_path):
    target = tmp_path / "net.jpg"
    result = runner.invoke(app, ["graph", SMALL, "--input", "1,8,32,32", "-o", str(target)])
    assert result.exit_code == 2
    assert "must end in .dot, .svg, .png, .pdf" in result.stderr
    assert "Traceback" not in result.output
    assert not target.exists()


def test_failed_render_leaves_no_half_written_file(monkeypatch, tmp_path):
    fake = hide_dot(monkeypatch, tmp_path) / "dot"
    # a `dot` that writes half an SVG, complains and fails
    fake.write_text("#!/bin/sh\nprintf '<svg><g>'\necho 'renderer exploded' >&2\nexit 3\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    target = out_dir / "net.svg"
    target.write_text("previous diagram")
    result = runner.invoke(app, ["graph", SMALL, "--input", "1,8,32,32", "-o", str(target)])
    assert result.exit_code == 2
    assert "renderer exploded" in result.stderr and "exit 3" in result.stderr
    assert "Traceback" not in result.output
    assert target.read_text() == "previous diagram"
    assert os.listdir(out_dir) == ["net.svg"]  # no temporary file left behind


@needs_dot
def test_svg_file_via_cli(tmp_path):
    target = tmp_path / "net.svg"
    result = runner.invoke(
        app, ["graph", SMALL, "--input", "1,8,32,32", "-o", str(target), "--rankdir", "LR"])
    assert result.exit_code == 0, result.output
    nodes, edges, _ = parse_svg(target.read_bytes())
    assert {"conv1", "conv2", "conv3"} <= set(nodes)
    assert ("conv1", "relu", "1×8×32×32") in edges and ("relu", "conv2", "1×8×32×32") in edges


def test_cli_and_renderer_read_one_format_list():
    # both import the vocabulary's tuple (no copy "kept in step")
    import importlib

    from cnnshape import vocab

    cli, renderer = (importlib.import_module(m) for m in ("cnnshape.cli.graph", "cnnshape.render.graphviz"))
    assert cli.GRAPH_FORMATS is renderer.GRAPH_FORMATS is vocab.GRAPH_FORMATS


def test_missing_dot_skips_locally_but_fails_under_ci():
    require_dot(True, True)
    require_dot(True, False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install graphviz"):
        require_dot(False, False)
    with pytest.raises(pytest.fail.Exception, match="CI is set but the Graphviz `dot` program is not installed"):
        require_dot(False, True)
