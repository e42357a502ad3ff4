"""Widening retrieved passages to the paragraph around them (qa.answering.context)."""

import pytest

from qa.answering.context import reading_passages, widen
from qa.types import Document, Hit, Passage

TITLE = "Harbour Trust"
P1 = "The Harbour Trust was founded in 1921 by Ada Lowe. It ran the docks. Its chair today is Ben Orr."
P2 = " ".join(f"Sentence number {i} of the long second paragraph says little." for i in range(40))
P3 = "A third paragraph about the lighthouse."
TEXT = f"{TITLE}\n\n{P1}\n\n{P2}\n\n{P3}\n"
DOC = Document("trust", TITLE, "trust.txt", TEXT)


def passage(start: int, end: int) -> Passage:
    return Passage(f"trust:{start}-{end}", "trust", start, end, TEXT[start:end])


def test_a_passage_grows_to_its_whole_paragraph_when_it_fits_and_no_further():
    start = TEXT.index("It ran")
    wide = widen(DOC, passage(start, start + len("It ran the docks.")), budget=500)
    assert wide.text == P1  # the paragraph, not the title above it nor the paragraph below
    assert TEXT[wide.start:wide.end] == wide.text
    assert wide.id == f"trust:{start}-{start + len('It ran the docks.')}"  # still the retrieved passage's id


def test_in_a_paragraph_longer_than_the_budget_it_takes_text_from_both_sides_on_word_bounds():
    p2 = TEXT.index(P2)
    start = p2 + P2.index("Sentence number 20 ")
    end = start + len("Sentence number 20 of the long second paragraph says little.")
    wide = widen(DOC, passage(start, end), budget=300)
    assert wide.start < start and wide.end > end
    assert wide.end - wide.start <= 300
    assert p2 <= wide.start and wide.end <= p2 + len(P2)  # inside the paragraph
    assert TEXT[wide.start - 1] == " " and TEXT[wide.end] == " "  # whole words
    # about as much before as after
    assert abs((start - wide.start) - (wide.end - end)) < 40


def test_at_a_paragraphs_start_the_unused_share_goes_to_the_other_side():
    p2 = TEXT.index(P2)
    end = p2 + len("Sentence number 0 of the long second paragraph says little.")
    wide = widen(DOC, passage(p2, end), budget=300)
    assert wide.start == p2
    assert 250 < wide.end - wide.start <= 300


def test_a_passage_already_at_the_budget_is_read_as_retrieved():
    p2 = TEXT.index(P2)
    original = passage(p2, p2 + 400)
    assert widen(DOC, original, budget=300) is original
    assert reading_passages([Hit(original, 1.0, 1)], {"trust": DOC}, budget=0) == [original]


def test_a_hit_inside_a_better_ranked_hits_widened_passage_is_not_read_twice():
    first = passage(TEXT.index("The Harbour"), TEXT.index("The Harbour") + 20)
    second = passage(TEXT.index("Its chair"), TEXT.index("Its chair") + 25)
    third = passage(TEXT.index(P3), TEXT.index(P3) + len(P3))
    out = reading_passages([Hit(first, 0.9, 1), Hit(second, 0.8, 2), Hit(third, 0.7, 3)], {"trust": DOC}, budget=500)
    assert [p.id for p in out] == [first.id, third.id]
    assert out[0].text == P1 and out[1].text == P3


def _run(folder, metrics: dict):
    import json

    folder.mkdir()
    (folder / "predictions.jsonl").write_text("")
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder / "predictions.jsonl"


def test_a_calibration_keeps_the_reading_its_runs_were_made_with(tmp_path):


    from qa.evaluation.calibrate import runs_context_chars
    from qa.errors import InvalidInput

    open_run = _run(tmp_path / "open", {"context_chars": 1200})
    question_run = _run(tmp_path / "questions", {"config": {"context_chars": 1200}})
    other = _run(tmp_path / "other", {"context_chars": 0})
    bare = _run(tmp_path / "bare", {})
    assert runs_context_chars([open_run, question_run], None) == 1200
    assert runs_context_chars([bare], 0) == 0
    with pytest.raises(InvalidInput, match="different"):
        runs_context_chars([open_run, other], None)
    with pytest.raises(InvalidInput, match="different"):
        runs_context_chars([open_run], 0)
    with pytest.raises(InvalidInput, match="--context-chars"):
        runs_context_chars([bare], None)


def test_a_calibration_keeps_how_many_passages_its_runs_read(tmp_path):
    from qa.evaluation.calibrate import runs_top_k
    from qa.errors import InvalidInput

    open_run = _run(tmp_path / "open", {"top_k": 8})
    question_run = _run(tmp_path / "questions", {"config": {"k": 8}})
    other = _run(tmp_path / "other", {"top_k": 5})
    bare = _run(tmp_path / "bare", {})
    assert runs_top_k([open_run, question_run], None) == 8
    assert runs_top_k([bare], 4) == 4
    with pytest.raises(InvalidInput, match="different -k"):
        runs_top_k([open_run, other], None)
    with pytest.raises(InvalidInput, match="give -k"):
        runs_top_k([bare], None)


@pytest.mark.integration
def test_the_pipeline_reads_the_paragraph_around_a_passage_and_cites_the_words_where_they_are(
        make_corpus, tmp_path, fake_encoder, small_chunks):
    """The retrieved passage lacks the answer; its paragraph has it. Read as retrieved, the reader can't
    give it; widened, it does, cited at the answer's own place in the document."""


    from qa.answering.pipeline import QA
    from qa.reading.reader import Reader
    from qa.retrieval.retriever import Retriever
    from qa.stores.local.build import build_index

    pytest.importorskip("onnxruntime")
    text = ("The Harbour Trust was founded in 1921 by Ada Lowe, a shipwright from Leith. "
            "For forty years the trust ran the eastern docks and the ferry across the firth. "
            "Its first ship was the Marigold, a steam tug bought from the navy.\n")
    build_index(make_corpus({"trust.txt": text}), tmp_path / "index", encoder=fake_encoder, chunk_config=small_chunks)
    retriever = Retriever.load(tmp_path / "index", encoder=fake_encoder)
    last = next(p for p in retriever.index.passages if "Marigold" in p.text)
    assert "Ada Lowe" not in last.text
    question, hits = "Who founded the Harbour Trust?", [Hit(last, 1.0, 1)]
    narrow = QA(retriever, Reader.load(), context_chars=0).answer_from_hits(question, hits, threshold=0.0)
    wide = QA(retriever, Reader.load(), context_chars=600).answer_from_hits(question, hits, threshold=0.0)
    assert "Ada Lowe" not in (narrow.text or "")
    assert wide.text == "Ada Lowe"
    doc = retriever.documents["trust"]
    assert doc.text[wide.citations[0].start:wide.citations[0].end] == wide.citations[0].quote
    assert wide.citations[0].start <= doc.text.index("Ada Lowe") < wide.citations[0].end
