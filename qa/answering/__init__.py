"""Answering: the question-to-cited-answer pipeline and its abstention."""
