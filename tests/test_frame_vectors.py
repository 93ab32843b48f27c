"""Per-phone vectors pooled from the acoustic model's frame posteriors, and a GBT model whose
phone classifier reads them (the default model's recipe): no encoder needed."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pronscore.features.frame_vectors import pool_posteriors, split_frame_vectors, vector_dim
from pronscore.heads.gbt import GbtConfig, GbtHead
from pronscore.heads.phone_classifier import PhoneClassifier, PhoneScorer
from pronscore.text import PHONE_INDEX, PHONES
from synthetic_features import make_split


def test_pooling_covers_the_span_its_halves_and_its_neighbourhood_of_trimmed_audio() -> None:
    scores = np.repeat(np.arange(50, dtype=np.float32)[:, None], 39, axis=1)  # row t holds t
    nonspeech = np.zeros((50, 3), np.float32)
    nonspeech[:, 1] = -2.0
    frames = {"phone_scores": scores, "nonspeech_scores": nonspeech, "offset": np.array([0.3])}
    # 0.40-0.50 s of the recording: frames 10-19 of audio trimmed from 0.30 s
    v = pool_posteriors(frames, np.array([0.40, np.nan]), np.array([0.50, np.nan]))
    assert v.shape == (2, vector_dim(39)) == (2, 5 * 39 + 2)
    span, first, second, before, after = (v[0, k * 39] for k in range(5))
    assert (span, first, second, before, after) == pytest.approx((14.5, 12, 17, 7, 22))
    assert v[0, -2] == pytest.approx(np.log(10)) and v[0, -1] == pytest.approx(0.0)
    assert np.isnan(v[1]).all()  # a phone the aligner gave no time
    empty = {"phone_scores": np.zeros((0, 39), np.float32), "nonspeech_scores": nonspeech[:0]}
    assert np.isnan(pool_posteriors(empty, np.array([0.1]), np.array([0.2]))).all()


def with_frames(split, folder: Path, seed: int):
    """Frame files whose posteriors favour each phone's canonical phone over its span, the
    more the better it was said (``make_split`` puts phone k at 0.1 k - 0.1 (k + 1) s)."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for uid, g in split.phones.groupby("id"):
        n = 10 * len(g) + 10
        scores = rng.normal(-6, 1, (n, len(PHONES))).astype(np.float32)
        for r in g.itertuples():
            q = 0.5 if np.isnan(r.y_score) else r.y_score / 2
            a = 10 * int(r.phone_index)
            scores[a : a + 10, PHONE_INDEX[r.base_phone]] += 10 * q
        nonspeech = np.full((n, 3), -8.0, np.float32)
        save_file({"phone_scores": scores, "nonspeech_scores": nonspeech},
                  str(folder / f"{uid}.safetensors"))  # fmt: skip
    return replace(split, frames_dir=folder)


def test_gbt_with_frame_vectors_trains_saves_loads_and_hears(tmp_path: Path) -> None:
    from pronscore.training.gbt import fit_gbt

    train = with_frames(make_split(120, 4), tmp_path / "train", 4)
    dev = with_frames(make_split(40, 5, prefix="d"), tmp_path / "dev", 5)
    assert split_frame_vectors(dev).shape == (len(dev.phones), vector_dim(len(PHONES)))
    config = GbtConfig(num_leaves=(7,), max_rounds=60, early_stopping=20, threads=1,
                       frame_vectors=True, phone_scorer=True)  # fmt: skip
    head, _ = fit_gbt(train, dev, config, log=lambda *_: None)
    assert isinstance(head.classifier, PhoneClassifier) and head.encoder is None
    assert isinstance(head.scorer, PhoneScorer) and head.checks is not None
    assert {"p_enc_lpp", "p_enc_score"} <= set(head.features["phone"])
    # the canonical log posterior follows how well the phone was said (8 small-batch epochs
    # on ~70 phones scored 2 train it only a little)
    rows = head.phone_rows(dev)
    good, bad = rows["y_score"] >= 1.6, rows["y_score"] <= 0.4
    assert rows.loc[good, "p_enc_lpp"].mean() > rows.loc[bad, "p_enc_lpp"].mean() + 0.3
    # the scorer, trained on every labelled phone, tracks the score itself
    labelled = rows["y_score"].notna()
    r = np.corrcoef(rows.loc[labelled, "p_enc_score"], rows.loc[labelled, "y_score"])[0, 1]
    assert r > 0.8
    head.save_pretrained(tmp_path / "run")
    config_json = json.loads((tmp_path / "run" / "config.json").read_text())
    assert "encoder" not in config_json and config_json["gbt"]["frame_vectors"] is True
    assert (tmp_path / "run" / "phone_scorer.safetensors").is_file()
    loaded = GbtHead.from_pretrained(tmp_path / "run")
    assert loaded.scorer is not None
    a, b = head.predict_features(dev), loaded.predict_features(dev)
    uid = str(dev.utterances["id"][0])
    assert a[uid].to_dict() == b[uid].to_dict()
    heard = [p.heard for w in a[uid].words for p in w.phones]
    canon = rows.loc[rows["id"] == uid, "base_phone"].tolist()
    assert all(h is None or h != c for h, c in zip(heard, canon, strict=True))


def test_a_head_without_frame_vectors_keeps_the_gop_features_alone(tmp_path: Path) -> None:
    from pronscore.training.gbt import fit_gbt

    train, dev = make_split(60, 4), make_split(20, 5, prefix="d")  # no frame files at all
    config = GbtConfig(num_leaves=(7,), max_rounds=30, early_stopping=10, threads=1)
    head, _ = fit_gbt(train, dev, config, log=lambda *_: None)
    assert head.classifier is None and "p_enc_lpp" not in head.features["phone"]
    assert head.phone_rows(dev) is dev.phones


def test_refit_refuses_a_cross_validation_of_another_recipe() -> None:
    from pronscore.commands.train_default import _refit_sizes
    from pronscore.errors import CorpusError
    from pronscore.training.recipe import Recipe

    fold = {"selection": {"phone/y_score": {"num_leaves": 7, "rounds": 50}}}
    cv = {"kind": "gop-gbt", "options": {"frame_vectors": True}, "folds": [fold]}
    with pytest.raises(CorpusError, match="refit with --no-phone-scorer"):
        _refit_sizes(cv, "runs/cv-x", Recipe())
    measured = Recipe(phone_scorer=False, round_floor=False, channel_copies=False,
                      channel_gate=False)  # fmt: skip
    assert _refit_sizes(cv, "runs/cv-x", measured) == {
        "phone/y_score": {"num_leaves": 7, "rounds": 50}
    }
    assert Recipe().cv_flags() == (
        " --frame-vectors --phone-scorer --round-floor --channel-copies --channel-gate"
    )
    assert measured.train_flags() == (
        " --no-phone-scorer --no-round-floor --no-channel-copies --no-channel-gate"
    )


def test_frames_without_time_pool_to_nan_rows_in_a_split(tmp_path: Path) -> None:
    split = with_frames(make_split(3, 1), tmp_path, 1)
    phones = split.phones.copy()
    phones.loc[0, ["start", "end"]] = [None, None]
    v = split_frame_vectors(replace(split, phones=pd.DataFrame(phones)))
    assert np.isnan(v[0]).all() and np.isfinite(v[1:]).all()


def test_the_report_names_the_frame_vectors_flag_of_a_cross_validation() -> None:
    from pronscore.evaluation.cv_report import cv_command

    cv = {"kind": "gop-gbt", "features_dir": "data/feats", "n_folds": 5,
          "options": {"frame_vectors": True}}  # fmt: skip
    assert cv_command(cv) == "pronscore cv gop-gbt --features data/feats --folds 5 --frame-vectors"
    assert "--frame-vectors" not in cv_command({**cv, "options": {}})


def test_recipe_flags_default_to_the_shipped_recipe_in_train_and_to_gop_only_in_cv() -> None:
    from pronscore.cli import build_parser
    from pronscore.commands.recipe import from_args
    from pronscore.training.recipe import GOP_ONLY, SHIPPED, Recipe

    def parse(*argv: str):
        return build_parser(list(argv)).parse_args(list(argv))

    train = parse("train", "default", "--data", "d", "--features", "f", "--out", "o")
    cv = parse("cv", "gop-gbt", "--features", "f", "--out", "o")
    assert from_args(train) == SHIPPED and not SHIPPED.stacked
    assert from_args(cv) == GOP_ONLY
    stacked = Recipe(stacked=True, channel_copies=False, channel_gate=False)
    assert stacked.cv_flags() == " --frame-vectors --phone-scorer --round-floor --stacked"
    assert stacked.train_flags() == " --stacked --no-channel-copies --no-channel-gate"
    assert SHIPPED.train_flags() == ""
