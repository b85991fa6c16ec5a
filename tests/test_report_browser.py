"""The report in a real browser: headless Chromium (Debian packages chromium, chromium-driver)
opens index.html; tables and images render, the console stays clean, a <script> prompt is text.

Skips (with the reason) where Chromium, chromedriver or selenium is missing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from test_report import EVIL_PROMPT, make_runs

from latentbench.report import write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")

pytestmark = [
    pytest.mark.skipif(
        CHROMIUM is None, reason="chromium not found (Debian: apt-get install chromium)"
    ),
    pytest.mark.skipif(
        CHROMEDRIVER is None,
        reason="chromedriver not found (Debian: apt-get install chromium-driver)",
    ),
]

FLAGS = (
    "--headless=new",
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,2400",
)


@pytest.fixture
def browser(tmp_path: Path):
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.mark.timeout(60)
def test_report_renders_in_chromium(browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    runs = make_runs(tmp_path / "runs")
    out = tmp_path / "reports" / "demo"
    write_report(list(runs.values()), out)

    browser.get((out / "index.html").resolve().as_uri())
    assert browser.execute_script("return document.readyState") == "complete"

    tables = browser.find_elements(By.TAG_NAME, "table")
    assert len(tables) >= 5  # recon, train-gen, eval-gen, generic, GenEval samples, runs
    headers = [th.text for th in browser.find_elements(By.TAG_NAME, "th")]
    assert any(h.startswith("psnr\u2191") for h in headers)
    assert any(h.startswith("rfid\u2193") for h in headers)
    assert browser.find_elements(By.CSS_SELECTOR, "td.best")

    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.alt])"
    )
    assert len(images) >= 10
    broken = [alt for complete, width, alt in images if not complete or width == 0]
    assert not broken, f"broken images: {broken}"

    # The prompt shows as text and did not run; the HTML space name did not become an <img>.
    body = browser.find_element(By.TAG_NAME, "body").text
    assert EVIL_PROMPT in body
    assert browser.execute_script("return window.__pwned === undefined")
    assert browser.title == "latentbench report: demo"

    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert not errors, errors

    shot = tmp_path / "report.png"  # look at it: pytest --basetemp=DIR keeps it
    assert browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
