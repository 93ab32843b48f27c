"""Metrics against scipy, bootstrap CIs, levels and subgroups."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import pearsonr

from pronscore.evaluation.metrics import (
    Pairs,
    UttMeta,
    bootstrap_ci,
    evaluate_assessments,
    evaluate_seeds,
    format_table,
    pearson,
)
from pronscore.schema import Assessment, PhoneAssessment, UtteranceScores, WordAssessment


def test_pearson_matches_scipy() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=200)
    y = 0.6 * x + rng.normal(size=200)
    assert pearson(x, y) == pytest.approx(pearsonr(x, y)[0], abs=1e-12)
    assert pearson([1, 1, 1], [1, 2, 3]) is None
    assert pearson([1], [2]) is None


def test_bootstrap_contains_estimate_and_shrinks() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=400)
    y = 0.5 * x + rng.normal(size=400)
    r = pearson(x, y)
    small = bootstrap_ci(Pairs(x[:50], y[:50], np.arange(50)), 50)
    big = bootstrap_ci(Pairs(x, y, np.arange(400)), 400)
    assert big[0] < r < big[1]
    assert big[1] - big[0] < small[1] - small[0]


def _assessment(u: float, word: float, phone: float) -> Assessment:
    return Assessment(
        utterance=UtteranceScores(accuracy=u, completeness=10, fluency=u, prosodic=u, total=u),
        words=(WordAssessment("A", word, 10, word, (PhoneAssessment("AH0", phone),)),),
    )


def test_evaluate_layout_and_values() -> None:
    rng = np.random.default_rng(2)
    refs, hyps, meta = {}, {}, {}
    truth = rng.uniform(2, 10, size=60)
    noisy = truth + rng.normal(scale=1.0, size=60)
    for i in range(60):
        uid = f"u{i:03d}"
        refs[uid] = _assessment(truth[i], truth[i], truth[i] / 5)
        hyps[uid] = _assessment(noisy[i], noisy[i], None if i % 2 else noisy[i] / 5)
        meta[uid] = UttMeta(age=8 if i < 30 else 30, gender="m" if i % 3 else "f")
    hyps.pop("u059")
    m = evaluate_assessments(refs, hyps, meta, n_boot=200)
    assert m["n_utterances"] == 59 and m["n_missing"] == 1
    tot = m["utterance"]["total"]
    assert tot["pcc"] == pytest.approx(pearsonr(truth[:59], noisy[:59])[0])
    assert tot["ci95"][0] < tot["pcc"] < tot["ci95"][1] and tot["n"] == 59
    assert tot["mse"] == pytest.approx(np.mean((truth[:59] - noisy[:59]) ** 2))
    assert m["utterance"]["completeness"]["pcc"] is None  # constant labels
    assert m["word"]["accuracy"]["n"] == 59 and m["phone"]["accuracy"]["n"] == 30
    assert set(m["subgroups"]) == {"child", "adult", "male", "female"}
    assert m["subgroups"]["child"]["n_utterances"] == 30
    assert m["subgroups"]["adult"]["utterance"]["total"]["n"] == 29
    assert "utterance total" in format_table(m)


def test_scatter_plots(tmp_path) -> None:
    from pronscore.evaluation.plots import scatter_plots

    refs = {f"u{i}": _assessment(i % 10, i % 10, (i % 3) * 1.0) for i in range(20)}
    hyps = {f"u{i}": _assessment((i * 7) % 10, i % 10, 1.0 + (i % 2)) for i in range(20)}
    paths = scatter_plots(refs, hyps, tmp_path / "plots")
    names = {p.name for p in paths}
    assert {"utterance_total.png", "word_accuracy.png", "phone_accuracy.png"} <= names
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)


def test_seed_mean_has_a_bootstrap_ci_of_the_mean_itself() -> None:
    rng = np.random.default_rng(0)
    truth = rng.uniform(0, 10, 200)
    refs = {f"u{i}": _assessment(t, t, 1.0) for i, t in enumerate(truth)}
    runs = [
        {
            f"u{i}": _assessment(t + e, t, 1.0)
            for i, (t, e) in enumerate(zip(truth, noise, strict=True))
        }
        for noise in (rng.normal(0, 2, 200), rng.normal(0, 4, 200))
    ]
    m = evaluate_seeds(refs, runs, n_boot=500)["utterance"]["total"]
    single = [evaluate_assessments(refs, r, n_boot=0)["utterance"]["total"]["pcc"] for r in runs]
    assert m["pcc"] == pytest.approx(np.mean(single)) and m["n"] == 200
    assert m["pcc_sd"] == pytest.approx(np.std(single))
    lo, hi = m["ci95"]
    assert lo < m["pcc"] < hi
    # the interval of the mean lies between the runs' own intervals, not around either one
    own = [evaluate_assessments(refs, r, n_boot=500)["utterance"]["total"]["ci95"] for r in runs]
    assert own[1][0] < lo < own[0][0] and own[1][1] < hi < own[0][1]


def test_level_consistency_counts_utterance_accuracy_outside_its_words() -> None:
    from pronscore.evaluation.metrics import level_consistency

    def a(u: float, *words: float, status: str = "ok") -> Assessment:
        return Assessment(UtteranceScores(accuracy=u),
                          tuple(WordAssessment(f"W{i}", accuracy=w) for i, w in enumerate(words)),
                          status=status)  # fmt: skip

    refs = [a(6, 8, 9), a(8, 7, 9), a(9.5, 7, 9), a(5, 8), a(7)]
    hyps = [a(8.5, 8, 9), a(6, 7, 9), a(9.5, 7, 9), a(5, 8, status="mismatch"), a(7, 7)]
    # the last two are left out: a mismatch, and labels without word accuracies
    assert level_consistency(refs, hyps) == {
        "n": 3,
        "predicted": {"outside": 2 / 3, "below_all": 1 / 3},
        "labels": {"outside": 2 / 3, "below_all": 1 / 3},
    }
    assert (
        evaluate_assessments(dict(enumerate(refs)), dict(enumerate(hyps)))["consistency"]["n"] == 3
    )
