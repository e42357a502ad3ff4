"""BEIR runs stay apart: each data set has its own default --out, and a corpus folder only ever holds
the files qa wrote into it (others make it refuse; nothing it did not write is deleted)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from qa.errors import UnsafeDestination
from qa.evaluation.benchmarks import BeirData, build_beir_index, load_beir, run_beir, write_beir_corpus


def _beir_folder(root: Path, docs: dict[str, str], queries: dict[str, tuple[str, str]]) -> Path:
    """A BEIR folder: ``docs`` {id: text}, ``queries`` {id: (text, relevant doc id)}."""
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text("".join(json.dumps({"_id": d, "title": "", "text": t}) + "\n"
                                               for d, t in docs.items()), encoding="utf-8")
    (root / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": t}) + "\n"
                                                for q, (t, _) in queries.items()), encoding="utf-8")
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"{q}\t{d}\t1\n" for q, (_, d) in queries.items()), encoding="utf-8")
    return root


CATS = {"c1": "Domestic cats sleep fifteen hours a day.", "c2": "Kittens open their eyes after ten days."}
ROCKETS = {"r1": "A rocket engine burns propellant to produce thrust.", "r2": "Saturn V carried astronauts."}


def test_a_second_data_set_in_the_same_out_folder_indexes_only_its_own_documents(tmp_path, fake_encoder):
    from qa.retrieval.retriever import Retriever

    cats = load_beir(_beir_folder(tmp_path / "cats", CATS, {"q": ("how long do cats sleep", "c1")}))
    rockets = load_beir(_beir_folder(tmp_path / "rockets", ROCKETS, {"q": ("rocket thrust", "r1")}))
    out = tmp_path / "out"
    build_beir_index(cats, out, encoder=fake_encoder)
    ids = build_beir_index(rockets, out, encoder=fake_encoder)
    assert sorted(ids.values()) == ["r1", "r2"]
    # The old data set's documents are gone from the corpus folder and from the index.
    assert sorted(p.name for p in (out / "corpus").glob("*.txt")) == ["r1.txt", "r2.txt"]
    assert sorted(Retriever.load(out / "index", encoder=fake_encoder).documents) == ["r1", "r2"]


def test_writing_a_corpus_into_a_folder_with_other_files_refuses_and_deletes_nothing(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("my own notes", encoding="utf-8")
    (folder / "sub").mkdir()
    (folder / "sub" / "c1.txt").write_text("not written by qa", encoding="utf-8")
    data = BeirData({d: ("", t) for d, t in CATS.items()}, {}, {})
    with pytest.raises(UnsafeDestination, match="did not write"):
        write_beir_corpus(data, folder)
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
        "notes.txt", "sub/c1.txt"]
    assert (folder / "notes.txt").read_text(encoding="utf-8") == "my own notes"


def test_a_file_added_by_hand_next_to_a_written_corpus_is_kept_and_blocks_the_next_write(tmp_path):
    folder = tmp_path / "corpus"
    write_beir_corpus(BeirData({d: ("", t) for d, t in CATS.items()}, {}, {}), folder)
    (folder / "extra.txt").write_text("added by a person", encoding="utf-8")
    with pytest.raises(UnsafeDestination):
        write_beir_corpus(BeirData({d: ("", t) for d, t in ROCKETS.items()}, {}, {}), folder)
    assert (folder / "extra.txt").read_text(encoding="utf-8") == "added by a person"
    assert sorted(p.name for p in folder.glob("*.txt")) == ["c1.txt", "c2.txt", "extra.txt"]


def test_run_beir_refuses_an_out_folder_holding_files_it_did_not_write(tmp_path, fake_encoder):
    data_dir = _beir_folder(tmp_path / "cats", CATS, {"q": ("how long do cats sleep", "c1")})
    out = tmp_path / "results"
    out.mkdir()
    (out / "metrics.json").write_text("a person's own file", encoding="utf-8")
    with pytest.raises(UnsafeDestination):
        run_beir(data_dir, out, encoder=fake_encoder)
    assert (out / "metrics.json").read_text(encoding="utf-8") == "a person's own file"
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json"]


def test_run_beir_writes_runs_and_metrics_and_runs_again_in_place(tmp_path, fake_encoder):
    data_dir = _beir_folder(tmp_path / "cats", CATS, {"q": ("how long do cats sleep", "c1")})
    out = tmp_path / "out"
    report = run_beir(data_dir, out, modes=["bm25"], encoder=fake_encoder)
    # One query whose only relevant document is ranked first by BM25 (the only one with "cats" and "sleep").
    assert report["modes"]["bm25"]["ndcg@10"] == 1.0 and report["documents"] == 2
    assert json.loads((out / "metrics.json").read_text(encoding="utf-8")) == report
    assert (out / "run.bm25.tsv").read_text().split()[:3] == ["q", "Q0", "c1"]
    assert run_beir(data_dir, out, modes=["bm25"], encoder=fake_encoder)["modes"]["bm25"]["ndcg@10"] == 1.0


def _eval_args(argv: list[str]) -> argparse.Namespace:
    from qa.cli import build_parser

    return build_parser(["eval"]).parse_args(["eval", *argv])


def test_default_out_is_per_data_set(tmp_path, monkeypatch):
    import qa.cli.evaluate

    seen = []
    monkeypatch.setattr(qa.cli.evaluate, "run_beir", lambda data, out, **kw: seen.append(Path(out)) or
                        {"modes": {}, "data": str(data)})
    for data in ("data/beir/scifact", "data/beir/nfcorpus/"):
        args = _eval_args(["beir", "--data", data, "--quiet", "--json"])
        assert args.func(args) == 0
    assert seen[0] != seen[1]
    assert [p.name for p in seen] == ["scifact", "nfcorpus"]
