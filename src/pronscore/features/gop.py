"""Goodness of pronunciation per canonical phone from a forced alignment.

Given the alignment, the per-frame phone scores of the acoustic model (``T x 42`` log-likelihoods
in nats, best phone of a frame = 0) and the free phone loop:

* ``p_gop_forced``: the forced-alignment score of the phone per frame (nats). With all senones
  scored every frame it is a likelihood ratio against the best senone of each frame.
* ``p_gop_free``: forced minus free-phone-loop log-likelihood per frame over the phone's span
  (the classic GOP of Witt & Young; 0 when the loop found the same phones, negative otherwise).
* ``p_lpp`` / ``p_lpr_<Q>``: the Kaldi ``gop`` recipe's features on phone posteriors, here
  ``log_softmax(scale * scores)`` over the model's phones: LPP is the mean log posterior of the
  canonical phone over its frames; ``LPR_Q = LPP(canonical) - mean log posterior of Q``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from pronscore.acoustic.pocketsphinx import MODEL_PHONES, SCORE_NATS, LoopSeg
from pronscore.align.base import Alignment
from pronscore.text import PHONE_INDEX, PHONES, VOWELS, base_phone

N_SPEECH = len(PHONES)
SIL = MODEL_PHONES.index("SIL")
LPR_COLUMNS = tuple(f"p_lpr_{p}" for p in PHONES)
PHONE_FEATURES: dict[str, str] = {
    "p_duration": "phone duration (s)",
    "p_n_frames": "phone duration (frames at 100/s)",
    "p_gop_forced": "forced-alignment log-likelihood per frame vs best senone (nats)",
    "p_gop_free": "forced minus free-phone-loop log-likelihood per frame (nats)",
    "p_lpp": "mean log posterior of the canonical phone over its frames",
    "p_lpp_min": "lowest frame log posterior of the canonical phone",
    "p_sil_post": "mean log posterior of silence over the phone's frames",
    "p_best_ratio": "fraction of frames whose best phone is the canonical one",
    "p_loop_match": "fraction of frames where the free phone loop chose the canonical phone",
    "p_min_lpr": "smallest LPR over the other phones (< 0: a rival fits better)",
    "p_is_vowel": "1 for vowels",
    "p_stress": "stress digit of the canonical phone (0/1/2), -1 for consonants",
    "p_phone_id": "index of the base phone in pronscore.text.PHONES",
    "p_word_n_phones": "phones in the phone's word",
    "p_rel_position": "phone index in its word / (phones in word - 1); 0 for one-phone words",
    **{c: f"LPP(canonical) - mean log posterior of {c[6:]}" for c in LPR_COLUMNS},
}


def log_posteriors(phone_scores: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Log-softmax over all model phones (speech, silence, noise) of ``scale * scores``."""
    z = scale * phone_scores.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    z -= np.log(np.exp(z).sum(axis=1, keepdims=True))
    return z.astype(np.float32)


def loop_frames(loop: Sequence[LoopSeg], n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Free phone loop spread onto frames: per-frame score (nats) and phone index (-1: none)."""
    score = np.zeros(n_frames, dtype=np.float64)
    phone = np.full(n_frames, -1, dtype=np.int64)
    for seg in loop:
        s, e = max(seg.start, 0), min(seg.end, n_frames)
        if e > s:
            score[s:e] = seg.score * SCORE_NATS / (seg.end - seg.start)
            phone[s:e] = PHONE_INDEX.get(seg.phone, -1)
    return score, phone


def heard_phone(loop_phone: np.ndarray) -> str | None:
    """The speech phone the free loop chose for most of a span's frames (``None``: none)."""
    speech = loop_phone[loop_phone >= 0]
    if speech.size == 0:
        return None
    return PHONES[int(np.bincount(speech).argmax())]


def nan_phone_features() -> dict[str, float]:
    return dict.fromkeys(PHONE_FEATURES, math.nan)


def phone_features(
    alignment: Alignment,
    logpost: np.ndarray,
    loop: Sequence[LoopSeg] = (),
) -> list[dict[str, Any]]:
    """One feature dict per aligned phone (ok alignments only), in utterance order."""
    n = logpost.shape[0]
    loop_score, loop_phone = loop_frames(loop, n)
    has_loop = bool(loop)
    rows = []
    for word in alignment.words:
        k = len(word.phones)
        for i, seg in enumerate(word.phones):
            s, e = seg.start, max(seg.end, seg.start + 1)
            lp = logpost[s:e]
            bp = base_phone(seg.phone)
            c = PHONE_INDEX[bp]
            frames = e - s
            mean = lp.mean(axis=0)
            lpr = mean[c] - mean[:N_SPEECH]
            forced = seg.score / frames
            free = loop_score[s:e].sum() / frames if has_loop else math.nan
            stress = seg.phone[-1]
            row = {
                "p_duration": frames / alignment.frame_rate,
                "p_n_frames": float(frames),
                "p_gop_forced": forced,
                "p_gop_free": forced - free,
                "p_lpp": float(mean[c]),
                "p_lpp_min": float(lp[:, c].min()),
                "p_sil_post": float(mean[SIL]),
                "p_best_ratio": float((lp[:, :N_SPEECH].argmax(axis=1) == c).mean()),
                "p_loop_match": float((loop_phone[s:e] == c).mean()) if has_loop else math.nan,
                "p_min_lpr": float(np.delete(lpr, c).min()),
                "p_is_vowel": float(bp in VOWELS),
                "p_stress": float(stress) if stress.isdigit() else -1.0,
                "p_phone_id": float(c),
                "p_word_n_phones": float(k),
                "p_rel_position": i / (k - 1) if k > 1 else 0.0,
            }
            row.update(zip(LPR_COLUMNS, lpr.astype(float).tolist(), strict=True))
            row["heard"] = heard_phone(loop_phone[s:e]) if has_loop else None
            rows.append(row)
    return rows
