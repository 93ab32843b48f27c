"""Speechocean762 (Zhang et al., Interspeech 2021; openslr 101; CC BY 4.0).

Two layouts are read:

* the original release: ``train/`` and ``test/`` Kaldi-style lists (``wav.scp``, ``text``,
  ``utt2spk``, ``spk2age``, ``spk2gender``) and ``resource/`` (``scores.json``,
  ``text-phone``, ``lexicon.txt``); either split may be absent; ``wav.scp`` paths are relative
  to the corpus root (``.WAV`` in the release, ``.flac`` in re-encoded copies);
* the Hugging Face export (``mispeech/speechocean762`` schema) as local parquet files.

Every problem is a :class:`~pronscore.errors.CorpusError` naming file, line or field and the
reason. ``strict=True`` raises the first one; otherwise bad utterances are skipped and the
problems returned in the manifest.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pronscore.constants import (
    PHONE_SCALE,
    UTTERANCE_ASPECTS,
    UTTERANCE_SCALE,
    WORD_ASPECTS,
    WORD_SCALE,
)
from pronscore.corpora.base import CorpusManifest, Utterance
from pronscore.errors import CorpusError
from pronscore.labels import utterance_labels, word_labels
from pronscore.schema import Assessment
from pronscore.text import base_phone, check_phone, read_lexicon

SPLITS = ("train", "test")
REQUIRED_LISTS = ("wav.scp", "text", "utt2spk")
SPEAKER_LISTS = ("spk2age", "spk2gender")
AUDIO_SUFFIXES = (".WAV", ".wav", ".flac", ".FLAC")

Report = Callable[[CorpusError], None]


def prepare_speechocean762(
    corpus_dir: str | Path, *, strict: bool = False, check_audio: bool = True
) -> CorpusManifest:
    """Read the corpus (original layout or parquet export) into a typed manifest."""
    root = Path(corpus_dir)
    if not root.is_dir():
        raise CorpusError("corpus folder not found", path=root)
    if not any((root / s).is_dir() for s in SPLITS) and _parquet_files(root):
        return read_parquet_export(root, strict=strict)
    present = [s for s in SPLITS if (root / s).is_dir()]
    if not present:
        raise CorpusError("no train/ or test/ folder and no parquet files", path=root)
    problems: list[CorpusError] = []

    def report(err: CorpusError) -> None:
        if strict:
            raise err
        problems.append(err)

    resource = root / "resource"
    scores = _read_scores(resource / "scores.json")
    text_phone = _read_text_phone(resource / "text-phone")
    lexicon = read_lexicon(resource / "lexicon.txt") if (resource / "lexicon.txt").is_file() else {}
    splits = {
        split: _read_split(root, split, scores, text_phone, report, check_audio)
        for split in present
    }
    return CorpusManifest(splits=splits, problems=tuple(problems), lexicon=lexicon)


# --- original layout ---------------------------------------------------------------------


def read_kaldi_list(path: Path) -> dict[str, tuple[str, int]]:
    """``key<ws>value`` lines -> {key: (value, line number)}; malformed lines raise."""
    if not path.is_file():
        raise CorpusError("required list file is missing", path=path)
    out: dict[str, tuple[str, int]] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.strip().split(maxsplit=1)
        if len(parts) != 2:
            raise CorpusError("malformed line: expected '<id> <value>'", path=path, line=n)
        if parts[0] in out:
            raise CorpusError(f"duplicate id {parts[0]!r}", path=path, line=n)
        out[parts[0]] = (parts[1].strip(), n)
    return out


def _read_scores(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CorpusError("scores file is missing", path=path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CorpusError(f"invalid JSON ({exc.msg})", path=path, line=exc.lineno) from exc
    if not isinstance(data, dict):
        raise CorpusError("expected an object keyed by utterance id", path=path)
    return data


def _read_text_phone(path: Path) -> dict[str, dict[int, tuple[str, ...]]]:
    """``<utt>.<word index> PH_B PH_E`` -> {utt: {word index: phones without marks}}."""
    if not path.is_file():
        return {}
    out: dict[str, dict[int, tuple[str, ...]]] = {}
    for key, (value, n) in read_kaldi_list(path).items():
        utt, _, idx = key.rpartition(".")
        if not utt or not idx.isdigit():
            raise CorpusError(
                f"malformed key {key!r}: expected <utt>.<word index>", path=path, line=n
            )
        phones = tuple(check_phone(p, path=str(path), line=n) for p in value.split())
        out.setdefault(utt, {})[int(idx)] = phones
    return out


def _resolve_audio(root: Path, rel: str) -> Path | None:
    path = Path(rel) if Path(rel).is_absolute() else root / rel
    if path.is_file():
        return path
    for suffix in AUDIO_SUFFIXES:  # .WAV lists next to re-encoded .flac files and vice versa
        alt = path.with_suffix(suffix)
        if alt.is_file():
            return alt
    return None


def _read_split(
    root: Path,
    split: str,
    scores: dict[str, Any],
    text_phone: dict[str, dict[int, tuple[str, ...]]],
    report: Report,
    check_audio: bool,
) -> list[Utterance]:
    folder = root / split
    lists = {name: read_kaldi_list(folder / name) for name in REQUIRED_LISTS}
    spk = {n: read_kaldi_list(folder / n) for n in SPEAKER_LISTS if (folder / n).is_file()}
    wav, text, utt2spk = lists["wav.scp"], lists["text"], lists["utt2spk"]
    all_ids = sorted(set(wav) | set(text) | set(utt2spk))
    utterances = []
    for utt in all_ids:
        missing = [n for n, lst in lists.items() if utt not in lst]
        if missing:
            have = next(n for n in REQUIRED_LISTS if n not in missing)
            report(CorpusError(
                f"utterance {utt} is in {have} but not in {', '.join(missing)}",
                path=folder / missing[0],
            ))  # fmt: skip
            continue
        try:
            utterances.append(
                _utterance(root, folder, utt, wav[utt], text[utt], utt2spk[utt][0], spk,
                           scores, text_phone.get(utt, {}), check_audio)
            )  # fmt: skip
        except CorpusError as err:
            report(err)
    return utterances


def _utterance(
    root: Path,
    folder: Path,
    utt: str,
    wav: tuple[str, int],
    text: tuple[str, int],
    speaker: str,
    spk: dict[str, dict[str, tuple[str, int]]],
    scores: dict[str, Any],
    phones_by_word: dict[int, tuple[str, ...]],
    check_audio: bool,
) -> Utterance:
    audio = _resolve_audio(root, wav[0])
    if audio is None and check_audio:
        raise CorpusError(
            f"audio file not found: {root / wav[0]}", path=folder / "wav.scp", line=wav[1]
        )
    age = gender = None
    if "spk2age" in spk:
        if speaker not in spk["spk2age"]:
            raise CorpusError(f"speaker {speaker} of {utt} has no age", path=folder / "spk2age")
        raw_age = spk["spk2age"][speaker]
        if not raw_age[0].isdigit():
            raise CorpusError(
                f"age {raw_age[0]!r} is not a number", path=folder / "spk2age", line=raw_age[1]
            )
        age = int(raw_age[0])
    if "spk2gender" in spk:
        if speaker not in spk["spk2gender"]:
            raise CorpusError(
                f"speaker {speaker} of {utt} has no gender", path=folder / "spk2gender"
            )
        gender = spk["spk2gender"][speaker][0].lower()
    scores_path = root / "resource" / "scores.json"
    if utt not in scores:
        raise CorpusError(
            f"utterance {utt} is in {folder.name}/wav.scp but has no scores", path=scores_path
        )
    labels = parse_scores(scores[utt], phones_by_word, path=scores_path, where=utt)
    n_words = len(text[0].split())
    if labels.words and len(labels.words) != n_words:
        raise CorpusError(
            f"{len(labels.words)} scored words but the text has {n_words}",
            path=scores_path, field=f"{utt}.words",
        )  # fmt: skip
    return Utterance(
        id=utt, speaker=speaker, text=text[0].upper(), labels=labels,
        age=age, gender=gender, audio_path=audio,
    )  # fmt: skip


# --- scores --------------------------------------------------------------------------------


def _score(value: Any, scale: float, *, path: str | Path | None, field: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CorpusError(f"score {value!r} is not a number", path=path, field=field)
    if not 0 <= value <= scale:
        raise CorpusError(f"score {value} is outside 0-{scale:g}", path=path, field=field)
    return float(value)


def parse_scores(
    entry: dict[str, Any],
    phones_by_word: dict[int, tuple[str, ...]] | None = None,
    *,
    path: str | Path | None = None,
    where: str = "",
) -> Assessment:
    """One ``scores.json`` entry (or parquet row) -> :class:`Assessment`, range-checked.

    Canonical phones come from the entry's ``phones`` and otherwise from ``text-phone``.
    """
    utt = {
        a: _score(entry.get(a), UTTERANCE_SCALE, path=path, field=f"{where}.{a}")
        for a in UTTERANCE_ASPECTS
    }
    words = []
    for i, w in enumerate(entry.get("words") or ()):
        f = f"{where}.words[{i}]"
        phones = tuple(w.get("phones") or (phones_by_word or {}).get(i, ()))
        phones = tuple(check_phone(p, path=None if path is None else str(path)) for p in phones)
        accs = w.get("phones-accuracy", w.get("phones_accuracy"))
        if accs is not None and len(accs) != len(phones):
            raise CorpusError(
                f"{len(accs)} phone scores for {len(phones)} phones",
                path=path,
                field=f"{f}.phones-accuracy",
            )
        phone_scores = [
            _score(
                None if accs is None else accs[j],
                PHONE_SCALE,
                path=path,
                field=f"{f}.phones-accuracy[{j}]",
            )
            for j in range(len(phones))
        ]
        scores = {
            a: _score(w.get(a), WORD_SCALE, path=path, field=f"{f}.{a}") for a in WORD_ASPECTS
        }
        words.append(word_labels(str(w.get("text", "")).upper(), scores, phones, phone_scores))
    return utterance_labels(utt, words)


# --- Hugging Face parquet export ---------------------------------------------------------


def _parquet_files(root: Path) -> list[Path]:
    return sorted(root.glob("*.parquet")) + sorted(root.glob("data/*.parquet"))


def _split_of(path: Path) -> str:
    m = re.match(r"(train|test|validation|dev)", path.name)
    return m.group(1) if m else "train"


def read_parquet_export(root: str | Path, *, strict: bool = False) -> CorpusManifest:
    """Read ``mispeech/speechocean762``-style parquet files (``train-*.parquet``, ``test-*``).

    Audio stays encoded in memory (``Utterance.audio_bytes``); ids come from the audio file
    names, or ``<split>-<row>`` when the export has none.
    """
    import pyarrow.parquet as pq

    problems: list[CorpusError] = []
    splits: dict[str, list[Utterance]] = {}
    files = _parquet_files(Path(root))
    if not files:
        raise CorpusError("no parquet files", path=root)
    for file in files:
        split = _split_of(file)
        table = pq.read_table(file)
        for n, row in enumerate(table.to_pylist()):
            try:
                utt = _parquet_utterance(row, file, split, len(splits.get(split, ())) + n)
            except CorpusError as err:
                if strict:
                    raise
                problems.append(err)
                continue
            splits.setdefault(split, []).append(utt)
    return CorpusManifest(splits=splits, problems=tuple(problems))


def _parquet_utterance(row: dict[str, Any], file: Path, split: str, index: int) -> Utterance:
    audio = row.get("audio") or {}
    data = audio.get("bytes") if isinstance(audio, dict) else None
    name = audio.get("path") if isinstance(audio, dict) else None
    if not data:
        raise CorpusError("row has no audio bytes", path=file, field=f"row {index}.audio")
    utt_id = Path(name).stem if name else f"{split}-{index:05d}"
    age = row.get("age")
    return Utterance(
        id=utt_id,
        speaker=str(row.get("speaker", "")),
        text=str(row.get("text", "")).upper(),
        labels=parse_scores(row, path=file, where=f"row {index}"),
        age=None if age is None else int(age),
        gender=None if row.get("gender") is None else str(row["gender"]).lower(),
        audio_bytes=bytes(data),
    )


def canonical_words(utt: Utterance) -> list[tuple[str, tuple[str, ...]]]:
    """(word, canonical phones with stress) for each word of the utterance."""
    return [(w.text, tuple(p.phone for p in w.phones)) for w in utt.labels.words]


def strip_marks(phones: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(base_phone(p) for p in phones)
