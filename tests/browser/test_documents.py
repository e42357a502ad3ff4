"""Documents managed in the browser, in real headless Chromium: upload then ask, delete then ask again, bad
uploads refused, an upload's progress bar while the chat answers, every tab in reach at phone width, the
per-document filter, a PDF citation on its page image, and the highlights readable in dark mode.

The app serves a folder of its own (two small documents) with the real encoder and reader; the answer
threshold is lowered to 0.05 so the reader's answers on these tiny one-fact files are shown (these tests
are about documents and citations, not calibration). Screenshots (light and dark, 1280 and 390 px wide) are
taken and not kept: ``python -m benchmarks.screenshots`` makes the ones to look at.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from helpers.browser import CONTRAST_JS, WAIT_S, ask, screenshot_taken
from helpers.corpus import minimal_pdf

from qa.app.documents import DocumentLibrary
from qa.ingest.documents import corpus_files

pytestmark = [pytest.mark.browser, pytest.mark.integration]

HARBOUR = ("Harbour notes\n\nThe harbour master of Tobermory is Ewan MacLeod. The harbour was built in 1788 by "
           "the British Fisheries Society.\n")
LIBRARY = ("# Town library\n\nThe town library opens at 10 am on Saturdays. It holds **twelve thousand** books and "
           "a local archive.\n\n## Membership\n\n- Adults pay nothing.\n- Visitors pay two pounds a year.\n")
FERRY = "Ferry timetable\n\nThe ferry to Mull leaves Oban at 9 am every morning, and returns at noon.\n"
PDF_PAGES = ["Island ferry report, cover page.", "The night ferry to Barra leaves Oban at 11 pm on Fridays."]


@pytest.fixture(scope="module")
def served(tmp_path_factory, serve_app):
    from qa import QA, build_index

    root = tmp_path_factory.mktemp("served")
    docs = root / "docs"
    docs.mkdir()
    (docs / "harbour.txt").write_text(HARBOUR, encoding="utf-8")
    (docs / "library.md").write_text(LIBRARY, encoding="utf-8")
    build_index(docs, root / "index")
    qa = QA.load(root / "index", threshold=0.05)
    library = DocumentLibrary(qa, docs, root / "index")
    url, _ = serve_app(qa, root / "feedback.jsonl", corpus_name="docs", library=library)
    return url, docs, library, root


def _shot(browser, name: str) -> None:
    """Checks the page renders (``name`` says which view it is)."""
    assert screenshot_taken(browser), name


def _open_page(start_browser, url: str, documents_tab: bool = True):
    """A fresh browser at 1280 x 900 on ``url``, on the Documents tab unless told otherwise; (browser, wait)."""
    from selenium.webdriver.support.ui import WebDriverWait

    browser = start_browser()
    wait = WebDriverWait(browser, WAIT_S)
    browser.set_window_size(1280, 900)
    browser.get(url)
    if documents_tab:
        _documents_tab(browser, wait)
    return browser, wait


def _documents_tab(browser, wait):
    from selenium.webdriver.common.by import By

    tab = wait.until(lambda d: next((b for b in d.find_elements(By.CSS_SELECTOR, "button[role=tab]")
                                     if b.text.strip() == "Documents"), None))
    tab.click()
    return wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#qa-library .qa-lib-list"))


def _files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones too: the app's record and trash), by relative path."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _file_input(browser, wait):
    from selenium.webdriver.common.by import By

    return wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#qa-upload input[type=file]"))


def _header_count(browser) -> int:
    """The number of documents the page's header says the chat answers from."""
    import re

    from selenium.webdriver.common.by import By

    said = re.search(r"from ([\d,]+) indexed documents?", browser.find_element(By.CSS_SELECTOR, "#qa-header").text)
    assert said, browser.find_element(By.CSS_SELECTOR, "#qa-header").text
    return int(said.group(1).replace(",", ""))


def _cited_titles(reply) -> list[str]:
    from selenium.webdriver.common.by import By

    return [a.text for a in reply.find_elements(By.CSS_SELECTOR, "a.qa-cite")]


def test_upload_then_ask_then_delete_then_it_is_no_longer_cited(served, start_browser, tmp_path):
    from selenium.webdriver.common.by import By

    url, docs, library, _ = served
    browser, wait = _open_page(start_browser, url)
    before = len(corpus_files(docs))
    assert _header_count(browser) == before
    upload = tmp_path / "ferry.txt"
    upload.write_text(FERRY, encoding="utf-8")
    _file_input(browser, wait).send_keys(str(upload))
    status = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#qa-lib-status .qa-status-ok"))
    assert status.text.startswith('Indexed "Ferry timetable" (ferry.txt)')
    assert (docs / "ferry.txt").read_text(encoding="utf-8") == FERRY  # in the served folder, as uploaded
    row = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, '#qa-library li[data-doc="ferry"]'))
    assert "Ferry timetable" in row.text and "uploaded here" in row.text and "2 paragraphs" in row.text
    # The header counts the documents the chat answers from now: the files in the folder.
    wait.until(lambda d: _header_count(d) == len(corpus_files(docs)) == before + 1)
    _shot(browser, "documents-light-1280")

    reply = ask(browser, wait, "When does the ferry to Mull leave Oban?", 1)
    assert "9 am" in reply.find_element(By.CSS_SELECTOR, ".qa-short strong").text
    assert any(t.startswith("[1] Ferry timetable") for t in _cited_titles(reply))
    assert "9 am" in reply.find_element(By.CSS_SELECTOR, ".qa-evidence").text

    _documents_tab(browser, wait)
    browser.find_element(By.CSS_SELECTOR, '#qa-library li[data-doc="ferry"] a.qa-lib-delete').click()
    status = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#qa-lib-status .qa-status-ok"))
    wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, '#qa-library li[data-doc="ferry"]'))
    assert 'Deleted "Ferry timetable"' in browser.find_element(By.CSS_SELECTOR, "#qa-lib-status").text
    assert not (docs / "ferry.txt").exists()
    wait.until(lambda d: _header_count(d) == len(corpus_files(docs)) == before)
    reply = ask(browser, wait, "When does the ferry to Mull leave Oban at 9 am?", 2)
    assert not any("Ferry timetable" in t for t in _cited_titles(reply))
    assert "Ferry timetable" not in browser.find_element(By.CSS_SELECTOR, "#qa-sources").text


def test_bad_uploads_in_the_page_are_refused_with_a_clear_message_and_change_nothing(served, start_browser,
                                                                                     tmp_path):
    from selenium.webdriver.common.by import By

    url, docs, library, _ = served
    before = _files(docs)
    generation = library.live.generation
    disguised = tmp_path / "report.pdf"
    disguised.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)  # an image named .pdf
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    browser, wait = _open_page(start_browser, url)
    for upload, says in ((disguised, "report.pdf is not a PDF"), (empty, "empty.txt is empty")):
        _file_input(browser, wait).send_keys(str(upload))
        refused = wait.until(lambda d: next((e for e in d.find_elements(
            By.CSS_SELECTOR, "#qa-lib-status .qa-status-error") if says in e.text), None))
        assert "\n" not in refused.text
        assert _files(docs) == before and library.live.generation == generation
        wait.until(lambda d: _file_input(d, wait))  # the upload box is ready for the next file
    _shot(browser, "upload-refused-light-1280")


def _gate_passage_encoding(monkeypatch, library) -> "threading.Event":
    """Hold every passage embedding until the returned event is set (at most ``WAIT_S``): a build in
    progress stays in progress as long as a test needs, with no timing involved."""
    import threading

    release = threading.Event()
    encoder = library.live.current.retriever.encoder
    encode_passages = encoder.encode_passages

    def gated(*args, **kwargs):
        release.wait(WAIT_S)
        return encode_passages(*args, **kwargs)

    monkeypatch.setattr(encoder, "encode_passages", gated)
    return release


def test_an_upload_shows_its_progress_and_the_chat_answers_meanwhile(served, start_browser, tmp_path, monkeypatch):
    from selenium.webdriver.common.by import By

    url, docs, library, _ = served
    browser, wait = _open_page(start_browser, url)
    minutes = tmp_path / "minutes.txt"
    minutes.write_text("Council minutes\n\n" + "\n\n".join(
        f"Item {n}. The council discussed the repair of pier number {n} and agreed a budget of {n * 100} pounds."
        for n in range(1, 121)) + "\n", encoding="utf-8")
    release = _gate_passage_encoding(monkeypatch, library)
    try:
        _file_input(browser, wait).send_keys(str(minutes))
        # While the new file is embedded, one progress bar, where the file was dropped, says what is being done.
        def bars(d):
            return [e for e in d.find_elements(By.CSS_SELECTOR, "[role=progressbar]") if e.is_displayed()]

        progress = wait.until(lambda d: len(bars(d)) == 1 and bars(d)[0])
        assert browser.find_elements(By.CSS_SELECTOR, "#qa-upload [role=progressbar]") == [progress]
        assert "embedding" in progress.get_attribute("aria-label").lower()
        _shot(browser, "upload-progress-light-1280")
        # ... and the chat answers meanwhile, from the index it had (the new file is held unembedded).
        reply = ask(browser, wait, "Who is the harbour master of Tobermory?", 1)
        assert "Ewan MacLeod" in reply.text and any("Harbour notes" in t for t in _cited_titles(reply))
        assert progress.is_displayed() and "minutes" not in library.live.documents
        _shot(browser, "upload-progress-answered-light-1280")
    finally:
        release.set()
    status = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#qa-lib-status .qa-status-ok"))
    assert status.text.startswith('Indexed "Council minutes" (minutes.txt)')
    assert not [e for e in browser.find_elements(By.CSS_SELECTOR, "#qa-lib-status .progress-text") if e.is_displayed()]


def test_deleting_the_users_file_asks_first_and_keeping_it_changes_nothing(served, start_browser):
    from selenium.webdriver.common.by import By

    url, docs, _, _ = served
    browser, wait = _open_page(start_browser, url.rstrip("/") + "/?__theme=dark")
    browser.find_element(By.CSS_SELECTOR, '#qa-library li[data-doc="harbour"] a.qa-lib-delete').click()
    confirm = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, '#qa-library li[data-doc="harbour"] .qa-lib-confirm'))
    assert "harbour.txt was not uploaded here" in confirm.text and ".qa-trash" in confirm.text
    _shot(browser, "delete-confirm-dark-1280")
    browser.set_window_size(390, 844)
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", confirm)
    _shot(browser, "delete-confirm-dark-390")
    confirm.find_element(By.CSS_SELECTOR, "a.qa-lib-cancel").click()
    wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, "#qa-library .qa-lib-confirm"))
    assert (docs / "harbour.txt").read_text(encoding="utf-8") == HARBOUR


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_at_phone_width_every_tab_is_in_view_without_an_overflow_menu(served, start_browser, theme):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, _, _, _ = served
    browser = start_browser()
    wait = WebDriverWait(browser, WAIT_S)
    browser.set_window_size(390, 844)
    browser.get(url.rstrip("/") + ("/?__theme=dark" if theme == "dark" else "/"))
    tabs = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#qa-side [role=tablist] button[role=tab]"))
    wait.until(lambda d: all(t.text.strip() for t in tabs))  # laid out
    shown = [t.text.strip() for t in tabs if t.is_displayed()]
    assert shown == [t.text.strip() for t in tabs] and len(shown) == 4, shown  # the four tabs, each a button
    assert not [m for m in browser.find_elements(By.CSS_SELECTOR, "#qa-side .overflow-menu") if m.is_displayed()]
    assert len({t.rect["y"] for t in tabs}) == 1, [t.rect for t in tabs]  # one row, none left alone below
    # Each one is inside the side panel, readable (not clipped) and can be clicked to open it.
    side = browser.find_element(By.CSS_SELECTOR, "#qa-side").rect
    for tab in tabs:
        box = tab.rect
        assert side["x"] <= box["x"] and box["x"] + box["width"] <= side["x"] + side["width"] + 1, tab.text
        assert browser.execute_script("return arguments[0].scrollWidth <= arguments[0].clientWidth + 1", tab), tab.text
    browser.execute_script("arguments[0].scrollIntoView({block: 'start'})", tabs[0])
    _shot(browser, f"tabs-{theme}-390")
    for tab in reversed(tabs):
        tab.click()
        wait.until(lambda d: tab.get_attribute("aria-selected") == "true")
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#qa-sources").is_displayed())


def _choose(browser, wait, title: str) -> None:
    """Pick ``title`` in the per-question filter (a Gradio multiselect dropdown)."""
    from selenium.webdriver.common.by import By

    box = browser.find_element(By.CSS_SELECTOR, "#qa-doc-filter input")
    box.click()
    box.send_keys(title)
    option = wait.until(lambda d: next((o for o in d.find_elements(By.CSS_SELECTOR, "li[aria-selected]")
                                        if o.text.strip() == title), None))
    option.click()
    wait.until(lambda d: title in d.find_element(By.CSS_SELECTOR, "#qa-doc-filter").text)
    browser.find_element(By.CSS_SELECTOR, "#qa-header").click()  # close the list


def test_the_filter_limits_a_question_to_the_chosen_documents(served, start_browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    url, _, _, _ = served
    browser = start_browser()
    wait = WebDriverWait(browser, WAIT_S)
    browser.get(url)
    question = "Who is the harbour master of Tobermory?"
    reply = ask(browser, wait, question, 1)
    assert "Ewan MacLeod" in reply.text and any("Harbour notes" in t for t in _cited_titles(reply))
    wait.until(lambda d: "Harbour notes" in d.find_element(By.CSS_SELECTOR, "#qa-sources").text)

    _choose(browser, wait, "Town library")
    reply = ask(browser, wait, question, 2)
    assert not any("Harbour notes" in t for t in _cited_titles(reply))
    wait.until(lambda d: "Harbour notes" not in d.find_element(By.CSS_SELECTOR, "#qa-sources").text)
    titles = {t.text for t in browser.find_elements(By.CSS_SELECTOR, "#qa-sources .qa-source-title")}
    assert titles == {"Town library"}

    # A question the chosen document answers; its citation opens the Markdown formatted, highlighted.
    reply = ask(browser, wait, "When does the town library open on Saturdays?", 3)
    assert "10 am" in reply.text
    reply.find_element(By.CSS_SELECTOR, "a.qa-cite").click()
    wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, "#qa-viewer .qa-doc-formatted h1")))
    assert browser.find_element(By.CSS_SELECTOR, "#qa-viewer .qa-doc-formatted h1").text == "Town library"
    assert browser.find_element(By.CSS_SELECTOR, "#qa-viewer .qa-doc-formatted strong").text == "twelve thousand"
    focus = browser.find_element(By.CSS_SELECTOR, "#qa-viewer mark#qa-focus")
    assert focus.text.startswith("The town library opens at")
    assert browser.find_element(By.CSS_SELECTOR, "#qa-viewer mark.qa-hit").text == "10 am"


def _luminance(rgb) -> float:
    def channel(v):
        v /= 255
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4
    r, g, b = rgb[:3]
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def _pixel_contrast(png: bytes) -> float:
    """The WCAG contrast between the darkest pixel (the page's ink) and the commonest one (the highlight's
    background) of a screenshot of a highlight box."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    colours = image.getcolors(image.width * image.height)
    background = max(colours)[1]
    ink = min((c for _, c in colours), key=_luminance)
    a, b = _luminance(background), _luminance(ink)
    return (max(a, b) + 0.05) / (min(a, b) + 0.05)


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_a_pdf_citation_shows_the_page_image_with_the_highlight(served, start_browser, tmp_path, theme):
    from gradio_client import Client, handle_file
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    url, docs, _, _ = served
    pdf = tmp_path / "barra.pdf"
    pdf.write_bytes(minimal_pdf(PDF_PAGES))
    client = Client(url, verbose=False)
    if not (docs / "barra.pdf").exists():  # the dark run finds it uploaded by the light one
        rows = client.predict(handle_file(str(pdf)), api_name="/upload")  # the scripted way in
        assert any(r["id"] == "barra" and r["size"] == "2 pages" for r in rows)

    browser, wait = _open_page(start_browser, url.rstrip("/") + ("/?__theme=dark" if theme == "dark" else "/"),
                               documents_tab=False)
    reply = ask(browser, wait, "When does the night ferry to Barra leave Oban?", 1)
    assert "11 pm" in reply.text
    reply.find_element(By.CSS_SELECTOR, "a.qa-cite").click()
    image = wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, "#qa-viewer .qa-page img")))
    assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", image) >= 800
    assert "Page 2 of 2" in browser.find_element(By.CSS_SELECTOR, "#qa-viewer .qa-page figcaption").text
    focus = browser.find_element(By.CSS_SELECTOR, "#qa-viewer .qa-page-focus")
    hit = browser.find_element(By.CSS_SELECTOR, "#qa-viewer .qa-page-hit")
    assert focus.size["width"] > 100 and focus.size["height"] > 5 and hit.size["width"] > 10
    # The boxes sit on the page's line of text: 72 pt from the left of a 612 pt page.
    left = browser.execute_script("const s = arguments[0].parentElement.getBoundingClientRect(), "
                                  "b = arguments[0].getBoundingClientRect(); return (b.left - s.left) / s.width;", focus)
    assert left == pytest.approx(72 / 612, abs=0.01)
    # The extracted text beside it carries the same highlight.
    assert "11 pm" in browser.find_element(By.CSS_SELECTOR, "#qa-viewer .qa-doc-text mark#qa-focus").text
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", hit)
    if theme == "dark":
        assert browser.execute_script("return document.body.classList.contains('dark') || "
                                      "document.documentElement.classList.contains('dark')"), "not in dark mode"
    ratio = _pixel_contrast(hit.screenshot_as_png)
    assert ratio >= 4.5, f"the answer's highlight on the page: contrast {ratio:.2f}:1 ({theme})"
    for selector in ("#qa-viewer .qa-doc-text mark#qa-focus", "#qa-viewer .qa-doc-text mark.qa-hit"):
        ratio = browser.execute_script(CONTRAST_JS, browser.find_element(By.CSS_SELECTOR, selector))
        assert ratio >= 4.5, f"{selector}: contrast {ratio:.2f}:1 ({theme})"
    _shot(browser, f"pdf-{theme}-1280")
    browser.set_window_size(390, 844)
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", hit)
    _shot(browser, f"pdf-{theme}-390")


def test_the_delete_endpoint_removes_an_upload_and_refuses_a_users_file_without_confirm(served, tmp_path):
    from gradio_client import Client, handle_file

    url, docs, _, _ = served
    note = tmp_path / "note.txt"
    note.write_text("Quay notes\n\nThe quay crane lifts forty tonnes.\n", encoding="utf-8")
    client = Client(url, verbose=False)
    assert "note" in {r["id"] for r in client.predict(handle_file(str(note)), api_name="/upload")}
    assert "note" not in {r["id"] for r in client.predict("note", api_name="/delete")}
    assert not (docs / "note.txt").exists()
    with pytest.raises(Exception, match="harbour.txt was not uploaded here.*confirm=True"):
        client.predict("harbour", api_name="/delete")
    assert (docs / "harbour.txt").read_text(encoding="utf-8") == HARBOUR
    with pytest.raises(Exception, match="is empty"):
        empty = tmp_path / "empty.txt"
        empty.write_bytes(b"")
        client.predict(handle_file(str(empty)), api_name="/upload")
    assert not (docs / "empty.txt").exists()
