"""Prepared datasets: a corpus written as a ``datasets.DatasetDict`` on disk.

Splits: ``train``, ``dev`` (speaker-disjoint, drawn from the corpus train split) and ``test``
when the corpus has one. Columns (one row per utterance):

=============  ==========================  ==============================================
column         type                        meaning
=============  ==========================  ==============================================
id             string                      utterance id (``000010011``)
speaker        string                      speaker id
age            int32 (nullable)            speaker age in years
gender         string (nullable)           ``m`` / ``f``
text           string                      the prompt, upper case
audio          list<float32>               16 kHz mono samples in [-1, 1]
duration       float32                     seconds
accuracy ...   float32 (nullable)          utterance accuracy, completeness, fluency,
                                           prosodic, total (0-10)
words          list<struct>                text, accuracy, stress, total (0-10),
                                           phones (list<string>, ARPAbet with stress),
                                           phones_accuracy (list<float32>, 0-2, nullable)
=============  ==========================  ==============================================

:func:`row_labels` turns a row into the shared :class:`~pronscore.schema.Assessment`.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from pronscore.atomic import atomic_write_text, replace_dir
from pronscore.constants import MAX_DURATION_S, SAMPLE_RATE, UTTERANCE_ASPECTS
from pronscore.corpora.base import Utterance
from pronscore.errors import AudioError, CorpusError
from pronscore.labels import utterance_labels, word_labels
from pronscore.schema import Assessment


def row_labels(row: dict[str, Any]) -> Assessment:
    """Human labels of one dataset row as an :class:`Assessment`."""
    words = [word_labels(w["text"], w, w["phones"], w.get("phones_accuracy")) for w in row["words"]]
    return utterance_labels(row, words)


def load_prepared(dataset_dir: str | Path):  # -> datasets.DatasetDict
    """Open a dataset written by ``pronscore prepare``."""
    import datasets

    path = Path(dataset_dir)
    if not (path / "dataset_dict.json").is_file():
        raise CorpusError("not a prepared dataset (no dataset_dict.json)", path=path)
    return datasets.load_from_disk(str(path))


def load_split(dataset_dir: str | Path, split: str):  # -> datasets.Dataset
    dd = load_prepared(dataset_dir)
    if split not in dd:
        raise CorpusError(f"split {split!r} not found (have: {', '.join(dd)})", path=dataset_dir)
    return dd[split]


# --- writing ---------------------------------------------------------------------------------

PREPARE_MARKER = "prepare.json"


@dataclass(frozen=True)
class PrepareConfig:
    dev_speakers: float = 0.1
    seed: int = 0
    strict: bool = False
    max_duration: float = MAX_DURATION_S


def dataset_features():  # -> datasets.Features
    from datasets import Features, List, Value

    word = {
        "text": Value("string"),
        "accuracy": Value("float32"),
        "stress": Value("float32"),
        "total": Value("float32"),
        "phones": List(Value("string")),
        "phones_accuracy": List(Value("float32")),
    }
    return Features({
        "id": Value("string"),
        "speaker": Value("string"),
        "age": Value("int32"),
        "gender": Value("string"),
        "text": Value("string"),
        "audio": List(Value("float32")),
        "duration": Value("float32"),
        **{a: Value("float32") for a in UTTERANCE_ASPECTS},
        "words": List(word),
    })  # fmt: skip


def split_dev_speakers(
    utterances: list[Utterance], fraction: float, seed: int
) -> tuple[set[str], set[str]]:
    """Speaker-disjoint (train, dev) speaker sets, balanced over children and adults.

    Each age group contributes ``round(fraction * n)`` speakers (at least one when the group
    has two or more), drawn with a seeded generator from sorted ids, so the split depends only
    on the speaker list and the seed.
    """
    if not 0 <= fraction < 1:
        raise ValueError(f"dev speaker fraction must be in [0, 1), got {fraction}")
    groups: dict[bool | None, list[str]] = {}
    for spk, child in sorted({(u.speaker, u.is_child) for u in utterances}, key=str):
        groups.setdefault(child, []).append(spk)
    rng = np.random.default_rng(seed)
    dev: set[str] = set()
    for key in sorted(groups, key=str):
        speakers = sorted(groups[key])
        k = round(fraction * len(speakers))
        if fraction > 0 and k == 0 and len(speakers) >= 2:
            k = 1
        dev.update(rng.permutation(speakers)[:k].tolist())
    everyone = {u.speaker for u in utterances}
    return everyone - dev, dev


def _row(utt: Utterance, max_duration: float) -> dict[str, Any]:
    from pronscore.audio import load_audio

    source = utt.audio_path if utt.audio_path is not None else utt.audio_bytes
    if source is None:
        raise CorpusError(f"utterance {utt.id} has no audio")
    try:
        samples = load_audio(source, max_duration=max_duration)
    except AudioError as err:
        raise CorpusError(f"utterance {utt.id}: {err}", path=err.path) from err
    lab = utt.labels
    return {
        "id": utt.id,
        "speaker": utt.speaker,
        "age": utt.age,
        "gender": utt.gender,
        "text": utt.text,
        "audio": samples,
        "duration": samples.size / SAMPLE_RATE,
        **lab.utterance.to_dict(),
        "words": [
            {
                "text": w.text,
                "accuracy": w.accuracy,
                "stress": w.stress,
                "total": w.total,
                "phones": [p.phone for p in w.phones],
                "phones_accuracy": None
                if any(p.score is None for p in w.phones)
                else [p.score for p in w.phones],
            }
            for w in lab.words
        ],
    }


def _rows(
    utts: tuple[Utterance, ...], max_duration: float, strict: bool, desc: str, progress: bool
):
    for u in tqdm(utts, desc=desc, disable=not progress):
        try:
            yield _row(u, max_duration)
        except CorpusError as err:
            if strict:
                raise
            tqdm.write(f"skipped: {err}", file=sys.stderr)


def _fingerprint(corpus_dir: Path, config: PrepareConfig) -> dict[str, Any]:
    """What the output depends on: config and the corpus files' sizes and times."""
    files = sorted(
        p for p in corpus_dir.rglob("*") if p.is_file() and not p.name.lower().endswith(AUDIO_EXT)
    )
    stamp = [
        (str(p.relative_to(corpus_dir)), p.stat().st_size, int(p.stat().st_mtime)) for p in files
    ]
    return {"corpus": str(corpus_dir.resolve()), "config": asdict(config), "files": stamp}


AUDIO_EXT = (".wav", ".flac")


def prepare_dataset(
    corpus_dir: str | Path,
    out_dir: str | Path,
    config: PrepareConfig = PrepareConfig(),
    *,
    limit: int | None = None,
    force: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> Path:
    """Read a corpus and write train / dev / test as a ``DatasetDict`` at ``out_dir``.

    The output is built in a sibling temp folder and renamed into place, so a failed run
    leaves nothing behind. When ``out_dir`` already holds a dataset prepared from the same
    corpus files with the same settings, nothing is redone.
    """
    from datasets import DatasetDict, disable_progress_bars

    from pronscore.corpora.speechocean762 import prepare_speechocean762

    corpus, out = Path(corpus_dir), Path(out_dir)
    stamp = json.loads(json.dumps({**_fingerprint(corpus, config), "limit": limit}))
    marker = out / PREPARE_MARKER
    if not force and marker.is_file() and json.loads(marker.read_text()) == stamp:
        log(f"{out}: up to date, nothing to do (use --force to rebuild)")
        return out
    manifest = prepare_speechocean762(corpus, strict=config.strict)
    for err in manifest.problems:
        log(f"skipped: {err}")
    splits = _assign_splits(manifest.splits, config, limit)
    disable_progress_bars()
    with (
        replace_dir(out) as final,
        tempfile.TemporaryDirectory(prefix=f".{out.name}.build.", dir=out.parent) as work,
    ):
        built = {
            name: _build_split(name, utts, config, Path(work), progress)
            for name, utts in splits.items()
        }
        DatasetDict(built).save_to_disk(str(final))
        del built  # release the memory-mapped build files before the work folder goes
        atomic_write_text(final / PREPARE_MARKER, json.dumps(stamp))
    for name, utts in splits.items():
        log(f"{name}: {len(utts)} utterances, {len({u.speaker for u in utts})} speakers")
    return out


def _build_split(
    name: str, utts: list[Utterance], config: PrepareConfig, tmp: Path, progress: bool
):
    from datasets import Dataset
    from datasets.exceptions import DatasetGenerationError

    kwargs = {
        "utts": tuple(utts),  # a list would be sharded
        "max_duration": config.max_duration,
        "strict": config.strict,
        "desc": name,
        "progress": progress,
    }
    try:
        return Dataset.from_generator(
            _rows, features=dataset_features(), cache_dir=str(tmp / "cache"), gen_kwargs=kwargs
        )
    except DatasetGenerationError as exc:  # surface our own error, not the wrapper
        if isinstance(exc.__cause__, CorpusError):
            raise exc.__cause__ from None
        raise


def _assign_splits(
    splits: dict[str, list[Utterance]], config: PrepareConfig, limit: int | None
) -> dict[str, list[Utterance]]:
    out: dict[str, list[Utterance]] = {}
    if "train" in splits:
        train_spk, dev_spk = split_dev_speakers(splits["train"], config.dev_speakers, config.seed)
        out["train"] = [u for u in splits["train"] if u.speaker in train_spk]
        out["dev"] = [u for u in splits["train"] if u.speaker in dev_spk]
    for name, utts in splits.items():
        if name != "train":
            out[name] = list(utts)
    if limit is not None:  # a small subset for smoke runs: spread over speakers
        out = {k: _spread(v, limit) for k, v in out.items()}
    return out


def _spread(utts: list[Utterance], limit: int) -> list[Utterance]:
    by_spk: dict[str, list[Utterance]] = {}
    for u in utts:
        by_spk.setdefault(u.speaker, []).append(u)
    picked: list[Utterance] = []
    queues = [list(v) for _, v in sorted(by_spk.items())]
    while len(picked) < min(limit, len(utts)):
        for q in queues:
            if q and len(picked) < limit:
                picked.append(q.pop(0))
    return sorted(picked, key=lambda u: u.id)


def split_references(dataset) -> tuple[dict[str, Assessment], dict[str, Any]]:
    """Human labels and speaker metadata of a prepared split, keyed by utterance id."""
    from pronscore.evaluation.metrics import UttMeta

    cols = dataset.remove_columns([c for c in ("audio",) if c in dataset.column_names])
    refs, meta = {}, {}
    for row in cols:
        refs[row["id"]] = row_labels(row)
        meta[row["id"]] = UttMeta(age=row.get("age"), gender=row.get("gender"))
    return refs, meta
