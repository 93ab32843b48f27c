"""The average of several ``pronscore cv`` runs' out-of-fold predictions, scored as one CV run.

An ensemble of heads of different kinds (say gradient-boosted trees and a transformer) serves
the mean of its members' scores (:func:`~pronscore.heads.ensemble.average_assessments`); when
each member's CV was run on the same speaker folds, averaging their out-of-fold predictions
with that function is that ensemble's cross-validation, with no model refitted. Runs must share
``n_folds`` and ``fold_seed`` and have scored the same utterances in the same folds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pronscore.errors import CorpusError
from pronscore.evaluation.cv_report import read_cv
from pronscore.evaluation.metrics import evaluate_assessments
from pronscore.features.extract import SplitFeatures
from pronscore.heads.ensemble import LEVELS, average_assessments
from pronscore.schema import Assessment

SEED = "blend"


def scored_predictions(cv_dir: str | Path) -> dict[str, tuple[int, Assessment]]:
    """id -> (fold, Assessment) of what the run's ``pooled`` scores: its seed-ensemble rows if
    it has them, else its first seed's."""
    cv = read_cv(cv_dir)
    want = "ensemble" if cv.get("ensemble_folds") else cv["seeds"][0]
    path = Path(cv_dir) / "predictions.jsonl"
    out = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise CorpusError(f"cannot read ({exc.strerror})", path=path) from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if row["seed"] == want:
                out[str(row["id"])] = (int(row["fold"]), Assessment.from_dict(row))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise CorpusError(f"line {n}: not a prediction row ({exc})", path=path) from None
    return out


def _check_same_folds(cvs: Sequence[dict], preds: Sequence[dict], dirs: Sequence[str]) -> None:
    for key in ("n_folds", "fold_seed"):
        values = {cv.get(key) for cv in cvs}
        if len(values) > 1:
            raise CorpusError(f"runs differ in {key}: {sorted(map(str, values))}", field=key)
    first = {uid: fold for uid, (fold, _) in preds[0].items()}
    for d, p in zip(dirs[1:], preds[1:], strict=True):
        if {uid: fold for uid, (fold, _) in p.items()} != first:
            raise CorpusError(
                f"scored other utterances or folds than {dirs[0]}", path=d, field="fold"
            )


def blend_runs(
    cv_dirs: Sequence[str],
    data: SplitFeatures,
    *,
    levels: Sequence[str] = LEVELS,
    n_boot: int = 1000,
) -> tuple[dict[str, Any], list[tuple[str, int, str, Assessment]]]:
    """cv.json metrics (``kind`` "blend", ``members``, ``levels``) and prediction rows of the
    average at ``levels`` (the other levels: the first run's scores)."""
    from pronscore.training.gop_baselines import labels_from_features, speaker_meta

    t0 = time.process_time()
    cvs = [read_cv(d) for d in cv_dirs]
    preds = [scored_predictions(d) for d in cv_dirs]
    _check_same_folds(cvs, preds, cv_dirs)
    refs, meta = labels_from_features(data), speaker_meta(data)
    mean = {uid: average_assessments([p[uid][1] for p in preds], levels) for uid in preds[0]}
    fold_of = {uid: fold for uid, (fold, _) in preds[0].items()}
    folds = []
    for k in sorted(set(fold_of.values())):
        ids = [uid for uid, f in fold_of.items() if f == k]
        m = evaluate_assessments({i: refs[i] for i in ids if i in refs}, mean, meta, n_boot=n_boot)
        folds.append({"seed": SEED, "fold": k, **m})
    metrics = {
        "kind": SEED,
        "members": list(map(str, cv_dirs)),
        "levels": list(levels),
        "n_folds": cvs[0]["n_folds"],
        "fold_seed": cvs[0].get("fold_seed"),
        "seeds": [SEED],
        "n_utterances": cvs[0]["n_utterances"],
        "n_speakers": cvs[0]["n_speakers"],
        # the members' training plus this averaging
        "cpu_seconds": sum(cv.get("cpu_seconds", 0.0) for cv in cvs) + time.process_time() - t0,
        "folds": folds,
        "pooled": evaluate_assessments(refs, mean, meta, n_boot=n_boot),
    }
    rows = [(SEED, fold_of[uid], uid, a) for uid, a in mean.items()]
    return metrics, rows
