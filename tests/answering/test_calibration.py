"""Calibration belongs to a reader: read from, and written to, the reader's own folder."""

from __future__ import annotations

import json
import logging
import shutil

import pytest

from qa.answering.pipeline import (
    FALLBACK_THRESHOLD,
    QA,
    default_threshold,
    load_calibration,
    save_calibration,
)
from qa.errors import InvalidInput, UnsafeDestination
from qa.reading.reader import DEFAULT_READER_DIR, Reader

PACKAGED_CALIBRATION = DEFAULT_READER_DIR / "calibration.json"


@pytest.fixture
def custom_reader(tmp_path):
    """A reader folder of its own (the model loads lazily, so config.json is all QA needs here)."""
    folder = tmp_path / "my-reader"
    folder.mkdir()
    shutil.copy(DEFAULT_READER_DIR / "config.json", folder / "config.json")
    return folder


@pytest.fixture
def packaged_bytes():
    """The packaged calibration file's bytes, checked unchanged after the test."""
    before = PACKAGED_CALIBRATION.read_bytes()
    yield before
    assert PACKAGED_CALIBRATION.read_bytes() == before, "the packaged calibration changed"


def test_a_custom_reader_reads_its_own_calibration(custom_reader, tiny_index, fake_encoder):
    (custom_reader / "calibration.json").write_text(json.dumps({"threshold": 0.77, "relevance_floor": 0.2}))
    qa = QA.load(tiny_index, reader=custom_reader, encoder=fake_encoder)
    assert qa.reader.path == custom_reader
    assert qa.threshold == 0.77
    assert qa.relevance_floor == 0.2


def test_the_packaged_reader_reads_the_packaged_calibration(tiny_index, fake_encoder):
    shipped = json.loads(PACKAGED_CALIBRATION.read_text(encoding="utf-8"))
    qa = QA.load(tiny_index, encoder=fake_encoder)
    assert qa.reader.path == DEFAULT_READER_DIR
    assert qa.threshold == shipped["threshold"] == default_threshold()


def test_an_uncalibrated_reader_uses_the_fallback_and_says_so(custom_reader, tiny_index, fake_encoder, caplog):
    with caplog.at_level(logging.INFO, logger="qa.answering.pipeline"):
        qa = QA.load(tiny_index, reader=custom_reader, encoder=fake_encoder)
    assert qa.threshold == FALLBACK_THRESHOLD
    assert any("uncalibrated" in r.getMessage() and str(custom_reader) in r.getMessage() for r in caplog.records)


def test_an_explicit_threshold_wins(custom_reader, tiny_index, fake_encoder):
    (custom_reader / "calibration.json").write_text(json.dumps({"threshold": 0.77}))
    assert QA.load(tiny_index, reader=custom_reader, threshold=0.5, encoder=fake_encoder).threshold == 0.5


def test_saving_for_a_custom_reader_writes_there_and_never_the_packaged_file(custom_reader, packaged_bytes):
    path = save_calibration(0.42, {"method": "test"}, custom_reader)
    assert path == custom_reader / "calibration.json"
    assert json.loads(path.read_text(encoding="utf-8")) == {"threshold": 0.42, "method": "test"}
    assert load_calibration(custom_reader) == {"threshold": 0.42, "method": "test"}
    assert default_threshold(reader_dir=custom_reader) == 0.42
    assert default_threshold() == json.loads(packaged_bytes)["threshold"]
    # A reader built from that folder picks the new threshold up.
    assert QA(retriever=None, reader=Reader(custom_reader)).threshold == 0.42


def test_saving_into_the_packaged_reader_needs_explicit_permission(packaged_bytes):
    for where in (None, DEFAULT_READER_DIR, PACKAGED_CALIBRATION):
        with pytest.raises(UnsafeDestination, match="packaged"):
            save_calibration(0.42, {"method": "test"}, where)
    assert not list(DEFAULT_READER_DIR.glob("*.tmp"))


def test_allow_packaged_writes_the_packaged_file(tmp_path, monkeypatch):
    # A stand-in for the package's reader folder, so the real file is never rewritten by a test.
    import qa.reading.reader as reader

    fake_package = tmp_path / "package-reader"
    fake_package.mkdir()
    monkeypatch.setitem(reader.READER_DIRS, reader.DEFAULT_READER, fake_package)
    with pytest.raises(UnsafeDestination):
        save_calibration(0.3, {}, fake_package)
    path = save_calibration(0.3, {"method": "calibrate"}, allow_packaged=True)
    assert path == fake_package / "calibration.json"
    assert load_calibration(fake_package)["threshold"] == 0.3


def test_a_json_path_is_still_accepted(tmp_path):
    path = tmp_path / "elsewhere.json"
    assert save_calibration(0.25, {}, path) == path
    assert load_calibration(path) == {"threshold": 0.25}


@pytest.mark.parametrize("bad", [2.0, -0.1, float("nan"), "0.5", True, None])
def test_a_bad_threshold_is_invalid_input(custom_reader, bad):
    with pytest.raises(InvalidInput, match="threshold"):
        save_calibration(bad, {}, custom_reader)
    with pytest.raises(InvalidInput, match="threshold"):
        QA(retriever=None, reader=Reader(custom_reader), threshold=bad if bad is not None else "x")
    assert not (custom_reader / "calibration.json").exists()
