"""`pronscore train default` end to end on a real subset: features with the shipped settings, the
GBT head, dev metrics measured through the Scorer, a folder the Scorer serves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pronscore.cli import main
from pronscore.features.extract import RECOMMENDED
from pronscore.scorer import Scorer


@pytest.mark.realdata
@pytest.mark.slow
def test_train_default_writes_a_servable_model_with_scorer_metrics(
    corpus_dir: Path, tmp_path: Path
) -> None:
    data, out = tmp_path / "ds", tmp_path / "model"
    assert main(["prepare", str(corpus_dir), "--out", str(data), "--limit", "8", "--quiet"]) == 0
    assert main(["train", "default", "--data", str(data), "--out", str(out), "--quiet"]) == 0
    assert {"config.json", "scorer.json", "lexicon.txt", "metrics_dev.json", "README.md"} <= {
        p.name for p in out.iterdir()
    }
    scorer_cfg = json.loads((out / "scorer.json").read_text())
    assert scorer_cfg["extractor"] == json.loads(json.dumps(RECOMMENDED.to_dict()))
    metrics = json.loads((out / "metrics_dev.json").read_text())
    assert metrics["n_utterances"] == 8 and metrics["split"] == "dev"
    # the card's numbers are the ones `pronscore evaluate` reproduces through the Scorer
    argv = ["evaluate", str(out), "--data", str(data), "--split", "dev", "--json", "--quiet"]
    assert main([*argv, "--out", str(tmp_path / "m.json")]) == 0
    again = json.loads((tmp_path / "m.json").read_text())
    assert again["utterance"]["total"]["pcc"] == pytest.approx(metrics["utterance"]["total"]["pcc"])
    assert again["scored_by"] == "scorer"
    a = Scorer.from_pretrained(out).score(
        corpus_dir / "WAVE/SPEAKER0001/000010011.flac", "We call it bear"
    )
    assert a.status == "ok" and [w.status for w in a.words] == ["read"] * 4


def test_model_card_reports_cross_validation_when_given() -> None:
    from pronscore.commands.train_default import model_card

    m = {"pcc": 0.8, "ci95": [0.7, 0.9], "mse": 1.0, "n": 10}
    level = {"utterance": {"total": m}, "word": {"accuracy": m}, "phone": {"accuracy": m}}
    subgroups = {"child": {"utterance": {"total": {**m, "pcc": 0.4}}}, "adult": level}
    cv = {
        "n_folds": 5,
        "n_utterances": 2500,
        "n_speakers": 125,
        "folds": [level] * 5,
        "pooled": {**level, "subgroups": subgroups},
    }
    card = model_card(level, 2260, cv=cv)
    assert "## Speaker-grouped cross-validation" in card
    assert "| utterance | total | 0.800 [0.700, 0.900] | 1.000 | 10 |" in card
    assert "child utterance total 0.400 [0.700, 0.900]" in card
    assert "Speaker-grouped" not in model_card(level, 2260)


def test_a_refit_model_card_says_dev_is_in_sample_and_how_to_refit() -> None:
    from pronscore.commands.train_default import model_card

    m = {"pcc": 0.8, "ci95": [0.7, 0.9], "mse": 1.0, "n": 10}
    level = {"utterance": {"total": m}, "word": {"accuracy": m}, "phone": {"accuracy": m}}
    card = model_card(level, 2500, refit=True)
    assert "train + dev: all 2500 labelled utterances" in card and "In-sample" in card
    assert "--cv runs/cv-default --refit" in card
    plain = model_card(level, 2260)
    assert "In-sample" not in plain and "--refit" not in plain


def test_a_model_card_names_the_frequency_warp_and_rebuilds_with_it() -> None:
    from pronscore.commands.train_default import model_card

    m = {"pcc": 0.8, "ci95": [0.7, 0.9], "mse": 1.0, "n": 10}
    level = {"utterance": {"total": m}, "word": {"accuracy": m}, "phone": {"accuracy": m}}
    card = model_card(level, 2500, refit=True, warp=1.3)  # the recommended warp
    assert "divides frequencies by 1.3" in card
    assert "pronscore features data/so762 --out data/feats --jobs 2\n" in card
    assert "pronscore features data/so762 --out data/feats --jobs 2 --warp 1.2" in model_card(
        level, 2500, refit=True, warp=1.2
    )
    plain = model_card(level, 2500, refit=True)  # features made without a warp
    assert "--warp none" in plain and "divides frequencies" not in plain


def test_model_card_reports_the_checks_trained_on_synthetic_rows() -> None:
    from pronscore.commands.train_default import model_card

    m = {"pcc": 0.8, "ci95": [0.7, 0.9], "mse": 1.0, "n": 10}
    level = {"utterance": {"total": m}, "word": {"accuracy": m}, "phone": {"accuracy": m}}
    checks = {
        "reading_check": {"other_caught": 0.9645, "human_flagged": 0.0204,
                          "truncated_flagged": 0.0107},
        "word_check": {"replaced_caught": 0.7903, "good_flagged": 0.02},
    }  # fmt: skip
    card = model_card(level, 2260, 9032, checks=checks)
    assert "Plus 9032 synthetic rows" in card
    assert "96.5% of other texts caught, 2.0% of the readings and 1.1% of readings cut" in card
    assert "79.0% of replaced words flagged, 2.0% of words experts rated >= 8" in card
    assert "synthetic rows" not in model_card(level, 2260, checks=checks)  # none: no checks


def test_the_card_of_a_gated_refit_says_how_the_copies_are_made_and_used() -> None:
    from pronscore.commands.train_default import model_card
    from pronscore.training.recipe import SHIPPED

    m = {"pcc": 0.8, "ci95": [0.7, 0.9], "mse": 1.0, "n": 10}
    level = {"utterance": {"total": m}, "word": {"accuracy": m}, "phone": {"accuracy": m}}
    checks = {"channel_check": {"human_flagged": 0.131, "band-8k_caught": 0.907,
                                "noise_caught": 0.9996}}  # fmt: skip
    card = model_card(level, 2500, 11772, refit=True, recipe=SHIPPED, checks=checks)
    assert "Channel gate: the utterance scores mix two sets of trees" in card
    assert "13.1% of the readings, 90.7% of their 8 kHz and 100.0% of their noisy copies" in card
    # the copies exist before the cross-validation that scores and trains on them
    steps = card[card.index("## Reproduce") :]
    assert steps.index("--split dev --name dev_ch") < steps.index("pronscore cv gop-gbt")
    assert "--channel-copies --channel-gate --copies train_ch,dev_ch" in steps
    assert "--negatives data/feats:train_ch --negatives data/feats:dev_ch" in steps
    plain = model_card(level, 2260, 11292, recipe=SHIPPED, checks=checks)
    assert "data/feats:dev_ch" not in plain  # dev selects: its copies train nothing
