"""Typed manifests every corpus reader returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pronscore.errors import CorpusError
from pronscore.schema import Assessment


@dataclass(frozen=True)
class Utterance:
    """One recording with its prompt and human labels (an :class:`Assessment`).

    Audio is either a file (``audio_path``) or encoded bytes held in memory (``audio_bytes``,
    as in parquet exports).
    """

    id: str
    speaker: str
    text: str
    labels: Assessment
    age: int | None = None
    gender: str | None = None
    audio_path: Path | None = None
    audio_bytes: bytes | None = field(default=None, repr=False)

    @property
    def is_child(self) -> bool | None:
        from pronscore.constants import CHILD_MAX_AGE

        return None if self.age is None else self.age <= CHILD_MAX_AGE


@dataclass(frozen=True)
class CorpusManifest:
    """All splits of a corpus plus the problems a lenient read skipped."""

    splits: dict[str, list[Utterance]]
    problems: tuple[CorpusError, ...] = ()
    lexicon: dict[str, list[tuple[str, ...]]] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return sum(len(v) for v in self.splits.values())
