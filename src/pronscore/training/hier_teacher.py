"""Stage 2 of Lin & Wang (2021): synthetic scores for pre-training the hierarchical scorer,
from a GOP gradient-boosted-trees teacher (:mod:`pronscore.training.gbt`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import pandas as pd

from pronscore.constants import UTTERANCE_ASPECTS, WORD_ASPECTS
from pronscore.features.extract import SplitFeatures, load_features
from pronscore.schema import Assessment


def teacher_scores(
    train: SplitFeatures,
    dev: SplitFeatures,
    unlabelled: Sequence[SplitFeatures] = (),
    *,
    seed: int = 1,
    threads: int = 1,
    log: Callable[[str], None] = print,
) -> list[SplitFeatures]:
    """Synthetic labels from the GOP GBT baseline, written into ``y_*`` columns.

    The train split is scored out-of-fold (2 speaker-disjoint halves, each scored by a teacher
    fitted on the other half) so the synthetic scores are honest predictions, not echoes of
    the human labels; extra unlabelled splits are scored by a teacher fitted on all of train.
    """
    from pronscore.heads.gbt import GbtConfig
    from pronscore.training.gbt import fit_gbt

    config = GbtConfig(feature_set="all", seed=seed, threads=threads)
    spk = train.utterances["speaker"].astype(str)
    half = spk.map(lambda s: hash_mod2(s)).to_numpy()
    out = []
    for k in (0, 1):
        fit_ids = set(train.utterances["id"][half != k].astype(str))
        head, _ = fit_gbt(train.subset(fit_ids), dev, config, log=lambda *_: None)
        other = train.subset(set(train.utterances["id"][half == k].astype(str)))
        out.append(relabel(other, head.predict_features(other)))
        log(f"teacher fold {k}: scored {len(other.utterances)} train utterances")
    if unlabelled:
        head, _ = fit_gbt(train, dev, config, log=lambda *_: None)
        for u in unlabelled:
            out.append(relabel(u, head.predict_features(u)))
    return out


def hash_mod2(s: str) -> int:
    import zlib

    return zlib.crc32(s.encode()) % 2


def relabel(split: SplitFeatures, preds: dict[str, Assessment]) -> SplitFeatures:
    """A copy of ``split`` whose ``y_*`` columns hold the predictions ``preds``."""
    u = split.utterances.copy()
    for a in UTTERANCE_ASPECTS:
        u[f"y_{a}"] = [getattr(preds[str(i)].utterance, a) for i in u["id"]]
    w = split.words.copy()
    wmap = {(uid, j): wa for uid, p in preds.items() for j, wa in enumerate(p.words)}
    for a in WORD_ASPECTS:
        keys = zip(w["id"].astype(str), w["word_index"].astype(int), strict=True)
        w[f"y_{a}"] = [getattr(wmap.get(k), a, None) for k in keys]
    ph = split.phones.copy()
    pmap = {(uid, j): pa.score for uid, p in preds.items() for j, pa in enumerate(p.phones)}
    order = ph.groupby("id")["phone_index"].rank(method="first").astype(int) - 1
    ph["y_score"] = [pmap.get((str(i), int(k))) for i, k in zip(ph["id"], order, strict=True)]
    for df in (u, w, ph):
        for c in df.columns:
            if c.startswith("y_"):
                df[c] = pd.to_numeric(df[c], errors="coerce")
    return replace(split, utterances=u, words=w, phones=ph)


def synthetic_splits(
    train: SplitFeatures,
    dev: SplitFeatures,
    unlabelled: Sequence[str] = (),
    *,
    threads: int = 1,
    log: Callable = print,
) -> list[SplitFeatures]:
    """Stage-2 data: teacher-scored train (out-of-fold) + the ``unlabelled`` ("DIR:split")
    splits."""
    extra = [load_features(*u.rsplit(":", 1)) for u in unlabelled]
    return teacher_scores(train, dev, extra, seed=1, threads=threads, log=log)
