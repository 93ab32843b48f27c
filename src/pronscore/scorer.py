"""``Scorer``: acoustic model + aligner + feature builder + scoring head, for one recording.

    from pronscore import Scorer
    scorer = Scorer.from_pretrained("default")          # or any trained RUN_DIR
    a = scorer.score("me.wav", "We call it bear")       # -> pronscore.schema.Assessment

The CLI (``pronscore score``), the server and the page all go through this class.

A scorer folder is a RUN_DIR (``config.json`` with its ``kind``, the head's weights) plus an
optional ``scorer.json`` (:class:`ScorerConfig`: the feature extractor's settings the head was
trained with, the lexicon file, limits) and the model card ``README.md``. Heads that score from
features implement ``predict_features(SplitFeatures) -> {id: Assessment}``; heads that need the
audio itself (SSL encoders) implement ``predict_utterance(samples, words) -> Assessment``.

What a bad input gives: unreadable, empty or too long audio and empty or non-English text raise
:class:`~pronscore.errors.AudioError` / :class:`~pronscore.errors.TextError`. Speech that cannot
be aligned to the text (silence, noise, another sentence) is a *result*: ``status="failed"``
(or ``"mismatch"`` when the aligner heard speech but none of the text), the aligner's ``reason``
and zero scores everywhere, because nothing of the sentence was heard. A head that checks the
speech against the text (the GBT's reading check, trained on synthetic negatives) may also
return ``"mismatch"`` with the reason: every word is flagged and the scores are the head's (a
false alarm on a weak reading of the right text keeps its scores). A partial reading (with
the ``viterbi`` aligner) scores the words read; omitted words get status ``"omitted"``, zero
scores and the mispronounced flag, and completeness is at most 10 x the share of words read.
Words pronounced by the letter-to-sound fallback are scored but named in ``reason``.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from pronscore.atomic import replace_dir
from pronscore.audio import array_to_mono_16k, read_audio, validate_samples
from pronscore.constants import (
    MAX_DURATION_S,
    PHONE_SCALE,
    SAMPLE_RATE,
    UTTERANCE_ASPECTS,
    UTTERANCE_SCALE,
    WORD_SCALE,
)
from pronscore.errors import AudioError, ModelError, NotServable
from pronscore.features.encoder import PhoneVectors
from pronscore.features.extract import (
    Extractor,
    ExtractorConfig,
    SplitFeatures,
    UtteranceFeatures,
    extract_utterance,
    extractor_config_of,
    feature_frame,
)
from pronscore.levels import WordsToSentence
from pronscore.runs import load_predictor, read_run_config
from pronscore.schema import Assessment, PhoneAssessment, UtteranceScores, WordAssessment
from pronscore.text import Lexicon, Pronunciation

SCORER_FILE = "scorer.json"
LEXICON_FILE = "lexicon.txt"
UTT_ID = "utt"
_SF_OPENING = re.compile(r"Error opening <[^>]*>: ")
Audio = str | os.PathLike | bytes | BinaryIO | np.ndarray


SHIPPED = ("default", "whisper")
"""Models shipped inside the package: ``default`` (pocketsphinx only, fully embedded) and
``whisper`` (adds per-phone Whisper-base encoder vectors; the encoder itself is resolved at
scoring time, see :mod:`pronscore.features.encoder`)."""


def shipped_dir(name: str = "default") -> Path:
    """The folder of a shipped model (``pronscore/pretrained/<name>``)."""
    return Path(str(resources.files("pronscore") / "pretrained" / name))


def default_dir() -> Path:
    """The model shipped inside the package (``pronscore/pretrained/default``)."""
    return shipped_dir("default")


def packaged_lexicon() -> Path:
    """Speechocean762's lexicon (CC BY 4.0), shipped so new text is pronounced like the corpus."""
    return default_dir() / LEXICON_FILE


@dataclass(frozen=True)
class ScorerConfig:
    """Saved as ``scorer.json`` beside the head's weights."""

    extractor: ExtractorConfig = field(default_factory=ExtractorConfig)
    lexicon: str | None = LEXICON_FILE  # file in the scorer folder; None: CMUdict + fallback
    max_duration: float = MAX_DURATION_S
    # A word is flagged mispronounced when its predicted accuracy or one of its phone scores
    # falls below these (unless the head flags it itself); a phone's `heard` is shown only
    # below the phone threshold. The one place this policy lives, for score and evaluate.
    mispronounced_word_below: float = 6.0
    mispronounced_phone_below: float = 1.0
    # the sentence accuracy its words give, and each word's cost to it (pronscore.levels),
    # fitted on the training labels; None: not reported
    words_to_sentence: WordsToSentence | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["extractor"] = self.extractor.to_dict()
        if self.words_to_sentence is not None:
            d["words_to_sentence"] = self.words_to_sentence.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ScorerConfig:
        d = dict(d)
        ex = ExtractorConfig.from_dict(d.pop("extractor", {}))
        line = d.pop("words_to_sentence", None)
        known = {f for f in cls.__dataclass_fields__ if f != "extractor"}
        return cls(
            extractor=ex,
            words_to_sentence=None if line is None else WordsToSentence.from_dict(line),
            **{k: v for k, v in d.items() if k in known},
        )


def features_scorer_config(features_dir: str | os.PathLike) -> ScorerConfig | None:
    """A scorer that extracts features the way ``FEATURES_DIR/meta.json`` says they were made
    (a head must see features made like its training features); ``None`` without meta.json."""
    if not (Path(features_dir) / "meta.json").is_file():
        return None
    return ScorerConfig(extractor=extractor_config_of(features_dir))


def read_scorer_config(model_dir: Path) -> ScorerConfig:
    """``scorer.json``; for a RUN_DIR without one, the settings of the features it was trained
    on (``config.json["features_dir"]``), else the defaults."""
    path = model_dir / SCORER_FILE
    if not path.is_file():
        features_dir = read_run_config(model_dir).get("features_dir")
        found = features_scorer_config(features_dir) if features_dir else None
        return found or ScorerConfig()
    try:
        return ScorerConfig.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, TypeError, ValueError) as exc:
        raise ModelError(f"invalid scorer config ({exc})", path=path) from exc


def resolve_model(name_or_dir: str | os.PathLike) -> tuple[str, Path]:
    name = str(name_or_dir)
    if name in SHIPPED:
        path = shipped_dir(name)
        if not (path / "config.json").is_file():
            raise ModelError(
                f"the {name} model is not installed (run `pronscore train default`)", path=path
            )
        return name, path
    path = Path(name_or_dir)
    if not path.is_dir():
        raise ModelError(
            "model folder not found (use 'default', 'whisper' or a RUN_DIR)", path=path
        )
    return str(path), path


def _write_scoring_files(folder: Path, config: ScorerConfig, lexicon_path: Path | None) -> None:
    """``scorer.json`` and the lexicon it names, in a model folder being written."""
    config = replace(config, lexicon=None)
    if lexicon_path is not None:
        shutil.copyfile(lexicon_path, folder / LEXICON_FILE)
        config = replace(config, lexicon=LEXICON_FILE)
    (folder / SCORER_FILE).write_text(json.dumps(config.to_dict(), indent=2) + "\n")


def save_head_like(head: Any, like: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Write ``head`` as a model folder that aligns and pronounces as the model ``like`` does
    (its ``scorer.json`` and lexicon), atomically, without loading ``like``'s encoder."""
    _, path = resolve_model(like)
    config = read_scorer_config(path)
    lex_path = path / config.lexicon if config.lexicon else None
    if lex_path is not None and not lex_path.is_file():
        lex_path = packaged_lexicon()
    out = Path(out_dir)
    with replace_dir(out) as tmp:
        head.save_pretrained(tmp)
        _write_scoring_files(tmp, config, lex_path)
    return out


class Scorer:
    """Scores one recording against its text. Thread-safe (one scoring at a time per scorer);
    use :meth:`fork` for parallel scorers that share the head."""

    def __init__(
        self,
        head: Any,
        *,
        config: ScorerConfig | None = None,
        lexicon_path: Path | None = None,
        name: str = "custom",
        source_dir: Path | None = None,
        vectors: PhoneVectors | None = None,
    ) -> None:
        if not (hasattr(head, "predict_features") or hasattr(head, "predict_utterance")):
            raise NotServable(
                f"{type(head).__name__} cannot score single recordings "
                "(needs predict_features or predict_utterance)"
            )
        self.head = head
        self.config = config or ScorerConfig()
        self.lexicon_path = lexicon_path
        self.lexicon = Lexicon.from_file(lexicon_path) if lexicon_path else Lexicon()
        self.name = name
        self.source_dir = source_dir
        self.extractor = Extractor(self.config.extractor)
        spec = getattr(head, "encoder", None)  # heads that read per-phone encoder vectors
        self.vectors = vectors or (PhoneVectors(spec) if spec is not None else None)
        self.recogniser = getattr(head, "recogniser", None)  # p_ctc_* columns, same frames
        if self.recogniser is not None and self.vectors is None:
            raise NotServable("a head with a CTC phone recogniser must read encoder vectors")
        if self.vectors is not None:
            self.vectors.load()  # now: a missing encoder is an error at start-up, not mid-scoring
        self._lock = threading.Lock()  # pocketsphinx decoders are not thread-safe

    # ------------------------------------------------------------------ loading and saving

    @classmethod
    def from_pretrained(cls, name_or_dir: str | os.PathLike = "default") -> Scorer:
        """``"default"`` / ``"whisper"`` (shipped in the package) or any trained RUN_DIR."""
        name, path = resolve_model(name_or_dir)
        read_run_config(path)  # clear ModelError when config.json is missing or bad
        config = read_scorer_config(path)
        lex_path = path / config.lexicon if config.lexicon else None
        if lex_path is not None and not lex_path.is_file():
            lex_path = packaged_lexicon()  # a plain RUN_DIR: pronounce like the corpus
        head = load_predictor(path)
        return cls(head, config=config, lexicon_path=lex_path, name=name, source_dir=path)

    def fork(self) -> Scorer:
        """A scorer with its own decoders that shares the (read-only) head, lexicon and
        encoder (inference only)."""
        return Scorer(
            self.head,
            config=self.config,
            lexicon_path=self.lexicon_path,
            name=self.name,
            source_dir=self.source_dir,
            vectors=self.vectors,
        )

    def save_pretrained(self, out_dir: str | os.PathLike) -> Path:
        """Write the head (its RUN_DIR files), ``scorer.json`` and the lexicon, atomically."""
        out = Path(out_dir)
        with replace_dir(out) as tmp:
            if self.source_dir is not None:  # keeps the model card and metrics too
                shutil.copytree(self.source_dir, tmp, dirs_exist_ok=True)
            if hasattr(self.head, "save_pretrained"):
                self.head.save_pretrained(tmp)
            elif self.source_dir is None:
                raise ModelError("this head cannot be saved (no save_pretrained, no source)")
            _write_scoring_files(tmp, self.config, self.lexicon_path)
        return out

    # ------------------------------------------------------------------ scoring

    def pronounce(self, text: str) -> list[Pronunciation]:
        """Canonical phones of every word (:class:`~pronscore.errors.TextError` if unusable)."""
        return self.lexicon.pronounce(text)

    def load(
        self, audio: Audio, *, sample_rate: int | None = None, max_duration: float | None = None
    ) -> np.ndarray:
        """Any accepted audio -> validated 16 kHz mono float32."""
        limit = self.config.max_duration if max_duration is None else max_duration
        if isinstance(audio, np.ndarray):
            x = array_to_mono_16k(audio, sample_rate or SAMPLE_RATE)
            return validate_samples(x, max_duration=limit)
        if isinstance(audio, os.PathLike):
            audio = os.fspath(audio)
        if not isinstance(audio, (str, bytes)) and not hasattr(audio, "read"):
            raise AudioError(f"unsupported audio object {type(audio).__name__}")
        try:
            return read_audio(audio, max_duration=limit)[0]
        except AudioError as err:  # soundfile names in-memory files by their repr: drop it
            reason = _SF_OPENING.sub("", err.reason)
            raise AudioError(reason, path=err.path, field=err.field) from err

    def score(
        self,
        audio: Audio,
        text: str,
        *,
        sample_rate: int | None = None,
        max_duration: float | None = None,
        pronunciations: Sequence[Pronunciation] | None = None,
    ) -> Assessment:
        """Score ``audio`` (path, bytes, binary file or samples) read as ``text``.

        A NumPy array is taken as 16 kHz unless ``sample_rate`` says otherwise; integer PCM is
        rescaled to [-1, 1] and (samples, channels) or (channels, samples) arrays are downmixed
        (see :func:`pronscore.audio.array_to_mono_16k`). ``pronunciations`` (one per word of
        ``text``) replace the lexicon's: evaluation scores a corpus with its annotated phones.
        """
        variants = None
        if pronunciations is not None:
            prons = list(pronunciations)
        else:  # the lexicon's variants of each word: the aligner picks what was said
            options = self.lexicon.pronounce_variants(text)
            prons = [o[0] for o in options]
            variants = [[tuple(v.phones) for v in o] for o in options]
        samples = self.load(audio, sample_rate=sample_rate, max_duration=max_duration)
        words = [(p.word, tuple(p.phones)) for p in prons]
        with self._lock:
            if hasattr(self.head, "predict_utterance"):
                return self._finish(prons, None, self.head.predict_utterance(samples, words))
            feats = extract_utterance(
                samples,
                words,
                extractor=self.extractor,
                sources=[p.source for p in prons],
                variants=variants,
            )
            prons = _picked(prons, feats)
            if feats.utterance["status"] != "ok":
                reason = feats.utterance.get("reason") or "alignment failed"
                return failed_assessment(prons, reason, status=feats.utterance["status"])
            vectors, ctc = self._encoder_stages(samples, feats)
        hyp = self.head.predict_features(single_split(feats, UTT_ID, vectors, ctc))
        if UTT_ID not in hyp:
            raise ModelError(f"{type(self.head).__name__} returned no prediction")
        return self._finish(prons, feats, hyp[UTT_ID])

    def _encoder_stages(
        self, samples: np.ndarray, feats: UtteranceFeatures
    ) -> tuple[np.ndarray | None, dict[str, np.ndarray] | None]:
        """What heads read from the encoder, from one forward on the recording as loaded
        (times are the recording's): the phones' pooled vectors (as ``pronscore features
        --encoder``) and the CTC recogniser's columns (as ``pronscore features --ctc``)."""
        if self.vectors is None:
            return None, None
        starts = [r.get("start") for r in feats.phones]
        ends = [r.get("end") for r in feats.phones]
        states = self.vectors.frames(samples)
        ctc = None
        if self.recogniser is not None:
            from pronscore.features.ctc_gop import ctc_phone_columns
            from pronscore.features.ctc_store import encode

            lp = self.recogniser.log_probs(states)
            phones = [str(r["base_phone"]) for r in feats.phones]
            words = [int(r["word_index"]) for r in feats.phones]
            rate = self.vectors.frames.frame_rate
            ctc = encode(ctc_phone_columns(lp, phones, starts, ends, rate, words))
        return self.vectors.pool(states, starts, ends), ctc

    def _finish(
        self, prons: list[Pronunciation], feats: UtteranceFeatures | None, hyp: Assessment
    ) -> Assessment:
        """Our words and phones, the head's scores (clipped to the scales), aligned times."""
        if hyp.status not in ("ok", "mismatch"):
            reason = hyp.reason or "the model could not score this"
            return failed_assessment(prons, reason, status=hyp.status)
        # a head's "mismatch" comes with its scores (pronscore.heads.gbt.another_text)
        utt = UtteranceScores(
            **{a: _clip(getattr(hyp.utterance, a), UTTERANCE_SCALE) for a in UTTERANCE_ASPECTS}
        )
        times = _phone_times(feats, len(prons))
        read = [bool(r["w_read"]) for r in feats.words] if feats is not None else None
        words = []
        for wi, p in enumerate(prons):
            hw = hyp.words[wi] if wi < len(hyp.words) else None
            word = self._word(p, hw, times[wi] if times else None)
            if read is not None:
                word = replace(word, status="read") if read[wi] else _omitted(word)
            words.append(word)
        if read:
            utt = replace(utt, completeness=_cap(utt.completeness, UTTERANCE_SCALE, read))
        guessed = [p.word for p in prons if p.source == "fallback"]
        reason = hyp.reason
        if guessed:
            note = "pronunciation guessed (not in any lexicon) for: " + ", ".join(guessed)
            reason = f"{reason}; {note}" if reason else note
        inserted = _inserted(feats)
        out = Assessment(
            utterance=utt,
            words=tuple(words),
            status=hyp.status,
            reason=reason,
            inserted=inserted,
            channel=hyp.channel,
        )
        line = self.config.words_to_sentence
        return out if line is None else line.explain(out)

    def _word(
        self,
        p: Pronunciation,
        hw: WordAssessment | None,
        times: list[tuple[float | None, float | None]] | None,
    ) -> WordAssessment:
        """One word of the text with the head's scores (clipped) and the aligned times."""
        hp = hw.phones if hw is not None else ()
        phones = tuple(
            PhoneAssessment(
                ph,
                score := _clip(hp[i].score if i < len(hp) else None, PHONE_SCALE),
                *(times[i] if times else (None, None)),
                heard=self._heard(score, hp[i].heard if i < len(hp) else None),
            )
            for i, ph in enumerate(p.phones)
        )
        acc = _clip(hw.accuracy if hw else None, WORD_SCALE)
        flag = hw.mispronounced if hw is not None else None
        if flag is None:
            flag = self._mispronounced(acc, phones)
        return WordAssessment(
            text=p.word,
            accuracy=acc,
            stress=_clip(hw.stress if hw else None, WORD_SCALE),
            total=_clip(hw.total if hw else None, WORD_SCALE),
            phones=phones,
            mispronounced=flag,
        )

    def _heard(self, score: float | None, heard: str | None) -> str | None:
        """What was heard, shown only for a phone scored mispronounced: ungated it would mislead
        (the default's phone classifier, trained on train only, picks another phone for 29.7% of
        the dev phones experts scored 2 and 86.2% of those scored <= 0.5; the free loop it
        replaced: 61.4% and 86.2%)."""
        low = score is not None and score < self.config.mispronounced_phone_below
        return heard if low else None

    def _mispronounced(self, accuracy: float | None, phones: tuple[PhoneAssessment, ...]) -> bool:
        scores = [p.score for p in phones if p.score is not None]
        if accuracy is None and not scores:
            return False
        low_word = accuracy is not None and accuracy < self.config.mispronounced_word_below
        low_phone = bool(scores) and min(scores) < self.config.mispronounced_phone_below
        return low_word or low_phone


# ---------------------------------------------------------------------- helpers


def _clip(value: float | None, top: float) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(min(max(float(value), 0.0), top), 3)


def _picked(prons: list[Pronunciation], feats: UtteranceFeatures) -> list[Pronunciation]:
    """The pronunciations with the phones the aligner picked among their variants."""
    phones: list[list[str]] = [[] for _ in prons]
    for row in feats.phones:
        phones[row["word_index"]].append(row["phone"])
    return [replace(p, phones=tuple(ph)) if ph else p for p, ph in zip(prons, phones, strict=True)]


def _omitted(word: WordAssessment) -> WordAssessment:
    """A word the learner did not read: nothing of it was said, so its accuracy and phones
    score 0. Its stress stays the head's: experts give stress 10 to almost every word, so a 0
    would be an outlier that says nothing (2 omitted dev words took stress PCC from 0.31 to
    0.04)."""
    return replace(
        word,
        accuracy=0.0,
        total=0.0,
        phones=tuple(replace(p, score=0.0) for p in word.phones),
        mispronounced=True,
        status="omitted",
    )


def _cap(completeness: float | None, top: float, read: list[bool]) -> float:
    """Completeness is at most the share of words read, on the utterance scale."""
    most = round(top * sum(read) / len(read), 3)
    return most if completeness is None else min(completeness, most)


def _inserted(feats: UtteranceFeatures | None) -> tuple[tuple[float, float], ...]:
    if feats is None:
        return ()
    al, t0 = feats.alignment, feats.offset
    return tuple(
        (round(t0 + al.seconds(a), 3), round(t0 + al.seconds(b), 3)) for a, b in al.inserted
    )


def _phone_times(
    feats: UtteranceFeatures | None, n_words: int
) -> list[list[tuple[float | None, float | None]]] | None:
    if feats is None:
        return None
    out: list[list[tuple[float | None, float | None]]] = [[] for _ in range(n_words)]
    for row in feats.phones:
        s, e = row.get("start"), row.get("end")
        out[row["word_index"]].append(
            (None if s is None else round(float(s), 3), None if e is None else round(float(e), 3))
        )
    return out


def failed_assessment(
    prons: list[Pronunciation], reason: str, *, status: str = "failed"
) -> Assessment:
    """Zero scores with the reason: nothing of the sentence could be found in the audio."""
    words = tuple(
        WordAssessment(
            text=p.word,
            accuracy=0.0,
            stress=0.0,
            total=0.0,
            phones=tuple(PhoneAssessment(ph, 0.0) for ph in p.phones),
            mispronounced=True,
        )
        for p in prons
    )
    utt = UtteranceScores(**dict.fromkeys(UTTERANCE_ASPECTS, 0.0))
    return Assessment(utterance=utt, words=words, status=status, reason=reason)


class _MemorySplit(SplitFeatures):
    """A one-utterance :class:`SplitFeatures` whose frames live in memory."""

    def __init__(
        self,
        utts: Any,
        words: Any,
        phones: Any,
        frames: dict[str, np.ndarray],
        phone_vectors: np.ndarray | None = None,
    ) -> None:
        super().__init__(utts, words, phones, Path(), (), phone_vectors)
        object.__setattr__(self, "_frames", frames)

    def has_frames(self, utt_id: str) -> bool:
        return True

    def frames(self, utt_id: str) -> dict[str, np.ndarray]:
        return self._frames  # type: ignore[attr-defined]


def single_split(
    feats: UtteranceFeatures,
    utt_id: str = UTT_ID,
    phone_vectors: np.ndarray | None = None,
    ctc: dict[str, np.ndarray] | None = None,
) -> SplitFeatures:
    """The rows of one extracted utterance as the DataFrames a FEATURES_DIR split holds
    (``ctc``: its CTC recogniser columns, :func:`pronscore.features.ctc_store.encode`)."""
    utt = {"id": utt_id, **feats.utterance, "speaker": None, "age": None, "gender": None}
    tables = [
        feature_frame(rows)
        for rows in (
            [utt],
            [{"id": utt_id, **r} for r in feats.words],
            [{"id": utt_id, **r} for r in feats.phones],
        )
    ]
    if ctc is not None:
        from pronscore.features.ctc_store import with_ctc_columns

        tables[0], tables[2] = with_ctc_columns(tables[0], tables[2], {utt_id: ctc})
    return _MemorySplit(*tables, frames=feats.frames, phone_vectors=phone_vectors)
