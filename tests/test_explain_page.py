"""reports/explanations/index.html: built from cases.json with relative links and nothing from the network;
rendered in headless Chromium, every image loads and the filters work."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
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
                                        [{"level": 3, "figure": "gallery_level_3.png"}],
                                        links=[{"href": "../compare/index.html", "title": "baselines"}]))
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page
    assert "how &lt;chosen&gt;" in page
    refs = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert set(refs) - {"#results", "#plots", "#cases", "#crops", "#gallery"} == {
        "cases/01_x.png", "cases/02_b.png", "gallery_level_3.png", "#level-3", "../compare/index.html"}
    assert not re.search(r"https?:|//|<link|@import|url\(", page.replace("<!DOCTYPE html>", ""))
    assert page.count('<article class="case"') == 2
    assert 'data-true="spiculated" data-predicted="negative" data-outcome="wrong"' in page
    assert "This spiculated lesion is wrongly classified as negative (no lesion)." in page


def _load_every_image(browser) -> None:
    """Make the page's lazily loaded images load now, and wait until every image has."""
    from selenium.webdriver.support.ui import WebDriverWait

    browser.execute_script("document.querySelectorAll('img[loading=lazy]').forEach(i => { i.loading = 'eager'; })")
    WebDriverWait(browser, 30).until(
        lambda b: b.execute_script("return Array.from(document.images).every(i => i.complete)")
    )


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
    from selenium.webdriver.support.ui import Select

    try:
        build_world(in_tmp, explain={"n_cases": 4, "dpi": 50})
        assert run_stage("explain", "--params", "params.yaml").exit_code == 0
        out = in_tmp / "reports/explanations"
        doc = json.loads((out / "cases.json").read_text())
        browser.set_page_load_timeout(30)
        browser.get((out / "index.html").as_uri())
        _load_every_image(browser)
        images = browser.execute_script(
            "return Array.from(document.images).map(i => [i.getAttribute('src'), i.naturalWidth, i.naturalHeight])"
        )
        expected = ({c["figure"] for c in doc["cases"]} | {g["figure"] for g in doc["gallery"]}
                    | {c["strip"] for c in doc["crops"]} | {p["figure"] for p in doc["prototypes"] if p["figure"]})
        assert {src for src, _, _ in images} == expected
        assert len({c["figure"] for c in doc["cases"]}) == 4 and len(doc["gallery"]) == 4 and len(doc["crops"]) == 12
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


def test_plots_and_mammograms_render_with_the_network_off(report: Path) -> None:
    """The report of a world with DVCLive curves, evaluate's plot files and thumbnails, opened in Chromium
    with the network disabled: the plots load and are not blank, the crop box sits on its mammogram, and a
    case row's prototype link leads to that prototype's entry."""
    browser = _browser_or_skip()
    import io

    from PIL import Image

    try:
        browser.set_network_conditions(offline=True, latency=0, download_throughput=0, upload_throughput=0)
        out = report
        doc = json.loads((out / "cases.json").read_text())
        browser.set_page_load_timeout(30)
        browser.get((out / "index.html").as_uri())
        _load_every_image(browser)
        broken = browser.execute_script(
            "return Array.from(document.images).filter(i => i.naturalWidth === 0).map(i => i.getAttribute('src'))")
        assert not broken, f"images that did not load: {broken}"
        resources = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert all(name.startswith("file://") for name in resources), resources
        plots = browser.find_elements("css selector", "figure.plot img")
        assert len(plots) == len(doc["plots"]) == 4
        for element in plots:
            browser.execute_script("arguments[0].scrollIntoView()", element)
            shot = Image.open(io.BytesIO(element.screenshot_as_png)).convert("L")
            pixels = np.asarray(shot, dtype=float)
            assert shot.width > 200 and pixels.std() > 10, element.get_attribute("src")  # drawn, not blank
            assert (pixels < 128).mean() > 0.005  # lines and text, not an empty white frame
        # The crop box on the first crop's mammogram, where cases.json says (percent of the thumbnail).
        first = doc["crops"][0]
        image_rect, box_rect = browser.execute_script(
            "var t = document.querySelector('#crop-1 .thumb'); var r = e => e.getBoundingClientRect();"
            "return [r(t.querySelector('img')), r(t.querySelector('.box'))]"
            ".map(b => [b.left, b.top, b.width, b.height]);")
        left, top, width, _ = first["source"]["box"]
        assert box_rect[0] - image_rect[0] == pytest.approx(image_rect[2] * left / 100, abs=1.5)
        assert box_rect[1] - image_rect[1] == pytest.approx(image_rect[3] * top / 100, abs=1.5)
        assert box_rect[2] == pytest.approx(image_rect[2] * width / 100, abs=1.5)
        # Following a case row's link to its top prototype lands on that prototype's entry.
        target = first["rows"][0]["prototype"]
        link = browser.find_element("css selector", f'#crop-1 a[href="#prototype-{target}"]')
        browser.execute_script("arguments[0].scrollIntoView()", link)
        link.click()
        assert browser.execute_script("return location.hash") == f"#prototype-{target}"
        top = browser.execute_script(
            f"return document.getElementById('prototype-{target}').getBoundingClientRect().top")
        assert 0 <= top < browser.execute_script("return window.innerHeight")
    finally:
        browser.quit()
