"""Speaker-grouped K-fold cross-validation on synthetic features (tiny GBT settings)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pronscore.cli import main
from pronscore.features.extract import concat_features
from pronscore.training.cv import (
    CvOptions,
    cross_validate,
    fit_predict,
    plan_folds,
    speaker_groups,
)
from synthetic_features import make_split

FAILED = "t0003"
TINY = {"num_leaves": (7,), "max_rounds": 20, "bootstrap": 50, "threads": 1}


def _with_speakers(split, prefix: str, per_speaker: int = 5):
    """5 utterances per speaker; even speakers are children (9), odd ones adults (30)."""
    u = split.utterances.copy()
    n = np.arange(len(u)) // per_speaker
    u["speaker"] = [f"{prefix}{k:02d}" for k in n]
    u["age"] = np.where(n % 2 == 0, 9, 30)
    return split.__class__(u, split.words, split.phones, split.frames_dir)


def _fail(split, uid: str):
    """Mark one utterance as a failed alignment: NaN features, like extract.py writes it."""
    u, w, p = split.utterances.copy(), split.words.copy(), split.phones.copy()
    for df, prefix in ((u, "u_"), (w, "w_"), (p, "p_")):
        cols = [c for c in df.columns if c.startswith(prefix)]
        df.loc[df["id"] == uid, cols] = np.nan
    u.loc[u["id"] == uid, ["status", "reason"]] = ["failed", "no alignment"]
    return split.__class__(u, w, p, split.frames_dir)


@pytest.fixture(scope="module")
def splits():
    train = _fail(_with_speakers(make_split(100, seed=1, prefix="t"), "a"), FAILED)
    dev = _with_speakers(make_split(40, seed=2, prefix="d"), "b")
    return train, dev


@pytest.fixture(scope="module")
def data(splits):
    return concat_features(splits)


def test_folds_are_speaker_disjoint_cover_everyone_and_balance_ages(data):
    plans = plan_folds(data.utterances, CvOptions(folds=5, fold_seed=3))
    groups = speaker_groups(data.utterances)
    tested = [s for p in plans for s in p.test]
    assert sorted(tested) == sorted(groups)  # every speaker in exactly one fold
    assert len(tested) == len(set(tested)) == 28
    for g in ("child", "adult"):
        counts = [sum(groups[s] == g for s in p.test) for p in plans]
        assert max(counts) - min(counts) <= 1, (g, counts)
    for p in plans:
        assert not set(p.train) & set(p.test) and not set(p.val) & set(p.test)
        assert not set(p.train) & set(p.val)
        assert set(p.train) | set(p.val) | set(p.test) == set(groups)
        assert {groups[s] for s in p.val} == {"child", "adult"}  # validation has both groups
    again = plan_folds(data.utterances, CvOptions(folds=5, fold_seed=3))
    assert again == plans
    assert plan_folds(data.utterances, CvOptions(folds=5, fold_seed=4)) != plans


def test_every_utterance_is_predicted_once_by_a_model_that_never_saw_its_speaker(data):
    opts = CvOptions(folds=4, **TINY)
    real = fit_predict("gop-gbt", opts, log=lambda *_: None)
    calls = []

    def spy(train, val, test, seed):
        calls.append((train.utterances, val.utterances, test.utterances))
        return real(train, val, test, seed)

    result = cross_validate("gop-gbt", data, opts, log=lambda *_: None, fitter=spy)
    assert len(calls) == 4
    for train, val, test in calls:
        spk = set(test["speaker"])
        assert not spk & set(train["speaker"]) and not spk & set(val["speaker"])
        assert not set(train["speaker"]) & set(val["speaker"])
        assert len(train) + len(val) + len(test) == len(data.utterances)
    ids = [uid for _, _, uid, _ in result.predictions]
    assert sorted(ids) == sorted(data.utterances["id"]) and len(ids) == len(set(ids))
    by_id = {uid: a for _, _, uid, a in result.predictions}
    assert by_id[FAILED].status == "failed"
    assert by_id[FAILED].utterance.total is not None  # scored, as predict_features scores it
    pooled = result.metrics["pooled"]
    assert pooled["n_utterances"] == 140 and pooled["n_missing"] == 0
    # each fold records the trees' sizes its own selection chose (what --refit reuses)
    for fold in result.metrics["folds"]:
        size = fold["selection"]["utterance/y_total"]
        assert size["num_leaves"] == 7 and 1 <= size["rounds"] <= 20
    assert pooled["utterance"]["total"]["pcc"] > 0.7  # labels are driven by the features
    assert [f["fold"] for f in result.metrics["folds"]] == [0, 1, 2, 3]
    assert sum(f["n_utterances"] for f in result.metrics["folds"]) == 140


def test_an_ensemble_cv_scores_the_seeds_averaged_predictions(data):
    from pronscore.evaluation.cv_report import cv_command, render_cv, scored_folds
    from pronscore.evaluation.metrics import evaluate_assessments
    from pronscore.heads.ensemble import average_assessments
    from pronscore.training.gop_baselines import labels_from_features, speaker_meta

    opts = CvOptions(folds=3, seeds=(1, 2), ensemble=True, **TINY)
    result = cross_validate("gop-gbt", data, opts, log=lambda *_: None)
    by_seed: dict = {}
    for seed, _, uid, a in result.predictions:
        by_seed.setdefault(seed, {})[uid] = a
    assert set(by_seed) == {1, 2, "ensemble"}
    mean = {i: average_assessments([by_seed[1][i], by_seed[2][i]]) for i in by_seed[1]}
    assert {i: a.utterance for i, a in mean.items()} == {
        i: a.utterance for i, a in by_seed["ensemble"].items()
    }
    refs, meta = labels_from_features(data), speaker_meta(data)
    want = evaluate_assessments(refs, mean, meta, n_boot=0)
    m = result.metrics
    for level, aspect in (("utterance", "total"), ("word", "accuracy"), ("phone", "accuracy")):
        assert m["pooled"][level][aspect]["pcc"] == pytest.approx(want[level][aspect]["pcc"])
    singles = [r["metrics"]["utterance"]["total"]["pcc"] for r in m["pooled_by_seed"]]
    assert m["pooled"]["utterance"]["total"]["pcc"] not in singles
    assert [f["fold"] for f in scored_folds(m)] == [0, 1, 2] and len(m["folds"]) == 6
    assert " --seeds 1,2 --ensemble " in cv_command({**m, "features_dir": "F"})
    alone = m["pooled_mean"]["utterance"]["total"]["pcc"]
    assert f"(the seeds alone, mean PCC: utterance total {alone:.3f}, " in render_cv({"e": m})


def _write_features(root: Path, splits) -> None:
    for name, split in zip(("train", "dev"), splits, strict=True):
        d = root / name
        d.mkdir(parents=True)
        split.utterances.to_parquet(d / "utterances.parquet")
        split.words.to_parquet(d / "words.parquet")
        split.phones.to_parquet(d / "phones.parquet")


def test_cli_writes_cv_json_and_out_of_fold_predictions(splits, tmp_path, capsys):
    _write_features(tmp_path / "feats", splits)
    out = tmp_path / "cv"
    argv = ["cv", "gop-gbt", "--features", str(tmp_path / "feats"), "--folds", "3",
            "--out", str(out), "--num-leaves", "7", "--max-rounds", "20", "--bootstrap", "50",
            "--threads", "1"]  # fmt: skip
    assert main(argv) == 0
    cv = json.loads((out / "cv.json").read_text())
    assert cv["kind"] == "gop-gbt" and cv["n_folds"] == 3 and cv["splits"] == ["train", "dev"]
    assert len(cv["folds"]) == 3
    for m in [cv["pooled"], *cv["folds"]]:  # the `pronscore evaluate` layout
        assert set(m["utterance"]) == {"accuracy", "completeness", "fluency", "prosodic", "total"}
        assert set(m["word"]) == {"accuracy", "stress", "total"} and "accuracy" in m["phone"]
        assert {"pcc", "ci95", "mse", "n"} <= set(m["utterance"]["total"])
    assert set(cv["pooled"]["subgroups"]) >= {"child", "adult"}
    assert cv["pooled"]["subgroups"]["child"]["n_utterances"] == 70
    lines = (out / "predictions.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert Counter(r["id"] for r in rows) == Counter(
        pd.concat([s.utterances["id"] for s in splits])
    )
    fold_of = {r["id"]: r["fold"] for r in rows}
    for f in cv["folds"]:  # predictions.jsonl names the fold that scored each utterance
        assert {i for i, k in fold_of.items() if k == f["fold"]} == set(
            concat_features(splits).utterances.query("speaker in @f['speakers']")["id"]
        )
    assert "pooled out-of-fold" in capsys.readouterr().out

    md = tmp_path / "cv.md"
    assert main(["report", "cv", f"gbt, all={out}", "--out", str(md)]) == 0
    table = [line for line in md.read_text().splitlines() if line.startswith("| gbt, all |")]
    total = cv["pooled"]["utterance"]["total"]
    assert len(table) == 1 and f"| {total['pcc']:.3f} [{total['ci95'][0]:.3f}, " in table[0]
    means = [
        np.mean([f[lvl][a]["pcc"] for f in cv["folds"]])
        for lvl, a in (("utterance", "total"), ("word", "accuracy"), ("phone", "accuracy"))
    ]
    assert "| {:.3f} / {:.3f} / {:.3f} |".format(*means) in table[0]
    made = f"pronscore cv gop-gbt --features {tmp_path / 'feats'} --folds 3 --num-leaves 7"
    assert f"- gbt, all: `{made} --max-rounds 20`" in md.read_text()  # how to remake the row
    assert main(["report", "cv", str(out), "--out", str(md)]) == 2  # NAME= missing
    assert main(["report", "cv", f"a={out}", f"a={out}", "--out", str(md)]) == 2  # one name twice


def test_refit_sizes_are_the_folds_most_chosen_leaves_and_median_rounds():
    from pronscore.training.gbt import sizes_from_cv

    def fold(leaves, rounds):
        return {"selection": {"utterance/y_total": {"num_leaves": leaves, "rounds": rounds}}}

    folds = [fold(15, 300), fold(7, 100), fold(15, 500), fold(7, 200), fold(31, 900)]
    assert sizes_from_cv(folds) == {"utterance/y_total": {"num_leaves": 7, "rounds": 300}}
    assert sizes_from_cv([fold(31, 10), fold(15, 20), fold(31, 40)])["utterance/y_total"] == {
        "num_leaves": 31,
        "rounds": 20,
    }
    assert sizes_from_cv([{"fold": 0}]) == {}  # a cv.json written before sizes were recorded


def test_a_refit_trains_on_all_rows_with_the_given_sizes_and_no_dev(splits):
    from pronscore.heads.gbt import GbtConfig
    from pronscore.training.gbt import fit_gbt

    sizes = {"utterance/y_total": {"num_leaves": 3, "rounds": 17}}
    config = GbtConfig(threads=1, levels=("utterance",))
    head, dev_pcc = fit_gbt(concat_features(splits), None, config, log=lambda *_: None, sizes=sizes)
    assert set(head.boosters) == {"utterance/y_total"} and dev_pcc == {}
    assert head.boosters["utterance/y_total"].num_trees() == 17
    assert head.extra["selection"] == sizes
    with pytest.raises(ValueError, match="dev split"):
        fit_gbt(splits[0], None, config)


def test_blend_scores_the_average_of_two_runs_and_refuses_other_folds(splits, tmp_path):
    """Two CVs of different heads on the same folds: `pronscore blend` scores the mean of
    their out-of-fold predictions, as an ensemble of the two heads serves it."""
    from pronscore.evaluation.metrics import evaluate_assessments
    from pronscore.heads.ensemble import average_assessments
    from pronscore.schema import Assessment
    from pronscore.training.gop_baselines import labels_from_features, speaker_meta

    _write_features(tmp_path / "feats", splits)
    feats = str(tmp_path / "feats")
    common = ["--features", feats, "--folds", "3", "--bootstrap", "20", "--threads", "1"]
    gbt = ["cv", "gop-gbt", *common, "--num-leaves", "7", "--max-rounds", "20"]
    assert main([*gbt, "--out", str(tmp_path / "a")]) == 0
    hier = ["cv", "hier", *common, "--arch", "gopt", "--epochs", "2", "--select-on", "levels"]
    assert main([*hier, "--out", str(tmp_path / "b")]) == 0
    assert main([*gbt, "--fold-seed", "2", "--out", str(tmp_path / "c")]) == 0

    out = tmp_path / "ab"
    argv = ["blend", str(tmp_path / "a"), str(tmp_path / "b"), "--features", feats]
    assert main([*argv, "--out", str(out), "--bootstrap", "20"]) == 0
    cv = json.loads((out / "cv.json").read_text())
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    preds = [
        {
            r["id"]: Assessment.from_dict(r)
            for r in map(json.loads, (tmp_path / d / "predictions.jsonl").read_text().splitlines())
        }
        for d in ("a", "b")
    ]
    mean = {i: average_assessments([preds[0][i], preds[1][i]]) for i in preds[0]}
    data = concat_features(splits)
    want = evaluate_assessments(labels_from_features(data), mean, speaker_meta(data), n_boot=0)
    for level, aspect in (("utterance", "total"), ("word", "accuracy"), ("phone", "accuracy")):
        assert cv["pooled"][level][aspect]["pcc"] == pytest.approx(want[level][aspect]["pcc"])
    assert cv["kind"] == "blend" and len(cv["folds"]) == 3 and len(rows) == len(mean)
    assert {r["fold"] for r in rows} == {0, 1, 2}
    from pronscore.evaluation.cv_report import cv_command

    assert cv_command(cv) == f"pronscore blend {tmp_path / 'a'} {tmp_path / 'b'} --features {feats}"
    b = json.loads((tmp_path / "b" / "cv.json").read_text())
    assert " --arch gopt --select-on levels" in cv_command(b)
    for fold in b["folds"]:  # the epoch each fold's validation speakers chose
        assert 1 <= fold["selection"]["finetune"]["best_epoch"] <= 2
    bad = ["blend", str(tmp_path / "a"), str(tmp_path / "c"), "--features", feats]
    assert main([*bad, "--out", str(tmp_path / "x")]) == 2  # other folds: a clear error
    assert not (tmp_path / "x").exists()
    assert main(["blend", str(tmp_path / "a"), "--features", feats, "--out", "y"]) == 2


def _copies(split, shift: float):
    """Channel copies (``<id>#noise``) whose GOP columns are all ``shift`` lower: the same
    speech through a channel that every feature reads worse, same labels."""
    u, w, p = split.utterances.copy(), split.words.copy(), split.phones.copy()
    for df in (u, w, p):
        df["id"] = df["id"] + "#noise"
    u["synthetic"] = "noise"
    for col in ("p_gop_forced", "p_gop_free", "p_lpp"):
        p[col] = p[col] - shift
    return split.__class__(u, w, p, split.frames_dir)


def test_cv_scores_channel_copies_out_of_fold_and_trains_on_them_only_when_asked(data):
    from dataclasses import replace as dc_replace

    from pronscore.training.recipe import GOP_ONLY

    copies = _copies(data, shift=1.5)
    seen = []

    def spy_on(opts):
        real = fit_predict("gop-gbt", opts, log=lambda *_: None)

        def spy(train, val, test, seed):
            seen.append((train.utterances["id"], val.utterances["id"], test.utterances))
            return real(train, val, test, seed)

        return spy

    quiet = lambda *_: None  # noqa: E731
    plain = CvOptions(folds=3, **TINY)
    without = cross_validate("gop-gbt", data, plain, log=quiet, fitter=spy_on(plain), copies=copies)
    for train_ids, val_ids, test in seen:
        assert not train_ids.str.contains("#").any() and not val_ids.str.contains("#").any()
        clean = test["id"][~test["id"].str.contains("#")]
        assert sorted(test["id"][test["id"].str.contains("#")]) == sorted(clean + "#noise")
    seen.clear()
    trained = dc_replace(plain, recipe=dc_replace(GOP_ONLY, channel_copies=True))
    with_ = cross_validate(
        "gop-gbt", data, trained, log=quiet, fitter=spy_on(trained), copies=copies
    )
    for train_ids, val_ids, test in seen:  # the training speakers' copies, no one else's
        copied = train_ids[train_ids.str.contains("#")]
        assert sorted(copied) == sorted(train_ids[~train_ids.str.contains("#")] + "#noise")
        assert not val_ids.str.contains("#").any()
        assert not set(copied.str.split("#").str[0]) & set(test["id"])
    # the clean out-of-fold metrics never include the copies
    assert with_.metrics["pooled"]["n_utterances"] == 140
    assert {uid for _, _, uid, _ in with_.predictions} == set(data.utterances["id"])
    # by default the copies train the utterance trees only: words and phones as before
    first = {uid: a for _, _, uid, a in without.predictions}
    for _, _, uid, a in with_.predictions:
        assert a.words == first[uid].words
    a, b = without.metrics["channels"]["noise"], with_.metrics["channels"]["noise"]
    assert a["n"] == b["n"] == 140
    # trees that never saw the channel read its lower GOP as worse speech; trained on the
    # copies they learn that the channel moves the columns, not the score
    assert b["mean_abs_delta"] < a["mean_abs_delta"]
    assert b["pcc_clean"] > a["pcc_clean"]
    from pronscore.evaluation.cv_report import render_cv

    table = render_cv({"plain": without.metrics, "trained": with_.metrics})
    cells = f"{b['pcc_clean']:.3f} / {b['mean_abs_delta']:.3f} / {b['pcc_human']:.3f}"
    assert f"| trained | {cells} |" in table


def test_a_channel_gate_averages_both_sets_for_clean_speech_and_takes_the_copies_for_copies(data):
    from dataclasses import replace as dc_replace

    from pronscore.training.recipe import CHANNEL_FLOOR, GOP_ONLY

    copies = _copies(data, shift=1.5)
    quiet = lambda *_: None  # noqa: E731
    plain = CvOptions(folds=3, **TINY)

    def run(**recipe):
        opts = dc_replace(plain, recipe=dc_replace(GOP_ONLY, **recipe))
        return cross_validate("gop-gbt", data, opts, log=quiet, copies=copies)

    clean, trained = run(), run(channel_copies=True)
    gated = run(channel_copies=True, channel_gate=True)
    runs = (("clean", clean), ("trained", trained), ("gated", gated))
    totals = {name: {uid: a.utterance.total for _, _, uid, a in r.predictions} for name, r in runs}
    by_copy = {name: {uid: a.utterance.total for uid, a in r.copies.items()} for name, r in runs}
    # a channel every feature reads 1.5 lower is told apart (out of fold, from 60-odd training
    # readings): a clean reading gets the copies' trees at their floor weight, a copy those
    # trees alone
    near = lambda x, y: np.mean([abs(x[u] - y[u]) < 0.05 for u in x])  # noqa: E731
    f = CHANNEL_FLOOR
    floor = {u: (1 - f) * totals["clean"][u] + f * totals["trained"][u] for u in totals["clean"]}
    assert near(totals["gated"], floor) >= 0.95
    assert near(by_copy["gated"], by_copy["trained"]) >= 0.95
    assert near(by_copy["gated"], by_copy["clean"]) < 0.5
    pcc = lambda r: r.metrics["pooled"]["utterance"]["total"]["pcc"]  # noqa: E731
    assert pcc(gated) >= pcc(clean) - 0.005  # no worse on clean speech for the copies' share
    a, g = clean.metrics["channels"]["noise"], gated.metrics["channels"]["noise"]
    assert g["mean_abs_delta"] < a["mean_abs_delta"]
    with pytest.raises(ValueError, match="--channel-gate needs --channel-copies"):
        dc_replace(GOP_ONLY, channel_gate=True)


def test_cli_cv_takes_channel_copies_and_refuses_other_rows(splits, tmp_path, capsys):
    root = tmp_path / "feats"
    _write_features(root, splits)
    copies = _copies(concat_features(splits), shift=1.0)
    for name, kind in (("ch", "noise"), ("neg", "other-text")):
        d = root / name
        d.mkdir()
        copies.utterances.assign(synthetic=kind).to_parquet(d / "utterances.parquet")
        copies.words.to_parquet(d / "words.parquet")
        copies.phones.to_parquet(d / "phones.parquet")
    argv = ["cv", "gop-gbt", "--features", str(root), "--folds", "3", "--num-leaves", "7",
            "--max-rounds", "20", "--bootstrap", "20", "--threads", "1"]  # fmt: skip
    assert main([*argv, "--copies", "neg", "--out", str(tmp_path / "a")]) == 2
    assert "--copies takes channel copies only" in capsys.readouterr().err
    assert main([*argv, "--channel-copies", "--out", str(tmp_path / "b")]) == 2  # no --copies
    words = ["--copies", "ch", "--channel-copies-words"]
    assert main([*argv, *words, "--out", str(tmp_path / "b")]) == 2
    assert "--channel-copies-words needs --channel-copies" in capsys.readouterr().err
    assert main([*argv, "--copies", "ch", "--channel-copies", "--out", str(tmp_path / "c")]) == 0
    cv = json.loads((tmp_path / "c" / "cv.json").read_text())
    assert cv["channels"]["noise"]["n"] == 140 and cv["copies"] == ["ch"]
    rows = [json.loads(line) for line in (tmp_path / "c" / "copies.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == sorted(copies.utterances["id"])
    from pronscore.evaluation.cv_report import cv_command

    assert cv_command({**cv, "features_dir": "F"}).endswith(
        " --channel-copies --num-leaves 7 --max-rounds 20 --copies ch"
    )
    assert "noise copies: 140" in capsys.readouterr().out


def test_the_report_says_how_warped_features_were_made(tmp_path):
    from pronscore.acoustic.pocketsphinx import ModelConfig
    from pronscore.evaluation.cv_report import _features_note
    from pronscore.features.extract import RECOMMENDED, ExtractorConfig, write_meta

    warped = ExtractorConfig(model=ModelConfig(warp=1.2)).to_dict()
    note = _features_note({"features_dir": "F", "extractor": warped})
    assert note == " (features: `pronscore features data/so762 --out F --jobs 2 --warp 1.2`)"
    assert _features_note({"features_dir": str(tmp_path)}) == ""  # no meta.json: unknown
    write_meta(tmp_path, ExtractorConfig(model=ModelConfig(warp=1.15)))  # an older cv.json
    assert _features_note({"features_dir": str(tmp_path)}).endswith("--warp 1.15`)")
    write_meta(tmp_path / "plain", ExtractorConfig())  # made without a warp
    assert _features_note({"features_dir": str(tmp_path / "plain")}).endswith("--warp none`)")
    write_meta(tmp_path / "rec", RECOMMENDED)
    assert _features_note({"features_dir": str(tmp_path / "rec")}) == ""
