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
from pronscore.heads.phone_classifier import COLUMNS, PhoneClassifier
from pronscore.text import PHONE_INDEX, PHONES


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


def fit_classifier(
    vectors: np.ndarray, phone_ids: np.ndarray, opts: ClassifierOptions
) -> PhoneClassifier:
    """Fit on rows of (N, D) vectors labelled with phone indices (rows with NaN are dropped)."""
    import torch

    torch.set_num_threads(opts.threads)
    torch.manual_seed(opts.seed)
    ok = np.isfinite(vectors).all(axis=1)
    x, y = vectors[ok].astype(np.float32), phone_ids[ok].astype(np.int64)
    if len(x) < 10:
        raise ValueError(f"{len(x)} correct phones with vectors: too few to train on")
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-5
    xt, yt = torch.from_numpy((x - mean) / scale), torch.from_numpy(y)
    gelu = torch.nn.GELU(approximate="tanh")  # the numpy inference computes this one
    net = torch.nn.Sequential(
        torch.nn.Linear(x.shape[1], opts.hidden),
        gelu,
        torch.nn.Dropout(opts.dropout),
        torch.nn.Linear(opts.hidden, len(PHONES)),
    )
    optim = torch.optim.AdamW(net.parameters(), lr=opts.lr, weight_decay=opts.weight_decay)
    gen = torch.Generator().manual_seed(opts.seed)
    for _ in range(opts.epochs):
        for idx in torch.randperm(len(xt), generator=gen).split(opts.batch):
            loss = torch.nn.functional.cross_entropy(net(xt[idx]), yt[idx])
            optim.zero_grad()
            loss.backward()
            optim.step()
    first, second = net[0], net[3]
    return PhoneClassifier(
        mean=mean,
        scale=scale,
        w1=first.weight.detach().numpy().T.copy(),
        b1=first.bias.detach().numpy().copy(),
        w2=second.weight.detach().numpy().T.copy(),
        b2=second.bias.detach().numpy().copy(),
    )


def _correct_rows(split: SplitFeatures, correct: float) -> tuple[np.ndarray, np.ndarray]:
    """Vectors and phone indices of the phones scored correct."""
    p = split.phones
    if "y_score" not in p:
        raise ValueError("training features have no y_score column (phone labels)")
    keep = p["y_score"].to_numpy(dtype=float) >= correct
    ids = p["base_phone"].map(PHONE_INDEX).to_numpy()
    return split.phone_vectors[keep], ids[keep]


def fit_on(split: SplitFeatures, opts: ClassifierOptions) -> PhoneClassifier:
    if split.phone_vectors is None:
        raise ValueError("these features have no encoder vectors (pronscore features --encoder)")
    return fit_classifier(*_correct_rows(split, opts.correct), opts)


def cross_fitted_columns(split: SplitFeatures, opts: ClassifierOptions) -> dict[str, np.ndarray]:
    """``p_enc_*`` columns for every phone row of ``split``, each speaker group's from a
    classifier trained on the other groups (utterance groups when there are fewer speakers
    than groups, as in a smoke run)."""
    utts = split.utterances
    ids = utts["id"].astype(str)
    units = utts["speaker"].astype(str) if "speaker" in utts else ids
    if units.nunique() < opts.inner_folds:
        units = ids
    if units.nunique() < 2:
        raise ValueError("cross-fitting the phone classifier needs two or more utterances")
    rng = np.random.default_rng(opts.seed)
    order = rng.permutation(np.array(sorted(set(units))))
    group = {u: i % opts.inner_folds for i, u in enumerate(order)}
    utt_group = dict(zip(ids, units.map(group), strict=True))
    row_group = split.phones["id"].astype(str).map(utt_group).to_numpy()
    out = {c: np.full(len(split.phones), np.nan) for c in COLUMNS}
    for k in range(opts.inner_folds):
        held = row_group == k
        if not held.any():
            continue
        others = split.subset([u for u, g in utt_group.items() if g != k])
        clf = fit_on(others, opts)
        cols = clf.columns(split.phone_vectors[held], split.phones["base_phone"][held])
        for c in COLUMNS:
            out[c][held] = cols[c]
    return out
