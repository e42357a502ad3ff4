"""The sentence a citation quotes: right on hand-made text, cached in bounded memory, never computed under a lock."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

import qa.answering.pipeline as pipeline
from qa.answering.pipeline import QA
from qa.reading.reader import Reader
from qa.types import Document

TEXT = (
    "Primary care trusts\n\n"
    "The trusts were announced last year. They go live in April 2000 across England. "
    "Critics call them a hybrid.\n\n"
    "A second paragraph ends here."
)


def doc(text: str = TEXT, doc_id: str = "d") -> Document:
    return Document(doc_id, "Title", f"{doc_id}.txt", text)


@pytest.fixture
def qa() -> QA:
    return QA(retriever=None, reader=Reader())  # the reader's model is never loaded here


def span_of(text: str, part: str) -> tuple[int, int]:
    start = text.index(part)
    return start, start + len(part)


def test_the_sentence_around_a_span(qa):
    expected = span_of(TEXT, "They go live in April 2000 across England.")
    assert qa._sentence_around(doc(), *span_of(TEXT, "April 2000")) == expected


def test_a_span_across_two_sentences_quotes_both(qa):
    start = TEXT.index("last year")
    end = TEXT.index("go live") + len("go live")
    expected = (TEXT.index("The trusts were"), TEXT.index("across England.") + len("across England."))
    assert qa._sentence_around(doc(), start, end) == expected


def test_a_heading_is_its_own_sentence(qa):
    assert qa._sentence_around(doc(), *span_of(TEXT, "care")) == span_of(TEXT, "Primary care trusts")


def test_a_span_in_no_sentence_is_quoted_as_it_is(qa):
    blank = TEXT.index("\n\n")
    assert qa._sentence_around(doc(), blank, blank + 2) == (blank, blank + 2)


def test_the_cache_is_bounded(qa, monkeypatch):
    monkeypatch.setattr(pipeline, "SENTENCE_CACHE_DOCUMENTS", 8)
    for i in range(30):
        text = f"Document {i} says hello. It ends here."
        assert qa._sentence_around(doc(text, f"d{i}"), *span_of(text, "hello")) == (0, text.index(" It"))
    assert len(qa._sentences) <= 8


def test_sentences_are_split_outside_the_lock(qa, monkeypatch):
    # Splitting document A waits for document B to be split on another thread. Were the split done under
    # the pipeline's lock, B would wait for A: the wait below would run out and record a serialization.
    a_started, b_done = threading.Event(), threading.Event()
    overlapped = []
    real = pipeline.sentence_spans

    def slow_for_a(text):
        if text.startswith("A"):
            a_started.set()
            overlapped.append(b_done.wait(timeout=10))
        else:
            b_done.set()
        return real(text)

    monkeypatch.setattr(pipeline, "sentence_spans", slow_for_a)
    a, b = doc("A first document. It has two sentences.", "a"), doc("B second document. Also two.", "b")
    thread = threading.Thread(target=qa._sentence_around, args=(a, 2, 7))
    thread.start()
    assert a_started.wait(timeout=30)
    assert qa._sentence_around(b, 2, 8) == (0, len("B second document."))
    thread.join()
    assert overlapped == [True], "splitting one document blocked splitting another"


def test_many_threads_many_documents_agree_with_one_thread(monkeypatch):
    monkeypatch.setattr(pipeline, "SENTENCE_CACHE_DOCUMENTS", 4)  # constant eviction while threads read
    docs = [doc(f"Number {i} starts here. Then {i} goes on. And {i} ends.", f"d{i}") for i in range(20)]
    jobs = [(d, *span_of(d.text, "goes on")) for d in docs] * 20
    expected = [QA(None, Reader())._sentence_around(*job) for job in jobs]
    shared = QA(None, Reader())
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda job: shared._sentence_around(*job), jobs))
    assert got == expected
    assert len(shared._sentences) <= 4


def test_one_citation_per_paragraph_holding_the_answer(monkeypatch):
    """"April 2000" is in two sentences of paragraph 2 and once in paragraph 3: two citations, the best
    place's sentence first, never the same paragraph twice."""
    from qa.types import Span

    text = ("Trusts\n\n"
            "They go live in April 2000. From April 2000 they hold budgets.\n\n"
            "Wales waits until April 2000 too.")
    d = doc(text)
    monkeypatch.setattr(QA, "documents", property(lambda self: {"d": d}))
    qa = QA(retriever=None, reader=Reader())
    first = span_of(text, "April 2000")
    second = (text.index("April 2000", first[1]), text.index("April 2000", first[1]) + 10)
    third = (text.rindex("April 2000"), text.rindex("April 2000") + 10)
    span = Span("April 2000", 0.9, "d", *first, "p", occurrences=(("d", *second), ("d", *third)))
    quotes = [c.quote for c in qa._citations(span)]
    assert quotes == ["They go live in April 2000.", "Wales waits until April 2000 too."]
