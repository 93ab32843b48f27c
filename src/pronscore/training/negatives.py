"""Synthetic negatives: train recordings scored against text they do not say.

The human labels only ever pair a recording with its own prompt, so a head trained on them
has never seen a wrong text and scores one as an ordinary reading. Two kinds of rows fix that,
each made from a dataset row and extracted exactly like the real rows (same extractor config):

``other-text`` (id ``<id>#other``)
    The audio with the words of another utterance of the split (another speaker, a similar
    word count, as few shared words as possible). Every word's accuracy and total 0 (its stress
    keeps the donor word's human value), every phone 0; utterance accuracy, completeness and
    total 0; fluency and prosodic keep the recording's human values (they describe the speech).
``substitute`` (id ``<id>#sub``)
    One word (two from :data:`LONG_SENTENCE` words on) replaced by another word of the split's
    vocabulary with a different pronunciation. The replaced word's accuracy, total and phones
    0, its stress kept; the other words keep their labels; utterance accuracy, completeness and
    total scaled by the share of words kept; fluency and prosodic kept.

``truncated`` (id ``<id>#cut``)
    Not a negative but a partial reading: the recording cut at the end of its k-th word (k
    drawn from 1 .. n-1; the word times come from the split's features in FEATURES_DIR) and
    scored against the whole text. The words read keep their labels, the others score 0 (stress
    kept); text-bound utterance scores scale by the share read. A check that tells another text
    from the right one learns from these that a reading which stops early is still this text.

``band-8k`` / ``noise`` (ids ``<id>#8k`` / ``<id>#noise``)
    Channel copies: the recording band-limited to 8 kHz, or in white noise at 15 dB SNR, with
    its own words and human labels (not negatives: readings of their text, from which the
    reading check learns that a phone line or a noisy room is not another text).

In a FEATURES_DIR with per-phone encoder vectors (``features --encoder``) the new rows get
them too, from the same encoder over each row's own audio.

With ``per_utt`` > 1 the later copies are ``#other2``, ``#sub2``, ... Each source row draws
from its own random stream (seed, row index), so a run over the first N rows makes the same
negatives as a longer one: ``limit`` can grow on resume. The split (default ``train_neg``)
has the FEATURES_DIR layout plus ``synthetic`` (kind) and ``donor`` (the utterance the text
came from) in utterances.parquet and ``negatives.json`` (the settings; resuming with other
settings is an error).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pronscore.audio import add_noise, band_limit
from pronscore.constants import SAMPLE_RATE
from pronscore.errors import CorpusError
from pronscore.features.cache import UtteranceCache, atomic_write_json
from pronscore.features.extract import (
    RECOMMENDED,
    Extractor,
    ExtractorConfig,
    SplitFeatures,
    concat_features,
    extract_row,
    extractor_config_of,
    load_features,
    run_resumable,
    write_meta,
)
from pronscore.text import base_phone

KINDS = ("other-text", "substitute")
PARTIAL = ("truncated",)
CHANNEL_SNR_DB = 15.0
CHANNEL = {
    "band-8k": lambda x, seed: band_limit(x, 8000),
    "noise": lambda x, seed: add_noise(x, CHANNEL_SNR_DB, seed),
}
"""Channel copies: the recording through a phone line or in white noise, its text and human
labels unchanged (readings of this text on another microphone, for the reading check)."""
ALL_KINDS = (*KINDS, *PARTIAL, *CHANNEL)
SUFFIX = {
    "other-text": "other", "substitute": "sub", "truncated": "cut", "band-8k": "8k",
    "noise": "noise",
}  # fmt: skip
LONG_SENTENCE = 8
"""From this many words on, a substitute negative replaces two words."""
SETTINGS_FILE = "negatives.json"


@dataclass(frozen=True)
class NegativeOptions:
    """How negatives are made (saved as ``<split>/negatives.json``)."""

    kinds: tuple[str, ...] = KINDS
    per_utt: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        bad = [k for k in self.kinds if k not in ALL_KINDS]
        if bad or not self.kinds:
            raise ValueError(f"negative kinds must be among {', '.join(ALL_KINDS)} (got {bad})")
        if self.per_utt < 1:
            raise ValueError(f"per_utt must be at least 1 (got {self.per_utt})")


@dataclass(frozen=True)
class Negative:
    """One planned negative: a dataset-shaped row (no audio) and whose audio it uses."""

    row: dict[str, Any]
    source_index: int
    kind: str
    donor: str | None
    cut: float | None = None  # seconds of the recording kept (``truncated``)


# ---------------------------------------------------------------- labels


def _scaled(value: float | None, share: float) -> float | None:
    return None if value is None else float(value) * share


def other_text_row(row: dict[str, Any], donor: dict[str, Any], uid: str) -> dict[str, Any]:
    """``row``'s recording read as ``donor``'s text: every word, phone and text-bound
    utterance score 0; fluency and prosodic are the recording's."""
    words = [
        {
            "text": w["text"],
            "accuracy": 0.0,
            "stress": w.get("stress"),
            "total": 0.0,
            "phones": list(w["phones"]),
            "phones_accuracy": [0.0] * len(w["phones"]),
        }
        for w in donor["words"]
    ]
    return {
        **_speaker(row),
        "id": uid,
        "text": " ".join(w["text"] for w in words),
        "words": words,
        "accuracy": 0.0,
        "completeness": 0.0,
        "fluency": row.get("fluency"),
        "prosodic": row.get("prosodic"),
        "total": 0.0,
    }


def substitute_row(
    row: dict[str, Any], replacements: dict[int, tuple[str, tuple[str, ...]]], uid: str
) -> dict[str, Any]:
    """``row`` with the words at the keys of ``replacements`` swapped for (text, phones): those
    score 0, the others keep their labels, text-bound utterance scores scale by the share kept."""
    words = []
    for i, w in enumerate(row["words"]):
        if i in replacements:
            text, phones = replacements[i]
            w = {
                "text": text,
                "accuracy": 0.0,
                "stress": w.get("stress"),
                "total": 0.0,
                "phones": list(phones),
                "phones_accuracy": [0.0] * len(phones),
            }
        words.append(dict(w))
    share = 1.0 - len(replacements) / len(words)
    return {
        **_speaker(row),
        "id": uid,
        "text": " ".join(w["text"] for w in words),
        "words": words,
        **{a: _scaled(row.get(a), share) for a in ("accuracy", "completeness", "total")},
        "fluency": row.get("fluency"),
        "prosodic": row.get("prosodic"),
    }


def truncated_row(row: dict[str, Any], read: int, uid: str) -> dict[str, Any]:
    """``row`` read up to (not including) word ``read``: the words after score 0 (stress kept),
    text-bound utterance scores scale by the share read."""
    omitted = {i: (w["text"], tuple(w["phones"])) for i, w in enumerate(row["words"]) if i >= read}
    return substitute_row(row, omitted, uid)


def _speaker(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row.get(k) for k in ("speaker", "age", "gender")}


# ---------------------------------------------------------------- planning


def _bare(phones: Sequence[str]) -> tuple[str, ...]:
    return tuple(base_phone(p) for p in phones)


class _Donors:
    """The split's texts by word count, for picking another speaker's text."""

    def __init__(self, rows: Sequence[dict[str, Any]]) -> None:
        self.by_text: dict[str, list[int]] = {}
        for i, r in enumerate(rows):
            self.by_text.setdefault(_text(r), []).append(i)
        self.by_len: dict[int, list[tuple[str, frozenset[str]]]] = {}
        for text in self.by_text:
            words = text.split()
            self.by_len.setdefault(len(words), []).append((text, frozenset(words)))
        self.rows = rows

    def pick(self, row: dict[str, Any], rng: np.random.Generator, avoid: set[int]) -> int | None:
        """A row of another speaker whose text differs, with a word count close to ``row``'s
        and few words in common (cost: count difference + 2 x shared words); ties at random."""
        own = _text(row)
        words, n = set(own.split()), len(row["words"])
        best: int | None = None
        found: list[int] = []
        for d in range(0, max(self.by_len, default=0) + 1):
            if best is not None and d > best:
                break
            for length in {n - d, n + d}:
                for text, ws in self.by_len.get(length, ()):
                    if text == own:
                        continue
                    ok = [
                        i
                        for i in self.by_text[text]
                        if self.rows[i]["speaker"] != row["speaker"] and i not in avoid
                    ]
                    cost = d + 2 * len(words & ws)
                    if not ok or (best is not None and cost > best):
                        continue
                    if best is None or cost < best:
                        best, found = cost, []
                    found.extend(ok)
        return int(found[rng.integers(len(found))]) if found else None


def _text(row: dict[str, Any]) -> str:
    return " ".join(w["text"] for w in row["words"])


def vocabulary(rows: Sequence[dict[str, Any]]) -> dict[str, tuple[str, ...]]:
    """Each word text of ``rows`` -> its most frequent canonical phones (ties: first seen)."""
    seen: dict[str, Counter] = {}
    for r in rows:
        for w in r["words"]:
            seen.setdefault(w["text"], Counter())[tuple(w["phones"])] += 1
    return {t: c.most_common(1)[0][0] for t, c in sorted(seen.items())}


def _replacement(
    word: dict[str, Any], vocab: dict[str, tuple[str, ...]], rng: np.random.Generator
) -> tuple[str, tuple[str, ...]] | None:
    """A vocabulary word pronounced differently, preferably within one phone of its length."""
    own = _bare(word["phones"])
    other = [(t, p) for t, p in vocab.items() if t != word["text"] and _bare(p) != own]
    close = [(t, p) for t, p in other if abs(len(p) - len(own)) <= 1]
    choice = close or other
    return choice[rng.integers(len(choice))] if choice else None


def plan_negatives(
    rows: Sequence[dict[str, Any]],
    options: NegativeOptions,
    limit: int | None = None,
    word_ends: Mapping[str, Sequence[float]] | None = None,
) -> list[Negative]:
    """The negatives of the first ``limit`` (default all) of ``rows`` (dataset rows without
    audio); donors and vocabulary come from all ``rows``. Deterministic in options.seed.
    ``word_ends`` (id -> each word's aligned end in s, NaN when not aligned): where a
    ``truncated`` reading may be cut; rows without them get none."""
    donors, vocab = _Donors(rows), vocabulary(rows)
    ends = word_ends or {}
    out: list[Negative] = []
    for i, row in enumerate(rows[:limit]):
        rng = np.random.default_rng([options.seed, i])
        used: set[int] = {i}
        for kind in options.kinds:
            for k in range(options.per_utt):
                uid = f"{row['id']}#{SUFFIX[kind]}{k + 1 if k else ''}"
                if kind in PARTIAL:
                    neg = _truncated(row, uid, i, ends.get(str(row["id"])), rng)
                else:
                    neg = _one(kind, row, uid, i, rows, donors, vocab, rng, used)
                if neg is not None:
                    out.append(neg)
    return out


def _truncated(
    row: dict[str, Any], uid: str, i: int, ends: Sequence[float] | None, rng: np.random.Generator
) -> Negative | None:
    """The reading cut after a random number of words (at least one read, one left out)."""
    n = len(row["words"])
    if ends is None or n < 2 or len(ends) != n:
        return None
    read = int(rng.integers(1, n))
    cut = float(ends[read - 1])
    if not np.isfinite(cut) or cut <= 0:
        return None
    return Negative(truncated_row(row, read, uid), i, "truncated", None, cut)


def word_ends(features: SplitFeatures) -> dict[str, list[float]]:
    """id -> the aligned end (s) of each word (NaN for a word not aligned), from a split's
    phone rows."""
    p = features.phones
    if not len(p):
        return {}
    last = p.groupby([p["id"].astype(str), p["word_index"]])["end"].max()
    out: dict[str, list[float]] = {}
    for (uid, wi), end in last.items():
        words = out.setdefault(uid, [])
        words.extend([np.nan] * (int(wi) + 1 - len(words)))
        words[int(wi)] = float(end) if end is not None else np.nan
    return out


def _one(kind, row, uid, i, rows, donors, vocab, rng, used) -> Negative | None:
    if kind in CHANNEL:  # same words and labels, other audio (made by the worker)
        return Negative({**row, "id": uid}, i, kind, None)
    if kind == "other-text":
        j = donors.pick(row, rng, used)
        if j is None:
            return None
        used.add(j)
        return Negative(other_text_row(row, rows[j], uid), i, kind, rows[j]["id"])
    n_words = len(row["words"])
    if not n_words:
        return None
    n_sub = 2 if n_words >= LONG_SENTENCE else 1
    positions = sorted(int(p) for p in rng.choice(n_words, size=n_sub, replace=False))
    swaps = {p: _replacement(row["words"][p], vocab, rng) for p in positions}
    if any(s is None for s in swaps.values()):
        return None
    return Negative(substitute_row(row, swaps, uid), i, kind, None)


# ---------------------------------------------------------------- extraction


class _NegativeWorker:
    """Per-process state: the extractor, the split's audio column and the plan."""

    def __init__(
        self,
        dataset_dir: str,
        split: str,
        config: ExtractorConfig,
        split_dir: str,
        plan: Sequence[Negative],
    ) -> None:
        from pronscore.dataset import load_split

        ds = load_split(dataset_dir, split)
        self.audio = ds.select_columns(["audio"]).with_format("numpy")
        self.extractor = Extractor(config)
        self.cache = UtteranceCache(split_dir)
        self.plan = plan

    def __call__(self, k: int) -> str:
        neg = self.plan[k]
        samples = negative_samples(neg, self.audio[neg.source_index]["audio"])
        record, frames = extract_row(neg.row, samples, self.extractor)
        record["utterance"].update(synthetic=neg.kind, donor=neg.donor)
        self.cache.write(neg.row["id"], record, frames)
        return neg.row["id"]


def negative_samples(neg: Negative, source: np.ndarray) -> np.ndarray:
    """The audio of a planned row from its source recording (a channel copy, or cut short)."""
    samples = np.asarray(source, dtype=np.float32)
    if neg.kind in CHANNEL:
        samples = CHANNEL[neg.kind](samples, neg.source_index)
    if neg.cut is not None:
        samples = samples[: round(neg.cut * SAMPLE_RATE)]
    return samples


def _encoder_vectors(
    dataset_dir: str | os.PathLike, out: Path, name: str, split: str, plan: Sequence[Negative],
    jobs: int, progress: bool,
) -> None:  # fmt: skip
    """Per-phone encoder vectors for the new rows when FEATURES_DIR has them (``features
    --encoder``), and the CTC recogniser's columns when it has those (``features --ctc``):
    the same stages over each row's own audio (each row's speaker picks the fold
    recogniser, as for the utterance it was made from)."""
    from pronscore.dataset import load_split
    from pronscore.features.ctc_store import extract_split_ctc
    from pronscore.features.ctc_store import read_spec as read_ctc_spec
    from pronscore.features.encoder import extract_split_vectors, read_spec

    spec = read_spec(out)
    if spec is None:
        return
    audio = load_split(dataset_dir, split).select_columns(["audio"]).with_format("numpy")
    by_id = {neg.row["id"]: neg for neg in plan}

    def audio_of(uid: str) -> np.ndarray:
        neg = by_id[uid]
        return negative_samples(neg, audio[neg.source_index]["audio"])

    extract_split_vectors(dataset_dir, out, name, spec, threads=jobs, progress=progress,
                          audio_of=audio_of)  # fmt: skip
    if (ctc := read_ctc_spec(out)) is not None:  # the recogniser's columns, same audio
        extract_split_ctc(out, name, ctc["run"], audio_of=audio_of,
                          encoder=spec.resolved_model(), progress=progress)  # fmt: skip


def _config_for(out: Path, config: ExtractorConfig | None) -> ExtractorConfig:
    """The given config, else the FEATURES_DIR's own (meta.json), else the recommended one."""
    if config is not None:
        return config
    return extractor_config_of(out) if (out / "meta.json").is_file() else RECOMMENDED


def _word_ends_of(out: Path, split: str) -> dict[str, list[float]]:
    """Word end times of ``split`` from FEATURES_DIR ``out`` (truncated readings cut there)."""
    if not (out / split / "phones.parquet").is_file():
        raise CorpusError(
            f"truncated readings are cut at aligned word ends: run `pronscore features` for "
            f"the {split} split into this FEATURES_DIR first",
            path=out / split,
        )
    return word_ends(load_features(out, split))


def _check_settings(split_dir: Path, settings: dict[str, Any]) -> None:
    path = split_dir / SETTINGS_FILE
    if path.is_file() and json.loads(path.read_text(encoding="utf-8")) != settings:
        raise CorpusError(
            "negatives here were made with other settings; use another --name or --out", path=path
        )
    atomic_write_json(path, settings)


def make_negatives(
    dataset_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    options: NegativeOptions = NegativeOptions(),
    *,
    split: str = "train",
    name: str | None = None,
    config: ExtractorConfig | None = None,
    limit: int | None = None,
    jobs: int = 1,
    progress: bool = True,
) -> Path:
    """Extract the negatives of ``split`` into ``out_dir/<name>`` (default ``<split>_neg``);
    resumable. ``config``: default the FEATURES_DIR's meta.json, else the recommended one.
    Returns the split folder."""

    from pronscore.dataset import load_split

    out = Path(out_dir)
    config = _config_for(out, config)
    name = name or f"{split}_neg"
    rows = list(load_split(dataset_dir, split).remove_columns(["audio"]))
    ends = _word_ends_of(out, split) if set(options.kinds) & set(PARTIAL) else None
    plan = plan_negatives(rows, options, limit, ends)
    out.mkdir(parents=True, exist_ok=True)
    write_meta(out, config)
    split_dir = out / name
    settings = {"dataset": str(Path(dataset_dir).resolve()), "split": split, **asdict(options)}
    _check_settings(split_dir, json.loads(json.dumps(settings)))
    factory = partial(_NegativeWorker, str(dataset_dir), split, config, str(split_dir), plan)
    ids = [neg.row["id"] for neg in plan]
    run_resumable(factory, ids, UtteranceCache(split_dir), jobs=jobs,
                  desc=f"negatives {name}", progress=progress)  # fmt: skip
    _encoder_vectors(dataset_dir, out, name, split, plan, jobs, progress)
    return split_dir


# ---------------------------------------------------------------- training


def parse_spec(spec: str) -> tuple[Path, str]:
    """``FEATURES_DIR:SPLIT`` -> (folder, split)."""
    folder, sep, split = spec.rpartition(":")
    if not sep or not folder or not split:
        raise CorpusError(f"--negatives wants FEATURES_DIR:SPLIT (got {spec!r})")
    return Path(folder), split


def with_negatives(
    train: SplitFeatures, specs: str | Sequence[str], features_dir: str | os.PathLike
) -> SplitFeatures:
    """``train`` followed by the negatives at each of ``specs`` (``FEATURES_DIR:SPLIT``), which
    must have been extracted with the same settings as ``features_dir``."""
    splits = [train]
    for spec in [specs] if isinstance(specs, str) else specs:
        folder, split = parse_spec(spec)
        if extractor_config_of(folder) != extractor_config_of(features_dir):
            raise CorpusError(
                f"negatives made with other extractor settings than {features_dir}",
                path=folder / "meta.json",
            )
        splits.append(load_features(folder, split))
    return concat_features(splits)


def score_rows(train: SplitFeatures, *, channels: bool = False) -> SplitFeatures:
    """The rows the score models learn from: the human-labelled readings, and with
    ``channels`` their channel copies (``band-8k`` / ``noise``: the same labels, other audio).

    Synthetic rows teach the checks only: as score targets, negatives cost dev PCC (train
    only, 4,520 other-text + substitute rows: utterance total 0.766 -> 0.753, word accuracy
    0.609 -> 0.529, phone 0.606 -> 0.533)."""
    utts = train.utterances
    if "synthetic" not in utts:
        return train
    keep = utts["synthetic"].isna()
    if channels:
        keep |= utts["synthetic"].isin(list(CHANNEL))
    return train.subset(utts["id"][keep.to_numpy()].astype(str))


def source_ids(ids: pd.Series) -> pd.Series:
    """The recording each row id was made from: ``<id>`` of ``<id>#noise`` (a human row's id:
    itself)."""
    return ids.astype(str).str.split("#").str[0]


def replaced_words(split: SplitFeatures) -> np.ndarray:
    """Per word row of ``split``: a word that a ``substitute`` row put in place of its source's
    (the source utterance, ``<id>`` of ``<id>#sub``, must be in ``split``)."""
    w = split.words
    kind = split.utterances.set_index(split.utterances["id"].astype(str)).get("synthetic")
    if kind is None or not len(w):
        return np.zeros(len(w), bool)
    ids = w["id"].astype(str)
    sub = ids.map(kind).eq("substitute").to_numpy()
    source = w.set_index([ids, w["word_index"]])["text"]
    keys = pd.MultiIndex.from_arrays([source_ids(ids), w["word_index"]])
    before = source.reindex(keys).to_numpy()
    if sub.any() and pd.isna(before[sub]).any():
        raise CorpusError("substitute rows without their source utterance", field="id")
    return sub & (w["text"].to_numpy() != before)
