"""reports/explanations/index.html: built from cases.json with relative links and nothing from the network;
rendered in headless Chromium, every image loads and the filters work."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from fpnpipe.explain.html import render_index, report_document
from tests.test_explain_stage import build_world

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1600,1200",
)


def _case(image_id: str, true: str, predicted: str, figure: str | None) -> dict:
    probabilities = {"circumscribed": 0.1, "indistinct": 0.2, "spiculated": 0.3, "negative": 0.4}
    return {"image_id": image_id, "true": true, "predicted": predicted, "correct": true == predicted,
            "probabilities": probabilities, "figure": figure, "rows": []}


def test_page_escapes_ids_links_relatively_and_loads_nothing_from_outside() -> None:
    cases = [_case('x"><script>alert(1)</script>', "negative", "negative", "cases/01_x.png"),
             _case("b", "spiculated", "negative", "cases/02_b.png")]
    page = render_index(report_document("fpn_iaiabl", 8, 10, "how <chosen>", None, cases,
                                        [{"level": 3, "figure": "gallery_level_3.png"}]))
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page
    assert "how &lt;chosen&gt;" in page
    refs = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert set(refs) == {"cases/01_x.png", "cases/02_b.png", "gallery_level_3.png", "#level-3"}
    assert not re.search(r"https?:|//|<link|@import|url\(", page.replace("<!DOCTYPE html>", ""))
    assert page.count('<article class="case"') == 2
    assert 'data-true="spiculated" data-predicted="negative" data-outcome="wrong"' in page
    assert "This spiculated lesion is wrongly classified as negative (no lesion)." in page


def _browser_or_skip():
    """A headless Chromium WebDriver, or a skip that says what is missing."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("browser test skipped: the selenium package is not installed (uv sync installs the dev group)")
    browser = next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        missing = " and ".join(n for n, p in (("chromium", browser), ("chromedriver", driver)) if p is None)
        pytest.skip(f"browser test skipped: no {missing} on PATH; on Debian run "
                    "`apt-get install chromium chromium-driver` (.ci/run does this)")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='fpnpipe-chromium-')}")
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


def test_page_opens_from_the_file_system_with_every_image_loaded(in_tmp: Path, run_stage) -> None:
    browser = _browser_or_skip()
    from selenium.webdriver.support.ui import Select, WebDriverWait

    try:
        build_world(in_tmp, explain={"n_cases": 4, "dpi": 50})
        assert run_stage("explain", "--params", "params.yaml").exit_code == 0
        out = in_tmp / "reports/explanations"
        doc = json.loads((out / "cases.json").read_text())
        browser.set_page_load_timeout(30)
        browser.get((out / "index.html").as_uri())
        WebDriverWait(browser, 20).until(
            lambda b: b.execute_script("return Array.from(document.images).every(i => i.complete)")
        )
        images = browser.execute_script(
            "return Array.from(document.images).map(i => [i.getAttribute('src'), i.naturalWidth, i.naturalHeight])"
        )
        expected = {c["figure"] for c in doc["cases"]} | {g["figure"] for g in doc["gallery"]}
        assert {src for src, _, _ in images} == expected and len(images) == len(expected) == 4 + 4
        broken = [src for src, w, h in images if w == 0 or h == 0]
        assert not broken, f"images that did not load: {broken}"
        resources = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert all(name.startswith("file://") for name in resources), resources

        def shown() -> list[str]:
            return browser.execute_script(
                "return Array.from(document.querySelectorAll('article.case')).filter(a => !a.hidden)"
                ".map(a => a.dataset.true + '/' + a.dataset.outcome)"
            )

        assert len(shown()) == 4
        Select(browser.find_element("id", "filter-outcome")).select_by_value("wrong")
        wrong = [c for c in doc["cases"] if not c["correct"]]
        assert len(shown()) == len(wrong) and all(s.endswith("/wrong") for s in shown())
        assert browser.find_element("id", "shown-count").text == f"{len(wrong)} of 4 cases shown"
        Select(browser.find_element("id", "filter-outcome")).select_by_value("all")
        true_class = doc["cases"][0]["true"]
        Select(browser.find_element("id", "filter-true")).select_by_value(true_class)
        assert shown() and all(s.startswith(true_class + "/") for s in shown())
        assert len(shown()) == sum(c["true"] == true_class for c in doc["cases"])
    finally:
        browser.quit()
