"""GOP baselines (GBT, BLSTM) on a synthetic FEATURES split: learn, save/load, predict."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from pronscore.cli import main
from pronscore.heads.blstm import BlstmConfig, BlstmHead
from pronscore.heads.gbt import GbtConfig, GbtHead
from pronscore.runs import load_predictor
from pronscore.training.blstm import fit_blstm
from pronscore.training.gbt import fit_gbt
from synthetic_features import make_split


@pytest.fixture(scope="module")
def splits():
    return make_split(120, 0), make_split(50, 1, "d")


def _check(assessments: dict, dev) -> None:
    assert set(assessments) == set(dev.utterances["id"])
    a = assessments["d0000"]
    assert 0 <= a.utterance.total <= 10
    assert len(a.words) == (dev.words["id"] == "d0000").sum()
    assert all(0 <= p.score <= 2 and p.start is not None for p in a.phones)
    assert all(w.mispronounced in (True, False) for w in a.words)


def test_gbt_learns_saves_loads(splits, tmp_path: Path) -> None:
    train, dev = splits
    config = GbtConfig(num_leaves=(7,), max_rounds=200, early_stopping=20, threads=1)
    head, pcc = fit_gbt(train, dev, config, log=lambda _: None)
    assert pcc["utterance/y_total"] > 0.8 and pcc["word/y_accuracy"] > 0.8
    assert pcc["phone/y_score"] > 0.8 and pcc["utterance/y_completeness"] is None
    head.save_pretrained(tmp_path / "run")
    assert not list((tmp_path / "run").glob("*.pkl"))
    loaded = GbtHead.from_pretrained(tmp_path / "run")
    a, b = head.predict_features(dev), loaded.predict_features(dev)
    assert a == b
    _check(a, dev)


def test_gbt_paper_features(splits) -> None:
    train, dev = splits
    config = GbtConfig(feature_set="paper", levels=("utterance",), num_leaves=(7,), max_rounds=200,
                       early_stopping=20, threads=1)  # fmt: skip
    head, pcc = fit_gbt(train, dev, config, log=lambda _: None)
    assert head.features["utterance"][:2] == ["gop_AA", "gop_AE"]
    assert head.features["utterance"][-2:] == ["mean_position", "n_phones"]
    assert len(head.features["utterance"]) == 41 and "utterance/y_total" in pcc
    assert set(head.predict_features(dev)) == set(dev.utterances["id"])


def test_blstm_learns_and_round_trips(splits, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    train, dev = splits
    head, pcc = fit_blstm(train, dev, BlstmConfig(epochs=12, patience=4), log=lambda _: None)
    assert pcc["utterance/total"] > 0.7 and pcc["phone/accuracy"] > 0.7
    head.save_pretrained(tmp_path / "run")
    loaded = load_predictor(tmp_path / "run")
    assert isinstance(loaded, BlstmHead)
    a = loaded.predict_features(dev)
    assert a == head.predict_features(dev)
    _check(a, dev)


def test_blstm_padding_does_not_leak(splits) -> None:
    torch.set_num_threads(1)
    train, dev = splits
    head, _ = fit_blstm(train, dev, BlstmConfig(epochs=1), log=lambda _: None)
    alone = dev.__class__(dev.utterances.iloc[:1], dev.words[dev.words.id == "d0000"],
                          dev.phones[dev.phones.id == "d0000"], dev.frames_dir)  # fmt: skip
    one = head.predict_features(alone)["d0000"]
    batched = head.predict_features(dev)["d0000"]
    assert one.utterance.total == pytest.approx(batched.utterance.total, abs=1e-5)


def test_cli_train_gbt(splits, tmp_path: Path) -> None:
    train, dev = splits
    feats = tmp_path / "feats"
    for name, split in (("train", train), ("dev", dev)):
        (feats / name).mkdir(parents=True)
        split.utterances.to_parquet(feats / name / "utterances.parquet")
        split.words.to_parquet(feats / name / "words.parquet")
        split.phones.to_parquet(feats / name / "phones.parquet")
    run = tmp_path / "run"
    assert (
        main(["train", "gop-gbt", "--features", str(feats), "--out", str(run), "--threads", "1"])
        == 0
    )
    head = load_predictor(run)
    assert isinstance(head, GbtHead) and head.extra["dev_pcc"]["utterance/y_total"] > 0.8
    assert isinstance(pd.read_parquet(feats / "dev" / "phones.parquet"), pd.DataFrame)
