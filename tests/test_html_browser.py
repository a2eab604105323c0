"""The HTML report in a real browser: headless Chromium (Debian's ``chromium`` and ``chromium-driver``)
driven by selenium, with the network off. Every assertion reads the page's DOM after the page's own
script ran; the numbers are compared with the JSON report (``Report.to_dict``, what ``cnnshape summary
--format json`` writes) and with closed forms. The page is made in-process (one analysis for the module);
tests/test_html.py covers ``cnnshape report`` itself.

Skipped when Chromium, its driver or selenium is missing, except under CI (the ``CI`` environment
variable, set by .ci/run), where that fails: a build cannot go green without the browser checks.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPEC, INPUT = "examples/resnet.py:ResNet18", (1, 3, 64, 64)
CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
DRIVER = shutil.which("chromedriver")


def _missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium)"
    if CHROMIUM is None or DRIVER is None:
        return "headless Chromium is not installed (apt-get install chromium chromium-driver)"
    return None


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    why = _missing()
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {why}: the browser tests cannot run", pytrace=False)
        pytest.skip(why)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert CHROMIUM is not None and DRIVER is not None
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,900", "--host-resolver-rules=MAP * ~NOTFOUND"):
        options.add_argument(arg)
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    d = webdriver.Chrome(options=options, service=Service(DRIVER))
    d.execute_cdp_cmd("Network.enable", {})
    d.execute_cdp_cmd("Network.emulateNetworkConditions", {
        "offline": True, "latency": 0, "downloadThroughput": 0, "uploadThroughput": 0})
    yield d
    d.quit()


@pytest.fixture(scope="module")
def report(driver: Any) -> Any:
    from cnnshape.api import analyze

    return analyze(str(ROOT / SPEC), [INPUT])


@pytest.fixture(scope="module")
def page(report: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("html") / "resnet18.html"
    target.write_text(report.to_html(), encoding="utf-8")
    return target


@pytest.fixture(scope="module")
def summary(report: Any) -> dict[str, Any]:
    return json.loads(json.dumps(report.to_dict()))


def test_the_page_is_small_and_has_a_diagram_per_depth(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    found = re.search(r'<script type="application/json" id="cnnshape-data">(.*?)</script>', text, re.S)
    assert found
    data = json.loads(found.group(1))
    # rows nest 4 deep (layer1.0.downsample.0): the whole graph, then modules drawn as one node at
    # depth 1 (layer1), 2 (layer1.0) and 3 (layer1.0.downsample)
    assert list(data["diagrams"]) == ["0", "1", "2", "3"]
    assert len(text.encode("utf-8")) < 300_000
    # module sums: layer1 of ResNet-18 is 4 convs 3x3 64 -> 64 on 16x16 (after the stem, 64/4):
    # MACs 4·(9·64·64·16·16) = 37,748,736 and params 4·9·64·64 + 4 BN·2·64 = 147,456 + 512
    layer1 = data["modules"]["layer1"]
    assert (layer1["macs"], layer1["params"]) == (37_748_736, 147_968)


def load(driver: Any, path: Path) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(path.as_uri())
    WebDriverWait(driver, 20).until(lambda d: d.execute_script("return document.body.dataset.ready") == "1")
    driver.get_log("browser")  # start the console check from this load


def js(driver: Any, script: str) -> Any:
    return driver.execute_script(script)


def errors(driver: Any) -> list[dict[str, Any]]:
    return [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]


@pytest.fixture()
def loaded(driver: Any, page: Path) -> Any:
    load(driver, page)
    return driver


def test_one_row_per_layer_with_the_json_reports_numbers(loaded: Any, summary: dict[str, Any]) -> None:
    rows = js(loaded, """return Array.from(document.querySelectorAll('#layers tr.layer')).map(tr => {
        const v = k => { const td = tr.querySelector('td[data-key="' + k + '"]'); return td.dataset.value === undefined
            ? null : Number(td.dataset.value); };
        return [tr.dataset.name, v('params'), v('macs'), v('flops'), tr.hidden]; });""")
    expected = [[layer["name"], layer["params"], layer["macs"], layer["flops"], False] for layer in summary["layers"]]
    assert rows == expected
    totals = js(loaded, "return document.querySelector('[data-total=\"MACs\"]').title")
    assert totals == f"{summary['totals']['macs']:,}"
    assert errors(loaded) == []


def test_conv1_has_the_closed_form_numbers(loaded: Any) -> None:
    # ResNet-18's conv1: 7x7, stride 2, padding 3, 3 -> 64 channels on 64x64: out 32x32;
    # params 7·7·3·64 = 9,408; MACs 9,408·32·32 = 9,633,792
    row = js(loaded, """const tr = document.querySelector('#layers tr[data-name="conv1"]');
        return [tr.querySelector('[data-key=params]').dataset.value, tr.querySelector('[data-key=macs]').dataset.value,
                tr.querySelector('[data-key=output]').textContent];""")
    assert row == ["9408", "9633792", "1×64×32×32"]


def test_sorting_by_macs_puts_the_largest_first(loaded: Any, summary: dict[str, Any]) -> None:
    loaded.find_element("css selector", '#layers th[data-key="macs"]').click()
    order = js(loaded, """return Array.from(document.querySelectorAll('#layers tbody tr'))
        .filter(tr => !tr.hidden).map(tr => Number(tr.querySelector('[data-key=macs]').dataset.value || 0));""")
    largest = max(layer["macs"] for layer in summary["layers"])
    assert order[0] == largest
    assert order == sorted(order, reverse=True)
    loaded.find_element("css selector", '#layers th[data-key="macs"]').click()  # ascending
    first = js(loaded, "return Array.from(document.querySelectorAll('#layers tbody tr')).find(tr => !tr.hidden)"
                       ".querySelector('[data-key=macs]').dataset.value")
    assert int(first or 0) == min(layer["macs"] for layer in summary["layers"])
    assert errors(loaded) == []


def test_collapsing_a_module_hides_its_children(loaded: Any, summary: dict[str, Any]) -> None:
    inside = [layer["name"] for layer in summary["layers"] if layer["name"].startswith("layer2.")]
    assert inside
    visible = """return Array.from(document.querySelectorAll('#layers tr.layer'))
        .filter(tr => !tr.hidden && tr.dataset.name.startsWith('layer2.')).length"""
    assert js(loaded, visible) == len(inside)
    loaded.find_element("css selector", '#layers tr[data-name="layer2"] .toggle').click()
    assert js(loaded, visible) == 0
    # in the diagram: the module's nodes hidden, one block in their place
    assert js(loaded, """return Array.from(document.querySelectorAll('#diagram g.node'))
        .filter(g => (g.dataset.name || '').startsWith('layer2.') && g.style.display !== 'none').length""") == 0
    assert js(loaded, "return document.querySelector('#diagram .collapsed-module[data-name=\"layer2\"]')"
                      ".style.display") == ""
    assert js(loaded, "return document.querySelector('#layers tr[data-name=\"layer3.0.conv1\"]').hidden") is False
    loaded.find_element("css selector", '#layers tr[data-name="layer2"] .toggle').click()
    assert js(loaded, visible) == len(inside)
    assert errors(loaded) == []


def test_depth_redraws_the_diagram_with_modules_as_nodes(loaded: Any) -> None:
    from selenium.webdriver.support.ui import Select, WebDriverWait

    Select(loaded.find_element("id", "depth")).select_by_value("1")
    WebDriverWait(loaded, 10).until(lambda d: js(d, "return document.getElementById('diagram').dataset.depth") == "1")
    nodes = js(loaded, "return Array.from(document.querySelectorAll('#diagram g.node')).map(g => g.dataset.name)"
                       ".filter(n => n)")
    assert {"layer1", "layer2", "layer3", "layer4", "conv1", "fc"} <= set(nodes)
    assert not [n for n in nodes if n.startswith("layer1.")]
    rows = js(loaded, "return Array.from(document.querySelectorAll('#layers tbody tr')).filter(tr => !tr.hidden)"
                      ".map(tr => tr.dataset.name)")
    assert "layer1" in rows and not [n for n in rows if n.startswith("layer1.")]
    assert errors(loaded) == []


def test_clicking_a_row_highlights_its_node_and_the_reverse(loaded: Any) -> None:
    loaded.find_element("css selector", '#layers tr[data-name="layer2.0.conv1"]').click()
    selected = js(loaded, "return Array.from(document.querySelectorAll('#diagram .sel')).map(g => g.dataset.name)")
    assert selected == ["layer2.0.conv1"]
    stroke = js(loaded, "return getComputedStyle(document.querySelector('#diagram g.node.sel path, "
                        "#diagram g.node.sel polygon')).strokeWidth")
    assert stroke == "4px"
    node = loaded.find_element("css selector", '#diagram g.node[data-name="fc"]')
    loaded.execute_script("arguments[0].dispatchEvent(new MouseEvent('click', {bubbles: true}))", node)
    assert js(loaded, "return Array.from(document.querySelectorAll('#layers tr.sel')).map(tr => tr.dataset.name)") \
        == ["fc"]
    assert "Linear" in loaded.find_element("id", "details").text
    assert errors(loaded) == []


def test_details_give_the_window_and_a_units_input_box(loaded: Any) -> None:
    loaded.find_element("css selector", '#layers tr[data-name="conv1"]').click()
    text = loaded.find_element("id", "details").text
    assert "kernel 7×7, stride 2×2, padding 3×3" in text
    # conv1 (k7 s2 p3) on 64x64: 32x32 units; unit i sees input [2i - 3, 2i + 3]. Centre unit 16: [29, 35]
    assert "[29, 35]" in text
    loaded.execute_script("""const inputs = document.querySelectorAll('#details .unit input');
        inputs.forEach(i => { i.value = '0'; i.dispatchEvent(new Event('input')); });""")
    text = loaded.find_element("id", "details").text
    # unit 0: [-3, 3], of which [0, 3] is inside the image (4 pixels, 3 of padding)
    assert "[-3, 3], inside the image [0, 3]: 4 pixels" in text
    assert js(loaded, "return document.querySelectorAll('#details svg.inputgrid rect').length") == 3
    assert errors(loaded) == []


def test_the_page_makes_no_network_request(loaded: Any, page: Path) -> None:
    csp = js(loaded, "return document.querySelector('meta[http-equiv=\"Content-Security-Policy\"]').content")
    assert "default-src 'none'" in csp
    assert js(loaded, "return performance.getEntriesByType('resource').length") == 0
    requests = [json.loads(e["message"])["message"] for e in loaded.get_log("performance")]
    urls = [m["params"]["request"]["url"] for m in requests if m["method"] == "Network.requestWillBeSent"]
    assert all(u.startswith("file://") and u.endswith(page.name) for u in urls), urls
    # and the policy is enforced: a request the page would try is refused by the browser
    blocked = loaded.execute_async_script("""const done = arguments[arguments.length - 1];
        document.addEventListener('securitypolicyviolation', e => done(e.blockedURI));
        const img = new Image(); img.src = 'https://example.com/x.png';""")
    assert blocked.startswith("https://example.com")


def test_without_graphviz_the_page_has_everything_but_the_diagram(
        driver: Any, report: Any, summary: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # neither shutil.which nor graphviz can find `dot`
    target = tmp_path / "nodot.html"
    target.write_text(report.to_html(), encoding="utf-8")
    load(driver, target)
    assert "apt-get install graphviz" in driver.find_element("id", "diagram").text
    assert js(driver, "return document.querySelectorAll('#diagram svg').length") == 0
    assert js(driver, "return document.querySelectorAll('#layers tr.layer').length") == len(summary["layers"])
    driver.find_element("css selector", '#layers tr[data-name="fc"]').click()
    assert "Linear" in driver.find_element("id", "details").text
    assert errors(driver) == []


def test_filter_keeps_the_matching_rows(loaded: Any, summary: dict[str, Any]) -> None:
    box = loaded.find_element("id", "filter")
    box.send_keys("downsample")
    shown = js(loaded, "return Array.from(document.querySelectorAll('#layers tr.layer')).filter(tr => !tr.hidden)"
                       ".map(tr => tr.dataset.name)")
    assert shown == [layer["name"] for layer in summary["layers"] if "downsample" in layer["name"]]
    box.clear()
    box.send_keys("BatchNorm2d")
    shown = js(loaded, "return Array.from(document.querySelectorAll('#layers tr.layer')).filter(tr => !tr.hidden)"
                       ".map(tr => tr.dataset.name)")
    assert shown == [layer["name"] for layer in summary["layers"] if layer["type"] == "BatchNorm2d"]
    assert errors(loaded) == []


def test_colouring_by_parameters(loaded: Any, summary: dict[str, Any]) -> None:
    from selenium.webdriver.support.ui import Select

    Select(loaded.find_element("id", "color-by")).select_by_value("params")
    fill = """return document.querySelector('#diagram g.node[data-name="' + arguments[0] + '"]')
        .querySelector('path, polygon, ellipse').getAttribute('fill')"""
    heaviest = max(summary["layers"], key=lambda layer: layer["params"])
    assert loaded.execute_script(fill, heaviest["name"]) == "rgb(215,48,31)"  # the top of the scale
    assert loaded.execute_script(fill, "relu") == "#ffffff"  # no parameters
    assert "parameters" in loaded.find_element("id", "legend").text
    assert errors(loaded) == []


def test_clicking_a_module_row_highlights_its_cluster(loaded: Any) -> None:
    loaded.find_element("css selector", '#layers tr[data-name="layer3"]').click()
    assert js(loaded, "return Array.from(document.querySelectorAll('#diagram .sel')).map(g => g.getAttribute('class')"
                      " + ' ' + g.dataset.name)") == ["cluster sel layer3"]
    # ResNet-18's layer3: 2 blocks, 4 convs 3x3 and a 1x1 downsample; 256 channels at 4x4 from 64x64 input:
    # 3x3 128->256 at 4x4 (9·128·256·16 = 4,718,592) + 3 of 256->256 (9·256·256·16 = 9,437,184 each)
    # + 1x1 128->256 (128·256·16 = 524,288) = 33,554,432 MACs
    assert "33,554,432" in loaded.find_element("id", "details").text
    assert errors(loaded) == []


def test_a_browser_that_cannot_unpack_the_diagram_shows_the_rest(driver: Any, page: Path,
                                                                 summary: dict[str, Any]) -> None:
    hook = driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument",
                                  {"source": "delete window.DecompressionStream;"})
    try:
        load(driver, page)
        assert "cannot unpack the diagram" in driver.find_element("id", "diagram").text
        assert js(driver, "return document.querySelectorAll('#layers tr.layer').length") == len(summary["layers"])
        assert errors(driver) == []
    finally:
        driver.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", {"identifier": hook["identifier"]})
