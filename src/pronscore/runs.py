"""Trained runs on disk: ``RUN_DIR/config.json`` names its ``kind``; a registry maps kinds to
the predictor class that loads it.

Every predictor implements :class:`Predictor`: ``from_pretrained(run_dir)`` and either
``predict_features(SplitFeatures)`` (heads that score from the feature tables) or
``predict_utterance(samples, words)`` (heads that need the audio). Heads never load datasets,
run aligners or encoders: the :class:`~pronscore.scorer.Scorer` builds their inputs, for one
recording and for ``pronscore evaluate`` over a split alike.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from pronscore.errors import ModelError
from pronscore.schema import Assessment

if TYPE_CHECKING:
    from pronscore.features.extract import SplitFeatures

PREDICTORS: dict[str, str] = {
    # kind: "module:Class"
    "gop-gbt": "pronscore.heads.gbt:GbtHead",
    "gop-blstm": "pronscore.heads.blstm:BlstmHead",
    "hier": "pronscore.heads.hier_head:HierHead",
    "ssl": "pronscore.heads.ssl:SslPredictor",
    "ensemble": "pronscore.heads.ensemble:EnsembleHead",
}


class Predictor(Protocol):
    @classmethod
    def from_pretrained(cls, run_dir: str | Path) -> Predictor: ...

    def predict_features(self, split: SplitFeatures) -> dict[str, Assessment]: ...


def read_run_config(run_dir: str | Path) -> dict:
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise ModelError("no config.json: not a pronscore run directory", path=run_dir)
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ModelError(f"invalid JSON ({exc})", path=path) from exc
    if "kind" not in config:
        raise ModelError("missing run kind", path=path, field="kind")
    return config


def load_predictor(run_dir: str | Path) -> Predictor:
    kind = read_run_config(run_dir)["kind"]
    if kind not in PREDICTORS:
        known = ", ".join(sorted(PREDICTORS)) or "none"
        raise ModelError(f"unknown run kind {kind!r} (known: {known})", path=run_dir, field="kind")
    module, cls = PREDICTORS[kind].split(":")
    return getattr(importlib.import_module(module), cls).from_pretrained(run_dir)
