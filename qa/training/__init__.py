"""Training the span reader on SQuAD-format data."""
