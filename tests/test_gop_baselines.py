"""GOP baselines (GBT, BLSTM) on a synthetic FEATURES split: learn, save/load, predict."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from pronscore.cli import main
from pronscore.errors import ModelError
from pronscore.heads.blstm import BlstmConfig, BlstmHead
from pronscore.heads.gbt import GbtConfig, GbtHead
from pronscore.heads.tables import _relative_position, _scalar_cols, utterance_table
from pronscore.runs import load_predictor
from pronscore.text import PHONES
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
    assert all(w.mispronounced is None for w in a.words)  # the Scorer decides the flag


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


def _utterance_table_by_joins(utts, words, phones, feature_set: str) -> pd.DataFrame:
    """The column-at-a-time construction utterance_table had before (fragmenting the frame)."""
    per_type = phones.pivot_table(index="id", columns="base_phone", values="p_gop_forced",
                                  aggfunc="mean")  # fmt: skip
    per_type = per_type.reindex(columns=list(PHONES)).add_prefix("gop_")
    paper = pd.DataFrame(index=pd.Index(utts["id"].astype(str), name="id")).join(per_type)
    paper["mean_position"] = _relative_position(phones).groupby(phones["id"]).mean()
    paper["n_phones"] = phones.groupby("id").size()
    if feature_set == "paper":
        return paper.astype("float64")
    g = phones.groupby("id")[_scalar_cols(phones, "p_")]
    wg = words.groupby("id")[_scalar_cols(words, "w_")]
    aggs = [g.mean().add_suffix("_mean"), g.min().add_suffix("_min"), g.std().add_suffix("_std"),
            g.quantile(0.1).add_suffix("_p10"), g.quantile(0.25).add_suffix("_p25"),
            wg.min().add_suffix("_wmin"), wg.mean().add_suffix("_wmean")]  # fmt: skip
    out = paper.join(utts.set_index("id")[_scalar_cols(utts, "u_")]).join(aggs)
    out["n_words"] = words.groupby("id").size()
    return out.astype("float64")


@pytest.mark.parametrize("feature_set", ["paper", "all"])
def test_utterance_table_is_one_concat_with_the_same_numbers(splits, feature_set: str) -> None:
    dev = splits[1]
    tables = (dev.utterances, dev.words, dev.phones)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        before = _utterance_table_by_joins(*tables, feature_set)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        after = utterance_table(*tables, feature_set)
    pd.testing.assert_frame_equal(after, before, check_exact=True)
    assert after.shape == (50, 41 if feature_set == "paper" else 68)


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


def _write_features(root: Path, splits: dict) -> Path:
    from pronscore.features.extract import RECOMMENDED

    root.mkdir(parents=True)
    (root / "meta.json").write_text(json.dumps({"version": 2, "extractor": RECOMMENDED.to_dict()}))
    for name, split in splits.items():
        (root / name).mkdir(parents=True)
        split.utterances.to_parquet(root / name / "utterances.parquet")
        split.words.to_parquet(root / name / "words.parquet")
        split.phones.to_parquet(root / name / "phones.parquet")
    return root


def test_cli_train_gbt_writes_a_servable_run(splits, tmp_path: Path, capsys) -> None:
    train, dev = splits
    feats = _write_features(tmp_path / "feats", {"train": train, "dev": dev})
    run = tmp_path / "run"
    argv = ["train", "gop-gbt", "--features", str(feats), "--out", str(run), "--threads", "1"]
    assert main([*argv, "--feature-set", "paper", "--bootstrap", "50"]) == 0
    assert "utterance total" in capsys.readouterr().out
    config = json.loads((run / "config.json").read_text())
    assert config["kind"] == "gop-gbt" and config["feature_set"] == "paper"
    assert config["features_dir"] == str(feats.resolve())
    assert len(config["feature_names"]["utterance"]) == 41
    assert sorted(p.name for p in run.glob("*.txt"))[0] == "phone__y_score.txt"
    trained = json.loads((run / "metrics.json").read_text())
    assert trained["utterance"]["total"]["pcc"] > 0.5 and trained["n_utterances"] == 50
    # the run scores recordings with the extractor settings its features were made with
    scorer = json.loads((run / "scorer.json").read_text())
    meta = json.loads((feats / "meta.json").read_text())
    assert scorer["extractor"] == meta["extractor"]
    assert not (run / "features-cache").exists()


def test_cli_train_blstm(splits, tmp_path: Path, capsys) -> None:
    train, dev = splits
    feats = _write_features(tmp_path / "feats", {"train": train, "dev": dev})
    run = tmp_path / "run"
    argv = ["train", "gop-blstm", "--features", str(feats), "--out", str(run), "--threads", "1"]
    assert main([*argv, "--epochs", "2", "--bootstrap", "20"]) == 0
    assert "phone     accuracy" in capsys.readouterr().out
    assert {p.name for p in run.iterdir()} == {
        "config.json",
        "metrics.json",
        "model.safetensors",
        "scorer.json",
    }
    config = json.loads((run / "config.json").read_text())
    assert config["kind"] == "gop-blstm" and len(config["mean"]) == len(config["columns"])
    assert not list(tmp_path.glob(".run.*"))  # the temp folder was renamed, nothing left over


def test_from_pretrained_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError):
        GbtHead.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"kind": "gop-gbt"}))
    with pytest.raises(ModelError, match="malformed config"):
        GbtHead.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"kind": "gop-blstm", "blstm": {}}))
    with pytest.raises(ModelError, match="malformed config"):
        BlstmHead.from_pretrained(tmp_path)
    blstm = {"kind": "gop-blstm", "blstm": {}, "columns": [], "mean": [], "std": []}
    (tmp_path / "config.json").write_text(json.dumps(blstm))
    with pytest.raises(ModelError, match="model file missing"):
        BlstmHead.from_pretrained(tmp_path)
    with pytest.raises(ModelError, match="not a gop-gbt run"):
        GbtHead.from_pretrained(tmp_path)


@pytest.mark.realdata
def test_a_run_scores_a_split_it_has_no_features_for(
    corpus_dir: Path, splits, tmp_path: Path
) -> None:
    """`pronscore evaluate RUN` on audio the training FEATURES_DIR never saw: the Scorer makes
    the features (the head never loads a dataset or runs the aligner)."""
    from pronscore.cli import main
    from pronscore.dataset import prepare_dataset
    from pronscore.schema import Assessment
    from pronscore.training.gop_baselines import TrainOptions, train_gop

    data = prepare_dataset(corpus_dir, tmp_path / "data", limit=3, progress=False, log=print)
    train, dev = splits
    feats = _write_features(tmp_path / "feats", {"train": train, "dev": dev})
    train_gop("gop-gbt", feats, tmp_path / "run", TrainOptions(threads=1, bootstrap=10), log=print)
    pred = tmp_path / "pred.jsonl"
    argv = ["evaluate", str(tmp_path / "run"), "--data", str(data), "--split", "dev"]
    assert main([*argv, "--predictions", str(pred), "--bootstrap", "10", "--quiet"]) == 0
    out = [Assessment.from_dict(json.loads(line)) for line in pred.read_text().splitlines()]
    assert len(out) == 3 and not (tmp_path / "run/features-cache").exists()
    for a in out:
        assert a.status == "ok" and a.utterance.total is not None and a.words
        assert all(p.score is not None and p.end > p.start for p in a.phones)


def test_phone_rows_see_their_neighbours_and_their_utterance_level(splits) -> None:
    from pronscore.heads.tables import phone_table

    dev = splits[1]
    p = dev.phones[dev.phones["id"] == "d0000"].sort_values("phone_index")
    # shuffled rows: neighbours follow phone_index within the utterance, not the row order
    shuffled = dev.phones.sample(frac=1.0, random_state=0)
    t = phone_table(shuffled, dev.words, dev.utterances).loc["d0000"].sort_index()
    lpp = p["p_lpp"].to_numpy()
    assert pd.isna(t["prev_p_lpp"].iloc[0]) and pd.isna(t["next_p_lpp"].iloc[-1])
    assert t["prev_p_lpp"].iloc[1:].tolist() == pytest.approx(lpp[:-1].tolist())
    assert t["next_p_lpp"].iloc[:-1].tolist() == pytest.approx(lpp[1:].tolist())
    assert t["rel_p_lpp"].tolist() == pytest.approx((lpp - lpp.mean()).tolist())
    assert t["umean_p_lpp"].tolist() == pytest.approx([lpp.mean()] * len(lpp))
    word_mean = p.groupby("word_index")["p_lpp"].transform("mean").to_numpy()
    assert t["wmean_p_lpp"].tolist() == pytest.approx(word_mean.tolist())
    other = phone_table(dev.phones, dev.words, dev.utterances)
    assert pd.isna(other.loc["d0001"]["prev_p_lpp"].iloc[0])  # no neighbour from d0000


def test_prediction_context_sums_up_words_and_phones() -> None:
    from pronscore.heads.tables import prediction_context

    words = pd.DataFrame({"id": ["a", "a", "b"]})
    phones = pd.DataFrame({"id": ["a", "a", "a", "b"]})
    w_pred = {"accuracy": np.array([6.0, 8.0, 9.0]), "stress": None, "total": np.array([5, 7, 9.0])}
    ctx = prediction_context(words, w_pred, phones, np.array([2.0, 1.0, 1.2, 1.9]))
    assert list(ctx.columns) == [
        "pred_word_accuracy_mean", "pred_word_total_mean", "pred_word_accuracy_min",
        "pred_word_total_min", "pred_phone_mean", "pred_phone_min", "pred_phone_low",
    ]  # fmt: skip
    assert ctx.loc["a"].tolist() == pytest.approx([7.0, 6.0, 6.0, 5.0, 4.2 / 3, 1.0, 2 / 3])
    assert ctx.loc["b"].tolist() == pytest.approx([9.0, 9.0, 9.0, 9.0, 1.9, 1.9, 0.0])


def test_stacked_gbt_reads_cross_fitted_word_and_phone_predictions(splits, tmp_path) -> None:
    """The utterance trees of a stacked head read the word and phone trees' predictions; a
    saved head predicts the same, and a refit at the selected sizes repeats the recipe."""
    train, dev = splits
    config = GbtConfig(num_leaves=(7,), max_rounds=200, early_stopping=20, threads=1,
                       stacked=True)  # fmt: skip
    head, pcc = fit_gbt(train, dev, config, log=lambda _: None)
    stacked = [c for c in head.features["utterance"] if c.startswith("pred_")]
    assert stacked == [
        "pred_word_accuracy_mean", "pred_word_stress_mean", "pred_word_total_mean",
        "pred_word_accuracy_min", "pred_word_stress_min", "pred_word_total_min",
        "pred_phone_mean", "pred_phone_min", "pred_phone_low",
    ]  # fmt: skip
    assert pcc["utterance/y_total"] > 0.8
    used = dict(zip(head.features["utterance"], head.boosters["utterance/y_total"]
                    .feature_importance(), strict=True))  # fmt: skip
    assert sum(used[c] for c in stacked) > 0  # the trees split on them
    head.save_pretrained(tmp_path / "run")
    loaded = GbtHead.from_pretrained(tmp_path / "run")
    assert loaded.config.stacked and loaded.predict_features(dev) == head.predict_features(dev)
    _check(head.predict_features(dev), dev)
    refit, _ = fit_gbt(train, None, config, log=lambda _: None, sizes=head.extra["selection"])
    assert refit.features == head.features


def test_stacked_training_columns_are_cross_fitted(splits) -> None:
    """Training rows get predictions from trees that did not see them: further from the labels
    than the in-sample predictions of the head's own trees."""
    from pronscore.training.gbt import _cross_fitted, _LevelFit, _tables

    train, dev = splits
    config = GbtConfig(num_leaves=(7,), max_rounds=200, early_stopping=20, threads=1,
                       stacked=True)  # fmt: skip
    head, _ = fit_gbt(train, dev, config, log=lambda _: None)
    tabs = _tables(train, config)
    fit = _LevelFit(config, None, lambda _: None, selection=head.extra["selection"])
    oof = _cross_fitted(tabs, train, fit, head)("phone", "y_score")
    in_sample = head._predict("phone", tabs["phone"][0], "y_score")
    y = tabs["phone"][1]["y_score"].to_numpy(float)
    ok = np.isfinite(y)
    assert np.isfinite(oof).all() and not np.allclose(oof, in_sample)
    assert np.mean((oof[ok] - y[ok]) ** 2) > np.mean((in_sample[ok] - y[ok]) ** 2)
