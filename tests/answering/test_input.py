"""Bad questions and thresholds are InvalidInput with a message that says which, never a crash."""

from __future__ import annotations

import pytest

from qa.answering.pipeline import QA
from qa.errors import InvalidInput, UserError

NOT_TEXT = "(?i)the question contains characters that are not text"


@pytest.fixture
def qa(tiny_index, fake_encoder):
    return QA.load(tiny_index, encoder=fake_encoder)


@pytest.mark.parametrize("question", [None, 42, b"When do cats sleep?", ["When?"]])
def test_a_question_that_is_not_a_string(qa, question):
    with pytest.raises(InvalidInput, match="(?i)the question must be text"):
        qa.ask(question)


@pytest.mark.parametrize("question", ["", "   ", "\n\t "])
def test_a_blank_question(qa, question):
    with pytest.raises(InvalidInput, match="(?i)the question is empty"):
        qa.ask(question)


@pytest.mark.parametrize("question", ["When do cats sleep?\ud800", "\udfff", "When do\x00 cats sleep?"])
def test_a_question_with_characters_that_are_not_text(qa, question):
    with pytest.raises(InvalidInput, match=NOT_TEXT):
        qa.ask(question)


@pytest.mark.parametrize("threshold", [1.5, -0.01, float("nan"), "0.5", True])
def test_a_bad_threshold(qa, threshold):
    with pytest.raises(InvalidInput, match="threshold"):
        qa.ask("When do cats sleep?", threshold=threshold)


def test_errors_are_user_errors_and_still_value_errors(qa):
    with pytest.raises(UserError) as caught:
        qa.ask("   ")
    assert isinstance(caught.value, ValueError)
    assert "\n" not in str(caught.value)


def test_a_long_question_is_cut_once_to_what_the_pipeline_reads():
    from qa.answering.question import MAX_QUESTION_CHARS, check_question

    asked = "  When " + "q" * MAX_QUESTION_CHARS + "?  "
    cut = check_question(asked)
    assert cut == ("When " + "q" * MAX_QUESTION_CHARS)[:MAX_QUESTION_CHARS]
    assert check_question(cut) == cut  # each place a request enters may check it again: nothing changes
    with pytest.raises(InvalidInput, match="fewer words"):  # a server's limit refuses rather than cuts
        check_question(asked, max_chars=100)
