"""``cnnshape compare`` and ``cnnshape.compare()``: the numbers against published figures, closed
forms and the individual ``analyze`` reports; the per-model input syntax; the stage alignment; the
errors; and the HTML page in a real browser (when Chromium is installed)."""
from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

import cnnshape
from cnnshape.cli import app
from cnnshape.comparison import build_comparison, default_labels, split_spec
from cnnshape.errors import ConfigError, LoadError, ShapeError
from cnnshape.render.compare import render_compare_json, render_compare_markdown, render_compare_table
from cnnshape.render.compare_html import render_compare_html

ALEXNET, VGG16 = "examples/alexnet.py:AlexNet", "examples/vgg.py:VGG16"
NORMAL, SEPARABLE = "examples/textbook.py:NormalConv", "examples/textbook.py:DepthwiseSeparable"


@pytest.fixture(scope="module")
def alex_vgg() -> cnnshape.Comparison:
    return cnnshape.compare([ALEXNET, VGG16])


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["compare", *args])
    return result.exit_code, result.stdout, result.stderr


# --- the numbers


def test_alexnet_vs_vgg16_published_figures(alex_vgg: cnnshape.Comparison) -> None:
    alex, vgg = alex_vgg.models
    # torchvision's model cards: AlexNet 61,100,840 params, 0.71 GFLOPs (multiply-adds); VGG-16
    # 138,357,544 params, 15.47 GFLOPs (multiply-adds), both at 224x224
    assert (alex.params, vgg.params) == (61_100_840, 138_357_544)
    assert round(alex.params / 1e6, 1) == 61.1 and round(vgg.params / 1e6, 1) == 138.4
    assert round(alex.macs / 1e9, 2) == 0.71 and round(vgg.macs / 1e9, 2) == 15.47
    assert alex_vgg.ratio("params", 1) == pytest.approx(138_357_544 / 61_100_840)
    assert alex_vgg.ratio("macs", 0) == 1.0
    # minimum input: AlexNet's last 3/2 max pool needs 3 pixels, so the second needs 7, the first 15,
    # and conv 11/4 p2 gives floor((H − 7)/4) + 1 ≥ 15 → H ≥ 63; VGG-16 halves five times: H ≥ 32
    assert alex.minimum_text() == "63x63" and vgg.minimum_text() == "32x32"
    # receptive fields, r_out = r_in + (k − 1)·j_in: AlexNet 11 → 19 (pool, j 8) → 51 (conv5, j 8)
    # → 67 (pool, j 16) → 99 → 131 → 163 (three conv3) → 195 (pool); VGG-16 212 (the paper's stack)
    assert (alex.deepest_rf.size, vgg.deepest_rf.size) == ("195", "212")  # type: ignore[union-attr]
    assert alex.output_rf == vgg.output_rf == "global"


def test_figures_equal_the_individual_reports(alex_vgg: cnnshape.Comparison) -> None:
    for model, spec in zip(alex_vgg.models, (ALEXNET, VGG16)):
        report = cnnshape.analyze(spec)
        t = report.totals
        assert (model.params, model.macs, model.flops, model.activation_bytes, model.param_bytes) == (
            t.params, t.macs, t.flops, t.activation_bytes, t.param_bytes)
        assert [o.shape for o in model.outputs] == [o.shape for o in report.outputs] == [(1, 1000)]
        stages = {layer.name: layer for layer in report.collapse(1).layers}
        column = alex_vgg.models.index(model)
        for row in alex_vgg.stages:
            cell = row.cells[column]
            assert cell is not None and (cell.macs, cell.params) == (stages[row.label].macs,
                                                                      stages[row.label].new_params)
        # the stages sum to the totals
        assert sum(r.cells[column].macs for r in alex_vgg.stages) == t.macs  # type: ignore[union-attr]
        assert sum(r.cells[column].params for r in alex_vgg.stages) == t.params  # type: ignore[union-attr]


def test_where_vgg_cost_goes(alex_vgg: cnnshape.Comparison) -> None:
    assert [row.label for row in alex_vgg.stages] == ["features", "avgpool", "flatten", "classifier"]
    features = alex_vgg.stages[0].cells[1]
    classifier = alex_vgg.stages[3].cells[1]
    assert features is not None and classifier is not None
    # VGG-16's 13 convs hold 14,714,688 parameters (torchvision's features) and its three Linear
    # layers 25088·4096 + 4096 + 4096·4096 + 4096 + 4096·1000 + 1000 = 123,642,856; the MACs of the
    # Linears are their weights (123,633,664), the convs take the rest
    assert (features.params, classifier.params) == (14_714_688, 123_642_856)
    assert classifier.macs == 25088 * 4096 + 4096 * 4096 + 4096 * 1000
    assert alex_vgg.top_stage(1, "macs") is features and alex_vgg.top_stage(1, "params") is classifier
    text = render_compare_table(alex_vgg)
    assert "VGG16: 99.2% of its MACs in features; 89.4% of its params in classifier" in text
    assert "138.36 M (2.26x)" in text and "15.47 G (21.66x)" in text


def test_small_pair_closed_forms() -> None:
    c = cnnshape.compare([NORMAL, SEPARABLE], "1,8,32,32", align="position")
    normal, separable = c.models
    # 3·3·8·8 = 576 against 3·3·8 + 8·8 = 136 params; MACs per output pixel the same, 32·32 of them
    assert (normal.params, separable.params) == (576, 136)
    assert (normal.macs, separable.macs) == (32 * 32 * 576, 32 * 32 * 136)
    assert c.ratio("macs", 1) == pytest.approx(136 / 576)
    # by position: conv beside depthwise, pointwise alone
    assert [row.label for row in c.stages] == ["conv / depthwise", "pointwise"]
    assert c.stages[1].cells[0] is None
    by_name = cnnshape.compare([NORMAL, SEPARABLE], "1,8,32,32")
    assert [row.label for row in by_name.stages] == ["conv", "depthwise", "pointwise"]
    assert [cell is not None for cell in by_name.stages[0].cells] == [True, False]


def test_depth_two_aligns_shared_names() -> None:
    c = cnnshape.compare(["examples/lenet.py:LeNet5", "examples/lenet.py:LeNet5@1,1,35,35"], "1,1,32,32",
                         depth=2, sizes=False)
    assert c.labels == ("LeNet5@32x32", "LeNet5@35x35")
    assert all(None not in row.cells for row in c.stages)
    assert [row.label for row in c.stages][:2] == ["features.0", "features.1"]
    # C1 at 35: 31x31 outputs of 25 MACs, 6 channels; at 32: 28x28
    assert [cell.macs for cell in c.stages[0].cells] == [6 * 28 * 28 * 25, 6 * 31 * 31 * 25]  # type: ignore[union-attr]
    assert c.models[0].minimum_note == "not run" and "Notes:" not in render_compare_table(c)


# --- per-model inputs and labels


@pytest.mark.parametrize(("text", "spec", "inputs"), [
    ("a.py:A", "a.py:A", ()),
    ("a.py:A@1,3,227,227", "a.py:A", ("1,3,227,227",)),
    ("a.py:A@1,3,32,32@1,10", "a.py:A", ("1,3,32,32", "1,10")),
    ("a.py:A@1,128:int64@mask=1,128", "a.py:A", ("1,128:int64", "mask=1,128")),
    ("/home/me@work/net.py:Net@1x3x64x64", "/home/me@work/net.py:Net", ("1x3x64x64",)),
    ("/home/me@work/net.py:Net", "/home/me@work/net.py:Net", ()),
    ("pkg.mod:f@scalar", "pkg.mod:f", ("scalar",)),
])
def test_split_spec(text: str, spec: str, inputs: tuple[str, ...]) -> None:
    assert split_spec(text) == (spec, inputs)


def test_split_spec_bad_input() -> None:
    with pytest.raises(ConfigError, match="nothing after '@'"):
        split_spec("a.py:A@")
    with pytest.raises(ConfigError, match="'big' after '@' is not an input shape"):
        split_spec("a.py:A@1,3,32,32@big")


def test_default_labels() -> None:
    assert default_labels(["a.py:Net", "b.py:Other"], ["1x3", "1x3"]) == ("Net", "Other")
    assert default_labels(["a.py:Net", "a.py:Net"], ["1x3x32x32", "1x3x64x64"]) == (
        "Net@1x3x32x32", "Net@1x3x64x64")
    assert default_labels(["a.py:Net", "b.py:Net"], ["1x3", "1x3"]) == ("a.py:Net", "b.py:Net")
    assert default_labels(["a.py:Net", "a.py:Net"], ["1x3", "1x3"]) == ("a.py:Net #1", "a.py:Net #2")


def test_per_model_input_matches_analyze() -> None:
    c = cnnshape.compare([f"{ALEXNET}@1,3,227,227", ALEXNET], sizes=False)
    assert [m.inputs[0].shape for m in c.models] == [(1, 3, 227, 227), (1, 3, 224, 224)]
    assert c.models[0].macs == cnnshape.analyze(ALEXNET, [(1, 3, 227, 227)]).totals.macs
    # conv1 11/4 p2: floor((227 + 4 − 11)/4) + 1 = 56 against 55 at 224: 64·56²·363 MACs against 64·55²·363
    assert c.stages[0].cells[0].macs - c.stages[0].cells[1].macs > 64 * (56**2 - 55**2) * 363 - 1  # type: ignore[union-attr]


# --- the record and its renderers


def test_json_document(alex_vgg: cnnshape.Comparison) -> None:
    data = json.loads(render_compare_json(alex_vgg))
    assert data["schema"] == "cnnshape.compare/1" and data["depth"] == 1 and data["align"] == "name"
    alex, vgg = data["models"]
    assert alex["totals"]["params"] == 61_100_840 and vgg["totals"]["macs"] == 15_470_264_320
    assert vgg["ratios"]["params"] == pytest.approx(138_357_544 / 61_100_840)
    assert vgg["ratios"]["peak_bytes"] == pytest.approx(vgg["totals"]["peak_bytes"] / alex["totals"]["peak_bytes"])
    assert vgg["minimum_input"][0] == {"axis": "H", "minimum": 32, "accepted": "every size ≥ 32", "reason": None}
    assert data["stages"][0]["stage"] == "features"
    assert data["stages"][0]["cells"][1]["params"] == 14_714_688


def test_peak_memory_is_the_memory_analysis(alex_vgg: cnnshape.Comparison) -> None:
    """The Inference peak memory row is each model's inference peak as ``analyze(..., memory=True)`` gives it
    (which tests/test_memory*.py check against a measured run); a finished report given as it is
    has none, and the row then says so."""
    for spec, column in zip(("examples/alexnet.py:AlexNet", "examples/vgg.py:VGG16"), alex_vgg.models):
        report = cnnshape.analyze(spec, [(1, 3, 224, 224)], memory=True)
        assert report.memory is not None and column.peak_bytes == report.memory.inference.peak_bytes
    assert "Inference peak memory" in render_compare_table(alex_vgg)
    bare = build_comparison(list(alex_vgg.reports), [None, None], ["A", "B"])
    assert [m.peak_bytes for m in bare.models] == [m.peak_bytes for m in alex_vgg.models]
    no_memory = [replace(r, memory=None) for r in alex_vgg.reports]
    assert "Inference peak memory" not in render_compare_table(build_comparison(no_memory, [None, None], ["A", "B"]))


def test_lower_bounds_are_marked() -> None:
    from dataclasses import replace

    c0 = cnnshape.compare([NORMAL, SEPARABLE], "1,8,32,32", sizes=False)
    partial = replace(c0.reports[1], totals=replace(c0.reports[1].totals, complete=False))
    c = build_comparison([c0.reports[0], partial], [None, None], ["N", "S"])
    text = render_compare_table(c)
    assert "≥ 139.26 K" in text and "S: MACs and FLOPs are lower bounds" in text


def test_markdown_and_html_carry_the_figures(alex_vgg: cnnshape.Comparison) -> None:
    md = render_compare_markdown(alex_vgg)
    assert "| Params " in md and "138.36 M (2.26x)" in md
    page = render_compare_html(alex_vgg)
    assert 'data-figure="macs" data-value="15470264320"' in page
    assert "<script" not in page and "http://" not in page and "https://" not in page and "src=" not in page


# --- the command line


def test_cli_table_and_shared_input() -> None:
    code, out, err = cli(NORMAL, SEPARABLE, "--input", "1,8,32,32", "--no-sizes")
    assert code == 0, err
    assert "Comparing 2 models; ratios are to the first, NormalConv" in out
    # 136 / 576 = 0.236; 139,264 / 589,824 MACs the same ratio
    assert "136 (0.24x)" in out and "139.26 K (0.24x)" in out


def test_cli_format_from_extension(tmp_path: Path) -> None:
    target = tmp_path / "cmp.html"
    code, out, err = cli(NORMAL, SEPARABLE, "-i", "1,8,32,32", "--no-sizes", "-o", str(target), "-l", "n", "-l", "s")
    assert code == 0, err
    page = target.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<title>n vs s" in page
    code, out, err = cli(NORMAL, SEPARABLE, "-i", "1,8,32,32", "--no-sizes", "-f", "json")
    assert code == 0 and json.loads(out)["models"][1]["totals"]["params"] == 136


@pytest.mark.parametrize(("args", "fragments"), [
    ((NORMAL,), ["at least two models"]),
    ((NORMAL, "examples/nothere.py:Net"), ["model 2 of 2 (examples/nothere.py:Net) failed",
                                            "analysed fine: examples/textbook.py:NormalConv"]),
    ((NORMAL, SEPARABLE, "--label", "one"), ["--label: 1 label(s) for 2 models"]),
    ((NORMAL, f"{SEPARABLE}@1,8,x"), ["model 2", "'x' is not an integer"]),
    ((NORMAL, SEPARABLE, "--align", "diagonal"), ["'diagonal' is not one of name, position"]),
    (("old.json", "new.json"), ["old.json is a JSON file", "cnnshape diff old.json new.json"]),
    ((NORMAL, SEPARABLE, "-o", "examples/textbook.py"), ["--output examples/textbook.py is the source file of"]),
])
def test_cli_errors(args: tuple[str, ...], fragments: list[str]) -> None:
    code, out, err = cli(*args, "-i", "1,8,32,32", "--no-sizes")
    assert code == 2, (out, err)
    assert "Traceback" not in err and out == ""
    for fragment in fragments:
        assert fragment in err, err


def test_failing_model_is_named_with_the_others() -> None:
    broken = "tests/broken_models.py:WrongInChannels"
    with pytest.raises(ShapeError) as info:
        cnnshape.compare([broken, "examples/textbook.py:Conv5x5x3", broken], "1,3,32,32", sizes=False)
    message = str(info.value)
    assert f"model 1 of 3 ({broken}) failed: " in message and f"model 3 of 3 ({broken}) failed: " in message
    assert "Conv2d 'conv2' expects 8 input channels but receives 16 (from 'conv1'" in message
    assert message.endswith("analysed fine: examples/textbook.py:Conv5x5x3; fix the failing model or leave it "
                            "out of the comparison")
    with pytest.raises(LoadError, match="model 2 of 2"):
        cnnshape.compare([NORMAL, "examples/textbook.py:NoSuchClass"], "1,8,32,32", sizes=False)


def test_cli_choices_are_the_vocabulary() -> None:
    from typer.main import get_command

    from cnnshape import vocab

    command = get_command(app).commands["compare"]  # type: ignore[attr-defined]
    for flag, values in (("--format", vocab.COMPARE_FORMATS), ("--align", vocab.COMPARE_ALIGNS)):
        option = next(p for p in command.params if flag in p.opts)
        assert option.metavar == "[" + "|".join(values) + "]"


# --- the page in a real browser


def _chrome():  # type: ignore[no-untyped-def]
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.skip("headless Chromium is not installed (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--proxy-server=127.0.0.1:9",
                 "--proxy-bypass-list=<-loopback>", "--window-size=1200,900"):
        options.add_argument(flag)
    options.binary_location = shutil.which("chromium")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path=shutil.which("chromedriver"))
    return webdriver.Chrome(options=options, service=service)


def test_page_in_chromium(alex_vgg: cnnshape.Comparison, tmp_path: Path) -> None:
    page = tmp_path / "compare.html"
    page.write_text(render_compare_html(alex_vgg), encoding="utf-8")
    driver = _chrome()
    try:
        driver.get(page.as_uri())
        figures = driver.execute_script(
            "return Array.from(document.querySelectorAll('#totals td[data-figure]'))"
            ".map(td => [td.dataset.model, td.dataset.figure, td.dataset.value])")
        assert ["VGG16", "macs", "15470264320"] in figures and ["AlexNet", "params", "61100840"] in figures
        stages = driver.execute_script(
            "return Array.from(document.querySelectorAll('#stages tr[data-stage]')).map(tr => tr.dataset.stage)")
        assert stages == ["features", "avgpool", "flatten", "classifier"]
        # the MACs bar of VGG-16: features 99.2% wide, classifier 0.8%
        widths = driver.execute_script(
            "const bar = document.querySelector('.stack[data-model=VGG16][data-figure=macs]');"
            "return Array.from(bar.children).map(s => s.getBoundingClientRect().width / bar.clientWidth)")
        assert [round(w, 3) for w in widths] == [0.992, 0.008]
        assert driver.execute_script("return performance.getEntriesByType('resource').length") == 0
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
    finally:
        driver.quit()


# --- the golden files' numbers (tests/golden_cases.py runs them), against closed forms


def test_golden_compare_numbers() -> None:
    golden = Path(__file__).parent / "golden"
    table = (golden / "compare-alexnet-vgg16.txt").read_text(encoding="utf-8")
    lines = {line.split("  ")[0]: line for line in table.splitlines()}
    # 138,357,544 / 61,100,840 = 2.264; 15,470,264,320 / 714,188,480 MACs = 21.66
    assert lines["Params"].split()[-3:] == ["138.36", "M", "(2.26x)"]
    assert lines["MACs"].split()[-3:] == ["15.47", "G", "(21.66x)"]
    assert lines["Minimum input size"].split()[-2:] == ["63x63", "32x32"]
    assert "| Minimum input size              |          63x63 |              32x32 |" in (
        golden / "compare-alexnet-vgg16.md").read_text(encoding="utf-8")
    sizes = (golden / "compare-vgg16-sizes.txt").read_text(encoding="utf-8")
    first = next(line for line in sizes.splitlines() if line.startswith("features.0 "))
    # conv 3x3 3 -> 64 channels, 27 MACs per output: 224²·64·27 = 86,704,128 and 64²·64·27 = 7,077,888
    assert "86.70 M" in first and "7.08 M" in first and "1x64x64x64" in first


def test_keep_going_compares_the_others() -> None:
    broken = "tests/broken_models.py:WrongInChannels"
    lenet = "examples/lenet.py:LeNet5"
    c = cnnshape.compare([lenet, broken, f"{lenet}@1,1,35,35"], "1,1,32,32", sizes=False, keep_going=True)
    assert c.labels == ("LeNet5@32x32", "LeNet5@35x35") and c.given == 3
    assert [(f.position, f.model) for f in c.failed] == [(2, broken)]
    assert "Conv2d 'conv1' expects 3 input channels but receives 1" in c.failed[0].error
    # LeNet-5's features at 35: C1 6·31²·25 = 144,150 MACs, pool to 15, C3 16·11²·150 = 290,400; at 32:
    # C1 6·28²·25 = 117,600, C3 16·10²·150 = 240,000 (the pools are not MACs)
    assert [cell.macs for cell in c.stages[0].cells] == [117_600 + 240_000, 144_150 + 290_400]  # type: ignore[union-attr]
    assert json.loads(render_compare_json(c))["failed"][0]["position"] == 2
    code, out, err = cli(lenet, broken, f"{lenet}@1,1,35,35", "-i", "1,1,32,32", "--no-sizes", "--keep-going")
    assert code == 2 and err.startswith(f"error: model 2 of 3 ({broken}) failed: ")
    assert "Comparing 2 models (1 more failed, see the notes)" in out and f"model 2 of 3 ({broken}) failed" in out
    # with fewer than two left there is nothing to compare: the error names them all
    with pytest.raises(ShapeError, match="analysed fine: examples/lenet.py:LeNet5; fix"):
        cnnshape.compare([lenet, broken], "1,1,32,32", sizes=False, keep_going=True)


def test_unexpected_failure_is_named_and_chained(monkeypatch: pytest.MonkeyPatch) -> None:
    """An exception no diagnosis turned into a cnnshape error (a bug) still names its model, says it
    is unexpected, and keeps the original as the cause for --traceback."""
    from cnnshape import pipeline

    analyse = pipeline.run_analysis

    def run_analysis(request: cnnshape.Request, depth: int | None = None) -> cnnshape.Report:
        if request.model == SEPARABLE:
            raise RuntimeError("internal oops\nsecond line")
        return analyse(request, depth)

    monkeypatch.setattr(pipeline, "run_analysis", run_analysis)
    with pytest.raises(cnnshape.CnnshapeError) as info:
        cnnshape.compare([NORMAL, SEPARABLE], "1,8,32,32", sizes=False)
    assert str(info.value).startswith(f"model 2 of 2 ({SEPARABLE}) failed: unexpected RuntimeError: internal oops (")
    assert isinstance(info.value.__cause__, RuntimeError) and "second line" not in str(info.value)


def test_views(alex_vgg: cnnshape.Comparison) -> None:
    assert str(alex_vgg) == render_compare_table(alex_vgg)
    frame = alex_vgg._repr_html_()
    assert frame is not None and frame.startswith("<iframe srcdoc=\"&lt;!DOCTYPE html&gt;")
    # the page is escaped whole into the attribute: no raw tag of it reaches the notebook
    assert "<style>" not in frame and "<table" not in frame


def test_minimum_input_not_characterised() -> None:
    from cnnshape.analyse.sizes.records import AxisSizes, SizeReport

    c0 = cnnshape.compare([NORMAL, SEPARABLE], "1,8,32,32", sizes=False)
    axes = tuple(AxisSizes(axis, symbol, 32, None, None, "the model reads x.shape", (), ())
                 for axis, symbol in ((2, "H"), (3, "W")))
    c = build_comparison(c0.reports, [SizeReport("n", (1, 8, 32, 32), axes), "not determined: a reason"], ["N", "S"])
    assert [m.minimum_text() for m in c.models] == ["not characterised", ""]
    text = render_compare_table(c)
    # one line for both axes of N, which share their reason; S says why it has none
    assert text.count("not characterised by the layer arithmetic (the model reads x.shape)") == 1
    assert "N: input axes H, W not characterised" in text and "S: minimum input size not determined: a reason" in text
    assert "not characterised     not determined" in text


def test_finished_reports_and_modules(alex_vgg: cnnshape.Comparison) -> None:
    from examples.textbook import NormalConv

    c = cnnshape.compare([alex_vgg.reports[1], alex_vgg.reports[0]])
    assert c.labels == ("VGG16", "AlexNet") and c.ratio("params", 1) == pytest.approx(61_100_840 / 138_357_544)
    assert c.models[0].minimum_note == f"not determined: {VGG16} was given as a finished report"
    module = NormalConv()
    c = cnnshape.compare([module, SEPARABLE], "1,8,32,32", sizes=False)
    assert c.labels == ("NormalConv", "DepthwiseSeparable") and c.models[0].params == 576
