"""How the GBT head's trees are sized on the validation speakers: early stopping, and the floor
on the rounds the shipped recipe adds (``Recipe.round_floor``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pronscore.heads.gbt import GbtConfig, GbtHead
from pronscore.training.gbt import _fit_one, fit_gbt
from pronscore.training.recipe import GOP_ONLY, MIN_ROUNDS, SHIPPED
from synthetic_features import make_split


def rounds_on_a_compressed_validation_range(config: GbtConfig) -> int:
    """Training labels follow x; the validation speakers' labels follow it on a fifth of the
    range (as a group of speakers rated within a narrow band can), so L2 on them is best for
    predictions barely moved from the mean: early stopping stops after a few rounds."""
    rng = np.random.default_rng(0)
    x_tr, x_dev = rng.normal(size=(600, 3)), rng.normal(size=(200, 3))
    y_tr = x_tr[:, 0] + rng.normal(0, 0.3, 600)
    y_dev = 0.2 * x_dev[:, 0] + rng.normal(0, 0.06, 200)
    _, booster, size = _fit_one(x_tr, y_tr, x_dev, y_dev, config, ["a", "b", "c"], [])
    assert booster.num_trees() == size["rounds"]
    return size["rounds"]


def test_the_round_floor_keeps_trees_early_stopping_would_cut() -> None:
    config = GbtConfig(num_leaves=(7,), max_rounds=400, early_stopping=40, threads=1)
    assert rounds_on_a_compressed_validation_range(config) < 30
    floored = GbtConfig(**{**config.__dict__, "min_rounds": 40})
    assert rounds_on_a_compressed_validation_range(floored) == 40
    # never more than were trained
    capped = GbtConfig(**{**config.__dict__, "min_rounds": 80, "max_rounds": 30})
    assert rounds_on_a_compressed_validation_range(capped) == 30


def test_the_recipes_set_the_floor() -> None:
    assert SHIPPED.gbt_options()["min_rounds"] == MIN_ROUNDS == 100
    assert GOP_ONLY.gbt_options() == {"frame_vectors": False, "phone_scorer": False,
                                      "min_rounds": 0, "stacked": False,
                                      "channel_levels": (), "channel_gate": False,
                                      "channel_floor": 0.0}  # fmt: skip
    assert SHIPPED.cv_flags() == (
        " --frame-vectors --phone-scorer --round-floor --channel-copies --channel-gate"
    )
    assert SHIPPED.gbt_options()["channel_levels"] == ("utterance",)
    from dataclasses import replace

    copies = replace(GOP_ONLY, channel_copies=True)
    assert copies.gbt_options()["channel_levels"] == ("utterance",)
    every = replace(copies, channel_copies_words=True)
    assert every.gbt_options()["channel_levels"] == ("utterance", "word", "phone")
    assert every.cv_flags() == " --channel-copies --channel-copies-words"
    with pytest.raises(ValueError, match="--channel-copies-words needs --channel-copies"):
        replace(GOP_ONLY, channel_copies_words=True)
    with pytest.raises(ValueError, match="--stacked and --channel-copies do not go together"):
        replace(copies, stacked=True)
    gated = replace(copies, channel_gate=True)
    assert gated.gbt_options()["channel_gate"] and gated.cv_flags().endswith(" --channel-gate")
    with pytest.raises(ValueError, match="not --channel-copies-words"):
        replace(every, channel_gate=True)


def test_a_model_saved_before_the_floor_loads_without_it(tmp_path: Path) -> None:
    train, dev = make_split(150, 1), make_split(60, 2, prefix="d")
    config = GbtConfig(num_leaves=(7,), max_rounds=60, early_stopping=20, threads=1,
                       levels=("utterance",), min_rounds=20)  # fmt: skip
    head, _ = fit_gbt(train, dev, config, log=lambda *_: None)
    head.save_pretrained(tmp_path / "run")
    path = tmp_path / "run" / "config.json"
    saved = json.loads(path.read_text())
    assert saved["gbt"]["min_rounds"] == 20
    del saved["gbt"]["min_rounds"]
    path.write_text(json.dumps(saved))
    assert GbtHead.from_pretrained(tmp_path / "run").config.min_rounds == 0
