"""Speechocean762 reader on synthetic corpora: valid layouts and every broken variant."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pronscore.corpora.speechocean762 import prepare_speechocean762, read_parquet_export
from pronscore.errors import CorpusError
from synthetic_corpus import make_corpus


def test_reads_valid_corpus(tmp_path: Path) -> None:
    root = make_corpus(tmp_path / "c", splits={"train": 3, "test": 2})
    m = prepare_speechocean762(root, strict=True)
    assert {k: len(v) for k, v in m.splits.items()} == {"train": 12, "test": 8}
    assert m.problems == ()
    u = m.splits["train"][0]
    assert u.id == "000100000" and u.speaker == "0001" and u.age == 8 and u.is_child
    assert u.text == "WE CALL IT BEAR"
    assert [w.text for w in u.labels.words] == ["WE", "CALL", "IT", "BEAR"]
    assert [p.phone for p in u.labels.words[1].phones] == ["K", "AO1", "L"]
    assert u.labels.utterance.total == 3.0
    assert m.lexicon["BEAR"] == [("B", "EH1", "R")]


def test_original_wav_layout(tmp_path: Path) -> None:
    root = make_corpus(tmp_path / "c", splits={"train": 2, "test": 2}, suffix=".WAV")
    m = prepare_speechocean762(root, strict=True)
    assert all(u.audio_path.suffix == ".WAV" for u in m.splits["test"])


def test_only_test_split(tmp_path: Path) -> None:
    root = make_corpus(tmp_path / "c", splits={"test": 2})
    assert set(prepare_speechocean762(root).splits) == {"test"}


PHONE_ACC = '"phones-accuracy": [\n     {},'


def _break(root: Path, rel: str, old: str, new: str) -> None:
    p = root / rel
    text = p.read_text()
    assert old in text
    p.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize(
    ("rel", "old", "new", "message"),
    [
        ("train/text", "000100001\tCALL IT\n", "", "is in wav.scp but not in text"),
        ("train/utt2spk", "000100001 0001\n", "", "but not in utt2spk"),
        ("train/wav.scp", "000100001\t", "000100001 ", None),  # tab or space both fine
        ("train/text", "000100001\tCALL IT", "000100001", "malformed line"),
        ("resource/scores.json", '"accuracy": 3,', '"accuracy": 13,', "outside 0-10"),
        ("resource/scores.json", PHONE_ACC.format(2.0), PHONE_ACC.format(2.5), "outside 0-2"),
    ],
)  # fmt: skip
def test_broken_inputs_named(
    tmp_path: Path, rel: str, old: str, new: str, message: str | None
) -> None:
    root = make_corpus(tmp_path / "c")
    _break(root, rel, old, new)
    if message is None:
        assert len(prepare_speechocean762(root, strict=True).splits["train"]) == 12
        return
    with pytest.raises(CorpusError, match=message) as err:
        prepare_speechocean762(root, strict=True)
    assert Path(rel).name in str(err.value)
    if "malformed" in message:
        assert ":" in str(err.value) and err.value.line is not None
    if "outside" in message:
        assert err.value.field is not None and err.value.field.startswith("0001")


def test_missing_audio_strict_and_lenient(tmp_path: Path) -> None:
    root = make_corpus(tmp_path / "c")
    (root / "WAVE/SPEAKER0002/000200001.flac").unlink()
    with pytest.raises(CorpusError, match="audio file not found") as err:
        prepare_speechocean762(root, strict=True)
    assert "wav.scp" in str(err.value)
    m = prepare_speechocean762(root, strict=False)
    assert len(m.splits["train"]) == 11
    assert len(m.problems) == 1 and "000200001" in str(m.problems[0])


def test_missing_scores_file_is_fatal_even_lenient(tmp_path: Path) -> None:
    root = make_corpus(tmp_path / "c")
    (root / "resource/scores.json").unlink()
    with pytest.raises(CorpusError, match="scores file is missing"):
        prepare_speechocean762(root)


def test_invalid_json_names_line(tmp_path: Path) -> None:
    root = make_corpus(tmp_path / "c")
    (root / "resource/scores.json").write_text('{"a": 1,\n oops}')
    with pytest.raises(CorpusError, match=r"scores.json:2"):
        prepare_speechocean762(root)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="corpus folder not found"):
        prepare_speechocean762(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="no train/ or test/"):
        prepare_speechocean762(tmp_path / "empty")


def test_parquet_export(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = make_corpus(tmp_path / "c", splits={"train": 1, "test": 1})
    scores = json.loads((root / "resource/scores.json").read_text())
    out = tmp_path / "hf" / "data"
    out.mkdir(parents=True)
    for split in ("train", "test"):
        rows = []
        for line in (root / split / "wav.scp").read_text().splitlines():
            utt, rel = line.split("\t")
            s = scores[utt]
            rows.append({
                "audio": {"bytes": (root / rel).read_bytes(), "path": f"{utt}.wav"},
                "text": s["text"], "accuracy": s["accuracy"], "completeness": s["completeness"],
                "fluency": s["fluency"], "prosodic": s["prosodic"], "total": s["total"],
                "words": [{**w, "mispronunciations": []} for w in s["words"]],
                "speaker": utt[:4], "gender": "m", "age": 9,
            })  # fmt: skip
        pq.write_table(pa.Table.from_pylist(rows), out / f"{split}-00000-of-00001.parquet")
    m = prepare_speechocean762(tmp_path / "hf", strict=True)
    assert {k: len(v) for k, v in m.splits.items()} == {"train": 4, "test": 4}
    u = m.splits["train"][0]
    assert u.audio_bytes and u.audio_path is None and u.age == 9
    assert u.labels == prepare_speechocean762(root).splits["train"][0].labels
    assert read_parquet_export(tmp_path / "hf").splits.keys() == m.splits.keys()
