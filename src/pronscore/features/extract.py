"""Alignment + features for one utterance, and for a whole prepared dataset (``FEATURES_DIR``).

FEATURES_DIR layout (version 2)::

    meta.json                      {"version", "extractor": config, "frame_rate": 100,
                                    "columns": {name: description}}
    <split>/utterances.parquet     one row per utterance: id, status ("ok" | "failed"), reason,
                                   duration, n_words, n_phones, u_* features, y_accuracy,
                                   y_completeness, y_fluency, y_prosodic, y_total, speaker, age,
                                   gender
    <split>/words.parquet          one row per word: id, word_index, text, start, end (s),
                                   w_* features, y_accuracy, y_stress, y_total
    <split>/phones.parquet         one row per canonical phone: id, word_index, phone_index,
                                   phone (with stress), base_phone, position (B/I/E/S),
                                   start, end (s), p_* features (p_gop_forced, p_gop_free,
                                   p_lpp, p_duration, p_lpr_<PHONE> x 39, ...), y_score (0-2)
    <split>/frames/<id>.safetensors "phone_scores" float32 (T, 39): per-frame log phone
                                   posteriors at 100 frames/s (senone scores max-pooled per
                                   phone, log-softmax over the model's 42 phones incl. silence
                                   and noise, the 39 speech columns kept, order
                                   pronscore.text.PHONES); "nonspeech_scores" (T, 3): SIL,
                                   +NSN+, +SPN+. T = 0 when the alignment failed.
    <split>/cache/<id>.json        per-utterance records (resume state; parquet is built from them)

Synthetic negatives (:mod:`pronscore.training.negatives`) are a split of the same layout whose
utterances.parquet also has ``synthetic`` and ``donor``, plus ``<split>/negatives.json`` (how
they were made).

``meta.json["extractor"]["model"]["aligner"]`` says which aligner made the features
("pocketsphinx": its own two-pass state alignment; "viterbi": one decoder pass + numpy Viterbi
over the same HMMs, see :mod:`pronscore.acoustic.pocketsphinx`). Scores are in nats.

A failed alignment keeps its words/phones rows, with NaN features and null start/end, so a
downstream model can still predict (low) scores for it. So do the words of a partial reading
that the aligner marked omitted (``w_read`` 0); prosody is computed over the read words only.
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from pronscore.acoustic.pocketsphinx import FRAME_RATE, MODEL_PHONES, ModelConfig
from pronscore.align.base import Alignment, FrameAligner
from pronscore.align.pocketsphinx import PocketsphinxAligner
from pronscore.audio import normalise_level, speech_span, validate_samples
from pronscore.constants import SAMPLE_RATE, UTTERANCE_ASPECTS
from pronscore.errors import CorpusError
from pronscore.features.cache import UtteranceCache, atomic_write_bytes, atomic_write_json
from pronscore.features.gop import (
    N_SPEECH,
    PHONE_FEATURES,
    log_posteriors,
    nan_phone_features,
    phone_features,
)
from pronscore.features.prosody import (
    UTTERANCE_PROSODY,
    WORD_FEATURES,
    prosody_tracks,
    utterance_prosody,
    word_prosody,
)
from pronscore.text import base_phone

FEATURES_VERSION = 2  # 2: coverage arcs in the Viterbi aligner, w_read, heard, level, trim

UTTERANCE_GOP: dict[str, str] = {
    "u_gop_forced_mean": "mean p_gop_forced over phones",
    "u_gop_free_mean": "mean p_gop_free over phones",
    "u_lpp_mean": "mean p_lpp over phones",
    "u_lpp_min": "lowest p_lpp",
    "u_lpp_p10": "10th percentile of p_lpp",
    "u_best_ratio_mean": "mean p_best_ratio over phones",
    "u_loop_match_mean": "mean p_loop_match over phones",
    "u_n_fallback_words": "words pronounced by the letter-to-sound fallback",
    "u_aligned": "1 when the alignment succeeded, else 0",
    "u_read_share": "share of the text's words read (0 when the alignment failed)",
}
WORD_GOP: dict[str, str] = {
    "w_gop_forced_mean": "mean p_gop_forced over the word's phones",
    "w_gop_free_mean": "mean p_gop_free over the word's phones",
    "w_lpp_mean": "mean p_lpp over the word's phones",
    "w_lpp_min": "lowest p_lpp in the word",
    "w_fallback": "1 when the word's phones came from the letter-to-sound fallback",
    "w_read": "1 when the word was read, 0 when omitted or the alignment failed",
}

COLUMNS: dict[str, str] = {
    "id": "utterance id",
    "status": '"ok", "failed" or "mismatch" (alignment)',
    "reason": "why the alignment failed (null when ok)",
    "duration": "recording duration (s)",
    "n_words": "words in the transcript",
    "n_phones": "canonical phones in the transcript",
    "speaker": "speaker id",
    "age": "speaker age (years)",
    "gender": "speaker gender",
    "word_index": "word position in the utterance (0-based)",
    "phone_index": "phone position in the utterance (0-based)",
    "text": "word text (upper case)",
    "phone": "canonical phone with stress digit",
    "base_phone": "canonical phone without stress",
    "position": "position in word: B, I, E or S (single-phone word)",
    "heard": "phone the free phone loop chose for most of the phone's frames (null: none)",
    "start": "aligned start (s), null when the alignment failed",
    "end": "aligned end (s), null when the alignment failed",
    **UTTERANCE_PROSODY,
    **UTTERANCE_GOP,
    **WORD_FEATURES,
    **WORD_GOP,
    **PHONE_FEATURES,
    **{f"y_{a}": f"human {a} score (0-10); in words.parquet word-level" for a in UTTERANCE_ASPECTS},
    "y_stress": "human word stress score (0-10)",
    "y_score": "human phone accuracy score (0-2)",
    "synthetic": "negatives only: how the row was made (other-text | substitute)",
    "donor": "negatives only: the utterance whose text was read against this audio",
}


@dataclass(frozen=True)
class ExtractorConfig:
    """Everything that changes the numbers; saved as ``meta.json["extractor"]``."""

    model: ModelConfig = field(default_factory=ModelConfig)
    posterior_scale: float = 1.0  # multiplies log-likelihoods (nats) before the softmax
    phone_loop: bool = True
    min_pause: float = 0.1
    f0_floor: float = 75.0
    f0_ceiling: float = 600.0
    level_dbfs: float | None = None
    """Speech level the audio is scaled to before alignment and prosody
    (:func:`~pronscore.audio.normalise_level`); ``None``: as recorded (features made before
    this field existed)."""
    trim_db: float | None = None
    """Leading and trailing audio more than this many dB below the speech level is cut before
    alignment and prosody (:func:`~pronscore.audio.speech_span`; times stay those of the
    recording); ``None``: nothing is cut."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ExtractorConfig:
        d = dict(d)
        model = ModelConfig(**d.pop("model", {}))
        return cls(model=model, **d)


RECOMMENDED = ExtractorConfig(
    model=ModelConfig(aligner="viterbi", warp=1.3), level_dbfs=-20.0, trim_db=35.0
)
"""The settings of the shipped default model, and the defaults of ``pronscore features`` and
``pronscore train default``: one decoder pass + numpy Viterbi (deterministic, no beam
failures, ~2.5x faster), level-normalised, leading/trailing silence cut, frequencies warped by
1.3 (5-fold CV, 1.0 / 1.15 / 1.22 / 1.3 / 1.45: phone accuracy 0.609 / 0.627 / 0.629 / 0.632 /
0.625, higher in every fold from 1.15 on; docs/results_vtln.md)."""


def warp_flag(warp: float | None) -> str:
    """The ``pronscore features`` flag that makes features with this frequency warp, for
    reproduce lines ("" for the recommended one)."""
    if warp == RECOMMENDED.model.warp:
        return ""
    return " --warp none" if warp is None else f" --warp {warp:g}"


class Extractor:
    """Owns the aligner (and its decoders); build one per process and reuse it.

    ``aligner``: any :class:`~pronscore.align.base.FrameAligner`; default the pocketsphinx one
    that ``config.model`` describes."""

    def __init__(
        self, config: ExtractorConfig | None = None, aligner: FrameAligner | None = None
    ) -> None:
        self.config = config or ExtractorConfig()
        self.aligner = aligner or PocketsphinxAligner(
            self.config.model, phone_loop=self.config.phone_loop
        )


@dataclass(frozen=True)
class UtteranceFeatures:
    """The three row sets of one utterance (no ids or labels), its frames and its alignment."""

    utterance: dict[str, Any]
    words: tuple[dict[str, Any], ...]
    phones: tuple[dict[str, Any], ...]
    frames: dict[str, np.ndarray]
    alignment: Alignment  # frames count from ``offset``
    offset: float = 0.0  # seconds cut from the recording's start (``trim_db``)


@dataclass(frozen=True)
class SplitFeatures:
    """One split of a FEATURES_DIR as pandas DataFrames (+ where its frame files are)."""

    utterances: Any  # pandas.DataFrame
    words: Any
    phones: Any
    frames_dir: Path
    more_frames_dirs: tuple[Path, ...] = ()  # splits pooled by concat_features keep their frames
    phone_vectors: Any = None  # (rows of phones, D) encoder vectors, or None (features/encoder)

    def frames_path(self, utt_id: str) -> Path:
        """Where an utterance's frame file is (the first frames folder that has it)."""
        name = f"{utt_id}.safetensors"
        for d in (self.frames_dir, *self.more_frames_dirs):
            if (d / name).is_file():
                return d / name
        return self.frames_dir / name

    def has_frames(self, utt_id: str) -> bool:
        """Whether the utterance's frames can be read (every extracted utterance has a file,
        an empty one when its alignment failed)."""
        return self.frames_path(utt_id).is_file()

    def frames(self, utt_id: str) -> dict[str, np.ndarray]:
        from safetensors.numpy import load_file

        return load_file(str(self.frames_path(utt_id)))

    def subset(self, ids: Iterable[str]) -> SplitFeatures:
        """The rows of the utterances ``ids`` (table order kept, index reset)."""
        keep_ids = {str(i) for i in ids}

        def mask(df: Any) -> Any:
            return df["id"].astype(str).isin(keep_ids).to_numpy()

        def keep(df: Any) -> Any:
            return df[mask(df)].reset_index(drop=True)

        vectors = self.phone_vectors
        return replace(
            self,
            utterances=keep(self.utterances),
            words=keep(self.words),
            phones=keep(self.phones),
            phone_vectors=None if vectors is None else vectors[mask(self.phones)],
        )


def concat_features(splits: Sequence[SplitFeatures]) -> SplitFeatures:
    """Several splits as one (e.g. train + dev for cross-validation); ids must be unique."""
    import pandas as pd

    if not splits:
        raise ValueError("concat_features needs at least one split")
    ids = pd.concat([s.utterances["id"].astype(str) for s in splits], ignore_index=True)
    dup = ids[ids.duplicated()]
    if len(dup):
        raise CorpusError(f"utterance {dup.iloc[0]!r} is in more than one split", field="id")

    def cat(name: str) -> Any:
        return pd.concat([getattr(s, name) for s in splits], ignore_index=True)

    dirs = [d for s in splits for d in (s.frames_dir, *s.more_frames_dirs)]
    vectors = [s.phone_vectors for s in splits]
    if any(v is None for v in vectors):
        vectors = [None]  # a split without encoder vectors: the pool has none
    return SplitFeatures(
        cat("utterances"),
        cat("words"),
        cat("phones"),
        dirs[0],
        tuple(dirs[1:]),
        None if vectors[0] is None else np.concatenate(vectors),
    )


def _position(i: int, n: int) -> str:
    return "S" if n == 1 else "B" if i == 0 else "E" if i == n - 1 else "I"


def _mean(rows: Sequence[dict[str, Any]], key: str) -> float:
    v = [r[key] for r in rows if r[key] is not None and math.isfinite(r[key])]
    return float(np.mean(v)) if v else math.nan


def _audio_ok(samples: np.ndarray, max_duration: float) -> np.ndarray | None:
    try:
        return validate_samples(samples, max_duration=max_duration)
    except Exception:
        return None


def extract_utterance(
    samples: np.ndarray,
    words: Sequence[tuple[str, tuple[str, ...]]],
    *,
    extractor: Extractor,
    sources: Sequence[str] | None = None,
    variants: Sequence[Sequence[tuple[str, ...]]] | None = None,
) -> UtteranceFeatures:
    """Align ``words`` (text, canonical phones with stress) on 16 kHz mono ``samples``.

    ``sources`` gives each word's lexicon source (``corpus``/``cmudict``/``fallback``) so that
    fallback pronunciations are flagged in ``w_fallback`` / ``u_n_fallback_words``.
    ``variants`` (per word, its pronunciations, the given one first) let the aligner pick the
    one the audio fits; the rows then carry the phones it picked.
    """
    cfg = extractor.config
    words = [(str(t), tuple(p)) for t, p in words]
    sources = list(sources) if sources is not None else ["corpus"] * len(words)
    x = np.asarray(samples)
    recording = duration = x.shape[0] / SAMPLE_RATE if x.ndim >= 1 else 0.0
    valid = _audio_ok(x, cfg.model.max_duration)
    offset = 0.0  # seconds cut from the start: reported times are the recording's
    if valid is not None and cfg.level_dbfs is not None:
        x = valid = normalise_level(valid, cfg.level_dbfs)
    if valid is not None and cfg.trim_db is not None:
        start, end = speech_span(valid, below_db=cfg.trim_db)
        x = valid = valid[start:end]
        offset, duration = start / SAMPLE_RATE, valid.size / SAMPLE_RATE
    out = extractor.aligner.run(x, words, variants=variants)
    rate = extractor.aligner.frame_rate
    words = list(out.words) or words  # the variants picked (a failed alignment picks none)
    al = out.alignment
    n = (
        al.n_frames
        if al.ok
        else (int(valid.size * rate // SAMPLE_RATE) if valid is not None else 0)
    )

    tracks = None
    if valid is not None and n > 0:
        tracks = prosody_tracks(
            valid, n, frame_rate=rate, f0_floor=cfg.f0_floor, f0_ceiling=cfg.f0_ceiling
        )
    read_al = replace(al, words=al.read_words)  # omitted words have no frames
    if tracks is not None:
        utt = utterance_prosody(read_al, tracks, duration, min_pause=cfg.min_pause)
    else:
        utt = {**dict.fromkeys(UTTERANCE_PROSODY, math.nan), "u_duration": duration}

    if al.ok and out.phone_scores is not None:
        logpost = log_posteriors(out.phone_scores, cfg.posterior_scale)
        p_rows = phone_features(read_al, logpost, out.loop)
        p_feats = _spread(al, p_rows, nan_phone_features(), per_phone=True)
        w_pros = None
        if tracks is not None:
            w_blank = dict.fromkeys(WORD_FEATURES, math.nan)
            w_pros = _spread(al, word_prosody(read_al, tracks), w_blank)
        frames = {
            "phone_scores": logpost[:, :N_SPEECH].copy(),
            "nonspeech_scores": logpost[:, N_SPEECH:].copy(),
            # frame 0 is this many seconds into the recording (trim_db), where phone times count
            "offset": np.array([offset], np.float64),
            "frame_rate": np.array([rate], np.float64),
        }
    else:
        p_feats = None
        w_pros = None
        frames = {
            "phone_scores": np.zeros((0, N_SPEECH), np.float32),
            "nonspeech_scores": np.zeros((0, len(MODEL_PHONES) - N_SPEECH), np.float32),
        }

    sec = 1.0 / rate
    phone_rows: list[dict[str, Any]] = []
    word_rows: list[dict[str, Any]] = []
    k = 0
    for wi, (text, phones) in enumerate(words):
        seg = al.words[wi] if al.ok and al.words[wi].read else None
        mine = []
        for i, ph in enumerate(phones):
            ps = seg.phones[i] if seg is not None else None
            row = {
                "word_index": wi,
                "phone_index": k,
                "phone": ph,
                "base_phone": base_phone(ph),
                "position": _position(i, len(phones)),
                "start": offset + ps.start * sec if ps else None,
                "end": offset + ps.end * sec if ps else None,
                **(p_feats[k] if p_feats is not None else nan_phone_features()),
            }
            mine.append(row)
            k += 1
        phone_rows.extend(mine)
        wrow = {
            "word_index": wi,
            "text": text,
            "start": offset + seg.start * sec if seg else None,
            "end": offset + seg.end * sec if seg else None,
            **(w_pros[wi] if w_pros is not None else dict.fromkeys(WORD_FEATURES, math.nan)),
            "w_gop_forced_mean": _mean(mine, "p_gop_forced"),
            "w_gop_free_mean": _mean(mine, "p_gop_free"),
            "w_lpp_mean": _mean(mine, "p_lpp"),
            "w_lpp_min": min((r["p_lpp"] for r in mine), default=math.nan),
            "w_fallback": float(sources[wi] == "fallback"),
            "w_read": float(seg is not None),
        }
        word_rows.append(wrow)

    lpp = np.array([r["p_lpp"] for r in phone_rows], dtype=float)
    finite = lpp[np.isfinite(lpp)]
    utt.update(
        {
            "u_gop_forced_mean": _mean(phone_rows, "p_gop_forced"),
            "u_gop_free_mean": _mean(phone_rows, "p_gop_free"),
            "u_lpp_mean": float(finite.mean()) if finite.size else math.nan,
            "u_lpp_min": float(finite.min()) if finite.size else math.nan,
            "u_lpp_p10": float(np.percentile(finite, 10)) if finite.size else math.nan,
            "u_best_ratio_mean": _mean(phone_rows, "p_best_ratio"),
            "u_loop_match_mean": _mean(phone_rows, "p_loop_match"),
            "u_n_fallback_words": float(sum(s == "fallback" for s in sources)),
            "u_aligned": float(al.ok),
            "u_read_share": len(al.read_words) / len(words) if al.ok and words else 0.0,
        }
    )
    head = {
        "status": al.status,
        "reason": al.reason,
        "duration": recording,
        "n_words": len(words),
        "n_phones": k,
    }
    return UtteranceFeatures(
        {**head, **utt}, tuple(word_rows), tuple(phone_rows), frames, al, offset
    )


def _spread(
    al: Alignment, rows: list[dict[str, Any]], blank: dict[str, float], *, per_phone: bool = False
) -> list[dict[str, Any]]:
    """Rows computed over the read words (or their phones) back onto every word (phone) of
    the text; the omitted ones get ``blank`` (NaN features)."""
    it = iter(rows)
    out = []
    for w in al.words:
        for _ in w.phones if per_phone else (w,):
            out.append(next(it) if w.read else dict(blank))
    return out


# ---------------------------------------------------------------- whole datasets


def _record(row: dict[str, Any], feats: UtteranceFeatures) -> dict[str, Any]:
    """Add ids and labels to the rows of one dataset utterance."""
    uid = row["id"]
    utt = {"id": uid, **feats.utterance}
    utt.update({f"y_{a}": row.get(a) for a in UTTERANCE_ASPECTS})
    utt.update(speaker=row.get("speaker"), age=row.get("age"), gender=row.get("gender"))
    words, phones = [], []
    for w, wrow in zip(row["words"], feats.words, strict=True):
        words.append(
            {
                "id": uid,
                **wrow,
                "y_accuracy": w.get("accuracy"),
                "y_stress": w.get("stress"),
                "y_total": w.get("total"),
            }
        )
    accs = [
        a for w in row["words"] for a in (w.get("phones_accuracy") or [None] * len(w["phones"]))
    ]
    for prow, acc in zip(feats.phones, accs, strict=True):
        phones.append({"id": uid, **prow, "y_score": acc})
    return {"utterance": utt, "words": words, "phones": phones}


def extract_row(
    row: dict[str, Any], samples: np.ndarray, extractor: Extractor
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The cache record (rows with ids and labels) and frames of one dataset-shaped ``row``
    (``id``, ``words`` with text/phones/labels, utterance labels, speaker) spoken in
    ``samples``. An internal error makes a failed record, so one bad utterance cannot stop a
    dataset run."""
    words = [(w["text"], tuple(w["phones"])) for w in row["words"]]
    try:
        feats = extract_utterance(samples, words, extractor=extractor)
    except Exception as exc:
        print(f"features: {row['id']}: {type(exc).__name__}: {exc}", file=sys.stderr)
        feats = _failed_features(samples, words, f"internal error: {exc}")
    return _record(row, feats), feats.frames


class _Worker:
    """Per-process state: the extractor (decoders) and the opened split."""

    def __init__(self, dataset_dir: str, split: str, config: ExtractorConfig, out: str) -> None:
        from pronscore.dataset import load_split

        ds = load_split(dataset_dir, split)
        self.meta = ds.remove_columns(["audio"])
        self.audio = ds.select_columns(["audio"]).with_format("numpy")
        self.extractor = Extractor(config)
        self.cache = UtteranceCache(Path(out) / split)

    def __call__(self, index: int) -> str:
        row = self.meta[index]
        samples = np.asarray(self.audio[index]["audio"], dtype=np.float32)
        record, frames = extract_row(row, samples, self.extractor)
        self.cache.write(row["id"], record, frames)
        return row["id"]


def _failed_features(samples: np.ndarray, words, reason: str) -> UtteranceFeatures:
    al = Alignment.failed(reason, 0, FRAME_RATE)
    utt = {
        "status": "failed",
        "reason": reason,
        "duration": len(samples) / SAMPLE_RATE,
        "n_words": len(words),
        "n_phones": sum(len(p) for _, p in words),
        **dict.fromkeys(UTTERANCE_PROSODY, math.nan),
        **dict.fromkeys(UTTERANCE_GOP, math.nan),
    }
    wrows, prows, k = [], [], 0
    for wi, (text, phones) in enumerate(words):
        wrows.append(
            {
                "word_index": wi,
                "text": text,
                "start": None,
                "end": None,
                **dict.fromkeys({**WORD_FEATURES, **WORD_GOP}, math.nan),
            }
        )
        for i, ph in enumerate(phones):
            prows.append(
                {
                    "word_index": wi,
                    "phone_index": k,
                    "phone": ph,
                    "base_phone": base_phone(ph),
                    "position": _position(i, len(phones)),
                    "start": None,
                    "end": None,
                    **nan_phone_features(),
                }
            )
            k += 1
    frames = {
        "phone_scores": np.zeros((0, N_SPEECH), np.float32),
        "nonspeech_scores": np.zeros((0, len(MODEL_PHONES) - N_SPEECH), np.float32),
    }
    return UtteranceFeatures(utt, tuple(wrows), tuple(prows), frames, al)


_WORKER: Callable[[int], str] | None = None  # set once per pool process by _init (Pool idiom)


def _init(factory: Callable[[], Callable[[int], str]]) -> None:
    global _WORKER
    _WORKER = factory()


def _task(index: int) -> str:
    assert _WORKER is not None
    return _WORKER(index)


def run_resumable(
    factory: Callable[[], Callable[[int], str]],
    ids: Sequence[str],
    cache: UtteranceCache,
    *,
    jobs: int,
    desc: str,
    progress: bool,
) -> None:
    """Run a worker on every index of ``ids`` whose record is not in ``cache`` yet, with a
    progress bar that starts at what was already done, then assemble the split's tables."""
    from tqdm import tqdm

    done = cache.done()
    todo = [i for i, uid in enumerate(ids) if uid not in done]
    bar = tqdm(total=len(ids), initial=len(ids) - len(todo), desc=desc, unit="utt",
               disable=not progress)  # fmt: skip
    with bar:
        run_tasks(factory, todo, jobs=jobs, bar=bar)
    assemble_split(cache, ids)


def run_tasks(
    factory: Callable[[], Callable[[int], str]], todo: Sequence[int], *, jobs: int, bar: Any
) -> None:
    """Call one worker made by ``factory`` on every index of ``todo``: in this process, or in
    ``jobs`` forked processes that each build their own worker (decoders are per process;
    fork, so ``factory`` is inherited, not pickled)."""
    if not todo:
        return
    if jobs <= 1:
        worker = factory()
        for i in todo:
            worker(i)
            bar.update()
        return
    with mp.get_context("fork").Pool(jobs, initializer=_init, initargs=(factory,)) as pool:
        for _ in pool.imap_unordered(_task, todo, chunksize=4):
            bar.update()


def extractor_config_of(features_dir: str | Path) -> ExtractorConfig:
    """The extractor config in ``FEATURES_DIR/meta.json`` (how its features were made): the
    one reader of it, for scorers, negatives and extraction that must match a head's features."""
    path = Path(features_dir) / "meta.json"
    if not path.is_file():
        raise CorpusError("not a FEATURES_DIR (no meta.json)", path=path)
    try:
        return ExtractorConfig.from_dict(json.loads(path.read_text(encoding="utf-8"))["extractor"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CorpusError(
            f"unreadable extractor config: {exc}", path=path, field="extractor"
        ) from None


def write_meta(out: Path, config: ExtractorConfig) -> None:
    """Write ``meta.json``; a FEATURES_DIR made with another config is an error."""
    meta = {
        "version": FEATURES_VERSION,
        "extractor": config.to_dict(),
        "frame_rate": int(FRAME_RATE),
        "columns": COLUMNS,
    }
    path = out / "meta.json"
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        # fields added later take their defaults, which reproduce the older behaviour
        try:
            made = ExtractorConfig.from_dict(old.get("extractor") or {})
        except TypeError:  # a field this version does not know
            made = None
        if made != config or old.get("version") != FEATURES_VERSION:
            raise CorpusError(
                "features here were made with another extractor config"
                f"{_config_diff(made, config)}; use a new --out",
                path=path,
            )
    atomic_write_json(path, meta)


def _config_diff(made: ExtractorConfig | None, asked: ExtractorConfig) -> str:
    """`` (model.warp: none here, 1.3 asked)`` for the settings that differ."""
    if made is None:
        return ""
    flat = [_flatten(c.to_dict()) for c in (made, asked)]
    diffs = [
        f"{k}: {flat[0][k]} here, {flat[1][k]} asked" for k in flat[1] if flat[0][k] != flat[1][k]
    ]
    return f" ({'; '.join(diffs)})" if diffs else ""


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = "none" if v is None else v
    return out


def _is_numeric_column(name: str) -> bool:
    return name[:2] in ("u_", "w_", "p_", "y_") or name in ("start", "end", "duration")


def feature_frame(rows: Sequence[dict[str, Any]]) -> Any:
    """Feature rows -> a pandas DataFrame whose feature, label and time columns are float64
    (null -> NaN). The one conversion for FEATURES_DIR tables and for scoring one recording;
    only columns pandas did not already make float64 are converted (it is on the hot path)."""
    import pandas as pd

    df = pd.DataFrame(list(rows))
    convert = [c for c in df.columns if _is_numeric_column(c) and df[c].dtype != "float64"]
    for col in convert:
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    return df


def assemble_split(cache: UtteranceCache, ids: Sequence[str]) -> None:
    """Build the split's three parquet tables from the cache records of ``ids`` (in order)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    utts, words, phones = [], [], []
    for uid in ids:
        rec = cache.read(uid)
        utts.append(rec["utterance"])
        words.extend(rec["words"])
        phones.extend(rec["phones"])
    for name, rows in (("utterances", utts), ("words", words), ("phones", phones)):
        df = feature_frame(rows)
        sink = pa.BufferOutputStream()
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), sink)
        atomic_write_bytes(cache.split_dir / f"{name}.parquet", sink.getvalue().to_pybytes())


def extract_dataset(
    dataset_dir: str | Path,
    out_dir: str | Path,
    *,
    splits: Sequence[str] | None = None,
    jobs: int = 1,
    limit: int | None = None,
    progress: bool = True,
    config: ExtractorConfig | None = None,
) -> Path:
    """Features of every utterance of ``splits`` (default: all) into ``out_dir``; resumable."""

    from pronscore.dataset import load_prepared

    config = config or ExtractorConfig()
    dd = load_prepared(dataset_dir)
    splits = list(splits) if splits else list(dd.keys())
    for s in splits:
        if s not in dd:
            raise CorpusError(f"split {s!r} not found (have: {', '.join(dd)})", path=dataset_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_meta(out, config)
    for split in splits:
        ids = list(dd[split]["id"])[: limit if limit is not None else None]
        factory = partial(_Worker, str(dataset_dir), split, config, str(out))
        run_resumable(factory, ids, UtteranceCache(out / split), jobs=jobs,
                      desc=f"features {split}", progress=progress)  # fmt: skip
    return out


def load_features(features_dir: str | Path, split: str) -> SplitFeatures:
    """Read ``FEATURES_DIR/<split>/{utterances,words,phones}.parquet`` (and the split's encoder
    vectors and CTC recogniser columns when ``pronscore features --encoder`` / ``--ctc`` made
    them)."""
    import pandas as pd

    from pronscore.features.ctc_store import load_split_ctc
    from pronscore.features.encoder import load_split_vectors

    d = Path(features_dir) / split
    tables = {}
    for name in ("utterances", "words", "phones"):
        path = d / f"{name}.parquet"
        if not path.is_file():
            raise CorpusError(f"no {name}.parquet (run `pronscore features`)", path=path)
        tables[name] = pd.read_parquet(path)
    vectors = load_split_vectors(features_dir, split, tables["phones"])
    tables["utterances"], tables["phones"] = load_split_ctc(
        features_dir, split, tables["utterances"], tables["phones"]
    )
    return SplitFeatures(
        tables["utterances"], tables["words"], tables["phones"], d / "frames", (), vectors
    )
