"""GOP + gradient-boosted trees (LightGBM): the GBT baseline of Lin & Wang (2021), Table 2,
extended to every level: one regressor per utterance aspect, per word aspect and for phones.

Saved as LightGBM text models (``<target>.txt``, no pickle) beside ``config.json``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from dataclasses import replace as dc_replace
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pronscore.constants import (
    PHONE_SCALE,
    UTTERANCE_ASPECTS,
    UTTERANCE_SCALE,
    WORD_ASPECTS,
    WORD_SCALE,
)
from pronscore.errors import ModelError
from pronscore.features.ctc_store import HEARD_COLUMN
from pronscore.features.encoder import EncoderSpec
from pronscore.features.extract import SplitFeatures
from pronscore.heads.phone_classifier import (
    SCORE_COLUMN,
    EncoderChecks,
    PhoneClassifier,
    PhoneScorer,
)
from pronscore.heads.reading_check import ReadingCheck, aligned
from pronscore.heads.tables import (
    phone_table,
    prediction_context,
    utterance_table,
    with_prediction_context,
    word_table,
)
from pronscore.runs import read_run_config
from pronscore.schema import Assessment, PhoneAssessment, UtteranceScores, WordAssessment

if TYPE_CHECKING:  # torch: imported only by heads that have a recogniser
    from pronscore.acoustic.phone_ctc import PhoneRecogniser

KIND = "gop-gbt"
RECOGNISER_DIR = "phone_ctc"  # the CTC phone recogniser whose columns the trees read
CHECKS = ("reading_check", "word_check", "channel_check")  # GbtHead fields, config.json keys
CHANNEL_LEVEL = "channel"  # boosters of the utterance targets trained with the channel copies


def import_lightgbm() -> ModuleType:
    """``lightgbm``, imported without scikit-learn when nothing has loaded that yet.

    lightgbm imports scikit-learn only for its estimator wrappers, which pronscore never uses
    (``lgb.train`` / ``Booster``); that import is most of a scorer's cold start (measured
    ~1 s of 2 on an idle core, ~90 MB of memory)."""
    if "lightgbm" not in sys.modules and "sklearn" not in sys.modules:
        sys.modules["sklearn"] = None  # type: ignore[assignment]  # ImportError in lightgbm
        try:
            import lightgbm
        finally:
            del sys.modules["sklearn"]  # a later `import sklearn` works as usual
    import lightgbm

    return lightgbm


@dataclass(frozen=True)
class GbtConfig:
    feature_set: str = "all"  # "paper" | "all" (utterance level)
    levels: tuple[str, ...] = ("utterance", "word", "phone")
    learning_rate: float = 0.03
    num_leaves: tuple[int, ...] = (7, 15, 31)  # model selection grid, picked on dev
    min_data_in_leaf: int = 20
    feature_fraction: float = 0.7
    bagging_fraction: float = 0.8
    max_rounds: int = 3000
    early_stopping: int = 150
    # early stopping on 10-12 validation speakers can stop after ~35 rounds (predictions still
    # shrunk towards the mean, scaled unlike other folds' models); keep at least this many
    min_rounds: int = 0
    seed: int = 1
    threads: int = 2
    # the acoustic model's frame posteriors pooled per phone (features/frame_vectors.py) feed
    # the phone classifier, beside any encoder vectors
    frame_vectors: bool = False
    # a network from each phone's vector (and canonical phone) to its score feeds the trees
    # (``p_enc_score``), beside the phone classifier's columns
    phone_scorer: bool = False
    # the utterance trees read summaries of the word and phone trees' predictions
    # (heads/tables.prediction_context; cross-fitted over the training speakers)
    stacked: bool = False
    # the levels whose trees also learn from the channel copies of the training readings
    # (synthetic band-8k / noise rows, their recording's labels)
    channel_levels: tuple[str, ...] = ()
    # the utterance trees trained on the clean readings stay; those trained with the copies are
    # the ``channel/<target>`` boosters, mixed in by the channel gate's probability
    channel_gate: bool = False
    # the copies' trees' least weight (the gate's P lifts it towards 1): the two sets averaged
    # also score clean readings better than either alone (docs/results_channels.md)
    channel_floor: float = 0.0


@dataclass
class GbtHead:
    """Boosters keyed ``<level>/<target>`` plus their feature names."""

    config: GbtConfig
    boosters: dict = field(default_factory=dict)  # name -> lightgbm.Booster
    features: dict[str, list[str]] = field(default_factory=dict)  # level -> columns
    extra: dict = field(default_factory=dict)  # saved into config.json (features_dir, metrics)
    run_dir: Path | None = None  # where it was loaded from: home of its features cache
    # encoder-vector models: which vectors they read and the classifier that makes them columns
    encoder: EncoderSpec | None = None
    classifier: PhoneClassifier | None = None
    checks: EncoderChecks | None = None  # mismatch / mispronounced thresholds on its columns
    scorer: PhoneScorer | None = None  # GbtConfig.phone_scorer
    reading_check: ReadingCheck | None = None  # another text? (trained with negatives)
    word_check: ReadingCheck | None = None  # another word? (trained with substitutes)
    channel_check: ReadingCheck | None = None  # a degraded channel? (GbtConfig.channel_gate)
    # makes the p_ctc_* / u_ctc_* columns from the encoder's frames (features/ctc_gop.py)
    recogniser: PhoneRecogniser | None = None

    # --- inference ----------------------------------------------------------------------------

    def _predict(self, level: str, table: pd.DataFrame, target: str) -> np.ndarray | None:
        booster = self.boosters.get(f"{level}/{target}")
        if booster is None:
            return None
        x = table.reindex(columns=self.features[level]).to_numpy(dtype="float64")
        return booster.predict(x, num_threads=self.config.threads)

    def predict_features(self, split: SplitFeatures) -> dict[str, Assessment]:
        """Assessments for every utterance of a FEATURES_DIR split (or one scored utterance)."""
        utts, words, phones = split.utterances, split.words, self.phone_rows(split)
        u_tab = utterance_table(utts, words, phones, self.config.feature_set)
        mismatched, reason = self._mismatched(utts, phones, u_tab)
        utts = _mark_mismatched(utts, mismatched, reason)
        flagged: set[tuple[str, int]] = set()
        if self.checks is not None and self.word_check is None:
            flagged = self.checks.flagged_words(phones)
        w_pred = {}
        if len(words):
            w_tab = word_table(words, phones, utts)
            w_pred = {a: self._predict("word", w_tab, f"y_{a}") for a in WORD_ASPECTS}
            if self.word_check is not None:
                flagged = self.word_check.mismatched(w_tab)
        p_pred = (
            self._predict("phone", phone_table(phones, words, utts), "y_score")
            if len(phones)
            else None
        )
        if self.config.stacked:
            u_tab = with_prediction_context(
                u_tab, prediction_context(words, w_pred, phones, p_pred)
            )
        u_pred, channel = self._utterance_scores(u_tab, mismatched)
        out = assemble(utts, words, phones, u_pred, w_pred, p_pred, flagged)
        if channel is not None:
            out = {uid: dc_replace(a, channel=round(float(channel[uid]), 4))
                   for uid, a in out.items()}  # fmt: skip
        return {uid: another_text(a) if uid in mismatched else a for uid, a in out.items()}

    def _utterance_scores(
        self, u_tab: pd.DataFrame, mismatched: set[str]
    ) -> tuple[dict[str, np.ndarray | None], pd.Series | None]:
        """Per utterance aspect, the clean readings' trees -- with a channel gate, mixed with the
        channel copies' trees at ``floor + (1 - floor) * P(degraded channel)``: each set keeps
        what it is best at (5-fold CV: docs/results_channels.md). A reading the reading check
        calls another text gets the clean trees alone: its text, not the channel, explains why
        it sounds unlike it, and the copies' trees learnt to forgive that. Also returns the
        gate's P per id."""
        clean = {a: self._predict("utterance", u_tab, f"y_{a}") for a in UTTERANCE_ASPECTS}
        if self.channel_check is None or not len(u_tab):
            return clean, None
        p = self.channel_check.probabilities(u_tab)
        other = u_tab.index.astype(str).isin(list(mismatched))
        floor = self.config.channel_floor
        w = np.where(other, 0.0, floor + (1.0 - floor) * p)
        out = {}
        for a, c in clean.items():
            ch = self._predict(CHANNEL_LEVEL, u_tab, f"y_{a}")
            out[a] = c if c is None or ch is None else (1.0 - w) * c + w * ch
        return out, pd.Series(p, index=u_tab.index.astype(str))

    def _mismatched(
        self, utts: pd.DataFrame, phones: pd.DataFrame, u_tab: pd.DataFrame
    ) -> tuple[set[str], str]:
        """Aligned readings whose speech does not say their text, and why: the reading check
        when the head has one, else the classifier's threshold (:class:`EncoderChecks`)."""
        ok = aligned(utts)
        if self.reading_check is not None:
            found = self.reading_check.mismatched(u_tab[ok])
            return found, self.reading_check.reason
        if self.checks is not None:
            ids = set(utts["id"][ok].astype(str))
            return self.checks.mismatched(phones, utts) & ids, self.checks.reason
        return set(), ""

    def phone_vectors(self, split: SplitFeatures) -> np.ndarray | None:
        """What the phone classifier reads for each phone row: the split's encoder vectors,
        then (``frame_vectors``) the frame posteriors pooled per phone."""
        if self.encoder is not None and split.phone_vectors is None:
            raise ModelError(
                "this model reads encoder vectors: extract features with `pronscore features "
                "--encoder` (a Scorer computes them itself)"
            )
        parts = [] if split.phone_vectors is None else [split.phone_vectors]
        if self.config.frame_vectors:
            from pronscore.features.frame_vectors import split_frame_vectors

            parts.append(split_frame_vectors(split))
        return np.concatenate(parts, axis=1) if parts else None

    def phone_rows(self, split: SplitFeatures) -> pd.DataFrame:
        """The split's phone rows, with the classifier's ``p_enc_*`` columns when the head has
        one (its GOP over encoder / frame vectors) and its ``heard`` phone in place of the free
        loop's -- or, with a CTC phone recogniser, the recogniser's (``ctc_heard``: over 2,500
        readings out of fold it names another phone for 14.7% of the phones experts scored 2
        and for 84.2% of those scored 1 or less; the classifier 18.0% / 81.8%, the free loop
        59.7% / 83.5%)."""
        if self.classifier is None:
            return split.phones
        vectors = self.phone_vectors(split)
        if vectors is None:
            raise ModelError("this model's phone classifier has no vectors to read")
        cols = self.classifier.columns(vectors, split.phones["base_phone"], heard=True)
        if self.scorer is not None:
            cols[SCORE_COLUMN] = self.scorer.scores(vectors, split.phones["base_phone"])
        if self.recogniser is not None and HEARD_COLUMN in split.phones:
            cols["heard"] = split.phones[HEARD_COLUMN].tolist()
        return with_columns(split.phones, cols)

    # --- persistence --------------------------------------------------------------------------

    def save_pretrained(self, out_dir: str | Path) -> None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for name, booster in self.boosters.items():
            booster.save_model(str(out / f"{name.replace('/', '__')}.txt"))
        config = {
            "kind": KIND,
            "gbt": asdict(self.config),
            "features": self.features,
            "models": sorted(self.boosters),
            **self.extra,
        }
        if self.classifier is not None:
            if self.encoder is None and not self.config.frame_vectors:
                raise ModelError("a head with a phone classifier needs what it reads to save")
            self.classifier.save(out)
            if self.scorer is not None:
                self.scorer.save(out)
            if self.encoder is not None:
                config["encoder"] = self.encoder.to_dict()
        if self.checks is not None:
            config["encoder_checks"] = self.checks.to_dict()
        for key in CHECKS:
            if (check := getattr(self, key)) is not None:
                check.save(out)
                config[key] = check.to_dict()
        if self.recogniser is not None:
            self.recogniser.save_pretrained(out / RECOGNISER_DIR)
        (out / "config.json").write_text(json.dumps(config, indent=2))

    @classmethod
    def from_pretrained(cls, run_dir: str | Path) -> GbtHead:
        lgb = import_lightgbm()
        d = Path(run_dir)
        config = read_run_config(d)
        if config.get("kind") != KIND:
            raise ModelError(f"not a {KIND} run (kind {config.get('kind')!r})", path=d)
        try:
            gbt = dict(config["gbt"])
            gbt["levels"], gbt["num_leaves"] = tuple(gbt["levels"]), tuple(gbt["num_leaves"])
            gbt_config, features, models = GbtConfig(**gbt), config["features"], config["models"]
        except (KeyError, TypeError) as exc:
            raise ModelError(f"malformed config ({exc!r})", path=d / "config.json") from exc
        boosters = {}
        for name in models:
            path = d / f"{name.replace('/', '__')}.txt"
            if not path.is_file():
                raise ModelError("model file missing", path=path)
            boosters[name] = lgb.Booster(model_file=str(path))
        own = ("kind", "gbt", "features", "models", "encoder", "encoder_checks", *CHECKS)
        extra = {k: v for k, v in config.items() if k not in own}
        encoder = classifier = checks = scorer = None
        try:
            if config.get("encoder"):
                encoder = EncoderSpec.from_dict(config["encoder"])
            if encoder is not None or gbt_config.frame_vectors:
                classifier = PhoneClassifier.load(d)
            if classifier is not None and gbt_config.phone_scorer:
                scorer = PhoneScorer.load(d)
            if config.get("encoder_checks"):
                checks = EncoderChecks(**config["encoder_checks"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"malformed encoder ({exc!r})", path=d / "config.json") from exc
        found = {k: ReadingCheck.load(d, config[k]) for k in CHECKS if config.get(k)}
        if (d / RECOGNISER_DIR / "config.json").is_file():
            from pronscore.acoustic.phone_ctc import PhoneRecogniser

            found["recogniser"] = PhoneRecogniser.from_pretrained(d / RECOGNISER_DIR)
        return cls(gbt_config, boosters, features, extra, d, encoder, classifier, checks, scorer,
                   **found)  # fmt: skip


def with_columns(rows: pd.DataFrame, cols: dict) -> pd.DataFrame:
    """``rows`` with ``cols`` added or replaced: one concat, not ~45 column assignments (an
    ``assign`` of the classifier's columns cost ~5 ms of every scoring)."""
    kept = rows.drop(columns=[c for c in cols if c in rows])
    return pd.concat([kept, pd.DataFrame(cols, index=rows.index)], axis=1)


def _clip(x: float | None, hi: float) -> float | None:
    return None if x is None or not np.isfinite(x) else float(np.clip(x, 0.0, hi))


def heard_instead(canonical: str, heard: object) -> str | None:
    """The phone the free loop chose, when it is another phone than the canonical one (the
    Scorer decides when to show it: :meth:`pronscore.scorer.Scorer._word`)."""
    return heard if isinstance(heard, str) and heard and heard != canonical else None


def another_text(a: Assessment) -> Assessment:
    """A reading the check calls another text: every word flagged, the scores kept with the
    ``mismatch`` status and its reason. Lowering them would punish the check's false alarms on
    weak readings of the right text: capping accuracy, completeness and total at 2 for the 2% of
    training readings it flags (out of fold) took the cross-validated utterance total PCC over
    2,260 readings from 0.805 to 0.774 (at 4: 0.797), and zeroing the words of 2 flagged dev
    readings took word accuracy PCC 0.609 -> 0.552."""
    return dc_replace(a, words=tuple(dc_replace(w, mispronounced=True) for w in a.words))


def _mark_mismatched(utts: pd.DataFrame, ids: set[str], reason: str) -> pd.DataFrame:
    """Status ``mismatch`` with ``reason`` for the utterances ``ids``."""
    if not ids:
        return utts
    hit = utts["id"].astype(str).isin(ids)
    out = utts.copy()
    out["status"] = np.where(hit, "mismatch", out.get("status", "ok"))
    out["reason"] = np.where(hit, reason, out.get("reason", None))
    return out


def assemble(
    utts: pd.DataFrame,
    words: pd.DataFrame,
    phones: pd.DataFrame,
    u_pred: dict[str, np.ndarray | None],
    w_pred: dict[str, np.ndarray | None],
    p_pred: np.ndarray | None,
    flagged: set[tuple[str, int]] = frozenset(),
) -> dict[str, Assessment]:
    """Per-row predictions -> one :class:`Assessment` per utterance (scores clipped to scale);
    ``flagged`` words are marked mispronounced (the rest are left to the Scorer's policy)."""

    def pick(pred: np.ndarray | None, i: int, hi: float) -> float | None:
        return None if pred is None else _clip(pred[i], hi)

    def only(df: pd.DataFrame, *cols: str) -> pd.DataFrame:
        # itertuples over a feature table's ~200 columns cost ~25 ms of every scoring
        return df[[c for c in cols if c in df.columns]]

    phones = only(phones, "id", "word_index", "phone", "base_phone", "start", "end", "heard")
    words = only(words, "id", "word_index", "text")
    utts = only(utts, "id", "status", "reason")
    phone_rows: dict[tuple[str, int], list[PhoneAssessment]] = {}
    for i, r in enumerate(phones.itertuples(index=False)):
        start = None if pd.isna(r.start) else float(r.start)
        end = None if pd.isna(r.end) else float(r.end)
        phone_rows.setdefault((str(r.id), int(r.word_index)), []).append(
            PhoneAssessment(
                str(r.phone),
                pick(p_pred, i, PHONE_SCALE),
                start,
                end,
                heard_instead(str(r.base_phone), getattr(r, "heard", None)),
            )
        )
    word_rows: dict[str, list[WordAssessment]] = {}
    for i, r in enumerate(words.itertuples(index=False)):
        ph = tuple(phone_rows.get((str(r.id), int(r.word_index)), ()))
        scores = {a: pick(w_pred.get(a), i, WORD_SCALE) for a in WORD_ASPECTS}
        # a flag only where the head knows better; else the Scorer's ScorerConfig.mispronounced_*
        flag = True if (str(r.id), int(r.word_index)) in flagged else None
        word_rows.setdefault(str(r.id), []).append(
            WordAssessment(str(r.text), phones=ph, mispronounced=flag, **scores)
        )
    out = {}
    for i, r in enumerate(utts.itertuples(index=False)):
        uid = str(r.id)
        scores = UtteranceScores(
            **{a: pick(u_pred.get(a), i, UTTERANCE_SCALE) for a in UTTERANCE_ASPECTS}
        )
        status = str(getattr(r, "status", "ok"))
        failed = status != "ok"
        out[uid] = Assessment(
            utterance=scores,
            words=tuple(word_rows.get(uid, ())),
            status=("mismatch" if status == "mismatch" else "failed") if failed else "ok",
            reason=(getattr(r, "reason", None) or None) if failed else None,
        )
    return out
