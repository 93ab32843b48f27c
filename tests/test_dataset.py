"""prepare -> DatasetDict: splits, speaker-disjoint dev, labels kept, atomic, cheap re-runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from pronscore.corpora.speechocean762 import prepare_speechocean762
from pronscore.dataset import (
    PrepareConfig,
    load_prepared,
    prepare_dataset,
    row_labels,
    split_dev_speakers,
    split_references,
)
from pronscore.errors import CorpusError
from synthetic_corpus import make_corpus


def _quiet(_: str) -> None:
    pass


def test_prepare_both_splits(tmp_path: Path) -> None:
    root = make_corpus(tmp_path / "c", splits={"train": 2, "test": 2}, speakers_per_split=10,
                       suffix=".WAV", sample_rate=44100)  # fmt: skip
    out = prepare_dataset(
        root, tmp_path / "ds", PrepareConfig(dev_speakers=0.2), progress=False, log=_quiet
    )
    dd = load_prepared(out)
    assert set(dd) == {"train", "dev", "test"}
    assert len(dd["train"]) + len(dd["dev"]) == 20 and len(dd["test"]) == 20
    assert not set(dd["train"]["speaker"]) & set(dd["dev"]["speaker"])
    dev_ages = set(dd["dev"]["age"])
    assert dev_ages == {8, 30}  # both age groups are represented in dev
    row = dd["dev"][0]
    assert dd["dev"].features["audio"].feature.dtype == "float32"  # rows read back as lists
    assert row["duration"] == pytest.approx(len(row["audio"]) / 16000)
    assert abs(len(row["audio"]) / 16000 - (0.5 + 0.1 * int(row["id"][-1]))) < 0.01  # resampled
    manifest = prepare_speechocean762(root)
    original = {u.id: u.labels for u in manifest.splits["train"]}
    assert row_labels(row) == original[row["id"]]
    refs, meta = split_references(dd["test"])
    test_ids = {u.id for u in manifest.splits["test"]}
    assert set(refs) == set(meta) == test_ids and len(test_ids) == 20
    assert row["id"] not in meta  # a dev row: split_references reads only the split it is given
    for u in manifest.splits["test"]:  # speaker 0101 is a girl of 8, 0102 a man of 30, ...
        assert refs[u.id] == u.labels
        assert (meta[u.id].age, meta[u.id].gender) == (u.age, u.gender)
    assert (meta["010100000"].age, meta["010100000"].gender) == (8, "f")
    assert (meta["010200001"].age, meta["010200001"].gender) == (30, "m")


def test_dev_split_deterministic_and_balanced(tmp_path: Path) -> None:
    utts = prepare_speechocean762(make_corpus(tmp_path / "c", speakers_per_split=20)).splits[
        "train"
    ]
    a = split_dev_speakers(utts, 0.1, seed=0)
    assert a == split_dev_speakers(utts, 0.1, seed=0)
    assert a != split_dev_speakers(utts, 0.1, seed=1)
    train, dev = a
    assert len(dev) == 2 and not train & dev
    ages = {u.speaker: u.age for u in utts}
    assert sorted(ages[s] for s in dev) == [8, 30]


def test_rerun_is_cheap_and_failure_leaves_nothing(tmp_path: Path) -> None:
    root = make_corpus(tmp_path / "c")
    out = tmp_path / "ds"
    logs: list[str] = []
    prepare_dataset(root, out, progress=False, log=logs.append)
    before = (out / "prepare.json").stat().st_mtime_ns
    prepare_dataset(root, out, progress=False, log=logs.append)
    assert "up to date" in logs[-1] and (out / "prepare.json").stat().st_mtime_ns == before
    # a corrupt audio file makes a strict run fail: nothing is written, the old output stays
    (root / "WAVE/SPEAKER0002/000200001.flac").write_bytes(b"not audio")
    with pytest.raises(CorpusError, match=r"000200001.*cannot decode"):
        prepare_dataset(
            root, tmp_path / "ds2", PrepareConfig(strict=True), progress=False, log=_quiet
        )
    assert not (tmp_path / "ds2").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".ds2")] == []


def test_lenient_skips_corrupt_audio(tmp_path: Path) -> None:
    root = make_corpus(tmp_path / "c")
    (root / "WAVE/SPEAKER0002/000200001.flac").write_bytes(b"not audio")
    dd = load_prepared(prepare_dataset(root, tmp_path / "ds", progress=False, log=_quiet))
    ids = set(dd["train"]["id"]) | set(dd["dev"]["id"])
    assert len(ids) == 11 and "000200001" not in ids
