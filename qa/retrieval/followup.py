"""Follow-up questions: retrieve with the conversation's context, read with the question as asked.

"And when was it founded?" after "Who chairs the NHS Alliance?" names nothing to search for. A
follow-up (:func:`is_follow_up`: a pronoun, an opener such as "and ..." or "what about ...", or too few
words of its own) is searched three ways, fused by reciprocal rank (Cormack et al. 2009):

1. the question alone;
2. the question with the earlier questions' key terms added (HQE-style expansion, Lin et al. 2020 at
   TREC CAsT: terms of earlier turns that are rare in the corpus, the most recent turn's first);
3. the question alone within the document the previous answer came from (that answer's cited
   document when the history carries it, else the best document for the previous question): the
   question's own words pick the passage, the conversation picks the document.

A question that is not a follow-up is searched alone, exactly as without a history.

Example:
    >>> search = FollowUpSearch(Retriever.load("embeddings/"))
    >>> found = search.search("And when was it founded?", ["Who chairs the NHS Alliance?"])
    >>> found.searched
    'And when was it founded? chairs NHS Alliance'
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from qa.errors import InvalidInput
from qa.retrieval import DEFAULT_MODE
from qa.retrieval.retriever import CANDIDATES, reciprocal_rank_fusion
from qa.types import Answer, Hit

if TYPE_CHECKING:
    from qa.retrieval.retriever import Retriever

logger = logging.getLogger(__name__)

MAX_HISTORY = 10  # earlier turns considered (the most recent ones)
MAX_TERMS = 5  # key terms added to a follow-up
COMMON_SHARE = 0.5  # a term in more than this share of passages names nothing in particular: not added
SHORT_WORDS = 1  # a question with at most this many words of its own (not stopwords) is elliptical

_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'’\-]*")
_OPENER = re.compile(
    r"^\s*(and|but|also|or|so|then|what about|how about|what else|who else|where else|which else|"
    r"same (question )?for|as for|is that|was that|were they|is it|was it)\b", re.IGNORECASE)
# Words that point back to something said before. "that" and "this" only at the end of a question
# ("who did that?"), since inside one they usually start a clause or a noun phrase.
_POINTERS = {"it", "its", "it's", "itself", "they", "them", "their", "theirs", "themselves", "he", "him", "his",
             "she", "her", "hers", "these", "those", "former", "latter"}
_END_POINTERS = {"that", "this", "there", "then", "so", "too", "else"}
_QUESTION_WORDS = {"what", "when", "where", "who", "whom", "whose", "which", "why", "how", "many", "much",
                   "did", "does", "do", "is", "are", "was", "were", "can", "could", "would", "should", "will",
                   "about", "else", "also", "tell", "give", "name", "list", "say", "said", "says"}


def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN  # the list the index's keyword search drops

    return frozenset(STOPWORDS_EN) | _QUESTION_WORDS | _POINTERS


@dataclass(frozen=True)
class Turn:
    """An earlier turn: what was asked, and the documents its answer cited (empty when unknown)."""

    question: str
    doc_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class ContextSearch:
    """What a search in context found.

    Attributes:
        hits: the passages, best first.
        relevance: the cosine of the nearest passage to the question or its expansion, whichever is higher.
        searched: the query with the added terms; ``""`` when the question was searched alone.
        boosted_doc: the document favoured as the previous answer's, or ``None``.
    """

    hits: list[Hit]
    relevance: float
    searched: str = ""
    boosted_doc: str | None = None


def as_turns(history: Sequence[Any] | None) -> tuple[Turn, ...]:
    """The earlier turns, oldest first, from what a caller passes as ``history``.

    Each item is a question (``str``), an :class:`~qa.types.Answer`, or an ``/ask`` JSON object
    (``{"question": ..., "citations": [{"doc_id": ...}, ...]}``; ``"doc_ids"`` also accepted).

    Raises:
        InvalidInput: ``history`` is not a list, or an item is none of those.
    """
    if history is None:
        return ()
    if isinstance(history, (str, bytes, dict)) or not isinstance(history, Sequence):
        raise InvalidInput("history must be a list of the earlier questions, oldest first, "
                           f"e.g. ['Who chairs the NHS Alliance?'], not {type(history).__name__}.")
    turns = []
    for n, item in enumerate(history, start=1):
        if isinstance(item, str):
            turn = Turn(item.strip())
        elif isinstance(item, Answer):
            turn = Turn(item.question.strip(), tuple(dict.fromkeys(c.doc_id for c in item.citations)))
        elif isinstance(item, dict) and isinstance(item.get("question"), str):
            cited = item.get("doc_ids") or [c.get("doc_id") for c in item.get("citations") or [] if isinstance(c, dict)]
            turn = Turn(item["question"].strip(), tuple(dict.fromkeys(d for d in cited if isinstance(d, str))))
        else:
            raise InvalidInput(f"history item {n} must be an earlier question (text) or an earlier answer, "
                               f"got {type(item).__name__} {item!r:.60}.")
        if turn.question:
            turns.append(turn)
    return tuple(turns[-MAX_HISTORY:])


def words(text: str) -> list[str]:
    """The words of ``text`` (letters, digits, inner apostrophes and hyphens), as written, without a
    possessive "'s"."""
    out = (re.sub(r"['’]s$", "", w).strip("'’-") for w in _WORD.findall(text))
    return [w for w in out if w]


def _is_name(term: str) -> bool:
    """A capitalised word or one with a digit: most likely what a conversation is about."""
    return term[:1].isupper() or any(c.isdigit() for c in term)


def terms(text: str) -> list[str]:
    """The search terms of ``text``: its words that are neither the keyword index's stopwords nor question
    words, first occurrence kept, as written (a name keeps its capital)."""
    stop = _stopwords()
    out: dict[str, str] = {}
    for w in words(text):
        key = w.lower()
        if key not in stop and len(key) > 1 and key not in out:
            out[key] = w
    return list(out.values())


def is_follow_up(question: str) -> bool:
    """Whether ``question`` leans on an earlier turn: it opens with "and", "what about" and the like,
    holds a pronoun that points back ("it", "they", "his"; "that" or "there" as its last word), or has at
    most :data:`SHORT_WORDS` words of its own.

    Example:
        >>> is_follow_up("And when was it founded?"), is_follow_up("When was the NHS Alliance founded?")
        (True, False)
    """
    lowered = [w.lower() for w in words(question)]
    if not lowered:
        return False
    if _OPENER.match(question) or any(w in _POINTERS for w in lowered) or lowered[-1] in _END_POINTERS:
        return True
    return len(terms(question)) <= SHORT_WORDS


class FollowUpSearch:
    """Searches a question in the context of the earlier turns (see the module docstring).

    Args:
        retriever: the loaded retriever.
    """

    def __init__(self, retriever: "Retriever"):
        self.retriever = retriever
        self._document_frequency: dict[str, int] | None = None
        self._lock = threading.Lock()

    def search(self, question: str, history: Sequence[Any] | None, top_k: int = 5, mode: str = DEFAULT_MODE,
               doc_ids: list[str] | None = None) -> ContextSearch:
        """The ``top_k`` passages for ``question`` asked after ``history`` (see :func:`as_turns`), within
        ``doc_ids`` when given.

        Raises:
            InvalidInput: a bad history, or what :meth:`Retriever.search` refuses.
        """
        turns = as_turns(history)
        terms = self.context_terms(question, turns) if turns and is_follow_up(question) else []
        if not terms:
            hits, relevance = self.retriever.search_with_relevance(question, top_k=top_k, mode=mode, doc_ids=doc_ids)
            return ContextSearch(hits, relevance)
        searched = f"{question} {' '.join(terms)}"
        pool = max(top_k, CANDIDATES)
        plain, relevance = self.retriever.search_with_relevance(question, top_k=pool, mode=mode, doc_ids=doc_ids)
        expanded, expanded_relevance = self.retriever.search_with_relevance(searched, top_k=pool, mode=mode,
                                                                            doc_ids=doc_ids)
        rankings = [plain, expanded]
        boosted = self._previous_document(turns)
        if boosted is not None and (doc_ids is None or boosted in doc_ids):
            rankings.append(self.retriever.search(question, top_k=pool, mode=mode, doc_ids=[boosted]))
        logger.info("follow-up %r searched as %r, favouring %s", question, searched, boosted)
        return ContextSearch(_fuse(rankings, top_k), max(relevance, expanded_relevance), searched, boosted)

    def context_terms(self, question: str, turns: Sequence[Turn]) -> list[str]:
        """The key terms the earlier turns add to ``question``.

        The candidates are the words of the most recent question that was not a follow-up (the topic)
        and of the follow-ups since; terms already in ``question`` and terms common in the corpus are
        left out. Of the rest, names (capitalised words, numbers) and then the rarest words are kept,
        at most :data:`MAX_TERMS`, in the order they were asked.
        """
        chain: list[str] = []
        for turn in turns:
            own = terms(turn.question)
            chain = chain + own if is_follow_up(turn.question) else own
        asked = {w.lower() for w in words(question)}
        candidates = [t for t in dict.fromkeys(chain) if t.lower() not in asked and not self._common(t)]
        candidates = list({t.lower(): t for t in reversed(candidates)}.values())[::-1]  # first spelling kept
        frequency = self._frequencies()
        ranked = sorted(candidates, key=lambda t: (not _is_name(t), frequency.get(t.lower(), 0)))
        kept = set(ranked[:MAX_TERMS])
        return [t for t in candidates if t in kept]

    def _previous_document(self, turns: Sequence[Turn]) -> str | None:
        """The document the previous answer cited, else the best document for the previous question
        (with its own context); ``None`` when neither is known."""
        documents = self.retriever.documents
        cited = [d for d in turns[-1].doc_ids if d in documents]
        if cited:
            return cited[0]
        previous = turns[-1].question
        terms = self.context_terms(previous, turns[:-1]) if len(turns) > 1 and is_follow_up(previous) else []
        query = f"{previous} {' '.join(terms)}".strip()
        hits = self.retriever.search(query, top_k=1) if words(query) else []
        return hits[0].passage.doc_id if hits else None

    def _common(self, term: str) -> bool:
        """Whether ``term`` occurs in more than :data:`COMMON_SHARE` of the passages."""
        frequency = self._frequencies()
        passages = max(1, frequency.get("", 1))
        return frequency.get(term.lower(), 0) > COMMON_SHARE * passages

    def _frequencies(self) -> dict[str, int]:
        """Passages holding each lower-cased word (``""``: all passages), counted once, on first use."""
        with self._lock:
            if self._document_frequency is None:
                counts: dict[str, int] = {}
                passages = self.retriever.index.passages
                for p in passages:
                    for w in {w.lower() for w in words(p.text)}:
                        counts[w] = counts.get(w, 0) + 1
                counts[""] = len(passages)
                self._document_frequency = counts
            return self._document_frequency


def _fuse(rankings: Sequence[Sequence[Hit]], top_k: int) -> list[Hit]:
    """Reciprocal rank fusion of hit lists; each fused hit keeps its best dense and keyword ranks."""
    by_index: dict[str, Hit] = {}
    ids: dict[str, int] = {}
    for hits in rankings:
        for h in hits:
            ids.setdefault(h.passage.id, len(ids))
            seen = by_index.get(h.passage.id)
            by_index[h.passage.id] = h if seen is None else Hit(
                h.passage, h.score, h.rank, _best(seen.dense_rank, h.dense_rank), _best(seen.keyword_rank, h.keyword_rank))
    names = {i: pid for pid, i in ids.items()}
    fused = reciprocal_rank_fusion([[ids[h.passage.id] for h in hits] for hits in rankings])[:top_k]
    out = []
    for rank, (i, score) in enumerate(fused, start=1):
        h = by_index[names[i]]
        out.append(Hit(h.passage, score, rank, h.dense_rank, h.keyword_rank))
    return out


def _best(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)
