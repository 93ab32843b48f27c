"""Per-phone columns from a CTC phone recogniser's frame posteriors (:mod:`~pronscore.acoustic.
phone_ctc`): alignment-free GOP, what was heard, and the posterior over the aligned span.

Alignment-free (GOP-SF style, Cao et al. 2024): for canonical phone ``i`` of the utterance,
the CTC likelihood of the whole canonical sequence is compared with the sequences where
position ``i`` holds any phone or none, summed over every segmentation (the CTC forward
algorithm; batched through ``torch.nn.functional.ctc_loss``):

* ``p_ctc_sf``    log share of the canonical phone among the 39 phones and the deletion;
* ``p_ctc_del``   log share of the deletion;
* ``p_ctc_rival`` log share of the best other phone -- the ``heard`` phone when it beats the
  canonical one.

Over the phone's aligned span (the pocketsphinx times at the encoder's 50 frames/s):
``p_ctc_lpp`` and ``p_ctc_lpr_min`` (:func:`~pronscore.align.ctc.posterior_gop`, non-blank
posteriors) and ``p_ctc_peak`` (log of the canonical phone's highest posterior there).

The alignment-free columns are over the phones the aligner read (all of them when it placed
none): the words of a partial reading it left out get none, as they get no span.

Per utterance: ``u_ctc_per`` (phone error rate of the greedy decoding against the canonical
phones; a reading of another text scores near 1) and ``u_ctc_ll`` (log-likelihood of the
canonical sequence per phone).

How much of the reading the recogniser hears said (:func:`read_extent`; checks, not tree
features): ``said_words``, the number of read words whose prefix of the text explains the audio
best; ``said_margin``, how far that prefix's likelihood falls short of the best single path
(per phone; a reading of another text is far off); ``said_sf``, the mean ``p_ctc_sf`` of the
prefix's phones when the path holds only that prefix. On a reading that stopped early but that
the aligner stretched over more words, the words never said sink every share; the prefix shows
what was read.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pronscore.align.ctc import CTC_INDEX, CTC_VOCAB, posterior_gop
from pronscore.features.deep import frame_span

BLANK = 0
PHONE_COLUMNS = ("p_ctc_sf", "p_ctc_del", "p_ctc_rival", "p_ctc_lpp", "p_ctc_lpr_min", "p_ctc_peak")
UTTERANCE_COLUMNS = ("u_ctc_per", "u_ctc_ll")
EXTENT_COLUMNS = ("said_words", "said_margin", "said_sf")
DESCRIPTIONS = {
    "p_ctc_sf": "CTC recogniser: log share of the canonical phone among all phones and none "
    "at its position (alignment-free GOP)",
    "p_ctc_del": "CTC recogniser: log share of the phone's deletion",
    "p_ctc_rival": "CTC recogniser: log share of the best other phone at its position",
    "p_ctc_lpp": "CTC recogniser: mean log posterior of the phone over its aligned span",
    "p_ctc_lpr_min": "CTC recogniser: lowest mean log posterior ratio to another phone there",
    "p_ctc_peak": "CTC recogniser: log of the phone's highest posterior over its span",
    "u_ctc_per": "CTC recogniser: phone error rate of its greedy decoding vs the text",
    "u_ctc_ll": "CTC recogniser: log-likelihood of the canonical phones, per phone",
    "ctc_said_words": "CTC recogniser: read words in the prefix of the text that explains the "
    "audio best",
    "ctc_said_margin": "CTC recogniser: best single path minus that prefix's log-likelihood, "
    "per phone",
    "ctc_said_sf": "CTC recogniser: mean p_ctc_sf of that prefix's phones over the prefix alone",
}
_CHUNK = 16  # positions per batched forward: bounds memory at T x 16*40 x 40 floats


@dataclass(frozen=True)
class CtcColumns:
    phones: dict[str, np.ndarray]  # column -> (n_phones,) float
    heard: tuple[str | None, ...]  # per phone: the phone heard instead, None when canonical
    utterance: dict[str, float]
    said: dict[str, float]  # EXTENT_COLUMNS


def _sequences_ll(lp, seqs: list[list[int]]) -> np.ndarray:
    """CTC log-likelihood of each target sequence over all of ``lp`` (a torch (T, V) tensor)."""
    import torch

    lens = torch.tensor([len(s) for s in seqs])
    flat = torch.tensor([p for s in seqs for p in s], dtype=torch.long)
    x = lp[:, None, :].expand(-1, len(seqs), -1)
    nll = torch.nn.functional.ctc_loss(
        x,
        flat,
        torch.full((len(seqs),), lp.shape[0]),
        lens,
        blank=BLANK,
        reduction="none",
        zero_infinity=False,
    )
    return -nll.double().numpy()


def _torch(log_probs: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(log_probs, dtype=np.float32))


def _alternatives_ll(log_probs: np.ndarray, targets: list[int]) -> np.ndarray:
    """(N, V) log-likelihoods: column 0 position i deleted, column v phone v at position i."""
    lp = _torch(log_probs)
    n, v = len(targets), lp.shape[1]
    out = np.empty((n, v))
    for c0 in range(0, n, _CHUNK):
        seqs = []
        for i in range(c0, min(n, c0 + _CHUNK)):
            seqs.append(targets[:i] + targets[i + 1 :])
            seqs += [[*targets[:i], k, *targets[i + 1 :]] for k in range(1, v)]
        out[c0 : c0 + len(seqs) // v] = _sequences_ll(lp, seqs).reshape(-1, v)
    return out


def _shares(alts: np.ndarray, targets: Sequence[int]) -> np.ndarray:
    """Per position: log share of its canonical phone among the alternatives (``alts`` rows;
    NaN where no alternative fits the audio)."""
    total = np.logaddexp.reduce(alts, axis=1)
    with np.errstate(invalid="ignore"):  # -inf - -inf: no path at all
        return alts[np.arange(len(targets)), list(targets)] - total


def read_extent(
    log_probs: np.ndarray, words: Sequence[list[int]], sf: np.ndarray
) -> dict[str, float]:
    """:data:`EXTENT_COLUMNS` of a reading: ``words``, the read words' CTC targets in order;
    ``sf``, the ``p_ctc_sf`` of their phones (concatenated) with all of them in the path."""
    out = dict.fromkeys(EXTENT_COLUMNS, math.nan)
    lp = np.asarray(log_probs, dtype=np.float32)
    if not words or not lp.shape[0]:
        return out
    prefixes = [[t for w in words[: k + 1] for t in w] for k in range(len(words))]
    ll = _sequences_ll(_torch(lp), prefixes)
    best = int(np.argmax(ll))
    said = prefixes[best]
    out["said_words"] = float(best + 1)
    out["said_margin"] = float(lp.max(axis=1).sum() - ll[best]) / len(said)
    if best + 1 < len(words):  # the words it does not hear said leave the path
        out["said_sf"] = float(_shares(_alternatives_ll(lp, said), said).mean())
    else:
        out["said_sf"] = float(np.nanmean(sf))
    return out


def _greedy(log_probs: np.ndarray) -> list[int]:
    best = np.asarray(log_probs).argmax(axis=1)
    return [int(b) for k, b in enumerate(best) if b != BLANK and (k == 0 or b != best[k - 1])]


def _edit_distance(a: Sequence[int], b: Sequence[int]) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


def _timed(start, end) -> bool:
    return start is not None and end is not None and math.isfinite(start) and math.isfinite(end)


def _span_columns(lp: np.ndarray, token: int, start, end, rate: float) -> tuple[float, ...]:
    if not _timed(start, end):
        return (math.nan,) * 3
    a, b = frame_span(float(start), float(end), rate, lp.shape[0])
    g = posterior_gop(lp, a, b, token, BLANK)
    return g["lpp"], g["lpr_min"], float(lp[a:b, token].max())


def ctc_phone_columns(
    log_probs: np.ndarray,
    phones: Sequence[str],
    starts: Sequence[float | None],
    ends: Sequence[float | None],
    frame_rate: float,
    word_index: Sequence[int] | None = None,
) -> CtcColumns:
    """The columns of one utterance's canonical ``phones`` (base phones, CTC_VOCAB names)
    from its (T, |CTC_VOCAB|) log-posteriors; ``starts``/``ends`` in seconds (None: no time);
    ``word_index``: each phone's word (the read extent's units; without it, one word)."""
    lp = np.asarray(log_probs, dtype=np.float32)
    targets = [CTC_INDEX[p] for p in phones]
    n = len(targets)
    cols = {c: np.full(n, np.nan) for c in PHONE_COLUMNS}
    heard: list[str | None] = [None] * n
    # the sequence that was said: the phones the aligner read (words it left out have no
    # time; forcing them into the path would sink every phone's share on a half reading),
    # all of them when it placed none
    read = [i for i in range(n) if _timed(starts[i], ends[i])] or list(range(n))
    said = [targets[i] for i in read]
    alts = np.full((n, lp.shape[1] if lp.ndim == 2 else 1), -np.inf)
    if said and lp.shape[0]:
        alts[read] = _alternatives_ll(lp, said)
        cols["p_ctc_sf"][read] = _shares(alts[read], said)
    for i, tok in enumerate(targets):
        total = np.logaddexp.reduce(alts[i])
        if np.isfinite(total):
            rival = np.delete(alts[i], [BLANK, tok]).max()
            cols["p_ctc_del"][i] = alts[i, BLANK] - total
            cols["p_ctc_rival"][i] = rival - total
            best = int(np.argmax(alts[i, 1:])) + 1
            heard[i] = CTC_VOCAB[best] if best != tok else None
        if lp.shape[0]:
            span = _span_columns(lp, tok, starts[i], ends[i], frame_rate)
            cols["p_ctc_lpp"][i], cols["p_ctc_lpr_min"][i], cols["p_ctc_peak"][i] = span
    k = len(said)
    ll = float(alts[read[0], said[0]]) if k else math.nan  # one position canonical: the text
    per = _edit_distance(_greedy(lp), said) / k if k and lp.shape[0] else math.nan
    utt = {"u_ctc_per": per, "u_ctc_ll": ll / k if k and math.isfinite(ll) else math.nan}
    extent = read_extent(lp, _words(read, targets, word_index), cols["p_ctc_sf"][read])
    return CtcColumns(cols, tuple(heard), utt, extent)


def _words(read: list[int], targets: list[int], word_index: Sequence[int] | None):
    """The read positions' targets grouped into words, in order (one word when unknown)."""
    if word_index is None:
        return [[targets[i] for i in read]] if read else []
    out: dict[int, list[int]] = {}
    for i in read:
        out.setdefault(int(word_index[i]), []).append(targets[i])
    return [out[w] for w in sorted(out)]
