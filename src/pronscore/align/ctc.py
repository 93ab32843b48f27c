"""CTC forced alignment (Viterbi) and GOP from any CTC model's frame posteriors, in numpy.

Standard CTC topology: the target ``l_1..l_N`` is expanded to ``blank l_1 blank ... l_N blank``
(``S = 2N + 1`` states); a path may stay in a state, advance by one, or skip a blank between two
*different* labels. Work is vectorised over states, looping over frames only: O(T * S).

GOP from posteriors (per aligned phone, over its frames): ``lpp`` = mean log posterior of the
canonical phone; ``lpr`` = mean log posterior ratio of the canonical phone against each phone.
``ctc_gop_substitution`` is the alignment-free CTC GOP (log-likelihood of the canonical sequence
minus the best sequence with that phone substituted or deleted), from the CTC forward algorithm.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pronscore.align.base import Alignment, PhoneSegment, WordSegment
from pronscore.text import PHONES, base_phone

NEG = -np.inf
CTC_VOCAB: tuple[str, ...] = ("<blank>", *PHONES)
"""Default vocabulary: blank at 0, then the 39 ARPAbet phones (stress stripped)."""
CTC_INDEX: dict[str, int] = {p: i for i, p in enumerate(CTC_VOCAB)}
"""Phone (or ``<blank>``) -> its index in :data:`CTC_VOCAB`."""


@dataclass(frozen=True)
class CtcPath:
    spans: tuple[tuple[int, int, float], ...]  # per target token: start, end (excl.), log score
    frame_states: np.ndarray  # (T,) index into the expanded state sequence
    log_likelihood: float  # score of the best path


def _expand(targets: Sequence[int], blank: int) -> np.ndarray:
    ext = np.full(2 * len(targets) + 1, blank, dtype=np.int64)
    ext[1::2] = targets
    return ext


def _skip_allowed(ext: np.ndarray, blank: int) -> np.ndarray:
    allowed = np.zeros(ext.size, dtype=bool)
    allowed[2:] = (ext[2:] != blank) & (ext[2:] != ext[:-2])
    return allowed


def min_frames(targets: Sequence[int]) -> int:
    """Frames a CTC path needs: one per label plus a blank between repeated labels."""
    t = list(targets)
    return len(t) + sum(a == b for a, b in itertools.pairwise(t))


def ctc_forced_align(
    log_probs: np.ndarray, targets: Sequence[int], blank: int = 0
) -> CtcPath | None:
    """Best CTC path of ``targets`` through ``log_probs`` (T x V); ``None`` if T is too short."""
    lp = np.asarray(log_probs, dtype=np.float64)
    t_len = lp.shape[0]
    if not len(targets) or t_len < min_frames(targets):
        return None
    ext = _expand(targets, blank)
    s_len = ext.size
    skip = _skip_allowed(ext, blank)
    delta = np.full(s_len, NEG)
    delta[0] = lp[0, ext[0]]
    delta[1] = lp[0, ext[1]]
    back = np.zeros((t_len, s_len), dtype=np.int8)  # 0 stay, 1 from s-1, 2 from s-2
    for t in range(1, t_len):
        stay = delta
        step = np.concatenate([[NEG], delta[:-1]])
        jump = np.where(skip, np.concatenate([[NEG, NEG], delta[:-2]]), NEG)
        cand = np.stack([stay, step, jump])
        back[t] = np.argmax(cand, axis=0)
        delta = cand[back[t], np.arange(s_len)] + lp[t, ext]
    end = s_len - 1 if delta[-1] >= delta[-2] else s_len - 2
    if not np.isfinite(delta[end]):
        return None
    states = np.empty(t_len, dtype=np.int64)
    states[-1] = end
    for t in range(t_len - 1, 0, -1):
        states[t - 1] = states[t] - back[t, states[t]]
    frame_lp = lp[np.arange(t_len), ext[states]]
    spans = []
    for k in range(len(targets)):
        frames = np.flatnonzero(states == 2 * k + 1)
        spans.append((int(frames[0]), int(frames[-1]) + 1, float(frame_lp[frames].sum())))
    return CtcPath(tuple(spans), states, float(delta[end]))


def ctc_log_likelihood(log_probs: np.ndarray, targets: Sequence[int], blank: int = 0) -> float:
    """log P(targets | x) summed over all CTC paths (forward algorithm)."""
    lp = np.asarray(log_probs, dtype=np.float64)
    if not len(targets):
        return float(lp[:, blank].sum())
    if lp.shape[0] < min_frames(targets):
        return float(NEG)
    ext = _expand(targets, blank)
    skip = _skip_allowed(ext, blank)
    alpha = np.full(ext.size, NEG)
    alpha[:2] = lp[0, ext[:2]]
    for t in range(1, lp.shape[0]):
        step = np.concatenate([[NEG], alpha[:-1]])
        jump = np.where(skip, np.concatenate([[NEG, NEG], alpha[:-2]]), NEG)
        alpha = np.logaddexp(np.logaddexp(alpha, step), jump) + lp[t, ext]
    return float(np.logaddexp(alpha[-1], alpha[-2]))


def ctc_gop_substitution(
    log_probs: np.ndarray, targets: Sequence[int], blank: int = 0
) -> np.ndarray:
    """Alignment-free GOP per target position: LL(canonical) - max over substitutions/deletion.

    Positive values mean the canonical phone explains the audio better than any alternative.
    Costs one forward pass per alternative (V per position): fine for utterance-length inputs.
    """
    targets = list(targets)
    ll = ctc_log_likelihood(log_probs, targets, blank)
    vocab = [v for v in range(np.asarray(log_probs).shape[1]) if v != blank]
    out = np.empty(len(targets))
    for i, tok in enumerate(targets):
        alts = [targets[:i] + targets[i + 1 :]]
        alts += [[*targets[:i], v, *targets[i + 1 :]] for v in vocab if v != tok]
        out[i] = ll - max(ctc_log_likelihood(log_probs, a, blank) for a in alts)
    return out


def posterior_gop(log_probs: np.ndarray, start: int, end: int, token: int, blank: int = 0) -> dict:
    """``lpp``, LPR vector and its minimum over competitors, over frames ``[start, end)``.

    Posteriors are renormalised over the non-blank tokens, so the blank's mass does not make
    every phone look improbable.
    """
    seg = np.asarray(log_probs[start:end], dtype=np.float64)
    keep = [v for v in range(seg.shape[1]) if v != blank]
    phones = seg[:, keep]
    phones = phones - np.logaddexp.reduce(phones, axis=1, keepdims=True)
    col = keep.index(token)
    lpr = (phones[:, col : col + 1] - phones).mean(0)  # canonical vs each phone, >= 0 when it wins
    return {
        "lpp": float(phones[:, col].mean()),
        "lpr": lpr,
        "lpr_min": float(np.min(np.delete(lpr, col))) if lpr.size > 1 else 0.0,
    }


class CtcAligner:
    """Words with canonical phones + a CTC model's frame log-posteriors -> :class:`Alignment`."""

    def __init__(self, vocab: Sequence[str] = CTC_VOCAB, blank: int = 0) -> None:
        self.vocab = tuple(vocab)
        self.blank = blank
        self.index = {p: i for i, p in enumerate(self.vocab)}

    def align(
        self,
        log_probs: np.ndarray,
        words: Sequence[tuple[str, Sequence[str]]],
        frame_rate: float,
    ) -> Alignment:
        lp = np.asarray(log_probs)
        n_frames = int(lp.shape[0]) if lp.ndim >= 1 else 0
        if lp.ndim != 2 or lp.shape[1] != len(self.vocab):
            return Alignment.failed(
                f"log_probs shape {lp.shape} does not fit a vocabulary of {len(self.vocab)}",
                n_frames,
                frame_rate,
            )
        if np.isnan(lp).any() or np.isposinf(lp).any():
            return Alignment.failed("log_probs contain NaN or +inf", n_frames, frame_rate)
        if not words or any(not phones for _, phones in words):
            return Alignment.failed("no words, or a word without phones", n_frames, frame_rate)
        flat = [(w_i, base_phone(p), p) for w_i, (_, phones) in enumerate(words) for p in phones]
        unknown = sorted({b for _, b, _ in flat if b not in self.index})
        if unknown:
            return Alignment.failed(
                f"phones not in the CTC vocabulary: {unknown}", n_frames, frame_rate
            )
        path = ctc_forced_align(lp, [self.index[b] for _, b, _ in flat], self.blank)
        if path is None:
            return Alignment.failed(
                f"{n_frames} frames are too few for {len(flat)} phones", n_frames, frame_rate
            )
        segs: dict[int, list[PhoneSegment]] = {}
        for (w_i, _, phone), (start, end, score) in zip(flat, path.spans, strict=True):
            n = len(words[w_i][1])
            k = len(segs.get(w_i, []))
            pos = "S" if n == 1 else "B" if k == 0 else "E" if k == n - 1 else "I"
            segs.setdefault(w_i, []).append(PhoneSegment(phone, start, end, score, w_i, pos))
        out = tuple(
            WordSegment(text, segs[i][0].start, segs[i][-1].end, tuple(segs[i]))
            for i, (text, _) in enumerate(words)
        )
        return Alignment(out, n_frames, frame_rate)


__all__ = [
    "CTC_INDEX",
    "CTC_VOCAB",
    "CtcAligner",
    "CtcPath",
    "ctc_forced_align",
    "ctc_gop_substitution",
    "ctc_log_likelihood",
    "posterior_gop",
]
