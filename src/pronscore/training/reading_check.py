"""Fit the checks of :mod:`pronscore.heads.reading_check` on a head's training rows.

Reading check (utterance level): positives ("this text") are the human-labelled readings,
``truncated`` readings (the same recordings cut after a few words: a learner who stops early
still read this text) and channel copies (8 kHz, noise); negatives are ``other-text`` rows (a
recording against another utterance's words). Its threshold is the ``1 - flag_share`` quantile
of the human readings' out-of-fold probabilities (speaker groups), so that about
``flag_share`` of unseen right readings are called a mismatch.

Channel gate: the channel copies of the human readings against the readings; its probability
weighs two sets of utterance trees (:class:`pronscore.heads.gbt.GbtHead`), so it has no
threshold of its own (:data:`GATE_REPORTED_AT` in the logged rates).

Word check: the words of the human readings against the words that ``substitute`` rows put in
place of the spoken ones; its threshold flags ``flag_share`` of the words experts rated >= 8.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from pronscore.heads.reading_check import ReadingCheck, aligned
from pronscore.training.cv import deal_units
from pronscore.training.negatives import CHANNEL

OTHER_TEXT = "other-text"
READINGS = ("truncated", *CHANNEL)
"""Synthetic rows that are readings of their text: cut short, through a phone line, in noise."""
LENGTH_COLUMNS = ("u_read_share", "n_phones", "n_words")
"""How much of the text was read: a partial reading has less of it, so it is no evidence."""
MIN_CHECK_ROWS = 10
GATE_REPORTED_AT = 0.5
"""The channel gate's P at which its rates are reported (it weighs trees, it flags nothing)."""
GOOD_WORD = 8.0
"""Words experts rated this or higher are said right: the word check's false alarms."""


@dataclass(frozen=True)
class CheckOptions:
    flag_share: float = 0.02  # of unseen right readings (good words) called not this text
    folds: int = 4  # speaker groups for the out-of-fold threshold
    rounds: int = 300
    learning_rate: float = 0.05
    num_leaves: int = 15
    min_data_in_leaf: int = 20
    exclude: tuple[str, ...] = LENGTH_COLUMNS
    seed: int = 1
    threads: int = 2


def check_labels(utts: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(rows the check learns from, 1 for another text) for a split's utterances: aligned
    human readings, readings cut short or through another channel, and other-text rows."""
    kind = utts["synthetic"] if "synthetic" in utts else pd.Series(None, index=utts.index)
    human = kind.isna().to_numpy()
    use = aligned(utts) & (human | kind.isin([OTHER_TEXT, *READINGS]).to_numpy())
    return use, kind.eq(OTHER_TEXT).to_numpy()


def _params(opts: CheckOptions) -> dict[str, Any]:
    return {
        "objective": "binary", "learning_rate": opts.learning_rate,
        "num_leaves": opts.num_leaves, "min_data_in_leaf": opts.min_data_in_leaf,
        "feature_fraction": 0.7, "bagging_fraction": 0.8, "bagging_freq": 1,
        "seed": opts.seed, "num_threads": opts.threads, "verbosity": -1, "deterministic": True,
    }  # fmt: skip


def _fit(x: np.ndarray, y: np.ndarray, opts: CheckOptions) -> Any:
    from pronscore.heads.gbt import import_lightgbm

    lgb = import_lightgbm()
    return lgb.train(_params(opts), lgb.Dataset(x, y), num_boost_round=opts.rounds)


def out_of_fold(x: np.ndarray, y: np.ndarray, groups: np.ndarray, opts: CheckOptions) -> np.ndarray:
    """Each row's probability from a booster trained without its group's rows."""
    fold = deal_units(groups, opts.folds, opts.seed)
    row_fold = np.array([fold[g] for g in groups])
    out = np.full(len(y), np.nan)
    for k in range(opts.folds):
        held = row_fold == k
        if held.any() and (~held).any():
            out[held] = _fit(x[~held], y[~held], opts).predict(x[held])
    return out


def fit_check(
    table: pd.DataFrame,
    target: np.ndarray,
    reference: np.ndarray,
    groups: np.ndarray,
    opts: CheckOptions = CheckOptions(),
    level: str = "utterance",
) -> tuple[ReadingCheck, np.ndarray]:
    """A check from a design matrix: ``target`` marks the rows that are not this text,
    ``reference`` the rows whose out-of-fold probabilities set the threshold (``flag_share`` of
    them above it), ``groups`` the speakers. Returns it and the out-of-fold probabilities."""
    if target.sum() < MIN_CHECK_ROWS or reference.sum() < MIN_CHECK_ROWS:
        raise ValueError(
            f"a check needs {MIN_CHECK_ROWS} or more rows of the text and rows not of it"
        )
    names = [c for c in table.columns if c not in opts.exclude]
    x = table[names].to_numpy("float64")
    oof = out_of_fold(x, target.astype("float64"), np.asarray(groups).astype(str), opts)
    threshold = float(np.nanquantile(oof[reference], 1.0 - opts.flag_share))
    check = ReadingCheck(_fit(x, target.astype("float64"), opts), names, threshold,
                         opts.flag_share, level)  # fmt: skip
    return check, oof


def flag_rates(oof: np.ndarray, threshold: float, **rows: np.ndarray) -> dict[str, float]:
    """Share of each named row set above ``threshold`` (out of fold), for the logs and card."""
    return {k: round(float((oof[m] > threshold).mean()), 4) for k, m in rows.items() if m.any()}


def fit_reading_check(
    table: pd.DataFrame,
    kind: np.ndarray,
    groups: np.ndarray,
    opts: CheckOptions = CheckOptions(),
) -> tuple[ReadingCheck, dict[str, float]]:
    """The utterance check from an utterance design matrix whose rows are readings and
    other-text rows; ``kind`` is each row's synthetic kind (None / NaN: a human-labelled
    reading). Returns it and its out-of-fold rates (other texts caught; human readings, readings
    cut short and channel copies flagged)."""
    kind = pd.Series(kind, dtype=object)
    other, human = kind.eq(OTHER_TEXT).to_numpy(), kind.isna().to_numpy()
    check, oof = fit_check(table, other, human, groups, opts)
    rates = flag_rates(oof, check.threshold, other_caught=other, human_flagged=human,
                       truncated_flagged=kind.eq("truncated").to_numpy(),
                       channel_flagged=kind.isin(list(CHANNEL)).to_numpy())  # fmt: skip
    return check, rates


def fit_word_check(
    table: pd.DataFrame,
    replaced: np.ndarray,
    accuracy: np.ndarray,
    groups: np.ndarray,
    opts: CheckOptions = CheckOptions(),
) -> tuple[ReadingCheck, dict[str, float]]:
    """The word check from a word design matrix (rows: the words of human readings and the
    replaced words of substitute rows, marked ``replaced``); the threshold flags ``flag_share``
    of the words experts rated >= :data:`GOOD_WORD` (``accuracy``)."""
    good = ~replaced & (np.nan_to_num(accuracy, nan=-1.0) >= GOOD_WORD)
    check, oof = fit_check(table, replaced, good, groups, replace(opts, exclude=()), "word")
    rates = flag_rates(oof, check.threshold, replaced_caught=replaced, good_flagged=good,
                       other_words_flagged=~replaced & ~good)  # fmt: skip
    return check, rates


def fit_channel_gate(
    table: pd.DataFrame,
    kind: np.ndarray,
    groups: np.ndarray,
    opts: CheckOptions = CheckOptions(),
) -> tuple[ReadingCheck, dict[str, float]]:
    """The channel gate from an utterance design matrix whose rows are human readings
    (``kind`` None / NaN) and their channel copies (``kind`` in :data:`CHANNEL`). Returns it and
    its out-of-fold rates at P >= 0.5 (copies caught per kind, readings called degraded)."""
    kind = pd.Series(kind, dtype=object)
    copy, human = kind.isin(list(CHANNEL)).to_numpy(), kind.isna().to_numpy()
    use = copy | human
    gate, oof = fit_check(table[use], copy[use], human[use], groups[use],
                          replace(opts, exclude=()), "channel")  # fmt: skip
    caught = {f"{k}_caught": kind[use].eq(k).to_numpy() for k in CHANNEL}
    rates = flag_rates(oof, GATE_REPORTED_AT, human_flagged=human[use], **caught)
    gate = replace(gate, threshold=GATE_REPORTED_AT, flag_share=rates["human_flagged"])
    return gate, rates
