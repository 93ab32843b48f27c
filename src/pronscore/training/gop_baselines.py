"""Train a GOP baseline (Lin & Wang 2021, Table 2) from a FEATURES_DIR into a RUN_DIR.

Fitting lives in :mod:`pronscore.training.gbt` / :mod:`pronscore.training.blstm` (model selection
on dev there); this module strings load -> fit -> dev metrics -> atomic save together:

    RUN_DIR/config.json      {"kind", "features_dir", "feature_set", "feature_names", ...}
    RUN_DIR/metrics.json     dev metrics JSON (pronscore.evaluation.metrics layout, with CIs)
    RUN_DIR/*.txt | model.safetensors   the head's weights (no pickle)
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pronscore.atomic import replace_dir
from pronscore.constants import UTTERANCE_ASPECTS, WORD_ASPECTS
from pronscore.errors import CorpusError
from pronscore.evaluation.metrics import UttMeta, evaluate_assessments
from pronscore.features.ctc_store import recogniser_of
from pronscore.features.encoder import EncoderSpec, read_spec
from pronscore.features.extract import SplitFeatures, load_features
from pronscore.labels import utterance_labels, word_labels
from pronscore.schema import Assessment

KINDS = ("gop-gbt", "gop-blstm")
METRICS_FILE = "metrics.json"


@dataclass(frozen=True)
class TrainOptions:
    """What ``pronscore train gop-gbt|gop-blstm`` exposes."""

    train_split: str = "train"
    dev_split: str = "dev"
    seed: int = 1
    threads: int = 2
    feature_set: str = "all"  # gop-gbt only: "paper" | "all"
    epochs: int = 60  # gop-blstm only
    bootstrap: int = 1000
    negatives: tuple[str, ...] = ()
    """``FEATURES_DIR:SPLIT`` of synthetic rows for the reading check (train only, never dev)."""


def labels_from_features(split: SplitFeatures) -> dict[str, Assessment]:
    """The human labels carried by a FEATURES split (``y_*`` columns) as Assessments."""
    p = split.phones
    phones = {k: g for k, g in p.groupby([p["id"].astype(str), p["word_index"]], sort=False)}
    words: dict[str, list] = {}
    for r in split.words.to_dict("records"):
        uid = str(r["id"])
        g = phones.get((uid, int(r["word_index"])))
        names = [] if g is None else g["phone"].tolist()
        scores = None if g is None or "y_score" not in g else g["y_score"].tolist()
        labels = {a: r.get(f"y_{a}") for a in WORD_ASPECTS}
        words.setdefault(uid, []).append(word_labels(r["text"], labels, names, scores))
    return {
        str(r["id"]): utterance_labels(
            {a: r.get(f"y_{a}") for a in UTTERANCE_ASPECTS}, words.get(str(r["id"]), [])
        )
        for r in split.utterances.to_dict("records")
    }


def speaker_meta(split: SplitFeatures) -> dict[str, UttMeta]:
    u = split.utterances
    age = u["age"] if "age" in u else pd.Series([None] * len(u))
    gender = u["gender"] if "gender" in u else pd.Series([None] * len(u))
    return {
        str(i): UttMeta(age=None if pd.isna(a) else int(a), gender=None if pd.isna(g) else str(g))
        for i, a, g in zip(u["id"], age, gender, strict=True)
    }


def fit_head(
    kind: str,
    train: SplitFeatures,
    dev: SplitFeatures,
    opts: TrainOptions,
    log=print,
    *,
    encoder: EncoderSpec | None = None,
    recogniser: Any = None,
):
    """Fit ``kind`` on ``train`` with model selection on ``dev``; returns (head, dev PCCs).
    ``encoder``: how the features' encoder vectors were made, ``recogniser``: the CTC phone
    recogniser of their ``p_ctc_*`` columns (gop-gbt reads both)."""
    if kind == "gop-gbt":
        from pronscore.heads.gbt import GbtConfig
        from pronscore.training.gbt import fit_gbt

        config = GbtConfig(feature_set=opts.feature_set, seed=opts.seed, threads=opts.threads)
        return fit_gbt(train, dev, config, log=log, encoder=encoder, recogniser=recogniser)
    if kind == "gop-blstm":
        import torch

        from pronscore.heads.blstm import BlstmConfig
        from pronscore.training.blstm import fit_blstm

        torch.set_num_threads(max(1, opts.threads))
        return fit_blstm(train, dev, BlstmConfig(seed=opts.seed, epochs=opts.epochs), log=log)
    raise ValueError(f"unknown GOP baseline {kind!r} (known: {', '.join(KINDS)})")


def feature_names(head: Any) -> dict[str, list[str]]:
    """level -> input columns of a fitted head (GBT: per level; BLSTM: the phone columns)."""
    if hasattr(head, "features"):
        return dict(head.features)
    return {"phone": list(head.columns)}


def train_gop(
    kind: str,
    features_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    opts: TrainOptions = TrainOptions(),
    *,
    log: Callable[[str], None] = print,
) -> dict:
    """Train, evaluate on dev, write RUN_DIR (built beside it, then renamed); returns metrics."""
    np.random.seed(opts.seed)
    train = load_features(features_dir, opts.train_split)
    n_human = len(train.utterances)
    if opts.negatives:
        from pronscore.training.negatives import with_negatives

        if kind != "gop-gbt":
            raise CorpusError(f"--negatives trains the gop-gbt reading check; {kind} has none")

        train = with_negatives(train, opts.negatives, features_dir)
    dev = load_features(features_dir, opts.dev_split)
    started = time.perf_counter()
    head, dev_pcc = fit_head(kind, train, dev, opts, log=log, encoder=read_spec(features_dir),
                             recogniser=recogniser_of(features_dir))  # fmt: skip
    seconds = round(time.perf_counter() - started, 1)
    metrics = evaluate_assessments(
        labels_from_features(dev),
        head.predict_features(dev),
        speaker_meta(dev),
        n_boot=opts.bootstrap,
    )
    metrics.update({"split": opts.dev_split, "kind": kind})
    head.extra.update({
        "features_dir": str(Path(features_dir).resolve()),
        "feature_set": opts.feature_set if kind == "gop-gbt" else "phone",
        "feature_names": feature_names(head),
        "train_split": opts.train_split,
        "dev_split": opts.dev_split,
        "seed": opts.seed,
        "n_train_utterances": n_human,
        "n_train_negatives": len(train.utterances) - n_human,
        "negatives": list(opts.negatives),
        "dev_pcc": dev_pcc,
        "train_seconds": seconds,
    })  # fmt: skip
    with replace_dir(out_dir) as tmp:
        head.save_pretrained(tmp)
        (tmp / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    return metrics
