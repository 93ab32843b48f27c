"""A seed ensemble: several heads of one recipe, trained with different seeds, whose scores are
averaged. The first member speaks for everything that is not a score (status, reason, the
mispronounced flags of its checks, what was heard): averaging a flag or a status has no meaning,
and only the first member is trained with the checks.

A RUN_DIR of kind ``ensemble``: ``config.json`` lists ``members``, each a RUN_DIR of its own
under ``members/``. Cross-validation averages its seeds' predictions with the same
:func:`average_assessments` (``pronscore cv --ensemble``), so the CV number is the served one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pronscore.constants import UTTERANCE_ASPECTS, WORD_ASPECTS
from pronscore.errors import ModelError
from pronscore.runs import Predictor, load_predictor, read_run_config
from pronscore.schema import Assessment, PhoneAssessment, UtteranceScores, WordAssessment

if TYPE_CHECKING:
    from pronscore.features.extract import SplitFeatures

KIND = "ensemble"
MEMBERS_DIR = "members"
LEVELS = ("utterance", "word", "phone")


def _mean(values: Sequence[float | None]) -> float | None:
    """The mean of the members' scores; None when any member has none (not a partial mean)."""
    if any(v is None for v in values):
        return None
    return float(np.mean(values))


def _phone(first: PhoneAssessment, others: Sequence[PhoneAssessment]) -> PhoneAssessment:
    return replace(first, score=_mean([first.score, *(p.score for p in others)]))


def _word(
    first: WordAssessment, others: Sequence[WordAssessment], levels: Sequence[str]
) -> WordAssessment:
    scores = {}
    if "word" in levels:
        scores = {
            a: _mean([getattr(first, a), *(getattr(w, a) for w in others)]) for a in WORD_ASPECTS
        }
    phones = first.phones
    if "phone" in levels:
        phones = tuple(_phone(p, [w.phones[k] for w in others]) for k, p in enumerate(phones))
    return replace(first, phones=phones, **scores)


def check_levels(levels: Sequence[str]) -> tuple[str, ...]:
    """``levels`` as a tuple, or a :class:`ModelError` naming the unknown ones."""
    unknown = set(levels) - set(LEVELS)
    if unknown or not levels:
        raise ModelError(f"unknown levels {sorted(unknown)} (known: {', '.join(LEVELS)})")
    return tuple(levels)


def average_assessments(items: Sequence[Assessment], levels: Sequence[str] = LEVELS) -> Assessment:
    """The members' scores averaged at ``levels`` (default every level; a level left out keeps
    ``items[0]``'s scores, for members that are better at some levels than others); the rest
    from ``items[0]``. The members must describe the same words and phones (one set of features
    scored by each)."""
    check_levels(levels)
    first, others = items[0], list(items[1:])
    for a in others:
        if len(a.words) != len(first.words) or any(
            len(w.phones) != len(v.phones) for w, v in zip(a.words, first.words, strict=True)
        ):
            raise ModelError("ensemble members scored different words or phones")
    utt = first.utterance
    if "utterance" in levels:
        utt = UtteranceScores(
            **{
                k: _mean([getattr(first.utterance, k), *(getattr(a.utterance, k) for a in others)])
                for k in UTTERANCE_ASPECTS
            }
        )
    words = tuple(_word(w, [a.words[k] for a in others], levels) for k, w in enumerate(first.words))
    return replace(first, utterance=utt, words=words)


@dataclass(frozen=True)
class EnsembleHead:
    """Heads that read the same features; :meth:`predict_features` averages their scores."""

    members: tuple[Predictor, ...]
    names: tuple[str, ...]
    extra: dict[str, Any]

    def __post_init__(self) -> None:
        if not self.members:
            raise ModelError("an ensemble needs at least one member")
        if len({getattr(m, "encoder", None) for m in self.members}) > 1:
            raise ModelError("ensemble members read different encoders")
        check_levels(self.levels)

    @property
    def encoder(self) -> Any:
        """What the members read (the Scorer computes it once for all)."""
        return getattr(self.members[0], "encoder", None)

    @property
    def recogniser(self) -> Any:
        """The CTC phone recogniser whose columns members read (the first member's; members
        trained on one FEATURES_DIR share it), or None."""
        found = [r for m in self.members if (r := getattr(m, "recogniser", None)) is not None]
        return found[0] if found else None

    @property
    def levels(self) -> tuple[str, ...]:
        """The levels whose scores are averaged (``config.json["levels"]``, default all)."""
        return tuple(self.extra.get("levels", LEVELS))

    def predict_features(self, split: SplitFeatures) -> dict[str, Assessment]:
        outs = [m.predict_features(split) for m in self.members]
        return {uid: average_assessments([o[uid] for o in outs], self.levels) for uid in outs[0]}

    def save_pretrained(self, out_dir: str | Path) -> None:
        out = Path(out_dir)
        for name, member in zip(self.names, self.members, strict=True):
            member.save_pretrained(out / MEMBERS_DIR / name)
        config = {"kind": KIND, "members": list(self.names), **self.extra}
        (out / "config.json").write_text(json.dumps(config, indent=2))

    @classmethod
    def from_pretrained(cls, run_dir: str | Path) -> EnsembleHead:
        d = Path(run_dir)
        config = read_run_config(d)
        names = config.get("members")
        if config.get("kind") != KIND or not isinstance(names, list) or not names:
            raise ModelError(
                "an ensemble lists its members", path=d / "config.json", field="members"
            )
        for name in names:
            if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
                raise ModelError(
                    f"bad member name {name!r}", path=d / "config.json", field="members"
                )
        members = tuple(load_predictor(d / MEMBERS_DIR / n) for n in names)
        extra = {k: v for k, v in config.items() if k not in ("kind", "members")}
        return cls(members, tuple(names), extra)
