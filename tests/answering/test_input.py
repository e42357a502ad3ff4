"""Bad questions and thresholds are InvalidInput with a message that says which, never a crash."""

from __future__ import annotations

import pytest

from qa.answering.pipeline import QA
from qa.errors import InvalidInput, UserError
from qa.reading.reader import Reader
from qa.types import Passage

NOT_TEXT = "the question contains characters that are not text"


@pytest.fixture
def qa(tiny_index, fake_encoder):
    return QA.load(tiny_index, encoder=fake_encoder)


@pytest.mark.parametrize("question", [None, 42, b"When do cats sleep?", ["When?"]])
def test_a_question_that_is_not_a_string(qa, question):
    with pytest.raises(InvalidInput, match="the question must be text"):
        qa.ask(question)
    with pytest.raises(InvalidInput, match="the question must be text"):
        Reader().read(question, [])


@pytest.mark.parametrize("question", ["", "   ", "\n\t "])
def test_a_blank_question(qa, question):
    with pytest.raises(InvalidInput, match="the question is empty"):
        qa.ask(question)
    with pytest.raises(InvalidInput, match="the question is empty"):
        Reader().read(question, [])


@pytest.mark.parametrize("question", ["When do cats sleep?\ud800", "\udfff", "When do\x00 cats sleep?"])
def test_a_question_with_characters_that_are_not_text(qa, question):
    with pytest.raises(InvalidInput, match=NOT_TEXT):
        qa.ask(question)
    text = "Domestic cats sleep for around fifteen hours a day."
    with pytest.raises(InvalidInput, match=NOT_TEXT):
        Reader().read(question, [Passage("p", "d", 0, len(text), text)])


@pytest.mark.parametrize("threshold", [1.5, -0.01, float("nan"), "0.5", True])
def test_a_bad_threshold(qa, threshold):
    with pytest.raises(InvalidInput, match="threshold"):
        qa.ask("When do cats sleep?", threshold=threshold)


def test_errors_are_user_errors_and_still_value_errors(qa):
    with pytest.raises(UserError) as caught:
        qa.ask("   ")
    assert isinstance(caught.value, ValueError)
    assert "\n" not in str(caught.value)
