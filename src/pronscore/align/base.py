"""The aligner's output, shared by every aligner and read by the feature builders.

Times are integer frame indices at ``Alignment.frame_rate`` (``end`` exclusive); ``seconds()``
converts. A failed alignment (silence, noise, a mismatched transcript) is a *result* with
``status == "failed"`` and a ``reason``, never an exception; ``status == "mismatch"`` says the
aligner heard speech but (almost) none of the text's words.

Aligners that tolerate partial readings mark each word ``"read"`` or ``"omitted"``. An omitted
word keeps its place and its phones, all zero-length at the frame where the reading skipped it
(``start == end``), so word and phone indices stay those of the text; ``inserted`` lists the
spans of extra speech (repeated or added words) that belong to no word of the text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from pronscore.acoustic.pocketsphinx import LoopSeg

WordPron = tuple[str, tuple[str, ...]]
"""(word text, canonical phones with stress)."""


@dataclass(frozen=True)
class PhoneSegment:
    phone: str  # ARPAbet with stress digit, e.g. "EH1"
    start: int  # first frame
    end: int  # one past the last frame
    score: float  # aligner's acoustic score, log domain, summed over the segment's frames
    word_index: int
    position: str  # "B", "I", "E" or "S" (single-phone word)

    @property
    def n_frames(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class WordSegment:
    text: str
    start: int
    end: int
    phones: tuple[PhoneSegment, ...]
    status: str = "read"  # "read" | "omitted" (then start == end and every phone is empty)

    @property
    def read(self) -> bool:
        return self.status == "read"


@dataclass(frozen=True)
class Alignment:
    words: tuple[WordSegment, ...]
    n_frames: int
    frame_rate: float  # frames per second
    status: str = "ok"  # "ok" | "failed" | "mismatch"
    reason: str | None = None
    inserted: tuple[tuple[int, int], ...] = ()  # extra speech spans (frames, end exclusive)

    @classmethod
    def failed(
        cls, reason: str, n_frames: int, frame_rate: float, *, status: str = "failed"
    ) -> Alignment:
        return cls(words=(), n_frames=n_frames, frame_rate=frame_rate, status=status, reason=reason)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def phones(self) -> list[PhoneSegment]:
        return [p for w in self.words for p in w.phones]

    @property
    def read_words(self) -> tuple[WordSegment, ...]:
        return tuple(w for w in self.words if w.read)

    def seconds(self, frame: int) -> float:
        return frame / self.frame_rate


@dataclass(frozen=True)
class AlignerOutput:
    """An alignment plus the frame-level evidence behind it (``None`` when it failed)."""

    alignment: Alignment
    phone_scores: np.ndarray | None  # (T, 42) nats, columns MODEL_PHONES, best phone = 0
    loop: tuple[LoopSeg, ...] = ()  # free phone loop segments (frames, score in model units)
    silences: tuple[tuple[int, int], ...] = ()  # aligned filler (silence/noise) spans
    words: tuple[WordPron, ...] = ()  # the pronunciations aligned (variants resolved)


class FrameAligner(Protocol):
    """What the feature builders (:mod:`pronscore.features.extract`) need of an aligner: the
    alignment plus its frame-level phone evidence, at ``frame_rate`` frames per second.
    :class:`~pronscore.align.pocketsphinx.PocketsphinxAligner` is the one in the package."""

    frame_rate: float

    def run(
        self,
        samples: np.ndarray,
        pronunciations: Sequence[Any],
        *,
        phone_loop: bool | None = None,
        variants: Sequence[Sequence[tuple[str, ...]]] | None = None,
    ) -> AlignerOutput: ...
