"""The sentence's accuracy from its words' accuracies, on the experts' scales.

Speechocean762's experts give a word read without error 10 and centre a sentence's accuracy on
7-8, so a sentence sits below all of its words in 60% of their own labels (and in ~88% of the
models' predictions): a learner who sees words at 7.5-9.2 under a sentence at 6.3 reads a
contradiction. The experts' sentence accuracy follows the mean of their word accuracies closely
(train labels: PCC 0.83, a line), so that line, fitted on the training labels, turns predicted
word accuracies into the figure their words alone give the sentence (``Assessment.from_words``)
and into what each word costs it against a word read without error
(``WordAssessment.sentence_cost``, the figure's shortfall from a perfect reading shared out word
by word). The served accuracy stays the utterance model's: it also hears what no word score
holds (the sentence's rhythm, hesitations).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from pronscore.constants import UTTERANCE_SCALE, WORD_SCALE
from pronscore.schema import Assessment


@dataclass(frozen=True)
class WordsToSentence:
    """Sentence accuracy = ``intercept + slope * mean(word accuracies)``, clipped to 0-10."""

    intercept: float
    slope: float
    n: int = 0  # labelled sentences it was fitted on

    def figure(self, accuracies: Sequence[float]) -> float | None:
        """The sentence accuracy its words' accuracies give; ``None`` without any."""
        if not len(accuracies):
            return None
        x = self.intercept + self.slope * float(np.mean(accuracies))
        return round(float(np.clip(x, 0.0, UTTERANCE_SCALE)), 3)

    def costs(self, accuracies: Sequence[float]) -> list[float]:
        """Per word, the points of the figure it costs against a word at full accuracy: they
        add up to the gap between a perfect reading's figure and this one's (before
        clipping)."""
        n = len(accuracies)
        return [round(self.slope * (WORD_SCALE - a) / n, 3) for a in accuracies]

    def explain(self, a: Assessment) -> Assessment:
        """``a`` with ``from_words`` and each scored word's ``sentence_cost`` (words without an
        accuracy, and assessments without any, are left as they are)."""
        scored = [i for i, w in enumerate(a.words) if w.accuracy is not None]
        if not scored:
            return a
        acc = [float(a.words[i].accuracy) for i in scored]
        cost = dict(zip(scored, self.costs(acc), strict=True))
        words = tuple(
            replace(w, sentence_cost=cost[i]) if i in cost else w for i, w in enumerate(a.words)
        )
        return replace(a, words=words, from_words=self.figure(acc))

    def to_dict(self) -> dict[str, Any]:
        return {"intercept": self.intercept, "slope": self.slope, "n": self.n}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WordsToSentence:
        return cls(float(d["intercept"]), float(d["slope"]), int(d.get("n", 0)))


def fit_words_to_sentence(labels: Iterable[Assessment]) -> WordsToSentence:
    """Least squares of the experts' sentence accuracy on the mean of their word accuracies,
    over the labelled sentences that have both."""
    x, y = [], []
    for a in labels:
        words = [w.accuracy for w in a.words if w.accuracy is not None]
        if a.utterance.accuracy is not None and words:
            x.append(float(np.mean(words)))
            y.append(float(a.utterance.accuracy))
    if len(x) < 3 or np.ptp(x) == 0:
        raise ValueError("fitting the words-to-sentence line needs 3 or more labelled sentences")
    slope, intercept = np.polyfit(np.asarray(x), np.asarray(y), 1)
    return WordsToSentence(round(float(intercept), 4), round(float(slope), 4), len(x))
