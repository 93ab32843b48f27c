"""The aligner's output, shared by every aligner and read by the feature builders.

Times are integer frame indices at ``Alignment.frame_rate`` (``end`` exclusive); ``seconds()``
converts. A failed alignment (silence, noise, a mismatched transcript) is a *result* with
``status == "failed"`` and a ``reason``, never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass


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


@dataclass(frozen=True)
class Alignment:
    words: tuple[WordSegment, ...]
    n_frames: int
    frame_rate: float  # frames per second
    status: str = "ok"  # "ok" | "failed"
    reason: str | None = None

    @classmethod
    def failed(cls, reason: str, n_frames: int, frame_rate: float) -> Alignment:
        return cls(
            words=(), n_frames=n_frames, frame_rate=frame_rate, status="failed", reason=reason
        )

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def phones(self) -> list[PhoneSegment]:
        return [p for w in self.words for p in w.phones]

    def seconds(self, frame: int) -> float:
        return frame / self.frame_rate
