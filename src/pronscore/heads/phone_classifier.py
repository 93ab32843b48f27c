"""A phone classifier over per-phone vectors, the GOP-like columns it gives, and a phone
scorer over the same vectors.

The vectors are a speech encoder's hidden states averaged over each aligned phone
(``features/encoder.py``) and/or the acoustic model's frame posteriors pooled around it
(``features/frame_vectors.py``).

Trained on the phones experts scored fully correct (``training/phone_classifier.py``), it says
how much a phone's encoder vector looks like the canonical phone and how much like its best
rival: the encoder's analogue of pocketsphinx's LPP / LPR (Witt & Young's GOP over a
segment classifier). Its columns join the phone table (``p_enc_*``), so the GBT head's phone,
word and utterance tables use them like any other phone feature.

The :class:`PhoneScorer` maps a vector and its canonical phone straight to the phone's score
(trained on every labelled phone; column ``p_enc_score``).

Inference is numpy (2-layer MLPs with tanh-GELU): no torch import for scoring. Weights are
safetensors files, never a pickle.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pronscore.errors import ModelError
from pronscore.text import PHONE_INDEX, PHONES

WEIGHTS_FILE = "phone_classifier.safetensors"
SCORER_FILE = "phone_scorer.safetensors"
SCORE_COLUMN = "p_enc_score"
SUMMARY = ("p_enc_lpp", "p_enc_lpr", "p_enc_best", "p_enc_entropy")
COLUMNS = SUMMARY + tuple(f"p_enc_lpr_{p}" for p in PHONES)
"""The summary columns, then the canonical phone's log posterior ratio to every phone."""


def gelu_tanh(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(0.7978845608028654 * (x + 0.044715 * x**3)))


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


MLP_ARRAYS = ("mean", "scale", "w1", "b1", "w2", "b2")


@dataclass(frozen=True)
class Mlp:
    """Standardise -> Linear -> GELU (tanh) -> Linear, in numpy: the shape of both per-phone
    networks here (weights trained by ``training/phone_classifier.py``)."""

    mean: np.ndarray  # (D,)
    scale: np.ndarray  # (D,)
    w1: np.ndarray  # (D, H)
    b1: np.ndarray  # (H,)
    w2: np.ndarray  # (H, n_out)
    b2: np.ndarray  # (n_out,)

    def outputs(self, x: np.ndarray) -> np.ndarray:
        """(N, D) -> (N, n_out); NaN rows stay NaN."""
        x = (np.asarray(x, dtype=np.float32) - self.mean) / self.scale
        return gelu_tanh(x @ self.w1 + self.b1) @ self.w2 + self.b2

    def arrays(self) -> dict[str, np.ndarray]:
        return {n: np.ascontiguousarray(getattr(self, n), dtype=np.float32) for n in MLP_ARRAYS}

    def save_as(self, path: Path) -> None:
        from safetensors.numpy import save

        from pronscore.features.cache import atomic_write_bytes

        atomic_write_bytes(path, save(self.arrays()))

    @classmethod
    def load_from(cls, path: Path, n_out: int):
        from safetensors.numpy import load_file

        if not path.is_file():
            raise ModelError("per-phone network weights missing", path=path)
        a = load_file(str(path))
        try:
            net = cls(*(a[n] for n in MLP_ARRAYS))
        except KeyError as exc:
            raise ModelError(f"per-phone network weights lack {exc}", path=path) from None
        if net.w2.shape[1] != n_out:
            raise ModelError(f"per-phone network has {net.w2.shape[1]} outputs", path=path)
        return net


@dataclass(frozen=True)
class PhoneClassifier(Mlp):
    """An :class:`Mlp` with a log-softmax over :data:`PHONES`."""

    def log_posteriors(self, vectors: np.ndarray) -> np.ndarray:
        """(N, D) -> (N, n_phones); NaN rows stay NaN."""
        return log_softmax(self.outputs(vectors))

    def columns(
        self, vectors: np.ndarray, base_phones, *, heard: bool = False
    ) -> dict[str, np.ndarray]:
        """The ``p_enc_*`` columns for phones with canonical ``base_phones`` (NaN without a
        vector: a phone the aligner gave no time); with ``heard``, also :meth:`heard`'s list
        (``"heard"``) from the same posteriors."""
        _check_dim(vectors, self.mean.shape[0])
        logp = self.log_posteriors(vectors)
        out = phone_columns(logp, phone_ids(base_phones))
        if heard:
            out["heard"] = most_likely(logp)
        return out

    def heard(self, vectors: np.ndarray) -> list[str | None]:
        """The most likely phone of each vector (None without a vector): what was heard.

        Far more telling than pocketsphinx's free phone loop (dev, Whisper-base layer 4: another
        phone than the canonical one for 17.6% of the phones experts scored 2 and 90.3% of
        those scored <= 0.5; the loop: 62.0% and 93.2%)."""
        return most_likely(self.log_posteriors(vectors))

    def save(self, out_dir: str | Path) -> None:
        self.save_as(Path(out_dir) / WEIGHTS_FILE)

    @classmethod
    def load(cls, run_dir: str | Path) -> PhoneClassifier:
        return cls.load_from(Path(run_dir) / WEIGHTS_FILE, len(PHONES))


@dataclass(frozen=True)
class PhoneScorer(Mlp):
    """An :class:`Mlp` from [vector, canonical phone one-hot] to the phone's score (0-2),
    trained on every labelled phone: the GBT gets the vector's own verdict on the sound
    (``p_enc_score``), which the classifier's posteriors give only through the canonical
    phone's rank (5-fold speaker CV, default recipe: phone accuracy +0.010, every fold up)."""

    def scores(self, vectors: np.ndarray, base_phones) -> np.ndarray:
        """(N,) predicted scores, NaN for phones without a vector."""
        _check_dim(vectors, self.mean.shape[0] - len(PHONES))
        return self.outputs(scorer_inputs(vectors, base_phones))[:, 0].astype(np.float64)

    def save(self, out_dir: str | Path) -> None:
        self.save_as(Path(out_dir) / SCORER_FILE)

    @classmethod
    def load(cls, run_dir: str | Path) -> PhoneScorer:
        return cls.load_from(Path(run_dir) / SCORER_FILE, 1)


def scorer_inputs(vectors: np.ndarray, base_phones) -> np.ndarray:
    """The :class:`PhoneScorer`'s input: the vector, then the canonical phone one-hot."""
    onehot = np.eye(len(PHONES), dtype=np.float32)[phone_ids(base_phones)]
    return np.concatenate([np.asarray(vectors, np.float32), onehot], axis=1)


def phone_ids(base_phones) -> np.ndarray:
    """Indices in :data:`PHONES` of base phones (no stress digit)."""
    return np.array([PHONE_INDEX[p] for p in base_phones], dtype=int)


def most_likely(logp: np.ndarray) -> list[str | None]:
    """The top phone of each row of log posteriors (None for a NaN row: no vector)."""
    best = np.nan_to_num(logp, nan=-np.inf).argmax(axis=1)
    ok = np.isfinite(logp).all(axis=1)
    return [PHONES[b] if k else None for b, k in zip(best, ok, strict=True)]


def _check_dim(vectors: np.ndarray, want: int) -> None:
    if vectors.shape[1] != want:
        raise ModelError(
            f"per-phone vectors have {vectors.shape[1]} values, the phone networks were "
            f"trained on {want} (another encoder or other layers?)"
        )


def phone_columns(logp: np.ndarray, canonical: np.ndarray) -> dict[str, np.ndarray]:
    """Log posterior of the canonical phone, its margin over the best other phone, whether it
    is the top phone, and the posterior's entropy."""
    rows = np.arange(len(canonical))
    lpp = logp[rows, canonical]
    rivals = logp.copy()
    rivals[rows, canonical] = -np.inf
    with np.errstate(invalid="ignore"):
        best = (logp.argmax(axis=1) == canonical).astype(np.float64)
        entropy = -(np.exp(logp) * logp).sum(axis=1)
    best[~np.isfinite(lpp)] = np.nan
    out = dict(zip(SUMMARY, (lpp, lpp - rivals.max(axis=1), best, entropy), strict=True))
    lpr = lpp[:, None] - logp  # which phones the sound is heard as, not only how well it fits
    out.update({f"p_enc_lpr_{p}": lpr[:, k] for k, p in enumerate(PHONES)})
    return out


@dataclass(frozen=True)
class EncoderChecks:
    """Does the speech say the text? Thresholds on the classifier's canonical log posterior
    (``p_enc_lpp``), set at training from the training readings' cross-fitted columns.

    A reading whose phones average below ``utterance_below`` (fewer than ``utterance_quantile``
    of the training readings do) is a mismatch: another text, or no speech of it. A word whose
    phones average below ``word_below`` (the ``word_quantile`` of words experts scored >= 8)
    is flagged mispronounced. Dev, first 120 utterances, Whisper-base layer 4: utterance mean
    -1.26 for the right text and -7.41 for another utterance's; a substituted word -8.2 against
    -1.1 for words scored >= 8.
    """

    utterance_below: float
    word_below: float
    utterance_quantile: float = 0.005
    word_quantile: float = 0.02
    # the phone column averaged; with a CTC phone recogniser its alignment-free share of the
    # canonical phone, ``p_ctc_sf``: simulated over 150 readings (out of fold), another
    # utterance's text fell below the reading bar in 150 of 150 and a word replaced by another
    # utterance's word below the word bar in 94.6%, without any synthetic training rows
    column: str = "p_enc_lpp"
    # with the recogniser's read extent (``ctc_said_*``, features/ctc_gop.read_extent): a
    # reading below the bar is still this text when a prefix of it explains the audio within
    # this margin per phone (``said_margin_quantile`` of the training readings' texts explain
    # theirs within it; out of fold, the 0.99 quantile is 3.9 and the 0.995 one 5.5) and
    # passes the bar on its own -- a reading that stopped early, stretched by the aligner
    # over words never said. None: no such rule.
    said_margin_within: float | None = None
    said_margin_quantile: float = 0.99

    @property
    def reason(self) -> str:
        share = 100 * (1 - self.utterance_quantile)
        return (
            "the speech does not sound like the text (its phones are recognised less well "
            f"than in {share:g}% of the training readings): another text, or not this one"
        )

    def evidence(self, phones):
        """The check's column over the phones the aligner read: the alignment-free
        ``p_ctc_sf`` of words it marked omitted (no time) says they were not said, which is
        completeness's business, not a sign of another text (a half reading otherwise fails
        the reading bar every time)."""
        values = phones[self.column]
        return values.where(phones["start"].notna()) if "start" in phones else values

    def mismatched(self, phones, utts=None) -> set[str]:
        """Utterance ids of ``phones`` (rows with the check's column) that fail the check;
        ``utts`` (with ``ctc_said_*`` columns) lets a reading that stopped early pass."""
        means = self.evidence(phones).groupby(phones["id"].astype(str)).mean()
        failed = set(means.index[means < self.utterance_below])
        return failed - self.read_in_part(utts) if failed else failed

    def read_in_part(self, utts) -> set[str]:
        """Ids of ``utts`` whose read extent says a prefix of the text was read (see
        ``said_margin_within``); none without the rule or the columns."""
        if self.said_margin_within is None or utts is None or "ctc_said_sf" not in utts:
            return set()
        ok = (utts["ctc_said_sf"] >= self.utterance_below) & (
            utts["ctc_said_margin"] <= self.said_margin_within
        )
        return set(utts["id"][ok.to_numpy()].astype(str))

    def flagged_words(self, phones) -> set[tuple[str, int]]:
        """(id, word_index) of the words whose phones average below ``word_below``."""
        keys = [phones["id"].astype(str), phones["word_index"]]
        means = self.evidence(phones).groupby(keys).mean()
        return {(str(u), int(w)) for u, w in means.index[means < self.word_below]}

    def to_dict(self) -> dict[str, float]:
        return asdict(self)
