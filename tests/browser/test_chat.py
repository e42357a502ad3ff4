"""The chat app in real headless Chromium: ask, read the cited answer, open the citation, give feedback.

Needs Debian's ``chromium`` and ``chromium-driver`` (``apt-get install -y chromium chromium-driver``) and
``selenium``; without them the test fails and says so. The screenshots people look at are made by
``python -m benchmarks.screenshots``, not here.
"""

from __future__ import annotations

import pytest
from helpers.browser import CONTRAST_JS, WAIT_S, ask, screenshot_taken

from qa.app import render
from qa.jsonl import read_jsonl

pytestmark = pytest.mark.browser

QUESTION = "When do primary care trusts go live?"
OFF_CORPUS = "What is the boiling point of liquid nitrogen?"


@pytest.fixture(scope="module")
def qa(bundled_qa):
    return bundled_qa


def test_ask_open_the_citation_and_give_feedback(server, qa, start_browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    browser = start_browser()
    url, feedback = server
    expected = qa.to_json(qa.ask(QUESTION))
    quote = expected["citations"][0]["quote"]
    wait = WebDriverWait(browser, WAIT_S)
    browser.get(url)

    reply = ask(browser, wait, QUESTION, 1)
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

    assert screenshot_taken(browser)

    # A question the documents cannot answer: the plain refusal and the closest passages.
    reply = ask(browser, wait, OFF_CORPUS, 2)
    assert reply.find_element(By.CSS_SELECTOR, ".qa-short").text == render.ABSTAIN_TEXT
    assert reply.find_elements(By.CSS_SELECTOR, ".qa-closest a.qa-link")


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
    reply = ask(browser, wait, QUESTION, 1)
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
            ratio = browser.execute_script(CONTRAST_JS, element)
            assert ratio >= 4.5, f"{selector}: contrast {ratio:.2f}:1 in {theme} mode"
            checked += 1
    assert checked >= 6
