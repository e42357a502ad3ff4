"""Sentence-aware chunking: exact offsets, sentence boundaries, sizes, overlap, ids, settings."""

from __future__ import annotations

import pytest

from qa.errors import InvalidInput
from qa.ingest.chunking import ChunkConfig, chunk_document, chunk_documents, sentence_spans
from qa.ingest.documents import load_documents
from qa.types import Document, Passage

SETTINGS = [
    ChunkConfig(),  # the default, 800 / 200
    ChunkConfig(chunk_size=300, chunk_overlap=100),
    ChunkConfig(chunk_size=1500, chunk_overlap=0),
    ChunkConfig(chunk_size=50, chunk_overlap=0),
    ChunkConfig(chunk_size=200, chunk_overlap=199),
]

HUGE_SENTENCE = "The committee noted " + ", ".join(f"item number {i} on the agenda" for i in range(120)) + "."
TRICKY_TEXTS = {
    "curly quotes": "“The new emphasis on ‘local’ is extremely important,” said Mr Farrar. He isn’t sure it’ll last.",
    "pounds": "PCTs spend £75bn a year. A fund of £73m has been set up. The cost fell to £1.5m in 2001.",
    "crlf": "Title line\r\n\r\nFirst sentence here. Second sentence here.\r\nA new line sentence.\r\n\r\nLast block.\r\n",
    "no final newline": "One sentence. Another sentence without a final newline",
    "huge sentence": f"A short opener. {HUGE_SENTENCE} A short closer.",
    "unbreakable word": "See " + "x" * 2000 + " for details. Then more text follows here.",
    "emoji": "We loved it 😀👍🏽! The team 👩‍⚕️ met at 9. Flags 🇬🇧 and 🇺🇸 were shown.",
    "tabs and nbsp": "Item\tone\u00a0has\u00a0spaces.\n\n\tIndented block starts here. And ends here.\n\n\n\n",
    "leading blank lines": "\n\n\n   \n# Heading\n\nBody text of the document. More body text.",
    "hard wrapped": "This sentence is wrapped\nacross two lines. Heading Line\nNext paragraph starts here.",
    "one char": "x",
}


def _doc(text: str, doc_id: str = "doc") -> Document:
    return Document(id=doc_id, title="t", path=f"{doc_id}.txt", text=text)


def _check_offsets(doc: Document, passages: list[Passage]) -> None:
    for p in passages:
        assert p.doc_id == doc.id
        assert 0 <= p.start < p.end <= len(doc.text)
        assert doc.text[p.start : p.end] == p.text
        assert p.text == p.text.strip(), "passages are trimmed of surrounding whitespace"


def _check_sentence_boundaries(doc: Document, passages: list[Passage], config: ChunkConfig) -> None:
    """Every passage starts at a sentence start and ends at a sentence end, except inside a sentence
    longer than chunk_size (which has to be cut)."""
    spans = sentence_spans(doc.text)
    starts, ends = {s for s, _ in spans}, {e for _, e in spans}
    long_sentences = [(s, e) for s, e in spans if e - s > config.chunk_size]

    def inside_long(offset: int) -> bool:
        return any(s < offset < e for s, e in long_sentences)

    for p in passages:
        assert p.start in starts or inside_long(p.start), f"{p.id} starts inside a sentence: {p.text[:60]!r}"
        assert p.end in ends or inside_long(p.end), f"{p.id} ends inside a sentence: {p.text[-60:]!r}"


def _check_coverage(doc: Document, passages: list[Passage]) -> None:
    """No text is lost: every non-space character of the document is in some passage."""
    covered = [False] * len(doc.text)
    for p in passages:
        covered[p.start : p.end] = [True] * (p.end - p.start)
    lost = [i for i, ch in enumerate(doc.text) if not ch.isspace() and not covered[i]]
    assert not lost, f"characters outside every passage, e.g. at {lost[0]}: {doc.text[lost[0]:lost[0] + 40]!r}"


def _check_all(doc: Document, config: ChunkConfig) -> list[Passage]:
    passages = chunk_document(doc, config)
    _check_offsets(doc, passages)
    _check_sentence_boundaries(doc, passages, config)
    _check_coverage(doc, passages)
    assert all(len(p.text) <= config.chunk_size for p in passages)
    return passages


@pytest.mark.parametrize("config", SETTINGS, ids=lambda c: f"{c.chunk_size}-{c.chunk_overlap}")
def test_seed_corpus_invariants(seeds_dir, config):
    docs = load_documents(seeds_dir)
    total = 0
    for doc in docs:
        total += len(_check_all(doc, config))
    assert total >= len(docs)


@pytest.mark.parametrize("config", SETTINGS, ids=lambda c: f"{c.chunk_size}-{c.chunk_overlap}")
@pytest.mark.parametrize("name", sorted(TRICKY_TEXTS))
def test_tricky_text_invariants(name, config):
    _check_all(_doc(TRICKY_TEXTS[name]), config)


def test_sentence_spans_are_trimmed_ordered_and_exact():
    text = TRICKY_TEXTS["crlf"]
    spans = sentence_spans(text)
    assert [text[s:e] for s, e in spans] == [
        "Title line", "First sentence here.", "Second sentence here.", "A new line sentence.", "Last block.",
    ]
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))


def test_a_sentence_longer_than_the_limit_is_cut_at_whitespace():
    doc = _doc(f"A short opener. {HUGE_SENTENCE} A short closer.")
    config = ChunkConfig(chunk_size=200, chunk_overlap=0)
    passages = _check_all(doc, config)
    inner = [p for p in passages if HUGE_SENTENCE.find(p.text) >= 0]
    assert len(inner) >= len(HUGE_SENTENCE) // 200
    for p in passages:
        # cut at a space: no passage starts or ends in the middle of a word
        assert p.start == 0 or doc.text[p.start - 1].isspace()
        assert p.end == len(doc.text) or doc.text[p.end].isspace()


def test_short_sentences_are_packed_up_to_the_limit():
    sentences = [f"Sentence number {i:02d} is here." for i in range(40)]  # 27 characters each
    doc = _doc(" ".join(sentences))
    passages = _check_all(doc, ChunkConfig(chunk_size=100, chunk_overlap=0))
    # 3 sentences (27 * 3 + 2 spaces = 83) fit in 100, a 4th (111) does not.
    assert [p.text.count("Sentence number") for p in passages] == [3] * 13 + [1]


def test_no_overlap_means_consecutive_passages_are_disjoint():
    doc = _doc(" ".join(f"Sentence number {i:02d} is here." for i in range(40)))
    passages = chunk_document(doc, ChunkConfig(chunk_size=100, chunk_overlap=0))
    for a, b in zip(passages, passages[1:]):
        assert a.end <= b.start
        assert doc.text[a.end : b.start].strip() == ""


def test_overlap_repeats_whole_trailing_sentences():
    sentences = [f"Sentence number {i:02d} is here." for i in range(40)]
    doc = _doc(" ".join(sentences))
    config = ChunkConfig(chunk_size=100, chunk_overlap=60)
    passages = _check_all(doc, config)
    starts = {s for s, _ in sentence_spans(doc.text)}
    overlaps = []
    for a, b in zip(passages, passages[1:]):
        assert a.start < b.start and a.end < b.end, "each passage moves on"
        assert b.start in starts
        overlaps.append(max(0, a.end - b.start))
    assert all(o <= config.chunk_overlap for o in overlaps)
    # Two 27-character sentences plus a space (55) fit in 60 characters of overlap.
    assert overlaps and all(o == 55 for o in overlaps)


def test_more_overlap_gives_more_passages(seeds_dir):
    doc = next(d for d in load_documents(seeds_dir) if d.id.startswith("002"))
    counts = [len(chunk_document(doc, ChunkConfig(chunk_size=800, chunk_overlap=o))) for o in (0, 200, 400)]
    assert counts[0] < counts[1] < counts[2]


def test_ids_are_deterministic_and_unique(seeds_dir):
    docs = load_documents(seeds_dir)
    first = chunk_documents(docs, ChunkConfig())
    second = chunk_documents(load_documents(seeds_dir), ChunkConfig())
    assert [p.id for p in first] == [p.id for p in second]
    assert len({p.id for p in first}) == len(first)
    for p in first:
        assert p.id == f"{p.doc_id}:{p.start}-{p.end}"


def test_ids_do_not_depend_on_other_documents():
    a, b = _doc("Alpha one. Alpha two.", "a"), _doc("Beta one.", "b")
    alone = chunk_documents([a])
    together = chunk_documents([b, a])
    assert [p.id for p in alone] == [p.id for p in together if p.doc_id == "a"]


def test_chunk_documents_keeps_document_order():
    docs = [_doc("Zulu text here.", "z"), _doc("Alpha text here.", "a")]
    assert [p.doc_id for p in chunk_documents(docs)] == ["z", "a"]


def test_blank_document_has_no_passages():
    assert chunk_document(_doc(" \n\n\t ")) == []


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"chunk_size": 49}, "chunk_size"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"chunk_size": -100}, "chunk_size"),
        ({"chunk_size": 100, "chunk_overlap": 100}, "chunk_overlap"),
        ({"chunk_size": 100, "chunk_overlap": 150}, "chunk_overlap"),
        ({"chunk_overlap": -1}, "chunk_overlap"),
        ({"chunk_size": "800"}, "chunk_size must be a whole number"),
        ({"chunk_overlap": 20.5}, "chunk_overlap must be a whole number"),
        ({"chunk_size": True}, "chunk_size must be a whole number"),
    ],
)
def test_chunk_config_validation(kwargs, message):
    # A user's setting: InvalidInput (a UserError the CLI prints on one line), still a ValueError.
    with pytest.raises(InvalidInput, match=message) as err:
        ChunkConfig(**kwargs)
    assert isinstance(err.value, ValueError)


def test_chunk_config_accepts_the_edges():
    assert ChunkConfig(chunk_size=50, chunk_overlap=49).chunk_overlap == 49
    assert ChunkConfig(chunk_size=50, chunk_overlap=0).chunk_size == 50
