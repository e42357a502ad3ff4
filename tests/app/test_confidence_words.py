"""The number beside an answer and what it was worth on documents the model had not seen, said together."""

from __future__ import annotations

from qa.app.render import SCORE_MEANING, likely_right, worth

TABLE = [{"low": 0.3, "high": 0.4, "answers": 40, "right": 0.35}, {"low": 0.7, "high": 0.8, "answers": 25, "right": 0.72},
         {"low": 0.9, "high": 1.0, "answers": 12, "right": 0.9167}]


def test_the_score_is_said_as_a_chance_and_its_range_quotes_the_held_out_answers():
    assert likely_right(0.754) == "75% likely right" and likely_right(1.0) == "100% likely right"
    assert worth(0.75, TABLE) == "Of 25 answers scored 70-80% on documents the model had not seen, 72% were right. "
    assert worth(1.0, TABLE).startswith("Of 12 answers scored 90-100%")  # the last range holds 1.0
    assert worth(0.55, TABLE) == SCORE_MEANING + " "  # no held-out answers scored like it: what the number means
    assert worth(0.75) == SCORE_MEANING + " "  # a reader calibrated without held-out runs
