"""The report in a real browser: headless Chromium (Debian packages chromium, chromium-driver)
opens index.html; the headline table comes first, no tied column carries a best mark, every
link resolves to a file inside the report folder, images render, the console stays clean, a
<script> prompt is text.

Skips (with the reason) where Chromium, chromedriver or selenium is missing.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from test_report import EVIL_PROMPT, make_runs
from test_report_headline import make_comparison

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

    runs = [*make_runs(tmp_path / "runs").values(), *make_comparison(tmp_path / "cmp").values()]
    out = tmp_path / "reports" / "demo"
    write_report(runs, out)

    browser.get((out / "index.html").resolve().as_uri())
    assert browser.execute_script("return document.readyState") == "complete"

    tables = browser.find_elements(By.TAG_NAME, "table")
    assert len(tables) >= 6  # headline, recon, train-gen, ..., GenEval samples, runs
    headline = tables[0]
    assert headline.get_attribute("data-table") == "headline"
    columns = [th.get_attribute("data-column") for th in headline.find_elements(By.TAG_NAME, "th")]
    assert {"psnr", "ssim", "lpips", "gen_fd", "geneval"} <= set(columns) and len(columns) <= 11
    assert headline.find_elements(By.CSS_SELECTOR, "td.best")
    assert "\u00b1" in headline.text
    check_marks(browser, By)
    check_links(browser, By, out)

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


def check_marks(browser, By) -> None:
    """A column whose verdict is a tie (or all equal, or without intervals) has no best mark;
    a column with a best mark has exactly one, and says whose it is."""
    seen_tie = False
    for table in browser.find_elements(By.CSS_SELECTOR, "table.metrics"):
        foot = table.find_elements(By.CSS_SELECTOR, "tr.verdict td")
        if not foot:
            continue
        verdicts = [td.text for td in foot[1:]]
        keys = [th.get_attribute("data-column") for th in table.find_elements(By.CSS_SELECTOR,
                "thead th[data-column]")]  # fmt: skip
        assert len(keys) == len(verdicts)
        for key, verdict in zip(keys, verdicts):
            cells = table.find_elements(By.CSS_SELECTOR, f'tbody td[data-column="{key}"]')
            best = [td for td in cells if "best" in (td.get_attribute("class") or "")]
            stars = [td for td in cells if "\u2605" in td.text]
            if verdict.endswith("best beyond the intervals"):
                assert len(best) == 1 and stars == best, key
            else:
                assert not best and not stars, (key, verdict)
            seen_tie |= verdict.startswith("tie:")
    assert seen_tie  # the fixture has a tied column


def check_links(browser, By, out: Path) -> None:
    """Every link on the page opens a file inside the report folder."""
    root = out.resolve()
    hrefs = [a.get_attribute("href") for a in browser.find_elements(By.TAG_NAME, "a")]
    assert len(hrefs) > 20
    for href in hrefs:
        url = urlparse(href)
        assert url.scheme == "file", href
        path = Path(unquote(url.path)).resolve()
        assert root in path.parents and path.is_file(), href
