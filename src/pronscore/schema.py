"""One schema for labels and predictions.

The corpus reader yields human scores as an :class:`Assessment`; every scorer returns one;
evaluation compares two lists of them. ``None`` means "unknown" (unlabelled or not predicted).
Scales follow Speechocean762: utterance and word scores 0-10, phone scores 0-2.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

Score = float | None


def _opt_float(value: Any) -> Score:
    return None if value is None else float(value)


@dataclass(frozen=True)
class PhoneAssessment:
    """One canonical phone (ARPAbet with stress digit), its 0-2 score and optional timing (s).

    ``heard``: the phone most heard over this phone's span (base ARPAbet: the model's phone
    classifier, or the free phone loop for a model without one) when it is another phone than
    the canonical one; ``None`` when it is the same or unknown.
    """

    phone: str
    score: Score = None
    start: float | None = None
    end: float | None = None
    heard: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "phone": self.phone,
            "score": self.score,
            "start": self.start,
            "end": self.end,
            "heard": self.heard,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PhoneAssessment:
        heard = d.get("heard")
        return cls(
            phone=str(d["phone"]),
            score=_opt_float(d.get("score")),
            start=_opt_float(d.get("start")),
            end=_opt_float(d.get("end")),
            heard=None if heard is None else str(heard),
        )


@dataclass(frozen=True)
class WordAssessment:
    """One word: 0-10 accuracy / stress / total, its phones, a mispronunciation flag and
    whether it was read (``"read"`` / ``"omitted"``; ``None`` when not known).

    ``sentence_cost``: points of the sentence accuracy its words give (``Assessment.from_words``)
    that this word costs against one read without error (:mod:`pronscore.levels`)."""

    text: str
    accuracy: Score = None
    stress: Score = None
    total: Score = None
    phones: tuple[PhoneAssessment, ...] = ()
    mispronounced: bool | None = None
    status: str | None = None
    sentence_cost: Score = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "accuracy": self.accuracy,
            "stress": self.stress,
            "total": self.total,
            "mispronounced": self.mispronounced,
            "status": self.status,
            "sentence_cost": self.sentence_cost,
            "phones": [p.to_dict() for p in self.phones],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WordAssessment:
        flag = d.get("mispronounced")
        return cls(
            text=str(d["text"]),
            accuracy=_opt_float(d.get("accuracy")),
            stress=_opt_float(d.get("stress")),
            total=_opt_float(d.get("total")),
            phones=tuple(PhoneAssessment.from_dict(p) for p in d.get("phones") or ()),
            mispronounced=None if flag is None else bool(flag),
            status=None if d.get("status") is None else str(d["status"]),
            sentence_cost=_opt_float(d.get("sentence_cost")),
        )


@dataclass(frozen=True)
class UtteranceScores:
    """Sentence-level scores on Speechocean762's 0-10 scales."""

    accuracy: Score = None
    completeness: Score = None
    fluency: Score = None
    prosodic: Score = None
    total: Score = None

    def to_dict(self) -> dict[str, Score]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> UtteranceScores:
        return cls(**{f.name: _opt_float(d.get(f.name)) for f in fields(cls)})


@dataclass(frozen=True)
class Assessment:
    """Scores of one utterance at every level, plus why scoring was limited, if it was.

    ``status`` is ``"ok"``, ``"failed"`` or ``"mismatch"`` (speech, but none of the text:
    zero scores; or, from an encoder model's check, speech that does not sound like the text:
    scores kept);
    ``reason`` says what went wrong (for example a failed alignment on silence) so callers can
    show it instead of silently low scores. ``inserted`` lists the spans (start, end in s) of
    extra speech: repeated or added words that belong to no word of the text. ``from_words``:
    the sentence accuracy its words' accuracies alone give on the experts' scale
    (:mod:`pronscore.levels`; the experts rate a sentence below its words), beside the model's.
    ``channel``: P(the recording went through a degraded channel: a phone line, noise), from a
    model with a channel gate (``None`` without one).
    """

    utterance: UtteranceScores = field(default_factory=UtteranceScores)
    words: tuple[WordAssessment, ...] = ()
    status: str = "ok"
    reason: str | None = None
    inserted: tuple[tuple[float, float], ...] = ()
    from_words: Score = None
    channel: Score = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "utterance": self.utterance.to_dict(),
            "words": [w.to_dict() for w in self.words],
            "status": self.status,
            "reason": self.reason,
            "inserted": [list(span) for span in self.inserted],
            "from_words": self.from_words,
            "channel": self.channel,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Assessment:
        return cls(
            utterance=UtteranceScores.from_dict(d.get("utterance") or {}),
            words=tuple(WordAssessment.from_dict(w) for w in d.get("words") or ()),
            status=str(d.get("status", "ok")),
            reason=d.get("reason"),
            inserted=tuple((float(a), float(b)) for a, b in d.get("inserted") or ()),
            from_words=_opt_float(d.get("from_words")),
            channel=_opt_float(d.get("channel")),
        )

    @property
    def phones(self) -> list[PhoneAssessment]:
        """All phones of the utterance in order."""
        return [p for w in self.words for p in w.phones]
