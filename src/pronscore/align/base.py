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
