"""Retrieval quality on the bundled corpus with the real embedding model (integration).

Each question was written by reading the documents in seeds/; the answer string appears verbatim in
the named document. Hybrid retrieval (what ``qa ask`` and the app use, giving the reader 5 passages) brings
a passage of the named document that holds the answer into the top 5, for every listed question but one
known miss, an xfail (not strict: it sits at the edge of the top 5, and where depends on the CPU's int8
kernels; see its comment). Each mode's hit@5 is measured by ``qa eval`` (docs/evaluation.md), not here.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration

# (question, answer string, document id prefix)
QUESTIONS = [
    ("When do primary care trusts go live?", "April 2000", "000"),
    ("How much money did the south-west London total purchasing project move from hospital to community services?",
     "600,000", "000"),
    ("Why did Warrington's project find it easier to work with the borough council?", "unitary local authority", "000"),
    ("Who are the target patients of Medicentres?", "young and middle-aged working people", "000"),
    ("How many pointers did the Birmingham seminar on HMOs and PCTs come up with?", "eight pointers", "000"),
    ("How much do PCTs spend a year?", "£75bn", "001"),
    ("Which new regulator is due to replace the Healthcare Commission?", "Ofcare", "001"),
    ("How many active case managers does Bolton PCT employ to prevent hospital admissions?", "25 active case managers", "001"),
    pytest.param(
        "What share of Bolton's patients already get 18-week waits?", "52%", "001",
        # The passage with "52%" quotes the ICATS lead and never names Bolton (that is two passages
        # earlier): rank 9 dense, 3 BM25, 6 hybrid with 800/200 chunks on an AVX-512 CPU. The question is
        # fair (the document does say it) and the miss is the product's: a passage loses the context of
        # the ones before it. Not strict: its dense scores are near-ties (0.406 against 0.4057 at rank 6)
        # and the int8 encoder's kernels differ by CPU, so on an AVX2-only CPU it ranks 6 dense and 4
        # hybrid and passes.
        marks=pytest.mark.xfail(reason="answer passage does not name Bolton", strict=False),
    ),
    ("How large is the fund set up for social enterprises?", "£73m", "001"),
    ("What percentage of prescriptions contain errors?", "11%", "001"),
    ("Who is the chief executive of NHS North West?", "Mike Farrar", "001"),
    ("When were primary care groups introduced?", "April 1999", "002"),
    ("How many primary care groups replaced the voluntary commissioning organisations?", "481", "002"),
    ("How many personal medical services pilots went live in April 1998?", "88", "002"),
    ("How much money would the NHS Plan make available to social services from April 2002?", "£50 million", "002"),
    ("What kind of organisation is the Somerset Partnership?", "Mental Health Trust", "002"),
    ("How many patients did each primary care group cover?", "between 50,000 and 250,000 patients", "002"),
    ("How often do the hospital consultants attend a meeting at the practice?", "every two months", "003"),
    ("How often does the specialist rheumatology nurse come to the practice?", "twice each month", "003"),
    ("What proportion of the PMS pilots have a GP on the PCG board?", "Two-thirds", "003"),
    ("When does the third wave of PMS pilots begin?", "April 2001", "003"),
    ("Who is the chief executive of Trafford North PCT and Trafford South PCT?", "Tim Riley", "004"),
    ("How many PCTs set up the Association of Greater Manchester PCTs?", "14 PCTs", "004"),
    ("Since when has one chief executive managed both Trafford PCTs?", "2003", "004"),
]


@pytest.fixture(scope="module")
def retriever(bundled_qa):
    """The bundled corpus's retriever (the one the pipeline tests use)."""
    return bundled_qa.retriever


def _values(item):
    return item.values if hasattr(item, "values") else item


def test_question_set_is_consistent(retriever):
    assert sum(not hasattr(item, "marks") for item in QUESTIONS) >= 15
    docs = retriever.documents
    for question, answer, prefix in map(_values, QUESTIONS):
        matching = [d for d in docs if d.startswith(prefix)]
        assert len(matching) == 1, prefix
        assert answer in docs[matching[0]].text, (question, answer)


@pytest.mark.parametrize("question, answer, prefix", QUESTIONS)
def test_hybrid_top5_holds_the_answer(retriever, question, answer, prefix):
    hits = retriever.search(question, top_k=5, mode="hybrid")
    assert _hit(hits, answer, prefix), f"{answer!r} not in a top-5 passage of {prefix}: {[h.passage.id for h in hits]}"


def _hit(hits, answer: str, prefix: str) -> bool:
    return any(answer in h.passage.text and h.passage.doc_id.startswith(prefix) for h in hits)

