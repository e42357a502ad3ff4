"""A conversation in real headless Chromium: a follow-up that needs the turn before it, a reload that keeps
the chat, Export and copy as plain text, feedback with a correction, and a citation at phone width.

Needs Debian's ``chromium`` and ``chromium-driver`` and ``selenium`` (see test_chat.py). Screenshots (light and
dark, 1280 and 390 px wide) are taken and not kept: ``python -m benchmarks.screenshots`` makes the ones to look at.
"""

from __future__ import annotations

import re
import time

import pytest
from helpers.browser import WAIT_S, screenshot_taken

from qa.jsonl import read_jsonl

pytestmark = pytest.mark.browser

FIRST = "Which Act led to the creation of personal medical services pilots?"
OPENER = "When do primary care trusts go live?"
FOLLOW_UP = "What have they been heralded as?"  # "they": the trusts of the turn before (alone: refused)


def _wait(driver):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_S)


def _ask(driver, question: str, replies: int):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    box = _wait(driver).until(EC.element_to_be_clickable((By.CSS_SELECTOR, "#qa-question textarea")))
    box.send_keys(question)
    driver.find_element(By.CSS_SELECTOR, "#qa-ask").click()
    _wait(driver).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#qa-chat .qa-reply")) >= replies)
    return driver.find_elements(By.CSS_SELECTOR, "#qa-chat .qa-reply")[-1]


def _buttons(driver, label: str):
    from selenium.webdriver.common.by import By

    return [b for b in driver.find_elements(By.CSS_SELECTOR, "#qa-chat button") if b.get_attribute("aria-label") == label]


def _shot(driver, name: str, width: int) -> None:
    """Lays the page out ``width`` px wide and checks it renders (``name`` says which view it is)."""
    driver.set_window_size(width, 1000)
    time.sleep(0.5)
    assert screenshot_taken(driver), name


_HAS_TAG = re.compile(r"</?[a-zA-Z][^>]*>")


def test_a_follow_up_a_reload_export_and_copy(server, bundled_qa, browser):
    from selenium.webdriver.common.by import By

    url, _ = server
    qa = bundled_qa
    first = qa.ask(OPENER)
    in_context = qa.ask(FOLLOW_UP, history=[qa.to_json(first)])
    alone = qa.ask(FOLLOW_UP)
    # The oracle: the follow-up is answered only with the turn before it.
    assert in_context.text and in_context.searched and alone.text != in_context.text

    browser.get(url)
    _ask(browser, OPENER, 1)
    reply = _ask(browser, FOLLOW_UP, 2)
    assert reply.find_element(By.CSS_SELECTOR, ".qa-short strong").text == in_context.text
    searched = reply.find_element(By.CSS_SELECTOR, ".qa-searched").text
    assert searched.startswith("Searched for:") and in_context.searched in searched
    _shot(browser, "conversation-light-1280.png", 1280)

    # A reload keeps the chat, and its context: the next follow-up is still searched with the first turn's terms.
    before = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#qa-chat .qa-reply")]
    cards = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#qa-sources .qa-source")]
    # The oracle for the panel: the follow-up's own passages, by title, in rank order.
    assert [c.split("\n")[1] for c in cards] == [qa.documents[h.passage.doc_id].title for h in in_context.hits]
    browser.refresh()
    _wait(browser).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#qa-chat .qa-reply")) == 2)
    assert [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#qa-chat .qa-reply")] == before
    # ... and the Sources panel beside it: the last answer's cards, as they were.
    _wait(browser).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#qa-sources .qa-source"))
    assert [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#qa-sources .qa-source")] == cards
    third = _ask(browser, "Where have they taken on salaried GPs?", 3)
    added = third.find_element(By.CSS_SELECTOR, ".qa-searched").text.split("salaried GPs?", 1)[1].split()
    assert set(added) & {"primary", "care", "trusts", "live", "heralded"}, added  # words of the earlier questions

    # Export: a Markdown file of plain text with each question, answer, verbatim quote and citation.
    browser.find_element(By.CSS_SELECTOR, "#qa-export").click()
    _wait(browser).until(lambda _: [p for p in browser.downloads.iterdir() if p.suffix == ".md"])
    exported = next(p for p in browser.downloads.iterdir() if p.suffix == ".md").read_text(encoding="utf-8")
    assert not _HAS_TAG.search(exported), "the export holds HTML"
    sections = exported.split("\n\n---\n\n")
    assert len(sections) == 4  # the heading, then three turns
    assert sections[2].startswith(f"**Q:** {FOLLOW_UP}") and f"**A:** {in_context.text}" in sections[2]
    quote = in_context.citations[0]
    document_text = qa.documents[quote.doc_id].text
    assert document_text[quote.start:quote.end] == quote.quote
    assert "\n".join(f"> {line}".rstrip() for line in quote.quote.strip().splitlines()) in sections[2]
    assert f"— [1] {quote.title}, {quote.location}" in sections[2]

    # Copy: the second reply's copy button writes exactly that turn's exported text, never HTML.
    browser.execute_script("window.__copied = []; navigator.clipboard.writeText = async (t) => { window.__copied.push(t); };")
    copy = _buttons(browser, "Copy message")
    assert len(copy) == 6  # three questions, three replies
    copy[3].click()  # the follow-up's reply
    _wait(browser).until(lambda d: d.execute_script("return window.__copied.length") == 1)
    copied = browser.execute_script("return window.__copied[0]")
    assert copied == sections[2].rstrip("\n")
    copy[2].click()  # the follow-up question itself: its text
    _wait(browser).until(lambda d: d.execute_script("return window.__copied.length") == 2)
    assert browser.execute_script("return window.__copied[1]") == FOLLOW_UP


def test_feedback_is_confirmed_in_the_page_and_takes_a_correction(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    url, feedback = server
    browser.get(url)
    _ask(browser, FIRST, 1)
    _buttons(browser, "Dislike")[-1].click()
    note = _wait(browser).until(EC.visibility_of_element_located((By.CSS_SELECTOR, "#qa-feedback-note .qa-feedback-saved")))
    assert "saved" in note.text and str(feedback) in note.text
    rows_before = len(read_jsonl(feedback))
    box = browser.find_element(By.CSS_SELECTOR, "#qa-correction textarea, #qa-correction input")
    box.send_keys("NHS (Primary Care) Act")
    browser.find_element(By.CSS_SELECTOR, "#qa-send-correction").click()
    _wait(browser).until(lambda _: len(read_jsonl(feedback)) == rows_before + 1)
    row = read_jsonl(feedback)[-1]
    assert (row["question"], row["rating"], row["correction"], row["answers"]) == (
        FIRST, "down", "NHS (Primary Care) Act", ["NHS (Primary Care) Act"])
    _wait(browser).until(lambda d: "correction" in d.find_element(By.CSS_SELECTOR, "#qa-feedback-note").text)
    # Settings say where the feedback file is.
    browser.find_element(By.XPATH, "//button[@role='tab' and normalize-space()='Settings']").click()
    where = _wait(browser).until(EC.visibility_of_element_located((By.CSS_SELECTOR, "#qa-feedback-file")))
    assert str(feedback.resolve()) in where.text


def test_at_phone_width_a_citation_brings_the_viewer_into_view(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    url, _ = server
    browser.set_window_size(390, 844)
    browser.get(url)
    reply = _ask(browser, FIRST, 1)
    _shot(browser, "chat-light-390.png", 390)
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", reply)
    reply.find_element(By.CSS_SELECTOR, "a.qa-cite").click()
    focus = _wait(browser).until(EC.visibility_of_element_located((By.CSS_SELECTOR, "#qa-viewer mark#qa-focus")))
    _wait(browser).until(lambda d: d.execute_script(
        "const r = arguments[0].getBoundingClientRect(); return r.bottom > 0 && r.top < window.innerHeight;", focus))


@pytest.mark.parametrize("width", [1280, 390])
def test_dark_mode_screenshots(server, browser, width):
    from selenium.webdriver.common.by import By

    url, _ = server
    browser.set_window_size(width, 1000)
    browser.get(url.rstrip("/") + "/?__theme=dark")
    _ask(browser, OPENER, 1)
    reply = _ask(browser, FOLLOW_UP, 2)
    assert browser.execute_script("return document.body.classList.contains('dark') || "
                                  "document.documentElement.classList.contains('dark')"), "not in dark mode"
    assert reply.find_element(By.CSS_SELECTOR, ".qa-searched").is_displayed()
    _shot(browser, f"conversation-dark-{width}.png", width)


# The page's own geometry at phone width, as [left, top, right, bottom] in CSS px; `inner` is the content box.
_BOX = "const r = arguments[0].getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom];"
_CLEAR_ICON_OVER_MESSAGES = """
const icon = document.querySelector('#qa-chat .top-panel button, #qa-chat button[aria-label="Clear"]');
const scroller = document.querySelector('#qa-chat .bubble-wrap');
const seen = scroller.getBoundingClientRect();
const a = icon.getBoundingClientRect();
const hits = [];
for (let top = 0; top <= scroller.scrollHeight; top += 4) {  // every place the chat can be scrolled to
  scroller.scrollTop = top;
  for (const row of scroller.querySelectorAll('.message-row, .message-buttons')) {
    const b = row.getBoundingClientRect();
    // The part of the message the scroller shows; the part scrolled out of it is hidden, not covered.
    const t = Math.max(b.top, seen.top), btm = Math.min(b.bottom, seen.bottom);
    if (btm > t && a.left < b.right && b.left < a.right && a.top < btm && t < a.bottom) hits.push(row.innerText.slice(0, 40));
  }
}
return [...new Set(hits)];
"""


def test_at_phone_width_nothing_covers_anything(server, browser):
    """At 390 x 844: the empty question box shows its whole hint, the chat's Clear icon covers no message
    wherever the chat is scrolled, the document picker's text stops before its arrow, and the viewer's info
    line ends above the document's text. The oracle is the laid-out page (bounding boxes), not the CSS."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    url, _ = server
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True})
    browser.get(url)
    box = _wait(browser).until(EC.element_to_be_clickable((By.CSS_SELECTOR, "#qa-question textarea")))
    time.sleep(0.5)
    shown, needed = browser.execute_script("return [arguments[0].clientHeight, arguments[0].scrollHeight]", box)
    assert box.get_attribute("placeholder") and needed <= shown, f"the hint needs {needed} px, the box shows {shown}"

    _ask(browser, OPENER, 1)
    _ask(browser, "Who is the chief executive of NHS North West?", 2)  # cites a document with a long title
    assert browser.execute_script(_CLEAR_ICON_OVER_MESSAGES) == []

    browser.execute_script("const all = document.querySelectorAll('#qa-chat .qa-reply a.qa-cite'); "
                           "all[all.length - 1].click();")
    _wait(browser).until(EC.visibility_of_element_located((By.CSS_SELECTOR, "#qa-viewer mark#qa-focus")))
    title = browser.find_element(By.CSS_SELECTOR, "#qa-doc-picker input")
    arrow = browser.find_element(By.CSS_SELECTOR, "#qa-doc-picker .icon-wrap")
    text_right = browser.execute_script(_BOX, title)[2] - float(title.value_of_css_property("padding-right")[:-2])
    assert browser.execute_script("return arguments[0].scrollWidth > arguments[0].clientWidth", title), \
        "the title fits: the check below proves nothing"
    assert text_right <= browser.execute_script(_BOX, arrow)[0]
    meta = browser.execute_script(_BOX, browser.find_element(By.CSS_SELECTOR, "#qa-viewer .qa-doc-meta"))
    text = browser.execute_script(_BOX, browser.find_element(By.CSS_SELECTOR, "#qa-viewer .qa-doc-text"))
    assert text[1] - meta[3] >= 6, f"the info line ends at {meta[3]} px, the text starts at {text[1]} px"
