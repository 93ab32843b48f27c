"""Human labels -> :class:`~pronscore.schema.Assessment`: the one conversion, whatever the
source (corpus files, a prepared dataset row, FEATURES_DIR ``y_*`` columns)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from pronscore.constants import UTTERANCE_ASPECTS, WORD_ASPECTS
from pronscore.schema import Assessment, PhoneAssessment, UtteranceScores, WordAssessment


def label(value: Any) -> float | None:
    """A score, or ``None`` when missing (None / NaN)."""
    if value is None:
        return None
    x = float(value)
    return None if math.isnan(x) else x


def word_labels(
    text: str,
    scores: Mapping[str, Any],
    phones: Sequence[str],
    phone_scores: Sequence[Any] | None = None,
) -> WordAssessment:
    """One word: its aspects from ``scores`` (missing ones None) and its phones' scores."""
    if phone_scores is None:
        phone_scores = [None] * len(phones)
    return WordAssessment(
        text=str(text),
        phones=tuple(
            PhoneAssessment(str(p), label(s)) for p, s in zip(phones, phone_scores, strict=True)
        ),
        **{a: label(scores.get(a)) for a in WORD_ASPECTS},
    )


def utterance_labels(scores: Mapping[str, Any], words: Sequence[WordAssessment]) -> Assessment:
    """One utterance: its aspects from ``scores`` (missing ones None) and its words."""
    utt = UtteranceScores(**{a: label(scores.get(a)) for a in UTTERANCE_ASPECTS})
    return Assessment(utterance=utt, words=tuple(words))
