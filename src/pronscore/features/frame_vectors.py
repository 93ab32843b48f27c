"""Per-phone vectors pooled from the acoustic model's frame posteriors (pocketsphinx).

The embedded model's analogue of the per-phone encoder vectors (:mod:`features.encoder`): for
each aligned phone, the mean log phone posteriors over its span, over each half of it, and
over the few frames before and after it, its log length in frames and its mean non-speech
posterior. A phone classifier trained on them (:mod:`heads.phone_classifier`) learns what
these learners' phones look like to the GMM, which the GMM's own posteriors (trained on
native read speech) do not know: 5-fold speaker CV over train + dev, default GBT, phone
accuracy 0.534 -> 0.567 and word accuracy 0.577 -> 0.620, every fold up.

Frames are the ones every FEATURES_DIR keeps (``<split>/frames/<id>.safetensors``) and every
scored recording has in memory, so no extra pass over the audio is needed.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from pronscore.features.deep import pool_phones

CONTEXT_S = 0.05  # the neighbourhood pooled before and after a phone (5 frames at 100/s)
FRAME_RATE = 100.0  # pocketsphinx; frame files may say otherwise ("frame_rate")
N_PARTS = 5  # span, first half, second half, before, after


def frame_clock(frames: Mapping[str, np.ndarray]) -> tuple[float, float]:
    """(offset s, frames per s) of a frame file: phone times are the recording's, frame 0 is
    where trimming cut. Files made before these were stored: 0 s (untrimmed) and 100/s."""
    offset = float(frames["offset"][0]) if "offset" in frames else 0.0
    rate = float(frames["frame_rate"][0]) if "frame_rate" in frames else FRAME_RATE
    return offset, rate


def vector_dim(n_phone_scores: int) -> int:
    return N_PARTS * n_phone_scores + 2


def pool_posteriors(
    frames: Mapping[str, np.ndarray], starts: np.ndarray, ends: np.ndarray
) -> np.ndarray:
    """(n_phones, :func:`vector_dim`) float32 for phones at recording times ``starts`` /
    ``ends``; NaN rows for phones without time or an utterance without frames."""
    scores = np.asarray(frames["phone_scores"], np.float32)
    nonspeech = np.asarray(frames["nonspeech_scores"], np.float32)
    out = np.full((len(starts), vector_dim(scores.shape[1])), np.nan, np.float32)
    if len(scores) == 0 or len(starts) == 0:
        return out
    offset, rate = frame_clock(frames)
    s = np.asarray(starts, np.float64) - offset
    e = np.asarray(ends, np.float64) - offset
    mid = (s + e) / 2
    spans = ((s, e), (s, mid), (mid, e), (s - CONTEXT_S, s), (e, e + CONTEXT_S))
    parts = [pool_phones(scores, a, b, rate)[0] for a, b in spans]
    pooled_ns, has = pool_phones(nonspeech.max(axis=1, keepdims=True), s, e, rate)
    n_frames = np.maximum(np.round((e - s) * rate), 1.0)
    vec = np.concatenate([*parts, np.log(n_frames)[:, None], pooled_ns], axis=1)
    out[has] = vec[has]
    return out


def split_frame_vectors(split) -> np.ndarray:
    """:func:`pool_posteriors` for every phone row of a
    :class:`~pronscore.features.extract.SplitFeatures` (rows in ``split.phones`` order)."""
    phones = split.phones
    out: np.ndarray | None = None
    for uid, rows in phones.groupby(phones["id"].astype(str), sort=False).indices.items():
        if not split.has_frames(uid):
            continue
        frames = split.frames(uid)
        if out is None:  # sized by the first file: the acoustic model's phone set
            dim = vector_dim(frames["phone_scores"].shape[1])
            out = np.full((len(phones), dim), np.nan, np.float32)
        g = phones.iloc[rows]
        out[rows] = pool_posteriors(frames, _times(g["start"]), _times(g["end"]))
    if out is None:
        raise ValueError("no frame files for these phones (run `pronscore features`)")
    return out


def _times(col: pd.Series) -> np.ndarray:
    return pd.to_numeric(col, errors="coerce").to_numpy(np.float64)
