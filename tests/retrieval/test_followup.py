"""Follow-up questions: detection, the terms an earlier turn adds, the fused search, and ``QA.ask(history=...)``.

Runs on a hand-made corpus with the fake keyword encoder (milliseconds, no models).
"""

from __future__ import annotations

import pytest

from qa.errors import InvalidInput
from qa.retrieval.followup import FollowUpSearch, Turn, _fuse, as_turns, is_follow_up
from qa.types import Answer, Citation, Hit, Passage

# Two organisations, each "founded" and "chaired": a follow-up's own words fit both.
CLUBS = {
    "alliance.txt": (
        "NHS Alliance\n\n"
        "The NHS Alliance is chaired by Michael Dixon, a general practitioner in Devon.\n\n"
        "The alliance was founded in 1998 to speak for primary care groups.\n"
    ),
    "fund.txt": (
        "King's Fund\n\n"
        "The King's Fund is chaired by Cyril Chantler and works from Cavendish Square.\n\n"
        "The fund was founded in 1897 by the Prince of Wales.\n"
    ),
    "weather.txt": (
        "Weather notes\n\n"
        "A barometer measures air pressure. Falling pressure often signals an approaching storm.\n"
    ),
}


@pytest.fixture
def clubs(make_corpus, tmp_path, fake_encoder, small_chunks):
    from qa.retrieval.retriever import Retriever
    from qa.stores.local.build import build_index

    build_index(make_corpus(CLUBS), tmp_path / "index", encoder=fake_encoder, chunk_config=small_chunks)
    return Retriever.load(tmp_path / "index", encoder=fake_encoder)


@pytest.mark.parametrize("question", [
    "And when was it founded?", "What about the King's Fund?", "Who chairs it?", "When?", "Who else?",
    "how about in 2001", "Where is their office?", "Why did they do that?", "And the fund?",
])
def test_follow_ups_are_detected(question):
    assert is_follow_up(question)


@pytest.mark.parametrize("question", [
    "When was the NHS Alliance founded?", "Who chairs the King's Fund?",
    "What does a barometer measure?", "Which primary care trusts go live in April 2000?",
    "Is there evidence that personal medical services pilots improved care?",
])
def test_self_contained_questions_are_not_follow_ups(question):
    assert not is_follow_up(question)


def test_history_accepts_questions_answers_and_api_objects():
    cited = Citation("fund", "King's Fund", 0, 10, "The King's")
    answer = Answer(question="Who chairs the King's Fund?", text="Cyril Chantler", score=0.9, abstained=False,
                    evidence="", citations=(cited, cited))
    api = {"question": "Where is it?", "answer": None, "citations": [{"doc_id": "alliance"}]}
    assert as_turns(["  First?  ", answer, api, ""]) == (
        Turn("First?"), Turn("Who chairs the King's Fund?", ("fund",)), Turn("Where is it?", ("alliance",)))
    assert as_turns(None) == () and as_turns([]) == ()


@pytest.mark.parametrize("history", ["Who chairs it?", {"question": "x"}, [1], [{"answer": "no question"}]])
def test_a_history_that_is_not_a_list_of_turns_is_refused(history):
    with pytest.raises(InvalidInput, match="history"):
        as_turns(history)


def test_a_follow_up_carries_the_earlier_questions_terms(clubs):
    search = FollowUpSearch(clubs)
    terms = search.context_terms("And when was it founded?", as_turns(["Who chairs the NHS Alliance?"]))
    assert terms == ["chairs", "NHS", "Alliance"]
    # A chain of follow-ups keeps the topic of the question that opened it; a new topic replaces it.
    chain = as_turns(["Who chairs the NHS Alliance?", "And where does he work?"])
    assert set(search.context_terms("When was it founded?", chain)) >= {"NHS", "Alliance", "work"}
    switched = as_turns(["Who chairs the NHS Alliance?", "Who chairs the King's Fund?"])
    assert "Alliance" not in search.context_terms("When was it founded?", switched)


def test_a_term_in_most_passages_is_not_added(make_corpus, tmp_path, fake_encoder, small_chunks):
    from qa.retrieval.retriever import Retriever
    from qa.stores.local.build import build_index

    # "trust" is in every passage: it says nothing about which one a follow-up means.
    places = ("a clinic in Leeds", "a school in York", "a depot in Hull", "a library in Bath")
    docs = {f"d{i}.txt": f"The trust number {i} opened {place}.\n" for i, place in enumerate(places)}
    build_index(make_corpus(docs), tmp_path / "ix", encoder=fake_encoder, chunk_config=small_chunks)
    search = FollowUpSearch(Retriever.load(tmp_path / "ix", encoder=fake_encoder))
    assert search.context_terms("When?", as_turns(["Which trust opened a clinic in Leeds?"])) == ["clinic", "Leeds"]


def test_the_follow_up_finds_the_passage_the_conversation_is_about(clubs):
    search = FollowUpSearch(clubs)
    alone = search.search("And when was it founded?", None, top_k=2)
    assert alone.searched == ""
    for previous, doc in (("Who chairs the NHS Alliance?", "alliance"), ("Who chairs the King's Fund?", "fund")):
        found = search.search("And when was it founded?", [previous], top_k=2)
        assert found.searched.startswith("And when was it founded? ") and found.boosted_doc == doc
        top = found.hits[0].passage
        assert top.doc_id == doc and "founded" in top.text
        assert [h.rank for h in found.hits] == [1, 2]


def test_the_previous_answers_document_is_favoured(clubs):
    """Given as an /ask object, the earlier answer's citation decides the document, whatever its question said."""
    search = FollowUpSearch(clubs)
    earlier = {"question": "Which organisation was founded by a prince?", "citations": [{"doc_id": "fund"}]}
    found = search.search("And who chairs it?", [earlier], top_k=1)
    assert found.boosted_doc == "fund" and found.hits[0].passage.doc_id == "fund"


def test_a_question_that_is_not_a_follow_up_is_searched_alone(clubs):
    search = FollowUpSearch(clubs)
    question = "What does a barometer measure?"
    found = search.search(question, ["Who chairs the NHS Alliance?"], top_k=3)
    assert found.searched == "" and found.boosted_doc is None
    assert found.hits == clubs.search(question, top_k=3)


def test_fusion_adds_reciprocal_ranks_and_keeps_the_best_dense_and_keyword_ranks():
    a, b, c = (Passage(x, "d", i, i + 1, x) for i, x in enumerate("abc"))
    first = [Hit(a, 0.0, 1, 1, None), Hit(b, 0.0, 2, 5, 2)]
    second = [Hit(b, 0.0, 1, 3, 7), Hit(c, 0.0, 2, None, 1)]
    fused = _fuse([first, second], top_k=3)
    # b: 1/62 + 1/61 = 0.03252; a: 1/61 = 0.01639; c: 1/62 = 0.01613.
    assert [h.passage.id for h in fused] == ["b", "a", "c"]
    assert fused[0].score == pytest.approx(1 / 62 + 1 / 61)
    assert [(h.rank, h.dense_rank, h.keyword_rank) for h in fused] == [(1, 3, 2), (2, 1, None), (3, None, 1)]


def test_qa_ask_takes_the_history_and_says_what_it_searched(clubs):
    from qa import QA

    class Reader:  # reads the first passage's first four words: enough to see which passage was read
        path = "/nonexistent"

        def read(self, question, passages):
            from qa.reading.reader import ReaderResult
            from qa.types import Span

            p = passages[0]
            text = p.text.split("\n")[0]
            return ReaderResult([Span(text, 0.9, p.doc_id, p.start, p.start + len(text), p.id)], 0.0)

    qa = QA(clubs, Reader(), threshold=0.0)
    plain = qa.ask("And when was it founded?")
    assert plain.searched == "" and "searched" not in qa.to_json(plain)
    followed = qa.ask("And when was it founded?", history=["Who chairs the King's Fund?"])
    assert followed.question == "And when was it founded?"  # the reader reads the question as asked
    assert followed.hits[0].passage.doc_id == "fund" and "1897" in followed.hits[0].passage.text
    assert qa.to_json(followed)["searched"] == followed.searched != ""
    with pytest.raises(InvalidInput, match="history"):
        qa.ask("And when?", history="Who chairs the King's Fund?")


def test_a_follow_ups_answer_is_scored_against_what_was_searched(clubs):
    """The reader reads "When was it founded?" as asked; the words the calibrator finds in the answer's
    sentence are those of what was searched ("... King's Fund"), not of the question alone."""
    from qa import QA
    from qa.answering.features import word_overlap

    class Reader:  # answers "1897" from whichever passage holds it
        path = "/nonexistent"
        read_questions = []

        def read(self, question, passages):
            from qa.reading.reader import ReaderResult
            from qa.types import Span

            self.read_questions.append(question)
            p = next(p for p in passages if "1897" in p.text)
            at = p.text.index("1897")
            return ReaderResult([Span("1897", 0.9, p.doc_id, p.start + at, p.start + at + 4, p.id)], 0.0)

    reader = Reader()
    qa = QA(clubs, reader, threshold=0.0)
    scored = qa.ask_scored("When was it founded?", history=["Who chairs the King's Fund?"])
    followed = scored.answer
    assert reader.read_questions == ["When was it founded?"]
    sentence = "The fund was founded in 1897 by the Prince of Wales."
    assert followed.evidence == sentence
    # The question alone finds its one content word ("founded") in the sentence: 1.0. What was searched
    # also names the Fund and who chairs it, of which the sentence says only "fund": less than 1.
    assert 0 < scored.features[0]["overlap"] == word_overlap(followed.searched, sentence) < 1
    alone = qa.ask_scored("When was it founded?")
    assert alone.features[0]["overlap"] == 1.0
