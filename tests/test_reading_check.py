"""The reading check: trained on readings, cut readings and other-text rows, apart from the
score trees; a reading it rejects is a ``mismatch`` with every word flagged."""

from __future__ import annotations

from dataclasses import replace as dc_replace

import numpy as np
import pandas as pd
import pytest

from pronscore.features.extract import concat_features
from pronscore.heads.gbt import GbtConfig, GbtHead
from pronscore.training.gbt import fit_gbt
from pronscore.training.reading_check import CheckOptions, check_labels, fit_reading_check
from synthetic_features import make_split

CONFIG = GbtConfig(num_leaves=(7,), max_rounds=150, early_stopping=30, threads=1)


def _kind(split, kind: str, *, lpp_shift: float = 0.0, keep_words: int | None = None):
    """``split`` relabelled as synthetic rows of ``kind``: other-text rows' phones sound
    unlike their text (log posteriors ``lpp_shift`` lower) and score 0."""
    u, w, p = split.utterances.copy(), split.words.copy(), split.phones.copy()
    u["synthetic"] = kind
    if lpp_shift:
        p["p_lpp"] += lpp_shift
        p["p_gop_forced"] += lpp_shift
        u["u_lpp_mean"] += lpp_shift
        w["w_lpp_mean"] += lpp_shift
        for col in ("y_accuracy", "y_total", "y_completeness"):
            u[col] = 0.0
        w[["y_accuracy", "y_total"]] = 0.0
        p["y_score"] = 0.0
    if keep_words is not None:  # fewer words said: the rest of the text is missing
        p = p[p["word_index"] < keep_words].reset_index(drop=True)
    return type(split)(u, w, p, split.frames_dir)


def _substitute(split, shift: float = -8.0):
    """Each utterance again as ``<id>#sub`` with its first word replaced: that word's phones
    sound unlike it (log posteriors ``shift`` lower) and score 0."""
    u, w, p = split.utterances.copy(), split.words.copy(), split.phones.copy()
    for df in (u, w, p):
        df["id"] = df["id"] + "#sub"
    u["synthetic"] = "substitute"
    first_w, first_p = w["word_index"].eq(0), p["word_index"].eq(0)
    w.loc[first_w, ["text", "y_accuracy", "y_total"]] = ["ZZ", 0.0, 0.0]
    w.loc[first_w, "w_lpp_mean"] += shift
    p.loc[first_p, ["p_lpp", "p_gop_forced"]] += shift
    p.loc[first_p, "y_score"] = 0.0
    return type(split)(u, w, p, split.frames_dir)


@pytest.fixture(scope="module")
def data():
    train = make_split(140, seed=1, prefix="t")
    other = _kind(make_split(80, seed=3, prefix="o"), "other-text", lpp_shift=-8.0)
    cut = _kind(make_split(60, seed=4, prefix="c"), "truncated", keep_words=1)
    dev = make_split(40, seed=2, prefix="d")
    return train, other, cut, dev


def test_check_labels_pick_aligned_readings_and_other_text() -> None:
    u = pd.DataFrame({
        "status": ["ok", "ok", "ok", "failed", "ok", "ok"],
        "synthetic": [None, "other-text", "truncated", "other-text", "substitute", "band-8k"],
    })  # fmt: skip
    use, other = check_labels(u)
    assert use.tolist() == [True, True, True, False, False, True]  # a channel copy is a reading
    assert other.tolist() == [False, True, False, True, False, False]


def test_threshold_flags_the_set_share_of_unseen_readings() -> None:
    rng = np.random.default_rng(0)
    n = 600
    other = np.r_[np.zeros(n, bool), np.ones(n, bool)]
    x = np.r_[rng.normal(0, 1, n), rng.normal(3, 1, n)]  # overlapping: some errors are due
    table = pd.DataFrame({"u_lpp_mean": -x, "n_words": rng.integers(2, 9, 2 * n)})
    groups = np.arange(2 * n) % 40
    opts = CheckOptions(flag_share=0.05, rounds=60, threads=1)
    kind = np.where(other, "other-text", None)
    check, stats = fit_reading_check(table, kind, groups, opts)
    assert check.features == ["u_lpp_mean"]  # how much was read is no evidence
    assert stats["human_flagged"] == pytest.approx(0.05, abs=0.01)
    assert 0.8 < stats["other_caught"] < 1.0
    with pytest.raises(ValueError, match="10 or more"):
        fit_reading_check(table[:5], kind[:5], groups[:5], opts)


def test_negatives_train_the_check_and_not_the_trees(data, tmp_path) -> None:
    train, other, cut, dev = data
    plain, _ = fit_gbt(train, dev, CONFIG, log=lambda _: None)
    head, _ = fit_gbt(concat_features([train, other, cut]), dev, CONFIG, log=lambda _: None)
    assert plain.reading_check is None and head.reading_check is not None
    assert sorted(head.boosters) == sorted(plain.boosters)
    for name, booster in plain.boosters.items():  # same trees: the synthetic rows never fed them
        assert head.boosters[name].model_to_string() == booster.model_to_string(), name
    assert set(head.extra["reading_check"]) == {"other_caught", "human_flagged",
                                                "truncated_flagged"}  # fmt: skip
    assert head.extra["reading_check"]["other_caught"] >= 0.9

    # another text: a mismatch, every word flagged, the scores kept (false alarms keep theirs)
    wrong = _kind(make_split(20, seed=5, prefix="w"), "other-text", lpp_shift=-8.0)
    right = plain.predict_features(wrong)
    got = head.predict_features(wrong)
    caught = [uid for uid, a in got.items() if a.status == "mismatch"]
    assert len(caught) >= 18
    for uid in caught:
        a = got[uid]
        assert a.reason and "does not sound like the text" in a.reason
        assert a.utterance == right[uid].utterance
        assert all(w.mispronounced for w in a.words)
        assert [dc_replace(w, mispronounced=None) for w in a.words] == list(right[uid].words)
    # readings of the right text (also one cut short) pass
    ok = head.predict_features(dev)
    assert sum(a.status == "ok" for a in ok.values()) >= len(dev.utterances) - 2
    short = head.predict_features(_kind(make_split(20, seed=6, prefix="s"), "truncated",
                                        keep_words=1))  # fmt: skip
    assert sum(a.status == "ok" for a in short.values()) >= 18

    head.save_pretrained(tmp_path / "run")
    loaded = GbtHead.from_pretrained(tmp_path / "run")
    assert loaded.reading_check.threshold == head.reading_check.threshold
    assert loaded.predict_features(wrong) == got


def test_substituted_words_train_the_word_check(data) -> None:
    from pronscore.training.negatives import replaced_words

    train, _, _, dev = data
    both = concat_features([train, _substitute(train)])
    replaced = replaced_words(both)
    ids = both.words["id"].to_numpy()
    assert replaced.sum() == len(train.utterances)
    assert all(i.endswith("#sub") for i in ids[replaced])
    assert (both.words["word_index"].to_numpy()[replaced] == 0).all()

    head, _ = fit_gbt(both, dev, CONFIG, log=lambda _: None)
    assert head.word_check is not None and head.reading_check is None
    assert head.word_check.level == "word"
    stats = head.extra["word_check"]
    assert stats["replaced_caught"] >= 0.9 and stats["good_flagged"] <= 0.05
    test = make_split(30, seed=7, prefix="x")
    got = head.predict_features(_substitute(test))
    firsts = [a.words[0].mispronounced for a in got.values()]
    assert sum(bool(f) for f in firsts) >= 27  # the replaced word is flagged
    plain = head.predict_features(test)
    good = [w.mispronounced for a in plain.values() for w in a.words]
    assert sum(bool(f) for f in good) <= 0.1 * len(good)
    with pytest.raises(Exception, match="source utterance"):
        replaced_words(_substitute(train))  # the sources must be there to tell what changed


def _channel(split, shift: float = -2.0):
    """Each utterance again as ``<id>#noise``: every log posterior ``shift`` lower, the same
    labels (the same reading through a worse channel)."""
    u, w, p = split.utterances.copy(), split.words.copy(), split.phones.copy()
    for df in (u, w, p):
        df["id"] = df["id"] + "#noise"
    u["synthetic"] = "noise"
    p[["p_lpp", "p_gop_forced"]] += shift
    u["u_lpp_mean"] += shift
    w["w_lpp_mean"] += shift
    return type(split)(u, w, p, split.frames_dir)


def test_a_channel_gate_saves_and_weighs_the_two_sets_of_utterance_trees(data, tmp_path) -> None:
    train, _, _, dev = data
    both = concat_features([train, _channel(train)])
    config = dc_replace(CONFIG, channel_levels=("utterance",), channel_gate=True)
    head, _ = fit_gbt(both, dev, config, log=lambda _: None)
    plain, _ = fit_gbt(train, dev, CONFIG, log=lambda _: None)
    assert head.channel_check is not None and head.channel_check.level == "channel"
    assert head.reading_check is None  # copies are readings: no other texts to learn from
    assert {n for n in head.boosters if n.startswith("channel/")} == {
        f"channel/{n.split('/')[1]}" for n in plain.boosters if n.startswith("utterance/")
    }
    for name, booster in plain.boosters.items():  # the clean trees are the plain model's
        assert head.boosters[name].model_to_string() == booster.model_to_string(), name
    stats = head.extra["channel_check"]
    assert stats["noise_caught"] >= 0.9 and stats["human_flagged"] <= 0.1
    clean, noisy = head.predict_features(dev), head.predict_features(_channel(dev))
    alone = plain.predict_features(dev)
    near = [abs(clean[u].utterance.total - alone[u].utterance.total) < 0.05 for u in clean]
    assert np.mean(near) >= 0.9  # clean speech: the clean trees
    assert [a.words for a in clean.values()] == [a.words for a in alone.values()]

    # the copy's scores move less from the clean reading's than the plain trees' do
    def moved(got):
        return np.mean(
            [abs(got[f"{u}#noise"].utterance.total - clean[u].utterance.total) for u in clean]
        )

    assert moved(noisy) < moved(plain.predict_features(_channel(dev)))

    # the gate's P comes with each assessment: low for the readings, high for their copies
    assert np.mean([a.channel < 0.5 for a in clean.values()]) >= 0.9
    assert np.mean([a.channel >= 0.5 for a in noisy.values()]) >= 0.9
    assert all(a.channel is None for a in alone.values())  # no gate, no P

    head.save_pretrained(tmp_path / "gated")
    loaded = GbtHead.from_pretrained(tmp_path / "gated")
    assert loaded.config.channel_gate and loaded.channel_check.threshold == 0.5
    assert loaded.predict_features(_channel(dev)) == noisy


def test_another_text_is_scored_by_the_clean_trees_not_forgiven_as_a_channel(data) -> None:
    train, other, _, dev = data
    config = dc_replace(CONFIG, channel_levels=("utterance",), channel_gate=True)
    head, _ = fit_gbt(concat_features([train, _channel(train), other]), dev, config,
                      log=lambda _: None)  # fmt: skip
    assert head.reading_check is not None and head.channel_check is not None
    wrong = _kind(make_split(20, seed=5, prefix="w"), "other-text", lpp_shift=-8.0)
    got = head.predict_features(wrong)
    caught = [uid for uid, a in got.items() if a.status == "mismatch"]
    assert len(caught) >= 18
    # with the gate off (the clean trees alone) the caught readings score the same
    clean_only = dc_replace(head, channel_check=None).predict_features(wrong)
    for uid in caught:
        assert got[uid].utterance == clean_only[uid].utterance
    # while the gate does move readings of the text through a worse channel
    noisy = _channel(dev)
    moved = head.predict_features(noisy)
    alone = dc_replace(head, channel_check=None).predict_features(noisy)
    assert any(moved[u].utterance != alone[u].utterance for u in moved)
