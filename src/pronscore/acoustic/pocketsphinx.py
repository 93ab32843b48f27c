"""The acoustic model shipped inside the ``pocketsphinx`` wheel (en-us PTM GMM-HMM, 100 frames/s).

:class:`PocketsphinxModel` makes two fresh decoders per utterance (about 6 ms each; a reused
decoder carries search state from one utterance into the next, so scores would depend on what was
decoded before):

* an *alignment* decoder: word-level forced alignment (FSG) then a second, state-level pass;
  its per-frame scores for all 5,126 senones are written by pocketsphinx to ``senlogdir`` (the
  only way to reach them) on a tmpfs and read back as an int16 ``T x n_sen`` array;
* a *phone-loop* decoder (``add_allphone_file``, uniform phone probabilities). It is separate
  because pocketsphinx shares beams between the searches of one decoder.

``ModelConfig.aligner = "viterbi"`` is a faster mode (RTF ~0.05 instead of ~0.14): a single
phone-loop pass logs the senone scores (:meth:`PocketsphinxModel.senones_and_loop`), and
:func:`pronscore.align.viterbi.viterbi_align` forced-aligns in numpy with the model's own
triphone senones and transition matrices (optional silences between words; words may be
skipped and extra speech is absorbed by a garbage unit). On real
speech its phone boundaries match pocketsphinx's within a few frames; the senone scores differ
slightly (mean 3 units) because the front end of a fresh decoder starts from other noise and CMN
estimates than the alignment decoder's second pass.

Scores. Pocketsphinx keeps acoustic scores as integers in log base 1.0001 shifted right by 10
bits; one unit is :data:`SCORE_NATS` nats. With ``compallsen=True`` every frame's senone scores
are normalised so that the best senone of the frame scores 0, so all scores are <= 0 and a
per-frame average is already a frame-level GOP against the best unconstrained senone.

Measured facts this module respects (pocketsphinx 5.1.1): ``bestpath=False``; one pseudo-word per
pronunciation added with ``add_word`` (lower-case names; adding an existing name fails, so we
look it up first); ``end_utt()`` always runs in a ``finally``; alignment fields are copied into
tuples at once (holding pocketsphinx iterators segfaults); the first state of an utterance always
reports score 0, so it is recomputed from the senone log; ``Segment.ascore == 1.0001**score``.
"""

from __future__ import annotations

import math
import shutil
import struct
import tempfile
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from pronscore.constants import MAX_DURATION_S, SAMPLE_RATE
from pronscore.errors import AlignmentFailed, ModelError
from pronscore.text import PHONES, base_phone

FRAME_RATE = 100.0
"""Frames per second of the pocketsphinx front end (10 ms shift)."""

SCORE_NATS = 1024 * math.log(1.0001)
"""Nats per pocketsphinx score unit (log base 1.0001, scores shifted by 10 bits)."""

MODEL_PHONES: tuple[str, ...] = (*PHONES, "SIL", "+NSN+", "+SPN+")
"""Column order of per-frame phone scores: the 39 ARPAbet phones, silence, then two noises."""

FILLER_WORDS = frozenset({"<sil>", "<s>", "</s>", "[NOISE]", "+NSN+", "+SPN+", "SIL"})


def model_dir() -> Path:
    """The en-us acoustic model folder inside the installed pocketsphinx wheel."""
    import pocketsphinx

    path = Path(pocketsphinx.get_model_path()) / "en-us" / "en-us"
    if not (path / "mdef").is_file():
        raise ModelError("pocketsphinx en-us model not found", path=path)
    return path


@dataclass(frozen=True, eq=False)  # identity hash: holds an array
class Mdef:
    """What we need from the binary model definition: senone -> base (CI) phone, and the
    senones and transition matrix of every (triphone) HMM."""

    ciphones: tuple[str, ...]
    sen2ci: np.ndarray  # (n_sen,) int32 index into ciphones
    phone_senones: np.ndarray  # (n_phone, 3) senones of each CI phone / triphone
    phone_tmat: np.ndarray  # (n_phone,) transition matrix id
    tri_keys: np.ndarray  # sorted int64 keys of (base, left, right, word position)
    tri_pids: np.ndarray  # phone id of each key

    def phone_id(self, base: int, left: int, right: int, wpos: int) -> int:
        """Triphone id, or the CI phone when the model has no such triphone."""
        key = _tri_key(base, left, right, wpos)
        i = int(np.searchsorted(self.tri_keys, key))
        if i < self.tri_keys.size and self.tri_keys[i] == key:
            return int(self.tri_pids[i])
        return base

    @property
    def n_sen(self) -> int:
        return int(self.sen2ci.size)


def read_mdef(path: str | Path) -> Mdef:
    """Parse pocketsphinx's binary ``mdef`` (format ``BMDF`` v1, little endian, homogeneous).

    Layout: magic, version, header length + text, ten int32 counts, CI phone names (NUL
    terminated, padded to 4 bytes), the CD tree (8 bytes a node), the phone table (ssid, tmat,
    4 info bytes: filler flag for CI phones, ``wpos base left right`` for triphones) and, at the
    very end of the file, the senone sequences (``n_sseq x n_emit_state`` int16).
    """
    data = Path(path).read_bytes()
    magic, version, hlen = struct.unpack("<4sii", data[:12])
    if magic != b"BMDF" or version != 1:
        raise ModelError("not a little-endian binary mdef v1", path=path)
    off = 12 + hlen
    n_ci, n_phone, n_emit, _, n_sen, _, n_sseq, _, n_cd_tree, _ = struct.unpack(
        "<10i", data[off : off + 40]
    )
    off += 40
    names = tuple(n.decode("ascii") for n in data[off:].split(b"\0", n_ci)[:n_ci])
    off += sum(len(n) + 1 for n in names)
    off = (off + 3) // 4 * 4 + 8 * n_cd_tree
    phone_t = np.dtype([("ssid", "<i4"), ("tmat", "<i4"), ("info", "u1", 4)])
    table = np.frombuffer(data, dtype=phone_t, count=n_phone, offset=off)
    sseq = np.frombuffer(data[len(data) - 2 * n_sseq * n_emit :], dtype="<i2").reshape(
        n_sseq, n_emit
    )
    if sseq.max() != n_sen - 1 or sseq[0].tolist() != list(range(n_emit)):
        raise ModelError("unexpected senone sequence table", path=path)
    base = np.where(np.arange(n_phone) < n_ci, np.arange(n_phone), table["info"][:, 1])
    sen2ci = np.full(n_sen, -1, dtype=np.int32)
    sen2ci[sseq[table["ssid"]].ravel()] = np.repeat(base, n_emit)
    if (sen2ci < 0).any():
        raise ModelError("some senones belong to no phone", path=path)
    info = table["info"][n_ci:].astype(np.int64)
    keys = _tri_key(info[:, 1], info[:, 2], info[:, 3], info[:, 0])
    order = np.argsort(keys, kind="stable")
    pids = np.arange(n_ci, n_phone)[order]
    senones = sseq[table["ssid"]].astype(np.int64)
    return Mdef(names, sen2ci, senones, table["tmat"].copy(), keys[order], pids)


WPOS_INTERNAL, WPOS_BEGIN, WPOS_END, WPOS_SINGLE = 0, 1, 2, 3  # Sphinx word positions


def _tri_key(base, left, right, wpos):
    return ((base * 64 + left) * 64 + right) * 4 + wpos


def read_tmat(path: str | Path) -> np.ndarray:
    """Transition log-probabilities ``(n_tmat, 3, 4)`` in pocketsphinx score units (rows
    normalised; column 3 is the exit). Format: s3 header, byte-order marker, 4 int32 sizes,
    float32 values, checksum."""
    data = Path(path).read_bytes()
    h = data.find(b"endhdr\n") + len(b"endhdr\n") + 4
    n, src, dst, count = np.frombuffer(data, "<i4", count=4, offset=h)
    t = np.frombuffer(data, "<f4", count=int(count), offset=h + 16).reshape(n, src, dst)
    t = t.astype(np.float64) / t.sum(axis=2, keepdims=True)
    with np.errstate(divide="ignore"):
        return np.log(t) / SCORE_NATS


@lru_cache(maxsize=1)
def default_tmat() -> np.ndarray:
    return read_tmat(model_dir() / "transition_matrices")


@lru_cache(maxsize=1)
def default_mdef() -> Mdef:
    return read_mdef(model_dir() / "mdef")


@dataclass(frozen=True)
class StateSeg:
    senone: int
    start: int
    end: int  # exclusive
    score: int  # pocketsphinx units


@dataclass(frozen=True)
class PhoneSeg:
    phone: str  # base phone as pocketsphinx names it (``SIL`` for silence)
    start: int
    end: int
    score: int
    states: tuple[StateSeg, ...]


@dataclass(frozen=True)
class WordSeg:
    name: str  # pseudo-word name, or a filler such as ``<sil>``
    start: int
    end: int
    phones: tuple[PhoneSeg, ...]

    @property
    def is_filler(self) -> bool:
        return self.name in FILLER_WORDS or self.name.startswith(("<", "["))


@dataclass(frozen=True)
class ForcedResult:
    """State-level forced alignment plus the senone scores of every frame."""

    words: tuple[WordSeg, ...]  # fillers (silences) included, in time order
    senscr: np.ndarray  # (T, n_sen) int16, >= 0, best senone of a frame is 0; lower is better


@dataclass(frozen=True)
class LoopSeg:
    phone: str
    start: int
    end: int
    score: int


@dataclass(frozen=True)
class ModelConfig:
    """Decoder settings that matter for scoring (saved in ``FEATURES_DIR/meta.json``)."""

    beam: float = 1e-60
    pbeam: float = 1e-60
    wbeam: float = 1e-40
    topn: int = 4
    """Gaussians per codebook evaluated for each senone score (pocketsphinx's default 4; the
    all-senone scoring of every frame is most of the scoring time, 2 is ~25% faster)."""
    max_duration: float = MAX_DURATION_S
    aligner: str = "pocketsphinx"
    """"pocketsphinx": its two-pass state alignment (3 decoder passes with the phone loop);
    "viterbi": one phone-loop pass for senone scores, then a numpy Viterbi over the same
    triphone HMMs (about 3x faster; boundaries agree within a few frames) that also tolerates
    skipped, repeated and extra words."""
    skip_penalty: float = 600.0
    """"viterbi" only: cost of omitting one word (pocketsphinx score units, ~0.1 nats each).
    Measured on 60 dev readings (431 words) and their first halves: 300 left out 8 words that
    were read and put 85% of half readings' read share in [0.3, 0.7]; 600 with
    ``stop_penalty`` 450: 0 words and 95%."""
    garbage_penalty: float = 60.0
    """"viterbi" only: per-frame cost of extra speech (garbage) against the best
    context-independent speech senone of the frame (score units)."""
    insert_penalty: float = 600.0
    """"viterbi" only: cost of entering a span of extra speech (score units)."""
    stop_penalty: float | None = 450.0
    """"viterbi" only: at most this for skipping every word up to the end (a reading that
    stopped early); ``None``: ``skip_penalty`` per word."""
    warp: float | None = None
    """Vocal-tract length normalisation: the front end's frequency axis is divided by this
    (pocketsphinx ``warp_type inverse_linear``); ``None``: no warping."""


def word_name(phones: Sequence[str]) -> str:
    """The pseudo-word for one pronunciation: ``("K", "AO1", "L")`` -> ``"k_ao_l"``."""
    return "_".join(base_phone(p).lower() for p in phones)


def _tmp_root() -> str | None:
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() else None


def read_senlog(path: str | Path, n_sen: int) -> np.ndarray:
    """Read a ``senlogdir`` file written with ``compallsen=True``: ``(T, n_sen)`` int16."""
    data = Path(path).read_bytes()
    head = data.find(b"endhdr\n")
    if head < 0:
        raise ModelError("senone log without header", path=path)
    body = data[head + len(b"endhdr\n") + 4 :]  # 4 bytes: byte-order marker
    frames = np.frombuffer(body, dtype="<i2")
    if frames.size % (n_sen + 1):
        raise ModelError("senone log is not all-senone (compallsen off?)", path=path)
    frames = frames.reshape(-1, n_sen + 1)
    if frames.size and (frames[:, 0] != n_sen).any():
        raise ModelError("senone log has frames with inactive senones", path=path)
    return frames[:, 1:]


class PocketsphinxModel:
    """Makes a fresh decoder for every utterance; not thread-safe (one senone-log folder):
    build one per worker process."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        self.config = config or ModelConfig()
        if self.config.aligner not in ("pocketsphinx", "viterbi"):
            raise ModelError(f"unknown aligner {self.config.aligner!r}", field="aligner")
        if self.config.warp is not None and not 0.5 <= self.config.warp <= 2.0:
            raise ModelError(f"warp {self.config.warp} is outside [0.5, 2]", field="warp")
        self.mdef = default_mdef()
        self._tmp = tempfile.mkdtemp(prefix="pronscore-ps-", dir=_tmp_root())
        self._cleanup = weakref.finalize(self, shutil.rmtree, self._tmp, True)
        self._senlog = Path(self._tmp) / "senlog"
        self._senlog.mkdir()
        empty_dict = Path(self._tmp) / "empty.dict"
        empty_dict.write_text("")
        common = {
            "hmm": str(model_dir()),
            "lm": None,
            "dict": str(empty_dict),
            "loglevel": "FATAL",  # failures come back as results, not stderr noise
            "bestpath": False,
            "compallsen": True,
            "beam": self.config.beam,
            "pbeam": self.config.pbeam,
            "wbeam": self.config.wbeam,
            "topn": self.config.topn,
            # always set: pocketsphinx keeps the warp in C globals, and a decoder made with
            # none after a warped one leaves the next warped decoder unwarped (measured);
            # 1.0 is the identity (the same senone scores as no warp, measured)
            "warp_params": str(1.0 if self.config.warp is None else self.config.warp),
        }
        self._common = common
        self._decoder()  # a bad model or setting is a ModelError now, not at the first score

    def _decoder(self, *, senlog: bool = False):
        """A fresh decoder (~6 ms) for every utterance. Both searches keep state from one
        utterance to the next (measured: the phone loop's scores and the forced alignment's
        boundaries of the same audio change after other utterances were decoded, and the
        dictionary grows with every new word), so reusing a decoder would make a score depend
        on what was scored before."""
        import pocketsphinx as ps

        extra = {"senlogdir": str(self._senlog)} if senlog else {}
        try:
            return ps.Decoder(ps.Config(**self._common, **extra))
        except RuntimeError as exc:
            raise ModelError(f"cannot start pocketsphinx ({exc})", path=model_dir()) from exc

    def _loop_decoder(self, senlog: bool = False):
        """A fresh phone-loop decoder (uniform phone probabilities)."""
        decoder = self._decoder(senlog=senlog)
        try:
            decoder.add_allphone_file("phone_loop", None)
            decoder.activate_search("phone_loop")
        except RuntimeError as exc:
            raise ModelError(f"cannot start pocketsphinx ({exc})", path=model_dir()) from exc
        return decoder

    def close(self) -> None:
        self._cleanup()

    @staticmethod
    def _ensure_word(decoder, phones: Sequence[str]) -> str:
        name = word_name(phones)
        if decoder.lookup_word(name) is None:
            decoder.add_word(name, " ".join(base_phone(p) for p in phones), True)
        return name

    def _decode(self, decoder, raw: bytes) -> None:
        decoder.start_utt()
        try:
            decoder.process_raw(raw, full_utt=True)
        finally:
            decoder.end_utt()

    def force_align(self, raw: bytes, prons: Sequence[Sequence[str]]) -> ForcedResult:
        """Two-pass forced alignment of ``prons`` (one phone tuple per word) on int16 audio.

        Raises :class:`AlignmentFailed` when pocketsphinx finds no path (text that does not fit,
        audio too short for the phones, ...).
        """
        if not prons or any(not p for p in prons):
            raise AlignmentFailed("nothing to align (empty pronunciation)")
        decoder = self._decoder(senlog=True)
        names = [self._ensure_word(decoder, p) for p in prons]
        for f in self._senlog.iterdir():
            f.unlink()
        try:
            decoder.set_align_text(" ".join(names))
            self._decode(decoder, raw)
            hyp = decoder.hyp()
            if hyp is None or hyp.hypstr.split() != names:
                raise AlignmentFailed("no alignment path: the text does not fit the audio")
            decoder.set_alignment()
            for f in self._senlog.iterdir():
                f.unlink()
            self._decode(decoder, raw)
            words = _copy_alignment(decoder.get_alignment())
        except RuntimeError as exc:
            raise AlignmentFailed(f"pocketsphinx alignment failed ({exc})") from exc
        logs = sorted(self._senlog.iterdir())
        if not logs:
            raise AlignmentFailed("pocketsphinx wrote no senone scores")
        senscr = read_senlog(logs[-1], self.mdef.n_sen)
        if not words:
            raise AlignmentFailed("no alignment path: the text does not fit the audio")
        return ForcedResult(_fix_first_state(words, senscr), senscr)

    def senones_and_loop(self, raw: bytes) -> tuple[np.ndarray, tuple[LoopSeg, ...]]:
        """One decoder pass (the phone loop, logging all senone scores): what
        :func:`pronscore.align.viterbi.viterbi_align` needs, the fast alternative to
        :meth:`force_align`."""
        for f in self._senlog.iterdir():
            f.unlink()
        loop = self.phone_loop(raw, senlog=True)
        logs = sorted(self._senlog.iterdir())
        if not logs:
            raise AlignmentFailed("pocketsphinx wrote no senone scores")
        return read_senlog(logs[-1], self.mdef.n_sen), loop

    def phone_loop(self, raw: bytes, *, senlog: bool = False) -> tuple[LoopSeg, ...]:
        """Free phone recognition (uniform phone loop); segments in time order."""
        loop = self._loop_decoder(senlog)
        try:
            self._decode(loop, raw)
            segs = [(s.word, s.start_frame, s.end_frame, s.ascore) for s in loop.seg()]
        except RuntimeError as exc:
            raise AlignmentFailed(f"pocketsphinx phone loop failed ({exc})") from exc
        return tuple(
            LoopSeg(w, s, e + 1, round(math.log(max(a, 1e-300)) / math.log(1.0001)))
            for w, s, e, a in segs
        )


def _copy_alignment(al) -> tuple[WordSeg, ...]:
    """Copy every field out of pocketsphinx's alignment at once (its iterators must not live)."""
    if al is None:
        return ()
    words = []
    for w in al:
        phones = []
        for p in w:
            states = tuple(StateSeg(int(s.name), s.start, s.start + s.duration, s.score) for s in p)
            phones.append(PhoneSeg(p.name, p.start, p.start + p.duration, p.score, states))
        words.append(WordSeg(w.name, w.start, w.start + w.duration, tuple(phones)))
    return tuple(words)


def _fix_first_state(words: tuple[WordSeg, ...], senscr: np.ndarray) -> tuple[WordSeg, ...]:
    """Pocketsphinx reports 0 for the utterance's first state: use its senone scores instead."""
    w0 = words[0]
    p0 = w0.phones[0]
    s0 = p0.states[0]
    if s0.score != 0 or s0.end > senscr.shape[0]:
        return words
    score = -int(senscr[s0.start : s0.end, s0.senone].astype(np.int64).sum())
    state = StateSeg(s0.senone, s0.start, s0.end, score)
    phone = PhoneSeg(p0.phone, p0.start, p0.end, p0.score + score, (state, *p0.states[1:]))
    word = WordSeg(w0.name, w0.start, w0.end, (phone, *w0.phones[1:]))
    return (word, *words[1:])


def phone_frame_scores(senscr: np.ndarray, mdef: Mdef | None = None) -> np.ndarray:
    """``(T, 42)`` per-frame log-likelihoods in nats of :data:`MODEL_PHONES`.

    Each phone's score is its best senone in the frame (max-pooling), relative to the frame's
    best senone overall (so the best phone of a frame scores 0).
    """
    mdef = mdef or default_mdef()
    order, starts, cols = _pool_plan(mdef)
    pooled = np.minimum.reduceat(senscr[:, order], starts, axis=1)  # (T, n_ci)
    return (-SCORE_NATS * pooled[:, cols]).astype(np.float32)


@lru_cache(maxsize=4)
def _pool_plan(mdef: Mdef) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    order = np.argsort(mdef.sen2ci, kind="stable")
    ci_sorted = mdef.sen2ci[order]
    starts = np.flatnonzero(np.r_[True, ci_sorted[1:] != ci_sorted[:-1]])
    present = ci_sorted[starts]
    pos = {int(c): i for i, c in enumerate(present)}
    cols = np.array([pos[mdef.ciphones.index(p)] for p in MODEL_PHONES])
    return order, starts, cols


def samples_to_raw(samples: np.ndarray) -> bytes:
    """16 kHz float32 samples -> the int16 bytes pocketsphinx reads."""
    from pronscore.audio import to_int16_bytes

    return to_int16_bytes(samples)


def n_frames(samples: np.ndarray) -> int:
    """Frames pocketsphinx makes of ``samples`` (10 ms shift), for failed results."""
    return int(len(samples) * FRAME_RATE // SAMPLE_RATE)
