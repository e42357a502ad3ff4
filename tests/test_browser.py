"""The chat app in real headless Chromium: ask, read the cited answer, open the citation, give feedback.

Needs Debian's ``chromium`` and ``chromium-driver`` (``apt-get install -y chromium chromium-driver``) and
``selenium``; without them the test fails and says so. Set ``QA_SCREENSHOT=docs/screenshot.png`` to keep
the screenshot it takes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from qa.app import render, ui
from qa.app.feedback import FeedbackLog
from qa.jsonl import read_jsonl

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
QUESTION = "When do primary care trusts go live?"
OFF_CORPUS = "What is the boiling point of liquid nitrogen?"
WAIT_S = 120  # the first answer may wait for the models on a busy CPU


@pytest.fixture(scope="module")
def qa(bundled_qa):
    return bundled_qa


@pytest.fixture(scope="module")
def server(qa, tmp_path_factory):
    from benchmarks.loadtest import free_port

    feedback = tmp_path_factory.mktemp("feedback") / "feedback.jsonl"
    app = ui.build_app(qa, FeedbackLog(feedback), ui.BUNDLED_EXAMPLES, corpus_name="seeds")
    url = ui.launch(app, port=free_port(), block=False)
    yield url, feedback
    app.close()


@pytest.fixture()
def start_browser():
    """Starts headless Chromium when the test calls it, so a missing browser fails the test itself."""
    started = []

    def start():
        missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
        if missing:
            pytest.fail(f"Chromium is not installed ({', '.join(missing)} missing): "
                        "run `apt-get install -y chromium chromium-driver`.", pytrace=False)
        try:
            from selenium import webdriver
            from selenium.webdriver.chrome.service import Service
        except ImportError:
            pytest.fail("selenium is not installed: run `pip install selenium`.", pytrace=False)
        profile = tempfile.mkdtemp(prefix="qa-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1440,1000"):
            options.add_argument(flag)
        started.append((webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options), profile))
        return started[-1][0]

    yield start
    for driver, profile in started:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _ask(driver, wait, question: str, replies: int):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    box = wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, "#qa-question textarea")))
    box.send_keys(question)
    driver.find_element(By.CSS_SELECTOR, "#qa-ask").click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#qa-chat .qa-reply")) >= replies)
    return driver.find_elements(By.CSS_SELECTOR, "#qa-chat .qa-reply")[-1]


def test_ask_open_the_citation_and_give_feedback(server, qa, start_browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    browser = start_browser()
    url, feedback = server
    expected = qa.to_json(qa.ask(QUESTION))
    quote = expected["citations"][0]["quote"]
    wait = WebDriverWait(browser, WAIT_S)
    browser.get(url)

    reply = _ask(browser, wait, QUESTION, 1)
    assert reply.find_element(By.CSS_SELECTOR, ".qa-short strong").text == "April 2000"
    assert reply.find_element(By.CSS_SELECTOR, ".qa-evidence mark").text == "April 2000"
    cite = reply.find_element(By.CSS_SELECTOR, "a.qa-cite")
    assert cite.is_displayed() and cite.text.startswith("[1]") and expected["citations"][0]["title"] in cite.text
    assert "confidence" in reply.find_element(By.CSS_SELECTOR, ".qa-conf").text
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#qa-sources a.qa-source"))

    # Thumbs up on the answer: one feedback row rating it (not a gold label: nobody confirmed it).
    like = [b for b in browser.find_elements(By.CSS_SELECTOR, "#qa-chat button") if b.get_attribute("aria-label") == "Like"]
    assert like, "no thumbs-up button on the answer"
    like[-1].click()
    wait.until(lambda _: feedback.is_file() and feedback.read_text(encoding="utf-8").strip())
    row = read_jsonl(feedback)[-1]
    assert (row["question"], row["rating"], row["answer"], row["abstained"]) == (QUESTION, "up", "April 2000", False)
    assert (row["answers"], row["correction"], row["kind"]) == ([], None, "feedback")

    # The citation opens the whole document with the cited sentence highlighted and in view.
    cite.click()
    focus = wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, "#qa-viewer mark#qa-focus")))
    assert " ".join(focus.text.split()) == " ".join(quote.split())
    assert focus.find_element(By.CSS_SELECTOR, "mark.qa-hit").text == "April 2000"
    title = browser.find_element(By.CSS_SELECTOR, "#qa-viewer .qa-doc-head h3").text
    assert title == expected["citations"][0]["title"]
    in_view = browser.execute_script(
        "const m = arguments[0], box = m.closest('.qa-doc-text');"
        "const r = m.getBoundingClientRect(), b = box.getBoundingClientRect();"
        "return r.top >= b.top - 1 && r.top < b.bottom && r.top >= 0 && r.top < window.innerHeight;", focus)
    assert in_view, "the highlighted span is not scrolled into view"

    shot = tmp_path / "app.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    if os.environ.get("QA_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["QA_SCREENSHOT"])

    # A question the documents cannot answer: the plain refusal and the closest passages.
    reply = _ask(browser, wait, OFF_CORPUS, 2)
    assert reply.find_element(By.CSS_SELECTOR, ".qa-short").text == render.ABSTAIN_TEXT
    assert reply.find_elements(By.CSS_SELECTOR, ".qa-closest a.qa-link")


_CONTRAST_JS = """
function rgb(s) { const m = s.match(/[\\d.]+/g).map(Number); return m.length > 3 ? m : [...m, 1]; }
function lum(c) { const [r, g, b] = c.slice(0, 3).map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b; }
function background(el) { for (; el; el = el.parentElement) { const c = rgb(getComputedStyle(el).backgroundColor); if (c[3] > 0.5) return c; } return [255, 255, 255, 1]; }
const el = arguments[0], fg = rgb(getComputedStyle(el).color), bg = background(el);
const a = lum(fg), b = lum(bg);
return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
"""


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_highlights_and_labels_are_readable_in_light_and_dark_mode(server, start_browser, theme):
    """Every highlight (the answer in the chat, in the source cards and in the viewer, and the cited
    sentence) and every coloured label (a source's "answer" badge, the search that found it) keeps a WCAG
    contrast of at least 4.5:1 between its computed text and background colours, in light mode and with
    the operating system in dark mode."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    browser = start_browser()
    url, _ = server
    wait = WebDriverWait(browser, WAIT_S)
    browser.get(url.rstrip("/") + ("/?__theme=dark" if theme == "dark" else "/?__theme=light"))
    reply = _ask(browser, wait, QUESTION, 1)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#qa-sources mark"))
    reply.find_element(By.CSS_SELECTOR, "a.qa-cite").click()
    wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, "#qa-viewer mark#qa-focus")))
    dark = browser.execute_script("return document.body.classList.contains('dark') || "
                                  "document.documentElement.classList.contains('dark')")
    assert dark == (theme == "dark"), f"not in {theme} mode"
    checked = 0
    for selector in (".qa-evidence mark", "#qa-sources mark", "#qa-viewer mark#qa-focus", "#qa-viewer mark.qa-hit",
                     "#qa-sources .qa-badge", "#qa-sources .qa-found"):
        elements = browser.find_elements(By.CSS_SELECTOR, selector)[:3]
        assert elements, selector
        for element in elements:
            ratio = browser.execute_script(_CONTRAST_JS, element)
            assert ratio >= 4.5, f"{selector}: contrast {ratio:.2f}:1 in {theme} mode"
            checked += 1
    assert checked >= 6
