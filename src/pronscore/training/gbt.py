"""Fit the GBT head: one LightGBM regressor per target, early-stopped and model-selected
(``num_leaves`` grid) on the dev split by Pearson correlation -- or, to refit on every labelled
utterance, with the sizes that cross-validation chose (:func:`sizes_from_cv`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from pronscore.constants import WORD_ASPECTS
from pronscore.errors import CorpusError
from pronscore.evaluation.metrics import pearson
from pronscore.features.encoder import EncoderSpec
from pronscore.features.extract import SplitFeatures
from pronscore.heads.gbt import (
    CHANNEL_LEVEL,
    GbtConfig,
    GbtHead,
    import_lightgbm,
    with_columns,
)
from pronscore.heads.phone_classifier import EncoderChecks
from pronscore.heads.reading_check import ReadingCheck
from pronscore.heads.tables import (
    PHONE_TARGET,
    UTT_TARGETS,
    WORD_TARGETS,
    phone_table,
    prediction_context,
    utterance_table,
    with_prediction_context,
    word_table,
)
from pronscore.training.cv import inner_groups
from pronscore.training.negatives import replaced_words, score_rows
from pronscore.training.phone_classifier import (
    ClassifierOptions,
    cross_fitted_columns,
    fit_on,
    fit_scorer_on,
)
from pronscore.training.reading_check import (
    MIN_CHECK_ROWS,
    CheckOptions,
    check_labels,
    fit_channel_gate,
    fit_reading_check,
    fit_word_check,
)


def _tables(
    split: SplitFeatures, config: GbtConfig
) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """level -> (design matrix, label frame) with rows aligned."""
    u, w, p = split.utterances, split.words, split.phones
    out = {}
    if "utterance" in config.levels:
        out["utterance"] = (utterance_table(u, w, p, config.feature_set), u.set_index("id"))
    if "word" in config.levels:
        out["word"] = (word_table(w, p, u), w.set_index(["id", "word_index"]))
    if "phone" in config.levels:
        out["phone"] = (phone_table(p, w, u), p.set_index(["id", "phone_index"]))
    return out


def _params(config: GbtConfig, leaves: int) -> dict[str, Any]:
    return {
        "objective": "regression", "learning_rate": config.learning_rate, "num_leaves": leaves,
        "min_data_in_leaf": config.min_data_in_leaf, "feature_fraction": config.feature_fraction,
        "bagging_fraction": config.bagging_fraction, "bagging_freq": 1, "seed": config.seed,
        "num_threads": config.threads, "verbosity": -1, "deterministic": True,
    }  # fmt: skip


def _fit_one(x_tr, y_tr, x_dev, y_dev, config: GbtConfig, names: list[str], categorical: list[str]):
    """Early stopping and the ``num_leaves`` grid on dev: (dev PCC, booster, its size)."""
    lgb = import_lightgbm()

    best = (-np.inf, None, 0, 0)
    for leaves in config.num_leaves:
        train = lgb.Dataset(
            x_tr, y_tr, feature_name=names, categorical_feature=categorical, free_raw_data=False
        )
        dev = lgb.Dataset(x_dev, y_dev, reference=train)
        booster = lgb.train(
            _params(config, leaves), train, num_boost_round=config.max_rounds, valid_sets=[dev],
            callbacks=[lgb.early_stopping(config.early_stopping, verbose=False)],
            keep_training_booster=True,  # else only the best_iteration trees are kept
        )  # fmt: skip
        rounds = _kept_rounds(booster, config)
        r = pearson(y_dev, booster.predict(x_dev, num_iteration=rounds))
        score = -np.inf if r is None else r  # constant labels: keep the first candidate
        if best[1] is None or score > best[0]:
            best = (score, booster, leaves, rounds)
    r, booster, leaves, rounds = best
    # keep only the selected rounds so the saved model predicts exactly what was selected
    r = None if not np.isfinite(r) else float(r)
    kept = lgb.Booster(model_str=booster.model_to_string(num_iteration=rounds))
    return r, kept, {"num_leaves": int(leaves), "rounds": int(kept.num_trees())}


def _kept_rounds(booster: Any, config: GbtConfig) -> int:
    """The early-stopped round, but at least ``config.min_rounds`` (of those trained)."""
    return max(booster.best_iteration, min(config.min_rounds, booster.current_iteration()))


def _fit_fixed(x_tr, y_tr, size: Mapping[str, int], config: GbtConfig, names, categorical):
    """A booster of a given size (``num_leaves``, ``rounds``), no selection."""
    lgb = import_lightgbm()
    train = lgb.Dataset(x_tr, y_tr, feature_name=names, categorical_feature=categorical)
    params = _params(config, int(size["num_leaves"]))
    return lgb.train(params, train, num_boost_round=max(1, int(size["rounds"])))


def sizes_from_cv(folds: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """Per target, the size to refit with: the ``num_leaves`` most folds chose (the smaller
    on a tie) and the median of their rounds, from the ``selection`` of each fold of a
    ``pronscore cv gop-gbt`` run (cv.json ``folds``)."""
    chosen: dict[str, list[dict[str, int]]] = {}
    for f in folds:
        for target, size in (f.get("selection") or {}).items():
            chosen.setdefault(target, []).append(size)
    out = {}
    for target, sizes in chosen.items():
        leaves = [int(s["num_leaves"]) for s in sizes]
        mode = min(set(leaves), key=lambda v: (-leaves.count(v), v))
        out[target] = {
            "num_leaves": mode,
            "rounds": round(float(np.median([s["rounds"] for s in sizes]))),
        }
    return out


def fit_gbt(
    train: SplitFeatures,
    dev: SplitFeatures | None,
    config: GbtConfig,
    log=print,
    *,
    encoder: EncoderSpec | None = None,
    sizes: Mapping[str, Mapping[str, int]] | None = None,
    recogniser: Any = None,
) -> tuple[GbtHead, dict]:
    """Train every target on ``train``, select on ``dev``; returns the head and dev PCCs.

    ``sizes`` (target -> ``num_leaves``, ``rounds``; :func:`sizes_from_cv`): fit those sizes
    with no selection -- the refit on all labelled data, ``dev`` may then be ``None``. What
    was chosen is in ``head.extra["selection"]``. Features with encoder vectors (``encoder``:
    how they were made) first get a phone classifier whose columns join the phone rows
    (cross-fitted on ``train``). ``recogniser``: the CTC phone recogniser that made the
    features' ``p_ctc_*`` columns, kept so that a Scorer makes them the same way."""
    if dev is None and sizes is None:
        raise ValueError("fit_gbt needs a dev split to select on, or the sizes to fit")
    head = GbtHead(config, encoder=encoder, recogniser=recogniser)
    if train.phone_vectors is not None or config.frame_vectors:
        train, dev = _with_classifier(head, train, dev, log)
    copies: dict = {}
    if "synthetic" in train.utterances:  # synthetic rows train the checks, not the trees
        _fit_checks(head, train, log)
        if config.channel_levels:  # ... except channel copies, where asked
            levels = tuple(v for v in config.levels if v in config.channel_levels)
            with_copies = score_rows(train, channels=True)
            copies = _tables(with_copies, replace(config, levels=levels))
            if config.channel_gate and "utterance" in copies:
                head.channel_check = _utterance_check(
                    head,
                    with_copies,
                    copies["utterance"][0],
                    fit_channel_gate,
                    "channel_check",
                    log,
                )
                copies = {CHANNEL_LEVEL: copies.pop("utterance"), **copies}
        train = score_rows(train)
    fit = _LevelFit(config, sizes, log)
    tr_tabs = _tables(train, config)
    tr_tabs.update(copies)
    dev_tabs = _tables(dev, config) if dev is not None else {}
    if CHANNEL_LEVEL in tr_tabs:  # selected on the clean validation readings, as the clean trees
        fit.level(head, CHANNEL_LEVEL, tr_tabs.pop(CHANNEL_LEVEL), dev_tabs.get("utterance"))
    for level in ("word", "phone"):
        if level in tr_tabs:
            fit.level(head, level, tr_tabs[level], dev_tabs.get(level))
    if "utterance" in tr_tabs:
        if config.stacked:
            cross_fitted = _cross_fitted(tr_tabs, train, fit, head)
            tr_tabs["utterance"] = _with_context(tr_tabs, train, cross_fitted)
            if dev is not None:
                in_sample = partial(_predict_table, head, dev_tabs)
                dev_tabs["utterance"] = _with_context(dev_tabs, dev, in_sample)
        fit.level(head, "utterance", tr_tabs["utterance"], dev_tabs.get("utterance"))
    head.extra["selection"] = fit.selection
    return head, fit.dev_pcc


TARGETS = {
    "utterance": UTT_TARGETS,
    CHANNEL_LEVEL: UTT_TARGETS,
    "word": WORD_TARGETS,
    "phone": (PHONE_TARGET,),
}
CROSS_FIT_GROUPS = 4  # speaker groups for the stacked utterance trees' training columns


@dataclass
class _LevelFit:
    """Fits every target of a level (dev-selected, or at the refit's ``sizes``) into a head,
    keeping what was chosen and the dev PCCs."""

    config: GbtConfig
    sizes: Mapping[str, Mapping[str, int]] | None
    log: Any
    dev_pcc: dict[str, float | None] = field(default_factory=dict)
    selection: dict[str, dict[str, int]] = field(default_factory=dict)

    def level(self, head: GbtHead, level: str, tab, dev_tab) -> None:
        x_tr_df, lab_tr = tab
        names = list(x_tr_df.columns)
        head.features[level] = names
        categorical = _categorical(names)
        x_tr = x_tr_df.to_numpy("float64")
        if dev_tab is not None:
            x_dev_df, lab_dev = dev_tab
            x_dev = x_dev_df.reindex(columns=names).to_numpy("float64")
        for target in TARGETS[level]:
            name = f"{level}/{target}"
            y_tr = lab_tr[target].to_numpy(dtype="float64")
            m_tr = np.isfinite(y_tr)
            if self.sizes is not None:
                if name not in self.sizes or m_tr.sum() < 10:
                    self.log(f"{name}: no size from cross-validation or too few labels, skipped")
                    continue
                booster = _fit_fixed(x_tr[m_tr], y_tr[m_tr], self.sizes[name], self.config,
                                     names, categorical)  # fmt: skip
                r, size = None, dict(self.sizes[name])
            else:
                y_dev = lab_dev[target].to_numpy(dtype="float64")
                m_dev = np.isfinite(y_dev)
                if m_tr.sum() < 10 or m_dev.sum() < 3:
                    self.log(f"{name}: too few labels, skipped")
                    continue
                r, booster, size = _fit_one(x_tr[m_tr], y_tr[m_tr], x_dev[m_dev], y_dev[m_dev],
                                            self.config, names, categorical)  # fmt: skip
                self.dev_pcc[name] = r
            head.boosters[name] = booster
            self.selection[name] = {k: int(v) for k, v in size.items()}
            shown = "refit" if self.sizes is not None else "n/a" if r is None else f"{r:.3f}"
            self.log(f"{level:9s} {target[2:]:12s} dev PCC {shown}  ({booster.num_trees()} trees)")


def _predict_table(head: GbtHead, tabs, level: str, target: str) -> np.ndarray | None:
    return head._predict(level, tabs[level][0], target)


def _categorical(names: Sequence[str]) -> list[str]:
    return [c for c in ("phone_id", "position_id") if c in names]


def _with_context(tabs, split: SplitFeatures, predict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The split's utterance table with :func:`prediction_context` columns made by
    ``predict(level, target) -> per-row predictions`` of its word and phone tables (the tables
    keep the split's word and phone row order)."""
    w_pred = {a: predict("word", f"y_{a}") for a in WORD_ASPECTS} if "word" in tabs else {}
    p_pred = predict("phone", PHONE_TARGET) if "phone" in tabs else None
    x_u, lab_u = tabs["utterance"]
    ctx = prediction_context(split.words, w_pred, split.phones, p_pred)
    return with_prediction_context(x_u, ctx), lab_u


def _cross_fitted(tabs, split: SplitFeatures, fit: _LevelFit, head: GbtHead):
    """``predict`` for :func:`_with_context` on the training split: each speaker group's
    predictions from trees of the head's sizes fitted on the other groups. In-sample
    predictions sit closer to their labels than any scored recording's, and the utterance
    trees would trust them too much."""
    groups = inner_groups(split.utterances, CROSS_FIT_GROUPS, head.config.seed)
    fit.log(f"stacked: word and phone predictions cross-fitted over {CROSS_FIT_GROUPS} groups")
    # each level's matrix and row groups once, for all its targets
    arrays = {
        level: (x_df.to_numpy("float64"),
                x_df.index.get_level_values("id").astype(str).map(groups).to_numpy())
        for level, (x_df, _) in tabs.items() if level != "utterance"
    }  # fmt: skip

    def predict(level: str, target: str) -> np.ndarray | None:
        name = f"{level}/{target}"
        if name not in head.boosters:
            return None
        x_df, lab = tabs[level]
        names, (x, row_group) = list(x_df.columns), arrays[level]
        y = lab[target].to_numpy(dtype="float64")
        pred = np.full(len(y), np.nan)
        for k in range(CROSS_FIT_GROUPS):
            held, rows = row_group == k, (row_group != k) & np.isfinite(y)
            if held.any() and rows.sum() >= 10:
                booster = _fit_fixed(x[rows], y[rows], fit.selection[name], head.config, names,
                                     _categorical(names))  # fmt: skip
                pred[held] = booster.predict(x[held], num_threads=head.config.threads)
        return pred

    return predict


MIN_TIMED_PHONES = 10  # fewer: the alignments failed, nothing to learn phones from


def _with_classifier(
    head: GbtHead, train: SplitFeatures, dev: SplitFeatures | None, log
) -> tuple[SplitFeatures, SplitFeatures | None]:
    """Fit ``head.classifier``; training rows get cross-fitted columns, dev rows the final
    classifier's (as any scored recording will)."""
    opts = ClassifierOptions(seed=head.config.seed, threads=head.config.threads)
    log(f"phone classifier on per-phone vectors ({opts.inner_folds} speaker groups cross-fitted)")
    train = replace(train, phone_vectors=head.phone_vectors(train))
    timed = int(np.isfinite(train.phone_vectors).all(axis=1).sum())
    if timed < MIN_TIMED_PHONES:
        raise CorpusError(
            f"only {timed} training phones were aligned (have per-phone vectors): too few to "
            "train the phone classifier on (train without --frame-vectors, or with more audio "
            "that aligns)",
            field="phone_vectors",
        )
    cols = cross_fitted_columns(train, opts, scorer=head.config.phone_scorer)
    head.classifier = fit_on(train, opts)
    if head.config.phone_scorer:
        head.scorer = fit_scorer_on(train, opts)
    train = replace(train, phones=with_columns(train.phones, cols))
    head.checks = encoder_checks(score_rows(train))
    log(f"encoder checks: {head.checks}")
    return train, None if dev is None else replace(dev, phones=head.phone_rows(dev))


def _fit_checks(head: GbtHead, train: SplitFeatures, log) -> None:
    """The reading check (other-text rows against readings) and the word check (substituted
    words against the readings' words), each where there are enough rows for it."""
    use, other = check_labels(train.utterances)
    if (use & other).sum() >= MIN_CHECK_ROWS:
        head.reading_check = _reading_check(head, train.subset(_ids(train, use)), log)
    elif other.any():
        log(f"reading check: fewer than {MIN_CHECK_ROWS} aligned other-text rows, none trained")
    kind = train.utterances["synthetic"]
    words = train.subset(_ids(train, (kind.isna() | kind.eq("substitute")).to_numpy()))
    replaced = replaced_words(words)
    if replaced.sum() >= MIN_CHECK_ROWS:
        head.word_check = _word_check(head, words, replaced, log)


def _ids(split: SplitFeatures, rows: np.ndarray) -> pd.Series:
    """The ids of the utterance rows ``rows`` (a boolean mask)."""
    return split.utterances["id"][rows].astype(str)


def _reading_check(head: GbtHead, rows: SplitFeatures, log) -> ReadingCheck:
    """The reading check on the rows it learns from (:func:`check_labels`: readings and
    other-text rows; the phone rows already carry the head's cross-fitted classifier
    columns)."""
    table = utterance_table(rows.utterances, rows.words, rows.phones, head.config.feature_set)
    return _utterance_check(head, rows, table, fit_reading_check, "reading_check", log)


def _utterance_check(head: GbtHead, rows: SplitFeatures, table, fit, key: str, log) -> ReadingCheck:
    """``fit`` (:func:`fit_reading_check`, :func:`fit_channel_gate`) on the utterance design
    matrix ``table`` of ``rows``, out of fold over their speakers; its rates go to
    ``head.extra[key]``."""
    u = rows.utterances
    groups = _speaker_of(u).reindex(u["id"].astype(str)).to_numpy()
    opts = CheckOptions(seed=head.config.seed, threads=head.config.threads)
    check, stats = fit(table, u["synthetic"].to_numpy(), groups, opts)
    head.extra[key] = stats
    log(f"{key.replace('_', ' ')} (out of fold): {stats}")
    return check


def _word_check(head: GbtHead, rows: SplitFeatures, replaced: np.ndarray, log) -> ReadingCheck:
    """The word check on the words of the training readings and the replaced words of the
    substitute rows (``rows``: those utterances; ``replaced`` marks their word rows; word
    design matrix with the head's cross-fitted classifier columns)."""
    u, w = rows.utterances, rows.words
    human_ids = set(_ids(rows, u["synthetic"].isna().to_numpy()))
    keep = replaced | w["id"].astype(str).isin(human_ids).to_numpy()
    table = word_table(w, rows.phones, u)[keep]
    groups = w["id"].astype(str).map(_speaker_of(u))
    opts = CheckOptions(seed=head.config.seed, threads=head.config.threads)
    accuracy = w["y_accuracy"].to_numpy(float)[keep]
    check, stats = fit_word_check(table, replaced[keep], accuracy, groups.to_numpy()[keep], opts)
    head.extra["word_check"] = stats
    log(f"word check (out of fold): {stats}")
    return check


def _speaker_of(utts: pd.DataFrame) -> pd.Series:
    """id -> speaker (the check's out-of-fold groups; each utterance alone without speakers)."""
    ids = utts["id"].astype(str)
    speakers = utts["speaker"].astype(str) if "speaker" in utts else ids
    return pd.Series(speakers.to_numpy(), index=ids.to_numpy())


def encoder_checks(train: SplitFeatures, checks: EncoderChecks | None = None) -> EncoderChecks:
    """Thresholds at the set quantiles of the training readings' cross-fitted ``p_enc_lpp``
    (the CTC recogniser's out-of-fold ``p_ctc_sf`` when the features have it): per reading,
    and per word experts scored >= 8; with the recogniser's read extent, the margin per phone
    within which the readings' prefixes explain their audio (``said_margin_within``)."""
    p = train.phones
    column = "p_ctc_sf" if "p_ctc_sf" in p else "p_enc_lpp"
    q = replace(checks or EncoderChecks(0.0, 0.0), column=column)
    values = q.evidence(p)  # what the check reads when scoring
    per_utt = values.groupby(p["id"].astype(str)).mean().dropna()
    per_word = values.groupby([p["id"].astype(str), p["word_index"]]).mean()
    acc = train.words.set_index([train.words["id"].astype(str), "word_index"])["y_accuracy"]
    good = per_word[acc.reindex(per_word.index).to_numpy() >= 8].dropna()
    margins = train.utterances.get("ctc_said_margin")
    margins = None if margins is None else margins.dropna()
    return replace(
        q,
        utterance_below=float(np.quantile(per_utt, q.utterance_quantile)),
        word_below=float(np.quantile(good, q.word_quantile)) if len(good) else -np.inf,
        said_margin_within=(
            float(np.quantile(margins, q.said_margin_quantile))
            if margins is not None and len(margins)
            else None
        ),
    )
