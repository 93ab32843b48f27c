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

from pathlib import Path
from typing import Any

from pronscore.constants import UTTERANCE_ASPECTS
from pronscore.errors import CorpusError
from pronscore.schema import Assessment, PhoneAssessment, UtteranceScores, WordAssessment


def row_labels(row: dict[str, Any]) -> Assessment:
    """Human labels of one dataset row as an :class:`Assessment`."""
    words = []
    for w in row["words"]:
        accs = w.get("phones_accuracy")
        phones = tuple(
            PhoneAssessment(p, None if accs is None else float(accs[i]))
            for i, p in enumerate(w["phones"])
        )
        words.append(
            WordAssessment(
                text=w["text"],
                accuracy=w.get("accuracy"),
                stress=w.get("stress"),
                total=w.get("total"),
                phones=phones,
            )
        )
    utt = UtteranceScores(**{a: row.get(a) for a in UTTERANCE_ASPECTS})
    return Assessment(utterance=utt, words=tuple(words))


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
