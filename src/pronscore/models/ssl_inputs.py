"""Model inputs of the SSL scorers (:mod:`pronscore.models.ssl`) from prepared dataset rows:
the unpadded inputs, 0-1 labels and CTC phone ids of each utterance, and dynamic padding.
Training (:mod:`pronscore.training.ssl`) and inference (:mod:`pronscore.heads.ssl`) share them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from pronscore.acoustic.encoders import WHISPER_WINDOW_S, backbone_inputs
from pronscore.constants import SAMPLE_RATE, UTTERANCE_SCALE
from pronscore.models.ssl import CTC_BLANK
from pronscore.text import PHONE_INDEX, base_phone


def phone_ids_of(words: list[dict[str, Any]]) -> np.ndarray:
    """Canonical phone sequence as CTC classes (phone i -> i + 1; blank is 0)."""
    ids = [PHONE_INDEX.get(base_phone(p)) for w in words for p in w["phones"]]
    return np.array([i + 1 for i in ids if i is not None], dtype=np.int64)


def labels_of(row: dict[str, Any], aspects: tuple[str, ...]) -> np.ndarray:
    """Utterance scores scaled to 0-1; NaN where a label is missing."""
    vals = [row.get(a) for a in aspects]
    return np.array([np.nan if v is None else v / UTTERANCE_SCALE for v in vals], np.float32)


def max_samples(family: str, max_duration: float | None = None) -> int | None:
    """How much of an utterance a model sees: ``max_duration`` (training crops) and, for
    Whisper, its 30 s window; ``None``: all of it."""
    limit = WHISPER_WINDOW_S if family == "whisper" else None
    caps = [c for c in (max_duration, limit) if c]
    return int(min(caps) * SAMPLE_RATE) if caps else None


class AudioScores(torch.utils.data.Dataset):
    """Rows of a prepared split as model inputs (unpadded), labels and phone ids."""

    def __init__(
        self, ds, family: str, feature_extractor: Any, aspects: tuple[str, ...],
        max_duration: float | None = None,
    ) -> None:  # fmt: skip
        self.family, self.fe, self.aspects = family, feature_extractor, aspects
        self.max_samples = max_samples(family, max_duration)
        meta = list(_labels(ds))
        self.ids = [r["id"] for r in meta]
        self.lengths = [int(r["duration"] * SAMPLE_RATE) for r in meta]
        self.labels = np.stack([labels_of(r, aspects) for r in meta]) if meta else np.zeros((0,))
        self.phones = [phone_ids_of(r["words"]) for r in meta]
        self.audio = ds.with_format("numpy", columns=["audio"])  # no per-sample Python floats

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        audio = np.asarray(self.audio[int(i)]["audio"], dtype=np.float32)
        if self.max_samples is not None:
            audio = audio[: self.max_samples]
        return {
            "input_values": backbone_inputs(audio, self.family, self.fe),
            "labels": self.labels[i],
            "phone_ids": self.phones[i],
        }


def pad_batch(items: list[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    """Dynamic padding to the longest item along axis 0 (samples or mel frames) + masks."""
    out: dict[str, torch.Tensor] = {}
    if "pooled" in items[0]:
        out["pooled"] = torch.from_numpy(np.stack([it["pooled"] for it in items]))
    else:
        lens = [len(it["input_values"]) for it in items]
        first = items[0]["input_values"]
        x = np.zeros((len(items), max(lens), *first.shape[1:]), dtype=np.float32)
        mask = np.zeros((len(items), max(lens)), dtype=bool)
        for k, it in enumerate(items):
            x[k, : lens[k]] = it["input_values"]
            mask[k, : lens[k]] = True
        out["input_values"], out["attention_mask"] = torch.from_numpy(x), torch.from_numpy(mask)
    if "phone_ids" in items[0]:
        plen = [len(it["phone_ids"]) for it in items]
        ids = np.full((len(items), max(1, max(plen))), CTC_BLANK, dtype=np.int64)
        for k, it in enumerate(items):
            ids[k, : plen[k]] = it["phone_ids"]
        out["phone_ids"], out["phone_lengths"] = torch.from_numpy(ids), torch.tensor(plen)
    out["labels"] = torch.from_numpy(np.stack([it["labels"] for it in items]))
    return out


def _labels(rows):
    return rows.remove_columns([c for c in ("audio",) if c in rows.column_names])
