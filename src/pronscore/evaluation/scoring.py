"""A prepared split scored the way a user's recording is: through :class:`~pronscore.scorer.Scorer`.

``pronscore evaluate`` uses this for every model the Scorer can load, so the metrics it prints
are those of ``pronscore score`` / the server: same audio handling, extractor settings (from the
model's ``scorer.json``), failed-alignment and omitted-word policy, clipping. The only
difference is the pronunciation: a corpus utterance is scored with its annotated canonical
phones (the labels are per annotated phone).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from pronscore.schema import Assessment
from pronscore.text import Pronunciation

Row = tuple[str, np.ndarray, str, list[Pronunciation]]  # id, 16 kHz samples, text, phones


def _rows(dataset_dir: str | os.PathLike, split: str) -> tuple[int, Iterator[Row]]:
    from pronscore.dataset import load_split

    ds = load_split(dataset_dir, split).with_format(
        "numpy", columns=["audio"], output_all_columns=True
    )

    def rows() -> Iterator[Row]:
        for r in ds:
            prons = [Pronunciation(w["text"], tuple(w["phones"]), "corpus") for w in r["words"]]
            yield str(r["id"]), np.asarray(r["audio"], np.float32), r["text"], prons

    return len(ds), rows()


def score_row(scorer: Any, row: Row) -> tuple[str, Assessment]:
    """One corpus utterance; audio the Scorer refuses (empty, too long) is a failed result, as
    it is for a feature extraction run: one bad utterance must not stop an evaluation."""
    from pronscore.errors import AudioError
    from pronscore.scorer import failed_assessment

    uid, samples, text, prons = row
    try:
        return uid, scorer.score(samples, text, pronunciations=prons)
    except AudioError as err:
        return uid, failed_assessment(prons, err.reason)


def score_split(
    model: str,
    dataset_dir: str | os.PathLike,
    split: str,
    *,
    jobs: int = 1,
    scorer: Any = None,
    progress: bool = True,
) -> dict[str, Assessment]:
    """One Assessment per utterance of the split. ``jobs > 1``: worker processes that each load
    ``model``; otherwise ``scorer`` (or ``model`` loaded here)."""
    from tqdm.auto import tqdm

    from pronscore.parallel import map_scorer
    from pronscore.scorer import Scorer

    n, rows = _rows(dataset_dir, split)
    if jobs > 1:
        results = map_scorer(score_row, model, rows, jobs)
    else:
        scorer = scorer or Scorer.from_pretrained(model)
        results = (score_row(scorer, r) for r in rows)
    bar = tqdm(results, total=n, desc=f"score {split}", unit="utt", disable=not progress)
    return dict(bar)
