"""The ``hier`` run kind at inference: a trained :class:`HierarchicalScorer` and how its inputs
are built (:mod:`pronscore.heads.hier_inputs`). The Scorer runs it on one recording;
``pronscore evaluate`` goes through the Scorer."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from pronscore.constants import PHONE_SCALE, UTTERANCE_ASPECTS, WORD_SCALE
from pronscore.errors import ModelError
from pronscore.features.encoder import EncoderSpec
from pronscore.features.extract import SplitFeatures
from pronscore.heads.hier_inputs import InputSpec, UttArrays, collate, fill_nan, prepare_items
from pronscore.heads.hierarchical import HierarchicalScorer
from pronscore.schema import Assessment


def fill_missing(model: HierarchicalScorer, items: Sequence[UttArrays]) -> list[UttArrays]:
    u_mean = model.utt_mean.numpy() if model.config.utt_dim else None
    return fill_nan(items, model.in_mean.numpy(), u_mean)


@torch.inference_mode()
def predict_items(
    model: HierarchicalScorer, items: Sequence[UttArrays], batch_size: int = 64
) -> dict[str, dict[str, np.ndarray]]:
    """Per utterance: "utterance" (n_u,), "word" (W, n_w), "phone" (W, P) (or None), on 0-1."""
    model.eval()
    preds = {}
    for s in range(0, len(items), batch_size):
        chunk = items[s : s + batch_size]
        b = collate(chunk)
        out = model(b["x"], b["ids"], b["u"])
        for k, it in enumerate(chunk):
            w, p = it.x.shape[:2]
            preds[it.id] = {
                "utterance": out.utterance[k].numpy(),
                "word": None if out.word is None else out.word[k, :w].numpy(),
                "phone": None if out.phone is None else out.phone[k, :w, :p].numpy(),
            }
    return preds


def assessments(
    model: HierarchicalScorer, split: SplitFeatures, items: Sequence[UttArrays]
) -> dict[str, Assessment]:
    """Predictions for a FEATURES split as Assessments (scores clipped to their scales)."""
    from pronscore.heads.gbt import assemble

    preds = predict_items(model, items)
    c = model.config
    utts, words, phones = split.utterances, split.words, split.phones
    u_pred = {}
    for a in UTTERANCE_ASPECTS:
        if a in c.utterance_outputs:
            j = c.utterance_outputs.index(a)
            u_pred[a] = np.array(
                [
                    preds[str(i)]["utterance"][j] * 10.0 if str(i) in preds else np.nan
                    for i in utts["id"]
                ]
            )
    w_pred: dict[str, np.ndarray | None] = {}
    for a in c.word_outputs:
        j = c.word_outputs.index(a)
        w_pred[a] = np.array(
            [
                _at(preds, str(i), "word", (int(k), j)) * WORD_SCALE
                for i, k in zip(words["id"], words["word_index"], strict=True)
            ]
        )
    p_pred = None
    if c.phone_output:
        slot = phones.groupby(["id", "word_index"]).cumcount()
        p_pred = np.array(
            [
                _at(preds, str(i), "phone", (int(w), int(s))) * PHONE_SCALE
                for i, w, s in zip(phones["id"], phones["word_index"], slot, strict=True)
            ]
        )
    return assemble(utts, words, phones, u_pred, w_pred, p_pred)


def _at(preds: dict, uid: str, level: str, idx: tuple[int, ...]) -> float:
    arr = preds.get(uid, {}).get(level)
    try:
        return float(arr[idx])
    except (TypeError, IndexError):
        return float("nan")


class HierHead:
    """The ``hier`` run kind: model + how its inputs are built. The Scorer runs it on one
    recording (``predict_features``, with the encoder vectors of :attr:`encoder` for whisper
    inputs); ``pronscore evaluate`` goes through the Scorer."""

    def __init__(self, model: HierarchicalScorer, run_dir: Path, config: dict) -> None:
        self.model, self.run_dir, self.config = model, run_dir, config
        self.spec = InputSpec.parse(model.config.extra["inputs"])

    @classmethod
    def from_pretrained(cls, run_dir: str | Path) -> HierHead:
        d = Path(run_dir)
        return cls(
            HierarchicalScorer.from_pretrained(d),
            d,
            json.loads((d / "config.json").read_text(encoding="utf-8")),
        )

    def save_pretrained(self, out_dir: str | Path) -> None:
        """The run folder again: weights and config.json (with what else it recorded)."""
        extra = {k: v for k, v in self.config.items() if k not in ("kind", "model")}
        self.model.save_pretrained(out_dir, extra=extra)

    @property
    def encoder(self) -> EncoderSpec | None:
        """The encoder vectors whisper inputs read (``None`` without whisper inputs): those of
        the training features (``config.json["encoder"]``, all their layers, so that every
        split the head reads has one layout), else -- runs trained on a deep cache -- the
        inputs' layers of ``whisper_model`` (default ``openai/whisper-base``)."""
        from pronscore.features.deep import DEFAULT_WHISPER

        if not self.spec.whisper_layers:
            return None
        if self.config.get("encoder"):
            try:
                return EncoderSpec.from_dict(self.config["encoder"])
            except (KeyError, TypeError, ValueError) as exc:
                raise ModelError(
                    f"unreadable encoder spec ({exc})",
                    path=self.run_dir / "config.json",
                    field="encoder",
                ) from None
        model = self.config.get("whisper_model") or DEFAULT_WHISPER
        return EncoderSpec(model=str(model), layers=self.spec.whisper_layers)

    def predict_features(self, split: SplitFeatures) -> dict[str, Assessment]:
        """Scores of every utterance of ``split``; its encoder vectors (if any) are of the
        layers of :attr:`encoder`."""
        extra = self.model.config.extra
        encoder = self.encoder
        items = prepare_items(
            split,
            self.spec,
            self.config.get("deep_cache"),
            extra.get("gop_columns", []),
            extra.get("utt_columns", []),
            encoder.layers if encoder is not None else None,
        )
        if items and items[0].x.shape[-1] != self.model.config.in_dim:
            raise ModelError(
                f"inputs have {items[0].x.shape[-1]} values per phone; the model was trained on "
                f"{self.model.config.in_dim}",
                path=self.run_dir / "config.json",
                field="inputs",
            )
        items = fill_missing(self.model, items)
        return assessments(self.model, split, items)
