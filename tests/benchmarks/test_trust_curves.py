"""benchmarks/trust_curves.py: runs scored by a calibration, drawn side by side."""

import json

from benchmarks.trust_curves import main, scored
from qa.answering.calibrator import Calibrator


def _rows():
    # Two right candidates with a high span score, two wrong ones with a low score, one unanswerable refused.
    rows = [{"features": {"span_score": s}, "candidate": c, "gold": g, "answerable": bool(g), "source": "x"}
            for s, c, g in ((0.9, "Ada Lowe", ["Ada Lowe"]), (0.8, "1921", ["1921"]),
                            (0.3, "the docks", ["Leith"]), (0.2, "Ben Orr", []), (0.1, "", []))]
    return rows


def _calibration(weight: float) -> dict:
    return {"threshold": 0.5, "calibrator": Calibrator(("span_score",), (0.5,), (0.1,), (weight,), 0.0).to_dict(),
            "bands": [{"name": "High", "min": 0.9}]}


def test_a_calibration_that_ranks_right_answers_first_scores_a_lower_aurc_than_one_that_ranks_them_last():
    scores, right, good = scored(_rows(), _calibration(5.0))
    assert right == [True, True, False, False, False]
    assert scores[0] > scores[1] > scores[2] > scores[3] and scores[4] == 0.0  # no candidate: 0
    _, _, bad = scored(_rows(), _calibration(-5.0))
    assert good["aurc"] < bad["aurc"]
    # Answered at 0.5: the two right ones (good) against the two wrong ones (bad).
    assert good["answerable_refused"] == 1 / 3 and bad["answerable_refused"] == 2 / 3


def test_the_page_has_a_table_and_two_plots_per_data_set(tmp_path):
    rows = tmp_path / "predictions.jsonl"
    rows.write_text("".join(json.dumps({"id": str(i), "question": "q", "gold": r["gold"], "candidate": r["candidate"],
                                        "features": r["features"]}) + "\n" for i, r in enumerate(_rows())))
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(_calibration(5.0)))
    bad.write_text(json.dumps(_calibration(-5.0)))
    out = tmp_path / "curves.html"
    assert main(["--out", str(out), "--run", f"Set A|before|{rows}|{bad}", "--run", f"Set A|after|{rows}|{good}",
                 "--run", f"Set B|after|{rows}|{good}"]) == 0
    page = out.read_text()
    assert page.count("<h2>") == 2 and page.count("<img") == 4
    assert ">before<" in page and ">after<" in page
