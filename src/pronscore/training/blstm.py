"""Fit the BLSTM baseline: masked MSE over every level, early stopping on dev mean PCC."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import torch

from pronscore.evaluation.metrics import pearson
from pronscore.features.extract import SplitFeatures
from pronscore.heads.blstm import BlstmConfig, BlstmHead, BlstmNet, feature_columns, make_batches


def _masked_mse(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    m = torch.isfinite(y)
    return ((pred[m] - y[m]) ** 2).mean() if m.any() else pred.sum() * 0


def _dev_score(net: BlstmNet, batches) -> tuple[float, dict[str, float | None]]:
    net.eval()
    ys: dict[str, list] = {"phone": [], "word": [], "utterance": []}
    with torch.no_grad():
        for b in batches:
            p, w, u = net(b.x, b.phone_ids, b.lengths, b.word_of, b.n_words)
            ys["phone"].append((p, b.y_phone))
            ys["word"].append((w[..., 0], b.y_word[..., 0]))
            ys["utterance"].append((u[:, -1], b.y_utt[:, -1]))  # total
    out = {}
    for level, pairs in ys.items():
        pred = torch.cat([p.flatten() for p, _ in pairs]).numpy()
        y = torch.cat([t.flatten() for _, t in pairs]).numpy()
        m = np.isfinite(y)
        out[level] = pearson(y[m], pred[m])
    vals = [v for v in out.values() if v is not None]
    return (float(np.mean(vals)) if vals else -1.0), out


def fit_blstm(train: SplitFeatures, dev: SplitFeatures, config: BlstmConfig, log=print):
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    cols = feature_columns(train.phones)
    x = train.phones[cols].to_numpy("float64")
    mean, std = np.nanmean(x, 0), np.nanstd(x, 0)
    mean, std = np.nan_to_num(mean), np.where(np.nan_to_num(std) > 1e-8, np.nan_to_num(std), 1.0)
    config = dataclasses.replace(config, n_features=len(cols))
    net = BlstmNet(config)
    tr = make_batches(train, cols, mean, std, config.batch_size)
    dv = make_batches(dev, cols, mean, std, 64)
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=1e-4)
    rng = np.random.default_rng(config.seed)
    best, best_state, best_detail, stale = -np.inf, None, {}, 0
    for epoch in range(config.epochs):
        net.train()
        for i in rng.permutation(len(tr)):
            b = tr[i]
            p, w, u = net(b.x, b.phone_ids, b.lengths, b.word_of, b.n_words)
            loss = _masked_mse(p, b.y_phone) + _masked_mse(w, b.y_word) + _masked_mse(u, b.y_utt)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
        score, detail = _dev_score(net, dv)
        if score > best:
            best, best_state, best_detail, stale = score, copy.deepcopy(net.state_dict()), detail, 0
        else:
            stale += 1
        log(f"epoch {epoch + 1}: dev mean PCC {score:.3f} {detail}")
        if stale >= config.patience:
            break
    net.load_state_dict(best_state)
    head = BlstmHead(config, net, cols, mean, std)
    return head, {
        f"{k}/total" if k == "utterance" else f"{k}/accuracy": v for k, v in best_detail.items()
    }
