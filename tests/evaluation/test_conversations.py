"""The conversation runner on a hand-made dialogue set and a stand-in pipeline, and the bundled set's gold answers."""

from __future__ import annotations

import json

import pytest

from helpers.corpus import REPO_ROOT, tracked_files
from qa.errors import InvalidInput
from qa.evaluation.conversations import (evaluate_conversations, format_conversation_table, load_conversations,
                                         render_conversation_report)
from qa.types import Answer, Hit, Passage

DOCS = {"zoo": "The zoo opened in 1931. Its keeper is Ann Lee.", "park": "The park opened in 1887."}


class StandInQA:
    """Answers from a table: with a history, the follow-up "When did it open?" is answered from the zoo;
    alone it reads the park. The passages it "retrieved" are the document it answered from."""

    threshold = 0.5
    documents = {k: object() for k in DOCS}

    def __init__(self):
        self.calls = []

    def ask(self, question, top_k=5, mode="hybrid", threshold=None, history=None):
        self.calls.append((question, [a.question for a in history] if history is not None else None))
        table = {"Who keeps the zoo?": ("zoo", "Ann Lee"), "When did it open?": ("zoo" if history else "park", None),
                 "What does it cost?": ("park", None)}
        doc, text = table[question]
        if question == "When did it open?":
            text = "1931" if doc == "zoo" else "1887"
        passage = Passage(f"{doc}:0", doc, 0, len(DOCS[doc]), DOCS[doc])
        return Answer(question=question, text=text, score=0.9 if text else 0.1, abstained=text is None, evidence="",
                      hits=(Hit(passage, 1.0, 1),), searched=f"{question} zoo" if history else "")


def _write(tmp_path, rows):
    path = tmp_path / "conversations.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_the_runner_scores_each_turn_alone_and_in_context(tmp_path):
    path = _write(tmp_path, [
        {"id": "a", "turns": [{"question": "Who keeps the zoo?", "answers": ["Ann Lee"], "doc_id": "zoo"},
                              {"question": "When did it open?", "answers": ["1931"], "doc_id": "zoo"}]},
        {"id": "b", "turns": [{"question": "Who keeps the zoo?", "answers": ["Ann Lee"], "doc_id": "zoo"},
                              {"question": "What does it cost?", "answers": [], "doc_id": None}]},
    ])
    qa = StandInQA()
    result = evaluate_conversations(qa, load_conversations(path))
    # The second turn of "a" is asked alone, then with the first turn's answer as its history.
    assert qa.calls[2:4] == [("When did it open?", None), ("When did it open?", ["Who keeps the zoo?"])]
    m = result.metrics
    # Turn 1: both dialogues answered "Ann Lee" from the zoo, alone and in context: hit 1, F1 1.
    assert m["by_turn"]["1"]["alone"] == m["by_turn"]["1"]["in_context"] == {
        "hit@k": 1.0, "f1": 1.0, "overall_f1": 1.0, "unanswerable_refused": None}
    # Turn 2: "a" alone reads the park ("1887": no hit, F1 0), in context the zoo ("1931": hit, F1 1);
    # "b" is unanswerable and refused both times (overall F1 1 each). Overall F1: (0 + 1) / 2 alone,
    # (1 + 1) / 2 in context.
    assert m["by_turn"]["2"]["alone"] == {"hit@k": 0.0, "f1": 0.0, "overall_f1": 0.5, "unanswerable_refused": 1.0}
    assert m["by_turn"]["2"]["in_context"] == {"hit@k": 1.0, "f1": 1.0, "overall_f1": 1.0,
                                               "unanswerable_refused": 1.0}
    assert m["follow_ups"]["expanded"] == 2 and m["by_turn"]["1"]["expanded"] == 0
    # All four turns: hit@k over the three answerable ones, alone 2/3, in context 3/3.
    assert m["all"]["alone"]["hit@k"] == pytest.approx(2 / 3) and m["all"]["in_context"]["hit@k"] == 1.0
    table = format_conversation_table(m)
    assert "0.000 -> 1.000" in table and "turn 2" in table
    report = render_conversation_report(m, result.records)
    assert "When did it open? zoo" in report and "a-t2" in report and "b-t2" not in report


@pytest.mark.parametrize("row, message", [
    ({"id": "x", "turns": []}, "non-empty list"),
    ({"id": "x", "turns": [{"question": "q?", "answers": [], "doc_id": "zoo"}]}, "answers \\[\\] and doc_id null"),
    ({"id": "x", "turns": [{"question": "q?", "answers": ["a"]}]}, "exactly the keys"),
    ({"turns": []}, "exactly the keys"),
])
def test_a_malformed_conversation_is_refused_with_its_line(tmp_path, row, message):
    with pytest.raises(InvalidInput, match=message) as refused:
        load_conversations(_write(tmp_path, [row]))
    assert "line 1" in str(refused.value)


def test_the_bundled_conversations_quote_their_documents():
    """At least 40 dialogues of 2-4 turns, some turns unanswerable; every gold answer verbatim in its document."""
    conversations = load_conversations(REPO_ROOT / "eval" / "conversations.jsonl")
    texts = {p.stem: p.read_text(encoding="utf-8") for p in tracked_files(REPO_ROOT / "seeds")}
    assert len(conversations) >= 40 and all(2 <= len(c.turns) <= 4 for c in conversations)
    turns = [t for c in conversations for t in c.turns]
    assert sum(not t.answers for t in turns) >= 10
    for t in turns:
        for answer in t.answers:
            assert answer in texts[t.doc_id], (t.question, answer)
