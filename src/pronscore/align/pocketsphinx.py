"""Forced alignment with the embedded pocketsphinx model.

``PocketsphinxAligner.align(samples, pronunciations)`` returns an
:class:`~pronscore.align.base.Alignment`; bad speech (silence, too short, too long, text that
does not fit) is a failed *result* with a reason, never an exception. ``run`` additionally keeps
what the feature builders need: per-frame phone scores and the free phone loop.

With ``ModelConfig.aligner == "viterbi"`` the alignment tolerates partial readings
(:mod:`pronscore.align.viterbi`): skipped words come back ``"omitted"``, extra speech as
``Alignment.inserted`` spans, and a reading in which (almost) none of the text was heard as
``status == "mismatch"``.

Phone segment scores are in nats (log-likelihood relative to the best senone of each frame,
transition probabilities included), summed over the segment's frames.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pronscore.acoustic.pocketsphinx import (
    FRAME_RATE,
    SCORE_NATS,
    ForcedResult,
    LoopSeg,
    ModelConfig,
    PocketsphinxModel,
    n_frames,
    phone_frame_scores,
    samples_to_raw,
)
from pronscore.align.base import AlignerOutput, Alignment, PhoneSegment, WordPron, WordSegment
from pronscore.align.viterbi import (
    GARBAGE,
    choose_variants,
    coverage_problem,
    speech_in_silences,
    viterbi_align,
)
from pronscore.audio import frame_dbfs, is_silent, validate_samples
from pronscore.errors import AlignmentFailed, AudioError
from pronscore.text import Pronunciation

MIN_FRAMES_PER_PHONE = 3  # one frame per HMM state


def as_word_prons(pronunciations: Sequence[Pronunciation | WordPron]) -> list[WordPron]:
    out = []
    for p in pronunciations:
        if isinstance(p, Pronunciation):
            out.append((p.word, tuple(p.phones)))
        else:
            out.append((str(p[0]), tuple(p[1])))
    return out


def _positions(n: int) -> list[str]:
    if n == 1:
        return ["S"]
    return ["B"] + ["I"] * (n - 2) + ["E"]


class PocketsphinxAligner:
    """Forced aligner over :class:`PocketsphinxModel`; decoders are built once and reused."""

    frame_rate = FRAME_RATE

    def __init__(
        self,
        config: ModelConfig | None = None,
        *,
        model: PocketsphinxModel | None = None,
        phone_loop: bool = True,
    ) -> None:
        self.model = model or PocketsphinxModel(config)
        self.config = self.model.config
        self.phone_loop = phone_loop

    def align(
        self, samples: np.ndarray, pronunciations: Sequence[Pronunciation | WordPron]
    ) -> Alignment:
        return self.run(samples, pronunciations, phone_loop=False).alignment

    def run(
        self,
        samples: np.ndarray,
        pronunciations: Sequence[Pronunciation | WordPron],
        *,
        phone_loop: bool | None = None,
        variants: Sequence[Sequence[tuple[str, ...]]] | None = None,
    ) -> AlignerOutput:
        """Align and keep per-frame phone scores (+ the free phone loop when enabled).

        ``variants`` (per word, its lexicon's pronunciations, the given one first): the viterbi
        aligner picks for each word the one the audio fits best, and aligns that."""
        words = as_word_prons(pronunciations)
        x = np.asarray(samples)
        total = n_frames(x) if x.ndim == 1 else 0

        def failed(reason: str) -> AlignerOutput:
            return AlignerOutput(Alignment.failed(reason, total, FRAME_RATE), None)

        try:
            x = validate_samples(x, max_duration=self.config.max_duration)
        except AudioError as err:
            return failed(err.reason)
        if not words:
            return failed("no words to align (empty text)")
        if any(not phones for _, phones in words):
            return failed("a word has no phones")
        n_phones = sum(len(p) for _, p in words)
        if total < MIN_FRAMES_PER_PHONE * n_phones:
            return failed(f"audio too short ({total} frames) for {n_phones} phones")
        if is_silent(x):  # loudest 25 ms frame below audio.SILENCE_DBFS
            return failed("audio is silent")
        raw = samples_to_raw(x)
        use_loop = self.phone_loop if phone_loop is None else phone_loop
        prons = [p for _, p in words]
        try:
            if self.config.aligner == "viterbi":  # one decoder pass; the loop comes for free
                forced, loop, prons = self._viterbi(raw, prons, frame_dbfs(x), variants)
                words = [(t, p) for (t, _), p in zip(words, prons, strict=True)]
                loop = loop if use_loop else ()
            else:
                forced = self.model.force_align(raw, prons)
                loop = self.model.phone_loop(raw) if use_loop else ()
        except AlignmentFailed as err:
            return failed(err.reason)
        return _build(words, forced, loop)

    def _viterbi(
        self,
        raw: bytes,
        prons: list[tuple[str, ...]],
        dbfs: np.ndarray,
        variants: Sequence[Sequence[tuple[str, ...]]] | None = None,
    ) -> tuple[ForcedResult, tuple[LoopSeg, ...], list[tuple[str, ...]]]:
        senscr, loop = self.model.senones_and_loop(raw)
        cfg = self.config
        penalties = {
            "skip_penalty": cfg.skip_penalty,
            "garbage_penalty": cfg.garbage_penalty,
            "insert_penalty": cfg.insert_penalty,
            "stop_penalty": cfg.stop_penalty,
        }
        if variants is not None and any(len(v) > 1 for v in variants):
            prons = choose_variants(senscr, variants, self.model.mdef, **penalties)
        segs = viterbi_align(senscr, prons, self.model.mdef, **penalties)
        segs = speech_in_silences(segs, senscr, dbfs, self.model.mdef)
        return ForcedResult(segs, senscr), loop, prons


def _merged(spans: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    out: list[tuple[int, int]] = []
    for a, b in spans:
        if out and out[-1][1] == a:
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return tuple(out)


def _build(words: list[WordPron], forced: ForcedResult, loop: tuple[LoopSeg, ...]) -> AlignerOutput:
    """Map pocketsphinx's pseudo-words back onto the canonical words (same order, 1:1)."""
    spoken = [w for w in forced.words if not w.is_filler]
    fillers = tuple((w.start, w.end) for w in forced.words if w.is_filler and w.name != GARBAGE)
    inserted = _merged([(w.start, w.end) for w in forced.words if w.name == GARBAGE])
    n = forced.senscr.shape[0]
    if len(spoken) != len(words):
        return AlignerOutput(
            Alignment.failed(f"aligned {len(spoken)} of {len(words)} words", n, FRAME_RATE),
            None,
        )
    out = []
    for wi, ((text, phones), seg) in enumerate(zip(words, spoken, strict=True)):
        if len(seg.phones) != len(phones):
            return AlignerOutput(
                Alignment.failed(f"word {text!r}: phone count differs", n, FRAME_RATE), None
            )
        psegs = tuple(
            PhoneSegment(
                phone=ph,
                start=ps.start,
                end=min(ps.end, n),
                score=float(ps.score * SCORE_NATS),
                word_index=wi,
                position=pos,
            )
            for ph, ps, pos in zip(phones, seg.phones, _positions(len(phones)), strict=True)
        )
        status = "read" if seg.end > seg.start else "omitted"
        out.append(WordSegment(text, psegs[0].start, psegs[-1].end, psegs, status))
    read = [w for w in out if w.read]
    problem = coverage_problem(
        len(out),
        len(read),
        sum(w.end - w.start for w in read),
        sum(b - a for a, b in inserted),
    )
    if problem is not None:
        return AlignerOutput(Alignment.failed(problem, n, FRAME_RATE, status="mismatch"), None)
    alignment = Alignment(words=tuple(out), n_frames=n, frame_rate=FRAME_RATE, inserted=inserted)
    scores = phone_frame_scores(forced.senscr)
    return AlignerOutput(alignment, scores, loop, fillers, tuple(words))
