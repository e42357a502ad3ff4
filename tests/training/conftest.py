"""The training tests' tokenizer."""

from __future__ import annotations

import pytest


@pytest.fixture
def tokenizer():
    """The base model's tokenizer, fresh for each test (a fast tokenizer keeps truncation settings in its state)."""
    from transformers import AutoTokenizer

    from qa.training.trainer import default_base_model

    return AutoTokenizer.from_pretrained(default_base_model())
