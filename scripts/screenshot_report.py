"""Screenshots of the HTML report (docs/img/report-*.png), taken with headless Chromium.

    python scripts/screenshot_report.py            # ResNet-50 at 1x3x224x224

Needs selenium and Debian's ``chromium`` + ``chromium-driver`` (or another Chrome and its driver on
PATH). Writes the page to a temporary file, opens it with the network off, and saves the overview,
a layer's details with a unit's input box, and the page at depth 1 (ResNet's stages as one node).
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMG = ROOT / "docs" / "img"


def browser(width: int = 1600, height: int = 1100):  # noqa: ANN201  (a selenium WebDriver)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", "--host-resolver-rules=MAP * ~NOTFOUND",
                "--force-device-scale-factor=1"):
        options.add_argument(arg)
    options.binary_location = "/usr/bin/chromium"
    return webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))


def shown(driver, depth: int) -> None:  # noqa: ANN001
    """Wait until the page shows the diagram at ``depth`` (it unpacks it asynchronously)."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 10).until(
        lambda d: d.execute_script("return document.getElementById('diagram').dataset.depth") == str(depth))


def main() -> None:
    from selenium.webdriver.common.by import By

    page = Path(tempfile.mkdtemp()) / "resnet50.html"
    subprocess.run([sys.executable, "-m", "cnnshape", "report", "examples/resnet.py:ResNet50",
                    "--input", "1,3,224,224", "-o", str(page)], cwd=ROOT, check=True)
    driver = browser()
    try:
        driver.get(page.as_uri())
        shown(driver, 0)
        driver.save_screenshot(str(IMG / "report-resnet50.png"))
        driver.find_element(By.CSS_SELECTOR, '#layers tr[data-name="layer3.0.conv2"]').click()
        # a unit near the corner: its box reaches into the padding (dashed)
        driver.execute_script("""document.querySelectorAll('#details .unit input').forEach(i => {
            i.value = '1'; i.dispatchEvent(new Event('input')); });""")
        time.sleep(0.3)
        driver.save_screenshot(str(IMG / "report-resnet50-details.png"))
        driver.find_element(By.ID, "collapse-all").click()
        shown(driver, 1)
        driver.find_element(By.CSS_SELECTOR, '#layers tr[data-name="layer3"]').click()
        time.sleep(0.3)
        driver.save_screenshot(str(IMG / "report-resnet50-collapsed.png"))
    finally:
        driver.quit()
    print("wrote", *(p.name for p in sorted(IMG.glob("report-resnet50*.png"))))


if __name__ == "__main__":
    main()
