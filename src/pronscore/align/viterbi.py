"""Numpy Viterbi forced alignment over pocketsphinx senone scores, tolerant of partial readings.

The search graph is a chain of 3-state triphone HMMs (the model's own senones and transition
matrices, :mod:`pronscore.acoustic.pocketsphinx`) with, before, between and after the words,
a *junction* that may hold an optional silence and an optional garbage unit (in either order,
repeatedly). Every word may be skipped at ``skip_penalty``; the garbage unit scores each frame
as the best context-independent speech senone of that frame minus ``garbage_penalty``, so extra
or repeated words are absorbed by garbage instead of stretching their neighbours. Penalties are
log-domain, in pocketsphinx score units (see :data:`~pronscore.acoustic.pocketsphinx.SCORE_NATS`).

The result lists, in time order, the read words, silences (``<sil>``), garbage spans
(:data:`GARBAGE`) and omitted words: a word that was skipped comes back with ``start == end``
(the frame where the path jumped over it) and zero-length phones, so every canonical word keeps
its place and its phone count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pronscore.acoustic.pocketsphinx import (
    WPOS_BEGIN,
    WPOS_END,
    WPOS_INTERNAL,
    WPOS_SINGLE,
    Mdef,
    ModelConfig,
    PhoneSeg,
    StateSeg,
    WordSeg,
    default_mdef,
    default_tmat,
    word_name,
)
from pronscore.errors import AlignmentFailed
from pronscore.text import PHONES, base_phone

GARBAGE = "<garbage>"
"""Name of the garbage (extra speech) segments in :func:`viterbi_align`'s result."""


MIN_READ_SHARE = 1 / 3
"""Below this share of words read, a reading dominated by other speech is a mismatch."""

LOUD_DB = 15.0
"""A frame inside an aligned silence is speech when it is at most this many dB below the median
level of the read words' frames and the best speech phone beats silence there."""
MIN_SPEECH_FRAMES = 15
"""Shortest run of speech inside an aligned silence reported as extra speech (150 ms)."""

PHONE, SILENCE, FILLER = 0, 1, 2  # unit kinds

NEG = -np.inf


def coverage_problem(
    n_words: int, n_read: int, read_frames: int, garbage_frames: int
) -> str | None:
    """Why a reading is a mismatch (nothing of the text heard), or ``None`` when it is not."""
    if n_read == 0:
        return "none of the text's words were heard"
    if n_read < MIN_READ_SHARE * n_words and garbage_frames > read_frames:
        return f"only {n_read} of {n_words} words were heard, among other speech"
    return None


@dataclass(frozen=True)
class _Unit:
    ci: int  # CI phone id (mdef order); -1 for garbage
    senones: tuple[int, int, int]  # (-1, -1, -1) for garbage
    tmat: int  # -1 for garbage
    word: int  # word index; the junction index for silence and garbage
    kind: int  # PHONE, SILENCE or FILLER (garbage)


def _units(prons: Sequence[Sequence[str]], mdef: Mdef) -> list[_Unit]:
    """Triphone HMMs of the words; before, between and after them a silence then a garbage
    unit (junction ``j`` comes before word ``j``; junction ``len(prons)`` ends the utterance)."""
    sil = mdef.ciphones.index("SIL")
    ids = [[mdef.ciphones.index(base_phone(p)) for p in word] for word in prons]
    flat = [(wi, i, c) for wi, word in enumerate(ids) for i, c in enumerate(word)]

    def junction(j: int) -> list[_Unit]:
        s = _Unit(sil, tuple(mdef.phone_senones[sil]), int(mdef.phone_tmat[sil]), j, SILENCE)
        return [s, _Unit(-1, (-1, -1, -1), -1, j, FILLER)]

    units = junction(0)
    for k, (wi, i, c) in enumerate(flat):
        n = len(ids[wi])
        left = flat[k - 1][2] if k else sil
        right = flat[k + 1][2] if k + 1 < len(flat) else sil
        wpos = WPOS_INTERNAL
        if n == 1:
            wpos = WPOS_SINGLE
        elif i in (0, n - 1):
            wpos = WPOS_BEGIN if i == 0 else WPOS_END
        pid = mdef.phone_id(c, left, right, wpos)
        units.append(_Unit(c, tuple(mdef.phone_senones[pid]), int(mdef.phone_tmat[pid]), wi, PHONE))
        if i == n - 1:
            units.extend(junction(wi + 1))
    return units


@dataclass(frozen=True)
class _Graph:
    """Arcs between units: ``arcs[v]`` lists ``(u, score)`` from the exit of unit ``u`` into
    the entry of unit ``v`` (log domain, <= 0: minus the skip and insert penalties on the way;
    ``u``'s own exit transition is added later); ``start[v]`` and ``end[u]`` score beginning
    in ``v`` and finishing after ``u``."""

    arcs: dict[int, list[tuple[int, float]]]
    start: dict[int, float]
    end: dict[int, float]


def _graph(
    units: list[_Unit], n_words: int, skip: float, insert: float, stop: float | None = None
) -> _Graph:
    """Junction ``j`` is entered at point A_j and left at point B_j; B_j leads to word ``j``
    or, skipping it, to A_{j+1}. Points are not emitting, so they are folded into arcs.
    Skipping every word up to the end costs at most ``stop``: a learner who stops early leaves
    out a run of words at once, which must not cost more than one word left out mid-sentence
    costs several times over."""
    sil = {u.word: i for i, u in enumerate(units) if u.kind == SILENCE}
    gar = {u.word: i for i, u in enumerate(units) if u.kind == FILLER}
    first = {}
    last = {}
    for i, u in enumerate(units):
        if u.kind == PHONE:
            first.setdefault(u.word, i)
            last[u.word] = i

    def from_b(j: int) -> dict[int, float]:
        """Entries reachable from B_j (-1 is the end), with their skip costs."""
        out: dict[int, float] = {}

        def skipped(k: int) -> float:  # log domain: a penalty lowers the score
            cost = (k - j) * skip
            return -min(cost, stop) if k == n_words and stop is not None and k > j else -cost

        for k in range(j, n_words + 1):
            cost = skipped(k)
            if k < n_words:
                out[first[k]] = cost
            if k > j:
                out[sil[k]] = cost
                out[gar[k]] = cost
        out[-1] = skipped(n_words)
        return out

    def from_a(j: int) -> dict[int, float]:
        return {sil[j]: 0.0, gar[j]: 0.0, **from_b(j)}

    arcs: dict[int, list[tuple[int, float]]] = {}

    def link(u: int | None, targets: dict[int, float]) -> None:
        for v, cost in targets.items():
            if v != -1 and units[v].kind == FILLER:
                cost -= insert
            if v == -1:
                if u is not None:  # skipping every word still needs frames somewhere
                    end[u] = cost
            elif u is None:
                start[v] = cost
            else:
                arcs.setdefault(v, []).append((u, cost))

    start: dict[int, float] = {}
    end: dict[int, float] = {}
    link(None, from_a(0))
    for i, u in enumerate(units):
        if u.kind == PHONE and i != last[u.word]:
            link(i, {i + 1: 0.0})
        elif u.kind == PHONE:
            link(i, from_a(u.word + 1))
        else:
            other = gar[u.word] if u.kind == SILENCE else sil[u.word]
            link(i, {other: 0.0, **from_b(u.word)})
    return _Graph(arcs, start, end)


def garbage_scores(senscr: np.ndarray, mdef: Mdef) -> np.ndarray:
    """``(T,)`` best context-independent speech senone of each frame (score units, <= 0)."""
    speech = [mdef.ciphones.index(p) for p in PHONES]
    ci = mdef.phone_senones[speech].ravel()
    return -senscr[:, ci].min(axis=1).astype(np.float64)


def viterbi_align(
    senscr: np.ndarray,
    prons: Sequence[Sequence[str]],
    mdef: Mdef | None = None,
    tmat: np.ndarray | None = None,
    *,
    skip_penalty: float = ModelConfig.skip_penalty,
    garbage_penalty: float = ModelConfig.garbage_penalty,
    insert_penalty: float = ModelConfig.insert_penalty,
    stop_penalty: float | None = ModelConfig.stop_penalty,
) -> tuple[WordSeg, ...]:
    """Align ``prons`` on per-frame senone scores (``T x n_sen`` int16, best senone 0).

    Returns silences, garbage spans and words in time order (see the module docstring);
    scores in pocketsphinx units like :meth:`PocketsphinxModel.force_align`. Raises
    :class:`AlignmentFailed` when there are no frames or no words.
    """
    mdef = mdef or default_mdef()
    tmat = default_tmat() if tmat is None else tmat
    if not prons or any(not p for p in prons):
        raise AlignmentFailed("nothing to align (empty pronunciation)")
    n_t = senscr.shape[0]
    if n_t == 0:
        raise AlignmentFailed("no frames to align")
    units = _units(prons, mdef)
    stop = None if stop_penalty is None else float(stop_penalty)
    graph = _graph(units, len(prons), float(skip_penalty), float(insert_penalty), stop)
    emit, stay, move = _model(senscr, units, mdef, tmat, float(garbage_penalty))
    path, _ = _search(emit, stay, move, graph)
    return _segments(path, emit, stay, move, units, prons, mdef)


def choose_variants(
    senscr: np.ndarray,
    variants: Sequence[Sequence[Sequence[str]]],
    mdef: Mdef | None = None,
    **penalties: float | None,
) -> list[tuple[str, ...]]:
    """For each word, the pronunciation (of its ``variants``, first = default) under which the
    best path through the whole utterance scores highest; one word at a time, the others held at
    their current choice (greedy: a few extra searches over the same senone scores)."""
    mdef = mdef or default_mdef()
    tmat = default_tmat()
    chosen = [tuple(v[0]) for v in variants]

    def score(prons: list[tuple[str, ...]]) -> float:
        units = _units(prons, mdef)
        stop = penalties.get("stop_penalty")
        graph = _graph(units, len(prons), float(penalties["skip_penalty"]),
                       float(penalties["insert_penalty"]), stop)  # fmt: skip
        emit, stay, move = _model(senscr, units, mdef, tmat, float(penalties["garbage_penalty"]))
        return _search(emit, stay, move, graph)[1]

    best = score(chosen)
    for i, options in enumerate(variants):
        for option in options[1:]:
            trial = [*chosen[:i], tuple(option), *chosen[i + 1 :]]
            got = score(trial)
            if got > best:
                best, chosen = got, trial
    return chosen


def _model(senscr, units, mdef, tmat, garbage_penalty):
    """Per-state emissions ``(T, S)`` and stay / move (to the next state or out) costs."""
    garbage = [i for i, u in enumerate(units) if u.kind == FILLER]
    senone = np.array([max(x, 0) for u in units for x in u.senones])  # garbage: overwritten
    emit = -senscr[:, senone].astype(np.float64)
    gar_states = (3 * np.array(garbage)[:, None] + np.arange(3)).ravel()
    g = garbage_scores(senscr, mdef)
    emit[:, gar_states] = (g - garbage_penalty)[:, None]
    tm = np.stack([tmat[u.tmat] if u.kind != FILLER else np.zeros((3, 4)) for u in units])
    stay = tm[:, [0, 1, 2], [0, 1, 2]].ravel()
    move = tm[:, [0, 1, 2], [1, 2, 3]].ravel()  # to the next state; state 2: out of the unit
    return emit, stay, move


def _search(emit, stay, move, graph: _Graph) -> tuple[np.ndarray, float]:
    """Best state path ``(T,)`` and its score: stay, move to the next state of a unit, or take
    an arc."""
    n_t, s_n = emit.shape
    dest = np.array(sorted(graph.arcs), dtype=np.int64)  # units with incoming arcs
    k_max = max(len(a) for a in graph.arcs.values())
    src = np.zeros((dest.size, k_max), dtype=np.int64)
    cost = np.full((dest.size, k_max), NEG)
    for r, v in enumerate(dest.tolist()):
        for k, (u, c) in enumerate(graph.arcs[v]):
            src[r, k] = 3 * u + 2
            cost[r, k] = c + move[3 * u + 2]
    entry = 3 * dest
    intra = np.ones(s_n, dtype=bool)
    intra[0::3] = False  # a unit's first state is entered by arcs only
    move_in = np.full(s_n, NEG)
    move_in[1:] = np.where(intra[1:], move[:-1], NEG)
    delta = np.full(s_n, NEG)
    for v, c in graph.start.items():
        delta[3 * v] = c + emit[0, 3 * v]
    back = np.zeros((n_t, s_n), dtype=np.int16)  # 0 stay, 1 from s-1, 2 + k arc k
    for t in range(1, n_t):
        a = delta + stay
        b = np.full(s_n, NEG)
        b[1:] = delta[:-1] + move_in[1:]
        best = np.maximum(a, b)
        code = np.where(best == a, 0, 1).astype(np.int16)
        cand = delta[src] + cost
        arg = cand.argmax(axis=1)
        c = cand[np.arange(dest.size), arg]
        take = c > best[entry]
        best[entry[take]] = c[take]
        code[entry[take]] = 2 + arg[take]
        back[t] = code
        delta = best + emit[t]
    finals = {3 * u + 2: c for u, c in graph.end.items()}
    s = max(finals, key=lambda f: delta[f] + finals[f])
    total = float(delta[s] + finals[s])
    if not np.isfinite(delta[s]):
        raise AlignmentFailed("no alignment path: the text does not fit the audio")
    path = np.empty(n_t, dtype=np.int64)
    row = {int(v): r for r, v in enumerate(dest)}
    for t in range(n_t - 1, -1, -1):
        path[t] = s
        code = int(back[t, s])
        s = s if code == 0 else s - 1 if code == 1 else int(src[row[s // 3], code - 2])
    return path, total


def _segments(path, emit, stay, move, units, prons, mdef) -> tuple[WordSeg, ...]:
    """Cut the state path into states, phones and words (scores: emissions + transitions),
    and place every skipped word at the frame where the path jumped over it."""
    n_t = path.size
    gain = emit[np.arange(n_t), path]
    same = path[1:] == path[:-1]
    gain[1:] += np.where(same, stay[path[:-1]], move[path[:-1]])  # arc costs are not counted
    cuts = np.flatnonzero(np.r_[True, path[1:] // 3 != path[:-1] // 3])  # unit visits
    ends = np.r_[cuts[1:], n_t]
    out: list[WordSeg] = []
    current: list[PhoneSeg] = []
    for a, b in zip(cuts.tolist(), ends.tolist(), strict=True):
        u = int(path[a]) // 3
        unit = units[u]
        states = _states(path[a:b], gain[a:b], a, unit)
        score = sum(x.score for x in states)
        if unit.kind == FILLER:
            out.append(WordSeg(GARBAGE, a, b, (PhoneSeg(GARBAGE, a, b, score, states),)))
            continue
        phone = PhoneSeg(mdef.ciphones[unit.ci], a, b, score, states)
        if unit.kind == SILENCE:
            out.append(WordSeg("<sil>", a, b, (phone,)))
            continue
        current.append(phone)
        if len(current) == len(prons[unit.word]):
            out.append(WordSeg(word_name(prons[unit.word]), current[0].start, b, tuple(current)))
            current = []
    return _with_omitted(tuple(out), path, units, prons)


def _states(path, gain, offset: int, unit: _Unit) -> tuple[StateSeg, ...]:
    cuts = np.flatnonzero(np.r_[True, path[1:] != path[:-1]])
    ends = np.r_[cuts[1:], path.size]
    return tuple(
        StateSeg(
            unit.senones[int(path[a]) % 3],
            offset + a,
            offset + b,
            round(float(gain[a:b].sum())),
        )
        for a, b in zip(cuts.tolist(), ends.tolist(), strict=True)
    )


def _with_omitted(segs, path, units, prons) -> tuple[WordSeg, ...]:
    """Insert the skipped words (zero length, at the first frame after them) in time order."""
    visited = np.unique(path // 3).tolist()
    seen = {units[u].word for u in visited if units[u].kind == PHONE}
    if len(seen) == len(prons):
        return segs
    unit_of = path // 3
    last_unit = {u.word: i for i, u in enumerate(units) if u.kind == PHONE}
    out = list(segs)
    for w in range(len(prons)):
        if w in seen:
            continue
        after = np.flatnonzero(unit_of > last_unit[w])
        t = int(after[0]) if after.size else path.size
        zero = tuple(PhoneSeg(base_phone(p), t, t, 0, ()) for p in prons[w])
        out.append(WordSeg(word_name(prons[w]), t, t, zero))
    # stable: an omitted word sorts before the segment that starts at its skip point,
    # and omitted words keep their text order
    order = sorted(range(len(out)), key=lambda i: (out[i].start, out[i].end > out[i].start, i))
    return tuple(out[i] for i in order)


def speech_in_silences(
    segs: tuple[WordSeg, ...], senscr: np.ndarray, dbfs: np.ndarray, mdef: Mdef | None = None
) -> tuple[WordSeg, ...]:
    """Relabel as :data:`GARBAGE` the runs of speech inside aligned silences.

    Silence is free between words, and on speech it scores closer to the best phone than the
    garbage penalty allows (measured on synthetic speech: 15 units a frame), so an extra word
    in a pause is often aligned as silence. A run of at least :data:`MIN_SPEECH_FRAMES` frames
    as loud as speech (:data:`LOUD_DB`) where the best speech phone beats silence is extra
    speech. Word boundaries do not move.
    """
    mdef = mdef or default_mdef()
    n_t = senscr.shape[0]
    level = np.full(n_t, -np.inf)
    level[: min(n_t, dbfs.size)] = dbfs[:n_t]
    words = [w for w in segs if not w.is_filler and w.end > w.start]
    if not words:
        return segs
    speech_level = float(np.median(np.concatenate([level[w.start : w.end] for w in words])))
    sil = mdef.ciphones.index("SIL")
    speechy = garbage_scores(senscr, mdef) > -senscr[:, mdef.phone_senones[sil]].min(axis=1)
    loud = (level >= speech_level - LOUD_DB) & speechy
    out: list[WordSeg] = []
    for w in segs:
        if w.name != "<sil>":
            out.append(w)
            continue
        out.extend(_split_silence(w, loud))
    return tuple(out)


def _split_silence(w: WordSeg, loud: np.ndarray) -> list[WordSeg]:
    flags = loud[w.start : w.end].astype(np.int8)
    edges = np.flatnonzero(np.diff(np.r_[0, flags, 0]))
    pairs = zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True)
    runs = [(w.start + a, w.start + b) for a, b in pairs]
    runs = [(a, b) for a, b in runs if b - a >= MIN_SPEECH_FRAMES]
    if not runs:
        return [w]
    out, t = [], w.start
    for a, b in runs:
        if a > t:
            out.append(WordSeg("<sil>", t, a, ()))
        out.append(WordSeg(GARBAGE, a, b, ()))
        t = b
    if t < w.end:
        out.append(WordSeg("<sil>", t, w.end, ()))
    return out
