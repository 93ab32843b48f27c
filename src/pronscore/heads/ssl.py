"""The ``ssl`` run kind at inference: utterance scores (0-10) of an SSL scorer
(:mod:`pronscore.models.ssl`) for one recording or for the rows of a prepared split."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from pronscore.acoustic.encoders import backbone_inputs
from pronscore.constants import UTTERANCE_ASPECTS, UTTERANCE_SCALE
from pronscore.models.ssl import SslScorer
from pronscore.models.ssl_inputs import AudioScores, max_samples, pad_batch
from pronscore.schema import Assessment, UtteranceScores


class SslPredictor:
    """``pronscore evaluate`` view of an SSL run: utterance scores (0-10) per utterance."""

    def __init__(self, model: SslScorer, feature_extractor: Any, batch_size: int = 8) -> None:
        self.model, self.fe, self.batch_size = model.eval(), feature_extractor, batch_size
        if model.settings.backbone_config.get("feat_extract_norm") == "group":
            self.batch_size = 1  # a group-norm CNN normalises over time: padding would leak in

    @classmethod
    def from_pretrained(cls, run_dir: str | Path) -> SslPredictor:
        model = SslScorer.from_pretrained(run_dir)
        return cls(model, model.feature_extractor(run_dir))

    @torch.no_grad()
    def predict_rows(self, rows) -> dict[str, Assessment]:
        data = AudioScores(rows, self.model.family, self.fe, self.model.settings.aspects)
        order = np.argsort(data.lengths)  # similar lengths together: little padding
        out = {}
        for start in tqdm(range(0, len(order), self.batch_size), desc="score", mininterval=5):
            idx = order[start : start + self.batch_size]
            for i, s in zip(idx, self._scores([data[int(i)] for i in idx]), strict=True):
                out[data.ids[int(i)]] = self._assessment(s)
        return out

    @torch.no_grad()
    def predict_utterance(
        self, samples: np.ndarray, words: Sequence[tuple[str, tuple[str, ...]]] = ()
    ) -> Assessment:
        """Utterance scores of one 16 kHz recording (the :class:`~pronscore.scorer.Scorer`'s
        entry point): what :meth:`predict_rows` gives its row. The model scores the audio
        alone, so ``words`` are not read and the assessment has none (the Scorer gives the
        text's words without scores)."""
        x = np.asarray(samples, dtype=np.float32)[: max_samples(self.model.family)]
        inputs = backbone_inputs(x, self.model.family, self.fe)
        labels = np.full(len(self.model.settings.aspects), np.nan, np.float32)
        return self._assessment(self._scores([{"input_values": inputs, "labels": labels}])[0])

    def _scores(self, items: list[dict[str, np.ndarray]]) -> np.ndarray:
        """(len(items), aspects) utterance scores on 0-10 (padded batch, attention mask)."""
        batch = pad_batch(items)
        scores = self.model(batch["input_values"], batch["attention_mask"])["logits"]
        return (scores.float().clamp(0, 1) * UTTERANCE_SCALE).numpy()

    def _assessment(self, scores: np.ndarray) -> Assessment:
        kw = {a: float(v) for a, v in zip(self.model.settings.aspects, scores, strict=True)}
        utt = UtteranceScores(**{a: kw.get(a) for a in UTTERANCE_ASPECTS})
        return Assessment(utterance=utt, words=())
