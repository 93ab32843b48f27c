"""Does the speech say the text? Binary LightGBMs over the design matrices of the score trees.

The score heads learn from human labels, which only ever pair a recording with its own prompt:
given another sentence they score it as a (poor) reading, and a word replaced by another as a
(poor) reading of that word. The checks are trained apart from them
(:mod:`pronscore.training.reading_check`) on synthetic rows made from the training recordings:

* level ``utterance`` (the reading check): another utterance's text against the training
  readings and readings cut short (still this text); above its threshold a reading is a
  ``mismatch``.
* level ``word`` (the word check): words replaced by other words against the words of the
  training readings; above its threshold a word is flagged mispronounced.
* level ``channel`` (the channel gate): the channel copies of the training readings (8 kHz,
  noise) against the readings; its probability weighs the utterance trees trained on clean
  readings against those trained with the copies (:class:`pronscore.heads.gbt.GbtHead`).

Thresholds are set on the training readings' out-of-fold probabilities. Saved as
``<level>_check.txt`` (LightGBM text models, no pickle) plus entries in the head's
``config.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pronscore.errors import ModelError

LEVELS = ("utterance", "word", "channel")


@dataclass
class ReadingCheck:
    """A booster giving P(not this text) from the columns ``features`` of a level's design
    matrix, and the probability above which a row is called not this text."""

    booster: Any  # lightgbm.Booster
    features: list[str]
    threshold: float
    flag_share: float  # of the training readings / good words (out of fold) above it
    level: str = "utterance"

    @property
    def reason(self) -> str:
        return (
            "the speech does not sound like the text (the reading check rates it as another "
            f"sentence more surely than all but {100 * self.flag_share:g}% of the training "
            "readings)"
        )

    def probabilities(self, table: pd.DataFrame) -> np.ndarray:
        """P(another text) -- for the channel gate P(a degraded channel) -- per row of a
        design matrix."""
        x = table.reindex(columns=self.features).to_numpy(dtype="float64")
        return self.booster.predict(x, num_threads=1)

    def mismatched(self, table: pd.DataFrame) -> set:
        """Index keys of the rows above the threshold: ids (utterance level) or (id,
        word_index) pairs (word level)."""
        if not len(table):
            return set()
        hit = self.probabilities(table) > self.threshold
        if self.level == "word":
            return {(str(u), int(w)) for u, w in table.index[hit]}
        return {str(i) for i in table.index[hit]}

    def to_dict(self) -> dict[str, Any]:
        return {"features": self.features, "threshold": self.threshold,
                "flag_share": self.flag_share, "level": self.level}  # fmt: skip

    def save(self, out: Path) -> None:
        self.booster.save_model(str(out / model_file(self.level)))

    @classmethod
    def load(cls, run_dir: Path, d: dict[str, Any]) -> ReadingCheck:
        from pronscore.heads.gbt import import_lightgbm

        level = d.get("level", "utterance")
        if level not in LEVELS:
            raise ModelError(f"unknown check level {level!r}", path=run_dir / "config.json")
        path = run_dir / model_file(level)
        if not path.is_file():
            raise ModelError("reading check model missing", path=path)
        try:
            booster = import_lightgbm().Booster(model_file=str(path))
            return cls(booster, list(d["features"]), float(d["threshold"]),
                       float(d["flag_share"]), level)  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(
                f"malformed reading check ({exc!r})", path=run_dir / "config.json"
            ) from exc


def aligned(utts: pd.DataFrame) -> np.ndarray:
    """Per utterance row: the alignment succeeded (``status`` "ok"; all of them without the
    column). Only aligned readings are checked, and learnt from."""
    if "status" not in utts:
        return np.ones(len(utts), bool)
    return utts["status"].astype(str).eq("ok").to_numpy()


def model_file(level: str) -> str:
    return "reading_check.txt" if level == "utterance" else f"{level}_check.txt"
