"""Fit the GBT head: one LightGBM regressor per target, early-stopped and model-selected
(``num_leaves`` grid) on the dev split by Pearson correlation."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from pronscore.evaluation.metrics import pearson
from pronscore.features.encoder import EncoderSpec
from pronscore.features.extract import SplitFeatures
from pronscore.heads.gbt import GbtConfig, GbtHead, import_lightgbm
from pronscore.heads.phone_classifier import EncoderChecks
from pronscore.heads.tables import (
    PHONE_TARGET,
    UTT_TARGETS,
    WORD_TARGETS,
    phone_table,
    utterance_table,
    word_table,
)
from pronscore.training.phone_classifier import (
    ClassifierOptions,
    cross_fitted_columns,
    fit_on,
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


def _fit_one(x_tr, y_tr, x_dev, y_dev, config: GbtConfig, names: list[str], categorical: list[str]):
    lgb = import_lightgbm()

    best = (-np.inf, None)
    for leaves in config.num_leaves:
        params = {
            "objective": "regression", "learning_rate": config.learning_rate, "num_leaves": leaves,
            "min_data_in_leaf": config.min_data_in_leaf,
            "feature_fraction": config.feature_fraction,
            "bagging_fraction": config.bagging_fraction, "bagging_freq": 1, "seed": config.seed,
            "num_threads": config.threads, "verbosity": -1, "deterministic": True,
        }  # fmt: skip
        train = lgb.Dataset(
            x_tr, y_tr, feature_name=names, categorical_feature=categorical, free_raw_data=False
        )
        dev = lgb.Dataset(x_dev, y_dev, reference=train)
        booster = lgb.train(
            params, train, num_boost_round=config.max_rounds, valid_sets=[dev],
            callbacks=[lgb.early_stopping(config.early_stopping, verbose=False)],
        )  # fmt: skip
        r = pearson(y_dev, booster.predict(x_dev, num_iteration=booster.best_iteration))
        score = -np.inf if r is None else r  # constant labels: keep the first candidate
        if best[1] is None or score > best[0]:
            best = (score, booster)
    r, booster = best
    # keep only the selected rounds so the saved model predicts exactly what was selected
    r = None if not np.isfinite(r) else float(r)
    return r, lgb.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))


def fit_gbt(
    train: SplitFeatures,
    dev: SplitFeatures,
    config: GbtConfig,
    log=print,
    *,
    encoder: EncoderSpec | None = None,
) -> tuple[GbtHead, dict]:
    """Train every target on ``train``, select on ``dev``; returns the head and dev PCCs.

    Features with encoder vectors (``encoder``: how they were made) first get a phone
    classifier whose columns join the phone rows (cross-fitted on ``train``)."""
    head = GbtHead(config, encoder=encoder)
    if train.phone_vectors is not None:
        train, dev = _with_classifier(head, train, dev, log)
    dev_pcc: dict[str, float | None] = {}
    tr_tabs, dev_tabs = _tables(train, config), _tables(dev, config)
    targets = {"utterance": UTT_TARGETS, "word": WORD_TARGETS, "phone": (PHONE_TARGET,)}
    for level, (x_tr_df, lab_tr) in tr_tabs.items():
        x_dev_df, lab_dev = dev_tabs[level]
        names = list(x_tr_df.columns)
        head.features[level] = names
        categorical = [c for c in ("phone_id", "position_id") if c in names]
        x_dev_df = x_dev_df.reindex(columns=names)
        for target in targets[level]:
            y_tr = lab_tr[target].to_numpy(dtype="float64")
            y_dev = lab_dev[target].to_numpy(dtype="float64")
            m_tr, m_dev = np.isfinite(y_tr), np.isfinite(y_dev)
            if m_tr.sum() < 10 or m_dev.sum() < 3:
                log(f"{level}/{target}: too few labels, skipped")
                continue
            r, booster = _fit_one(
                x_tr_df.to_numpy("float64")[m_tr], y_tr[m_tr], x_dev_df.to_numpy("float64")[m_dev],
                y_dev[m_dev], config, names, categorical,
            )  # fmt: skip
            head.boosters[f"{level}/{target}"] = booster
            dev_pcc[f"{level}/{target}"] = r
            shown = "n/a" if r is None else f"{r:.3f}"
            log(f"{level:9s} {target[2:]:12s} dev PCC {shown}  ({booster.num_trees()} trees)")
    return head, dev_pcc


def _with_classifier(
    head: GbtHead, train: SplitFeatures, dev: SplitFeatures, log
) -> tuple[SplitFeatures, SplitFeatures]:
    """Fit ``head.classifier``; training rows get cross-fitted columns, dev rows the final
    classifier's (as any scored recording will)."""
    opts = ClassifierOptions(seed=head.config.seed, threads=head.config.threads)
    log(f"phone classifier on encoder vectors ({opts.inner_folds} speaker groups cross-fitted)")
    cols = cross_fitted_columns(train, opts)
    head.classifier = fit_on(train, opts)
    train = replace(train, phones=train.phones.assign(**cols))
    head.checks = encoder_checks(train)
    log(f"encoder checks: {head.checks}")
    return train, replace(dev, phones=head.phone_rows(dev))


def encoder_checks(train: SplitFeatures, checks: EncoderChecks | None = None) -> EncoderChecks:
    """Thresholds at the set quantiles of the training readings' cross-fitted ``p_enc_lpp``:
    per reading, and per word experts scored >= 8."""
    q = checks or EncoderChecks(0.0, 0.0)
    p = train.phones
    per_utt = p.groupby(p["id"].astype(str))["p_enc_lpp"].mean().dropna()
    per_word = p.groupby([p["id"].astype(str), p["word_index"]])["p_enc_lpp"].mean()
    acc = train.words.set_index([train.words["id"].astype(str), "word_index"])["y_accuracy"]
    good = per_word[acc.reindex(per_word.index).to_numpy() >= 8].dropna()
    return replace(
        q,
        utterance_below=float(np.quantile(per_utt, q.utterance_quantile)),
        word_below=float(np.quantile(good, q.word_quantile)) if len(good) else -np.inf,
    )
