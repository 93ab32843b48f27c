"""Train the :class:`~pronscore.heads.phone_classifier.PhoneClassifier` and give a head's
training rows columns it did not see.

Targets are the canonical phones that experts scored 2 (correct by definition); a
mispronounced phone is what the classifier must *not* recognise. The GBT above it learns from
the classifier's columns, so its training rows get them *cross-fitted*: each speaker group's
columns come from a classifier trained without those speakers, as on unseen audio (an
in-sample classifier is over-confident on its own training phones, and the GBT would trust it
too much).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pronscore.features.extract import SplitFeatures
from pronscore.heads.phone_classifier import (
    COLUMNS,
    SCORE_COLUMN,
    Mlp,
    PhoneClassifier,
    PhoneScorer,
    scorer_inputs,
)
from pronscore.text import PHONE_INDEX, PHONES
from pronscore.training.cv import inner_groups
from pronscore.training.negatives import score_rows


@dataclass(frozen=True)
class ClassifierOptions:
    correct: float = 1.99  # labels are 0-2 averages over experts; 2 = every expert said correct
    hidden: int = 512
    epochs: int = 8
    batch: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-2
    dropout: float = 0.2
    inner_folds: int = 4  # speaker groups for the cross-fitted training columns
    seed: int = 1
    threads: int = 2


def _fit_mlp(x: np.ndarray, y: np.ndarray, n_out: int, loss, opts: ClassifierOptions) -> Mlp:
    """Standardise, then train Linear -> GELU -> Dropout -> Linear with AdamW on ``loss``."""
    import torch

    torch.set_num_threads(opts.threads)
    torch.manual_seed(opts.seed)
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-5
    xt, yt = torch.from_numpy((x - mean) / scale), torch.from_numpy(y)
    gelu = torch.nn.GELU(approximate="tanh")  # the numpy inference computes this one
    net = torch.nn.Sequential(
        torch.nn.Linear(x.shape[1], opts.hidden),
        gelu,
        torch.nn.Dropout(opts.dropout),
        torch.nn.Linear(opts.hidden, n_out),
    )
    optim = torch.optim.AdamW(net.parameters(), lr=opts.lr, weight_decay=opts.weight_decay)
    gen = torch.Generator().manual_seed(opts.seed)
    for _ in range(opts.epochs):
        for idx in torch.randperm(len(xt), generator=gen).split(opts.batch):
            batch_loss = loss(net(xt[idx]), yt[idx])
            optim.zero_grad()
            batch_loss.backward()
            optim.step()
    first, second = net[0], net[3]
    return Mlp(
        mean=mean,
        scale=scale,
        w1=first.weight.detach().numpy().T.copy(),
        b1=first.bias.detach().numpy().copy(),
        w2=second.weight.detach().numpy().T.copy(),
        b2=second.bias.detach().numpy().copy(),
    )


def fit_classifier(
    vectors: np.ndarray, phone_ids: np.ndarray, opts: ClassifierOptions
) -> PhoneClassifier:
    """Fit on rows of (N, D) vectors labelled with phone indices (rows with NaN are dropped)."""
    import torch

    ok = np.isfinite(vectors).all(axis=1)
    x, y = vectors[ok].astype(np.float32), phone_ids[ok].astype(np.int64)
    if len(x) < 10:
        raise ValueError(f"{len(x)} correct phones with vectors: too few to train on")
    net = _fit_mlp(x, y, len(PHONES), torch.nn.functional.cross_entropy, opts)
    return PhoneClassifier(**vars(net))


def fit_scorer(
    vectors: np.ndarray, base_phones, scores: np.ndarray, opts: ClassifierOptions
) -> PhoneScorer:
    """Fit the phone score (0-2) from [vector, canonical one-hot] on rows with a vector and a
    label, by mean squared error."""
    import torch

    x = scorer_inputs(vectors, base_phones)
    ok = np.isfinite(x).all(axis=1) & np.isfinite(scores)
    if ok.sum() < 10:
        raise ValueError(f"{ok.sum()} labelled phones with vectors: too few to train on")

    def mse(out, y):
        return torch.nn.functional.mse_loss(out[:, 0], y)

    net = _fit_mlp(x[ok], scores[ok].astype(np.float32), 1, mse, opts)
    return PhoneScorer(**vars(net))


def _correct_rows(split: SplitFeatures, correct: float) -> tuple[np.ndarray, np.ndarray]:
    """Vectors and phone indices of the phones scored correct."""
    p = split.phones
    if "y_score" not in p:
        raise ValueError("training features have no y_score column (phone labels)")
    keep = p["y_score"].to_numpy(dtype=float) >= correct
    ids = p["base_phone"].map(PHONE_INDEX).to_numpy()
    return split.phone_vectors[keep], ids[keep]


def fit_on(split: SplitFeatures, opts: ClassifierOptions) -> PhoneClassifier:
    split = score_rows(split)  # negatives' phones are not examples of any phone
    if split.phone_vectors is None:
        raise ValueError("these features have no encoder vectors (pronscore features --encoder)")
    return fit_classifier(*_correct_rows(split, opts.correct), opts)


def fit_scorer_on(split: SplitFeatures, opts: ClassifierOptions) -> PhoneScorer:
    split = score_rows(split)
    p = split.phones
    if split.phone_vectors is None or "y_score" not in p:
        raise ValueError("the phone scorer needs per-phone vectors and y_score labels")
    return fit_scorer(split.phone_vectors, p["base_phone"], p["y_score"].to_numpy(float), opts)


def cross_fitted_columns(
    split: SplitFeatures, opts: ClassifierOptions, *, scorer: bool = False
) -> dict[str, np.ndarray]:
    """``p_enc_*`` columns for every phone row of ``split``, each speaker group's from a
    classifier (and, with ``scorer``, a :class:`PhoneScorer`: ``p_enc_score``) trained on the
    other groups (utterance groups when there are fewer speakers than groups, as in a smoke
    run)."""
    utt_group = inner_groups(split.utterances, opts.inner_folds, opts.seed)
    row_group = split.phones["id"].astype(str).map(utt_group).to_numpy()
    names = (*COLUMNS, SCORE_COLUMN) if scorer else COLUMNS
    out = {c: np.full(len(split.phones), np.nan) for c in names}
    for k in range(opts.inner_folds):
        held = row_group == k
        if not held.any():
            continue
        others = split.subset([u for u, g in utt_group.items() if g != k])
        vectors, phones = split.phone_vectors[held], split.phones["base_phone"][held]
        cols = fit_on(others, opts).columns(vectors, phones)
        if scorer:
            cols[SCORE_COLUMN] = fit_scorer_on(others, opts).scores(vectors, phones)
        for c in names:
            out[c][held] = cols[c]
    return out
