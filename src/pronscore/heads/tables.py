"""Design matrices for feature-based heads, built from a FEATURES_DIR split.

One row per utterance, word or phone, indexed by ``id`` (+ ``word_index`` / ``phone_index``).
Two feature sets for utterances: ``paper`` (Lin & Wang 2021 Table 2 GBT baseline: mean GOP per
phone type, mean position, number of phones) and ``all`` (every utterance feature plus
aggregates of the phone and word features).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from pronscore.constants import UTTERANCE_ASPECTS, WORD_ASPECTS
from pronscore.text import PHONE_INDEX, PHONES

POSITIONS = {"B": 0.0, "I": 1.0, "E": 2.0, "S": 3.0}
UTT_TARGETS = tuple(f"y_{a}" for a in UTTERANCE_ASPECTS)
WORD_TARGETS = tuple(f"y_{a}" for a in WORD_ASPECTS)
PHONE_TARGET = "y_score"
PAPER_GOP = "p_gop_forced"


def _scalar_cols(df: pd.DataFrame, prefix: str) -> list[str]:
    """Numeric feature columns with ``prefix``, LPR vectors excluded (aggregated separately)."""
    return [
        c
        for c in df.columns
        if c.startswith(prefix)
        and not c.startswith(("p_lpr_", "p_enc_lpr_"))
        and pd.api.types.is_numeric_dtype(df[c])
    ]


def _relative_position(phones: pd.DataFrame) -> pd.Series:
    n = phones.groupby("id")["phone_index"].transform("count").clip(lower=1)
    return phones["phone_index"] / n


def utterance_table(
    utts: pd.DataFrame, words: pd.DataFrame, phones: pd.DataFrame, feature_set: str
) -> pd.DataFrame:
    """Utterance design matrix (index ``id``), in ``utts`` order.

    Built with one ``pd.concat`` of parts aligned on ``id``: adding ~70 columns one at a time
    fragments the frame (pandas PerformanceWarning on every scoring).
    """
    index = pd.Index(utts["id"].astype(str), name="id")
    # = pivot_table(aggfunc="mean"), without its overhead (this runs for every scoring)
    per_type = phones.groupby(["id", "base_phone"])[PAPER_GOP].mean().unstack()
    parts = [
        per_type.reindex(columns=list(PHONES)).add_prefix("gop_"),
        _relative_position(phones).groupby(phones["id"]).mean().rename("mean_position"),
        phones.groupby("id").size().rename("n_phones"),
    ]
    if feature_set == "all":
        pcols = _scalar_cols(phones, "p_")
        g = phones.groupby("id")[pcols]
        wg = words.groupby("id")[_scalar_cols(words, "w_")]
        parts += [
            utts.set_index("id")[_scalar_cols(utts, "u_")],
            g.mean().add_suffix("_mean"), g.min().add_suffix("_min"), g.std().add_suffix("_std"),
            g.quantile(0.1).add_suffix("_p10"), g.quantile(0.25).add_suffix("_p25"),
            wg.min().add_suffix("_wmin"), wg.mean().add_suffix("_wmean"),
            words.groupby("id").size().rename("n_words"),
        ]  # fmt: skip
    elif feature_set != "paper":
        raise ValueError(f"unknown feature set {feature_set!r} (paper or all)")
    return pd.concat([part.reindex(index) for part in parts], axis=1).astype("float64")


def word_table(words: pd.DataFrame, phones: pd.DataFrame, utts: pd.DataFrame) -> pd.DataFrame:
    """Word design matrix (index ``id``, ``word_index``), in ``words`` order."""
    pcols = _scalar_cols(phones, "p_")
    g = phones.groupby(["id", "word_index"])[pcols]
    agg = (
        g.mean()
        .add_suffix("_mean")
        .join(g.min().add_suffix("_min"))
        .join(g.max().add_suffix("_max"))
    )
    w = words.set_index(["id", "word_index"])[_scalar_cols(words, "w_")]
    out = w.join(agg)
    out = out.join(_utterance_context(utts), on="id")
    out["n_phones"] = phones.groupby(["id", "word_index"]).size()
    return out.astype("float64")


def _utterance_context(utts: pd.DataFrame) -> pd.DataFrame:
    """Every utterance feature as ``ctx_<name>`` (index ``id``) for the word and phone rows.

    Experts score a sound in the light of the whole reading (5-fold CV over train + dev, GBT:
    phone accuracy 0.480 -> 0.534, word accuracy 0.560 -> 0.577 with this context)."""
    return utts.set_index(utts["id"].astype(str))[_scalar_cols(utts, "u_")].add_prefix("ctx_")


def phone_table(phones: pd.DataFrame, words: pd.DataFrame, utts: pd.DataFrame) -> pd.DataFrame:
    """Phone design matrix (index ``id``, ``phone_index``), in ``phones`` order.

    Phone identity and position are integer codes that LightGBM treats as categorical; the
    word's and the utterance's features are the phone's context.
    """
    cols = [
        c for c in phones.columns if c.startswith("p_") and pd.api.types.is_numeric_dtype(phones[c])
    ]
    out = phones[cols].copy()
    out["phone_id"] = phones["base_phone"].map(PHONE_INDEX).astype("float64")
    out["position_id"] = phones["position"].map(POSITIONS).astype("float64")
    wkeys = [c for c in ("w_lpp_mean", "w_gop_forced_mean", "w_duration") if c in words]
    if wkeys:
        ctx = words.set_index(["id", "word_index"])[wkeys].add_prefix("word_")
        keys = pd.MultiIndex.from_frame(phones[["id", "word_index"]])
        out[list(ctx.columns)] = ctx.reindex(keys).to_numpy()
    uctx = _utterance_context(utts).reindex(phones["id"].astype(str))
    out = pd.concat([out, uctx.set_axis(out.index), _neighbours(phones)], axis=1)
    out.index = pd.MultiIndex.from_frame(phones[["id", "phone_index"]])
    return out.astype("float64")


NEIGHBOUR_COLS = (
    "p_lpp", "p_gop_forced", "p_duration", "p_loop_match", "p_phone_id", "p_enc_lpp", "p_enc_score"
)  # fmt: skip
RELATIVE_COLS = ("p_lpp", "p_gop_forced", "p_duration", "p_enc_lpp", "p_enc_score")


def _neighbours(phones: pd.DataFrame) -> pd.DataFrame:
    """The previous and next phone's evidence (``prev_*`` / ``next_*``, across word
    boundaries within the utterance), the phone's evidence relative to its utterance's mean
    (``rel_*``) and the means over its utterance and word (``umean_*`` / ``wmean_*``): an
    aligner error or a slurred transition shows up in the neighbours, and a speaker's overall
    level is what experts judge a sound against. The phone scorer's verdict among them, with
    the means (5-fold speaker CV over train + dev, phone accuracy: whisper 0.665 -> 0.676,
    default 0.601 -> 0.609; 4 of 5 folds up for each)."""
    order = phones.sort_values(["id", "phone_index"])
    utt = order["id"].astype(str)
    near = [c for c in NEIGHBOUR_COLS if c in order]
    rel = [c for c in RELATIVE_COLS if c in order]
    # one groupby call per statistic over all its columns: a call per column cost ~20 ms of
    # every scoring (the column order stays that of the trained models)
    g = order.groupby(utt, sort=False)
    prev, nxt = g[near].shift(1), g[near].shift(-1)
    umean = g[rel].transform("mean")
    wmean = order.groupby([utt, order["word_index"]], sort=False)[rel].transform("mean")
    parts = {}
    for c in near:
        parts[f"prev_{c}"], parts[f"next_{c}"] = prev[c], nxt[c]
    for c in rel:
        parts[f"rel_{c}"] = order[c] - umean[c]
        parts[f"umean_{c}"], parts[f"wmean_{c}"] = umean[c], wmean[c]
    return pd.DataFrame(parts, index=order.index).reindex(phones.index)


LOW_PHONE = 1.5  # a phone predicted below this (0-2 scale) counts as weak for its utterance


def prediction_context(
    words: pd.DataFrame,
    w_pred: Mapping[str, np.ndarray | None],
    phones: pd.DataFrame,
    p_pred: np.ndarray | None,
) -> pd.DataFrame:
    """Per utterance (index ``id``), the word and phone trees' predictions summed up: mean and
    minimum of each word aspect (``pred_word_<aspect>_mean`` / ``_min``), mean and minimum phone
    score and the share of phones below :data:`LOW_PHONE` (``pred_phone_*``). With these the
    utterance trees read the same verdicts a learner sees for the words and sounds."""
    wp = pd.DataFrame(
        {f"pred_word_{a}": w_pred[a] for a in WORD_ASPECTS if w_pred.get(a) is not None},
        index=pd.Index(words["id"].astype(str), name="id"),
    )
    parts = []
    if len(wp.columns):
        g = wp.groupby(level=0, sort=False)
        parts += [g.mean().add_suffix("_mean"), g.min().add_suffix("_min")]
    if p_pred is not None:
        pp = pd.Series(p_pred, index=pd.Index(phones["id"].astype(str), name="id"))
        g = pp.groupby(level=0, sort=False)
        low = (pp < LOW_PHONE).astype("float64").groupby(level=0, sort=False)
        parts.append(pd.DataFrame({"pred_phone_mean": g.mean(), "pred_phone_min": g.min(),
                                   "pred_phone_low": low.mean()}))  # fmt: skip
    if not parts:
        return pd.DataFrame(index=pd.Index([], name="id"))
    return pd.concat(parts, axis=1).astype("float64")


def with_prediction_context(u_tab: pd.DataFrame, context: pd.DataFrame) -> pd.DataFrame:
    """The utterance design matrix with :func:`prediction_context` columns (NaN where an
    utterance has no word or phone rows)."""
    return pd.concat([u_tab, context.reindex(u_tab.index)], axis=1)


def targets(df: pd.DataFrame, cols: tuple[str, ...] | str) -> np.ndarray:
    return df[list(cols) if isinstance(cols, tuple) else [cols]].to_numpy(dtype="float64")
