"""Training of the hierarchical scorer: inputs, batching, masked multi-level losses, the three
stages of Lin & Wang (2021) and the ``hier`` predictor.

Inputs (``--inputs``, joined with ``+``):

* ``gop``        the per-phone ``p_*`` columns of a FEATURES_DIR (paper Table 3 variant)
* ``ps-frames``  pocketsphinx per-frame log phone posteriors (``frames/<id>.safetensors``),
                 mean-pooled over each aligned phone (39 + 3 non-speech dims)
* ``utt``        (beyond the paper) the utterance-level ``u_*`` features (speech rate, pauses,
                 F0/energy statistics) added to the sentence vector; needs a per-phone input too
* ``whisper:L``  Whisper layer L pooled per phone: the encoder vectors of the FEATURES_DIR
                 (``pronscore features --encoder ID_OR_PATH --layers L``, what the Scorer
                 computes for a recording), else the cache of :mod:`pronscore.features.deep`
                 (``--deep-cache``, older runs); ``whisper:A-B`` is a learned softmax-weighted
                 sum of layers A..B

Stages: (1) the acoustic model is pretrained and frozen (features are cached);
(2) ``pretrain="synthetic"``: a GOP gradient-boosted-trees teacher (``pronscore.heads.gbt``)
scores the unlabelled utterances -- the train split itself with out-of-fold teacher
predictions, plus any extra FEATURES_DIR (e.g. augmented audio) -- and the module is trained
on those scores; (3) fine-tuning on the human scores, model selection on dev.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from pronscore.atomic import replace_dir
from pronscore.constants import (
    PHONE_SCALE,
    UTTERANCE_ASPECTS,
    WORD_ASPECTS,
    WORD_SCALE,
)
from pronscore.errors import ModelError
from pronscore.evaluation.metrics import pearson
from pronscore.features.encoder import EncoderSpec
from pronscore.features.extract import SplitFeatures, load_features
from pronscore.heads.hierarchical import HierarchicalScorer, HierConfig, phone_id
from pronscore.schema import Assessment

_WHISPER = re.compile(r"^whisper:(\d+)(?:-(\d+))?$")


# --- inputs ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class InputSpec:
    """Parsed ``--inputs``: which per-phone vectors, and which Whisper layers (if any)."""

    gop: bool = False
    ps_frames: bool = False
    utt: bool = False
    whisper_layers: tuple[int, ...] = ()

    @classmethod
    def parse(cls, text: str) -> InputSpec:
        spec = cls()
        for part in text.split("+"):
            part = part.strip()
            if part == "gop":
                spec = replace(spec, gop=True)
            elif part == "ps-frames":
                spec = replace(spec, ps_frames=True)
            elif part == "utt":
                spec = replace(spec, utt=True)
            elif m := _WHISPER.match(part):
                a = int(m.group(1))
                b = int(m.group(2) or a)
                spec = replace(spec, whisper_layers=tuple(range(a, b + 1)))
            else:
                raise ModelError(f"unknown input {part!r}", field="inputs")
        if replace(spec, utt=False) == cls():
            raise ModelError("no inputs given", field="inputs")
        return spec


@dataclass(frozen=True)
class UttArrays:
    """One utterance, grouped by word: x (W, P, [L,] F), phone ids (W, P) (0 = padding),
    labels on 0-1 (NaN = unknown): phone (W, P), word (W, 3), utterance (5,)."""

    id: str
    x: np.ndarray
    phone_ids: np.ndarray
    y_phone: np.ndarray
    y_word: np.ndarray
    y_utt: np.ndarray
    u: np.ndarray  # (n_utt_features,) utterance-level features, empty when unused


def gop_columns(phones: pd.DataFrame) -> list[str]:
    return [c for c in phones.columns if c.startswith("p_") and c != "p_phone_id"]


def utt_columns(utts: pd.DataFrame) -> list[str]:
    return [c for c in utts.columns if c.startswith("u_")]


def _frame_pooled(split: SplitFeatures, utt: str, g: pd.DataFrame) -> np.ndarray:
    from pronscore.features.deep import pool_phones

    if not split.has_frames(utt):  # zeros would be read as a confident "nothing heard"
        raise ModelError(
            "ps-frames input: no frame file for this utterance (rerun `pronscore features`)",
            path=split.frames_path(utt),
        )
    fr = split.frames(utt)
    frames = np.concatenate([fr["phone_scores"], fr["nonspeech_scores"]], axis=1)
    return pool_phones(frames, g["start"], g["end"], 100.0)[0]


def encoder_inputs(
    split: SplitFeatures, spec: InputSpec, vector_layers: Sequence[int] | None = None
) -> np.ndarray | None:
    """The whisper inputs from the split's encoder vectors: (rows of ``split.phones``,
    len(whisper layers), D) float32, or ``None`` when the split has no vectors.

    ``vector_layers``: the layers the vectors hold (``encoder.json`` of the FEATURES_DIR);
    default the inputs' own layers. Phones without time (NaN rows) become zeros, as they were
    in the deep cache the older runs were trained on."""
    v = split.phone_vectors
    if not spec.whisper_layers or v is None:
        return None
    have = [int(x) for x in (vector_layers or spec.whisper_layers)]
    want = list(spec.whisper_layers)
    if not set(want) <= set(have) or v.shape[1] % len(have):
        raise ModelError(
            f"whisper inputs need layers {want}; the encoder vectors hold layers {have} "
            f"({v.shape[1]} values per phone)",
            field="phone_vectors",
        )
    x = np.asarray(v, np.float32).reshape(len(v), len(have), -1)
    return np.nan_to_num(x[:, [have.index(layer) for layer in want]], nan=0.0)


def phone_vectors(
    split: SplitFeatures,
    spec: InputSpec,
    *,
    deep_cache: str | Path | None,
    gop_cols: Sequence[str],
    vector_layers: Sequence[int] | None = None,
) -> dict[str, np.ndarray]:
    """Per utterance: (n_phones, [L,] F) float32 input vectors in ``phone_index`` order.

    Whisper inputs come from the split's encoder vectors (:func:`encoder_inputs`) when it has
    them, else from ``deep_cache``."""
    from pronscore.features.deep import load_pooled

    encoded = encoder_inputs(split, spec, vector_layers)
    if spec.whisper_layers and encoded is None and deep_cache is None:
        raise ModelError(
            "whisper inputs need encoder vectors in the features (pronscore features "
            "--encoder ID_OR_PATH --layers ...) or the pooled-feature cache (--deep-cache "
            "CACHE_DIR, written by python -m pronscore.features.deep)",
            field="deep_cache",
        )
    out = {}
    phones = split.phones.reset_index(drop=True)  # index = row of split.phone_vectors
    for utt, g in phones.groupby("id", sort=False):
        g = g.sort_values("phone_index")
        parts = []
        if spec.gop:
            parts.append(g.reindex(columns=list(gop_cols)).to_numpy(np.float32))
        if spec.ps_frames:
            parts.append(_frame_pooled(split, str(utt), g))
        flat = np.concatenate(parts, axis=1) if parts else np.zeros((len(g), 0), np.float32)
        if spec.whisper_layers:
            if encoded is not None:
                deep = encoded[g.index.to_numpy()]  # (n, L, D)
            else:
                deep = load_pooled(deep_cache, str(utt), spec.whisper_layers).transpose(1, 0, 2)
            if deep.shape[0] != len(g):
                raise ModelError("deep cache does not match phones", path=str(utt))
            rep = np.repeat(flat[:, None, :], deep.shape[1], axis=1)
            x = np.concatenate([deep, rep], axis=2)
            out[str(utt)] = x[:, 0] if x.shape[1] == 1 else x
        else:
            out[str(utt)] = flat
    return out


def _y(df: pd.DataFrame, col: str) -> np.ndarray:
    if col not in df:
        return np.full(len(df), np.nan, np.float32)
    return pd.to_numeric(df[col], errors="coerce").to_numpy(np.float32)


def build_items(
    split: SplitFeatures, vectors: dict[str, np.ndarray], utt_cols: Sequence[str] = ()
) -> list[UttArrays]:
    """Group each utterance's phones by word and attach 0-1 scaled labels (and ``utt_cols``)."""
    u_tab = split.utterances.reindex(columns=list(utt_cols)).to_numpy(np.float32)
    words = {u: g.sort_values("word_index") for u, g in split.words.groupby("id", sort=False)}
    phones = {u: g.sort_values("phone_index") for u, g in split.phones.groupby("id", sort=False)}
    items = []
    for n, r in enumerate(split.utterances.itertuples(index=False)):
        uid = str(r.id)
        if uid not in phones:
            continue
        g, w = phones[uid], words.get(uid)
        widx = g["word_index"].to_numpy(int)
        n_w = int(widx.max()) + 1 if w is None else max(len(w), int(widx.max()) + 1)
        n_p = int(np.bincount(widx, minlength=n_w).max())
        v = vectors[uid]
        x = np.zeros((n_w, n_p, *v.shape[1:]), np.float32)
        ids = np.zeros((n_w, n_p), np.int64)
        yp = np.full((n_w, n_p), np.nan, np.float32)
        slot = np.zeros(n_w, int)
        y_score = _y(g, "y_score") / PHONE_SCALE
        for k, (wi, ph) in enumerate(zip(widx, g["base_phone"], strict=True)):
            j = slot[wi]
            slot[wi] += 1
            x[wi, j] = v[k]
            ids[wi, j] = phone_id(str(ph))
            yp[wi, j] = y_score[k]
        yw = np.full((n_w, len(WORD_ASPECTS)), np.nan, np.float32)
        if w is not None:
            wi = w["word_index"].to_numpy(int)
            for a, asp in enumerate(WORD_ASPECTS):
                yw[wi, a] = _y(w, f"y_{asp}") / WORD_SCALE
        yu = np.array([_num(getattr(r, f"y_{a}", None)) for a in UTTERANCE_ASPECTS], np.float32)
        items.append(UttArrays(uid, x, ids, yp, yw, yu / 10.0, u_tab[n]))
    return items


def _num(v: Any) -> float:
    return float("nan") if v is None or pd.isna(v) else float(v)


def collate(items: Sequence[UttArrays]) -> dict[str, torch.Tensor]:
    """Pad a batch to (B, W, P, ...); labels NaN where padded or unknown."""
    B = len(items)
    W = max(i.x.shape[0] for i in items)
    P = max(i.x.shape[1] for i in items)
    tail = items[0].x.shape[2:]
    x = np.zeros((B, W, P, *tail), np.float32)
    ids = np.zeros((B, W, P), np.int64)
    yp = np.full((B, W, P), np.nan, np.float32)
    yw = np.full((B, W, len(WORD_ASPECTS)), np.nan, np.float32)
    yu = np.stack([i.y_utt for i in items])
    u = np.stack([i.u for i in items])
    for b, it in enumerate(items):
        w, p = it.x.shape[:2]
        x[b, :w, :p] = it.x
        ids[b, :w, :p] = it.phone_ids
        yp[b, :w, :p] = it.y_phone
        yw[b, :w] = it.y_word
    t = torch.from_numpy
    return {"x": t(x), "ids": t(ids), "yp": t(yp), "yw": t(yw), "yu": t(yu), "u": t(u)}


def fit_input_norm(items: Sequence[UttArrays]) -> tuple[np.ndarray, np.ndarray]:
    """Per-dim mean/std over all real phones (and layers); NaN inputs are later set to the mean."""
    rows = np.concatenate(
        [it.x[it.phone_ids > 0].reshape(-1, it.x.shape[-1]) for it in items], axis=0
    )
    mean = np.nanmean(rows, axis=0)
    std = np.nanstd(rows, axis=0)
    mean = np.where(np.isfinite(mean), mean, 0.0)
    std = np.where(np.isfinite(std) & (std > 1e-6), std, 1.0)
    return mean.astype(np.float32), std.astype(np.float32)


def fit_utt_norm(items: Sequence[UttArrays]) -> tuple[np.ndarray, np.ndarray]:
    rows = np.stack([it.u for it in items])
    with np.errstate(all="ignore"):
        mean, std = np.nanmean(rows, axis=0), np.nanstd(rows, axis=0)
    mean = np.where(np.isfinite(mean), mean, 0.0)
    std = np.where(np.isfinite(std) & (std > 1e-6), std, 1.0)
    return mean.astype(np.float32), std.astype(np.float32)


def fill_nan(
    items: Sequence[UttArrays], mean: np.ndarray, u_mean: np.ndarray | None = None
) -> list[UttArrays]:
    """Missing inputs (failed alignments, NaN features) become the train mean."""
    out = []
    for it in items:
        x = np.where(np.isfinite(it.x), it.x, mean).astype(np.float32)
        u = it.u if u_mean is None else np.where(np.isfinite(it.u), it.u, u_mean)
        out.append(replace(it, x=x, u=u.astype(np.float32)))
    return out


def _fill(model: HierarchicalScorer, items: Sequence[UttArrays]) -> list[UttArrays]:
    u_mean = model.utt_mean.numpy() if model.config.utt_dim else None
    return fill_nan(items, model.in_mean.numpy(), u_mean)


# --- losses, prediction, training --------------------------------------------------------------


def _mse(pred: torch.Tensor | None, y: torch.Tensor) -> torch.Tensor:
    if pred is None:
        return torch.zeros(())
    m = torch.isfinite(y)
    if not m.any():
        return torch.zeros(())
    return ((pred[m] - y[m]) ** 2).mean()


def batch_loss(model: HierarchicalScorer, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Masked MSE summed over levels; each head is scored on the aspects it predicts."""
    c = model.config
    out = model(batch["x"], batch["ids"], batch["u"])
    u_cols = [UTTERANCE_ASPECTS.index(a) for a in c.utterance_outputs]
    loss = _mse(out.utterance, batch["yu"][:, u_cols])
    if out.word is not None:
        w_cols = [WORD_ASPECTS.index(a) for a in c.word_outputs]
        loss = loss + _mse(out.word, batch["yw"][..., w_cols])
    if out.phone is not None:
        loss = loss + _mse(out.phone, batch["yp"])
    return loss


@torch.inference_mode()
def predict_items(
    model: HierarchicalScorer, items: Sequence[UttArrays], batch_size: int = 64
) -> dict[str, dict[str, np.ndarray]]:
    """Per utterance: "utterance" (n_u,), "word" (W, n_w), "phone" (W, P) (or None), on 0-1."""
    model.eval()
    preds = {}
    for s in range(0, len(items), batch_size):
        chunk = items[s : s + batch_size]
        b = collate(chunk)
        out = model(b["x"], b["ids"], b["u"])
        for k, it in enumerate(chunk):
            w, p = it.x.shape[:2]
            preds[it.id] = {
                "utterance": out.utterance[k].numpy(),
                "word": None if out.word is None else out.word[k, :w].numpy(),
                "phone": None if out.phone is None else out.phone[k, :w, :p].numpy(),
            }
    return preds


def dev_pcc(model: HierarchicalScorer, items: Sequence[UttArrays]) -> dict[str, float]:
    """Quick dev PCCs used for model selection (utterance aspects the model predicts)."""
    preds = predict_items(model, items)
    out = {}
    for j, a in enumerate(model.config.utterance_outputs):
        ref = np.array([it.y_utt[UTTERANCE_ASPECTS.index(a)] for it in items])
        hyp = np.array([preds[it.id]["utterance"][j] for it in items])
        m = np.isfinite(ref)
        out[a] = pearson(ref[m], hyp[m]) or 0.0
    return out


@dataclass(frozen=True)
class FitOptions:
    epochs: int = 40
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 1
    patience: int = 10
    select_on: str = "total"


def _freeze(model: HierarchicalScorer, trainable: str) -> None:
    """``all`` or ``top`` (fine-tune only the word attention and the output heads)."""
    for name, p in model.named_parameters():
        p.requires_grad = trainable == "all" or name.startswith(
            ("word_attn", "sent_norm", "utt_head", "word_head", "phone_head")
        )


def fit(
    model: HierarchicalScorer,
    train: Sequence[UttArrays],
    dev: Sequence[UttArrays] | None,
    opts: FitOptions,
    *,
    trainable: str = "all",
    log: Callable[[str], None] = print,
) -> tuple[HierarchicalScorer, dict]:
    """Adam on masked MSE; keeps the state with the best dev PCC (last state without dev)."""
    torch.manual_seed(opts.seed)
    rng = np.random.default_rng(opts.seed)
    _freeze(model, trainable)
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=opts.lr, weight_decay=opts.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(optim, T_max=max(opts.epochs, 1))
    best, best_state, best_epoch, stale = -np.inf, None, -1, 0
    for epoch in range(opts.epochs):
        model.train()
        order = rng.permutation(len(train))
        total = 0.0
        for s in range(0, len(order), opts.batch_size):
            batch = collate([train[i] for i in order[s : s + opts.batch_size]])
            loss = batch_loss(model, batch)
            optim.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optim.step()
            total += loss.item() * len(batch["yu"])
        sched.step()
        if dev is None:
            continue
        pcc = dev_pcc(model, dev)
        score = pcc.get(opts.select_on, float(np.mean(list(pcc.values()))))
        log(f"epoch {epoch + 1:3d} loss {total / len(train):.4f} dev PCC {score:.3f}")
        if score > best:
            best, best_epoch, stale = score, epoch + 1, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
            if stale >= opts.patience:
                break
    for p in model.parameters():
        p.requires_grad = True
    if best_state is not None:
        model.load_state_dict(best_state)
    return model.eval(), {"best_dev_pcc": best, "best_epoch": best_epoch}


# --- stage 2: synthetic scores --------------------------------------------------------------


def teacher_scores(
    train: SplitFeatures,
    dev: SplitFeatures,
    unlabelled: Sequence[SplitFeatures] = (),
    *,
    seed: int = 1,
    threads: int = 1,
    log: Callable[[str], None] = print,
) -> list[SplitFeatures]:
    """Synthetic labels from the GOP GBT baseline, written into ``y_*`` columns.

    The train split is scored out-of-fold (2 speaker-disjoint halves, each scored by a teacher
    fitted on the other half) so the synthetic scores are honest predictions, not echoes of
    the human labels; extra unlabelled splits are scored by a teacher fitted on all of train.
    """
    from pronscore.heads.gbt import GbtConfig
    from pronscore.training.gbt import fit_gbt

    config = GbtConfig(feature_set="all", seed=seed, threads=threads)
    spk = train.utterances["speaker"].astype(str)
    half = spk.map(lambda s: hash_mod2(s)).to_numpy()
    out = []
    for k in (0, 1):
        fit_ids = set(train.utterances["id"][half != k].astype(str))
        head, _ = fit_gbt(train.subset(fit_ids), dev, config, log=lambda *_: None)
        other = train.subset(set(train.utterances["id"][half == k].astype(str)))
        out.append(relabel(other, head.predict_features(other)))
        log(f"teacher fold {k}: scored {len(other.utterances)} train utterances")
    if unlabelled:
        head, _ = fit_gbt(train, dev, config, log=lambda *_: None)
        for u in unlabelled:
            out.append(relabel(u, head.predict_features(u)))
    return out


def hash_mod2(s: str) -> int:
    import zlib

    return zlib.crc32(s.encode()) % 2


def relabel(split: SplitFeatures, preds: dict[str, Assessment]) -> SplitFeatures:
    """A copy of ``split`` whose ``y_*`` columns hold the predictions ``preds``."""
    u = split.utterances.copy()
    for a in UTTERANCE_ASPECTS:
        u[f"y_{a}"] = [getattr(preds[str(i)].utterance, a) for i in u["id"]]
    w = split.words.copy()
    wmap = {(uid, j): wa for uid, p in preds.items() for j, wa in enumerate(p.words)}
    for a in WORD_ASPECTS:
        keys = zip(w["id"].astype(str), w["word_index"].astype(int), strict=True)
        w[f"y_{a}"] = [getattr(wmap.get(k), a, None) for k in keys]
    ph = split.phones.copy()
    pmap = {(uid, j): pa.score for uid, p in preds.items() for j, pa in enumerate(p.phones)}
    order = ph.groupby("id")["phone_index"].rank(method="first").astype(int) - 1
    ph["y_score"] = [pmap.get((str(i), int(k))) for i, k in zip(ph["id"], order, strict=True)]
    for df in (u, w, ph):
        for c in df.columns:
            if c.startswith("y_"):
                df[c] = pd.to_numeric(df[c], errors="coerce")
    return replace(split, utterances=u, words=w, phones=ph)


# --- the whole recipe -----------------------------------------------------------------------


@dataclass(frozen=True)
class HierTrainOptions:
    inputs: str = "gop"
    pretrain: str = "none"  # "none" | "synthetic"
    finetune: bool = True
    finetune_trainable: str = "all"  # "all" | "top"
    attention: bool = True
    multi: bool = True
    seed: int = 1
    epochs: int = 40
    pretrain_epochs: int = 20
    deep_cache: str | None = None  # CACHE_DIR of pronscore.features.deep; whisper inputs only
    vector_layers: tuple[int, ...] | None = None  # layers of the features' encoder vectors
    unlabelled: tuple[str, ...] = ()  # extra FEATURES_DIR splits "DIR:split" for stage 2
    threads: int = 1


def synthetic_splits(
    train: SplitFeatures, dev: SplitFeatures, opts: HierTrainOptions, log: Callable = print
) -> list[SplitFeatures]:
    """Stage-2 data: teacher-scored train (out-of-fold) + the ``--unlabelled`` splits."""
    extra = [load_features(*u.rsplit(":", 1)) for u in opts.unlabelled]
    return teacher_scores(train, dev, extra, seed=1, threads=opts.threads, log=log)


@dataclass
class TrainedHier:
    model: HierarchicalScorer
    info: dict


def prepare_items(
    split: SplitFeatures,
    spec: InputSpec,
    deep_cache: str | Path | None,
    gop_cols: Sequence[str],
    utt_cols: Sequence[str] = (),
    vector_layers: Sequence[int] | None = None,
) -> list[UttArrays]:
    vectors = phone_vectors(
        split, spec, deep_cache=deep_cache, gop_cols=gop_cols, vector_layers=vector_layers
    )
    return build_items(split, vectors, utt_cols)


def train_hier(
    train: SplitFeatures,
    dev: SplitFeatures,
    opts: HierTrainOptions,
    *,
    synthetic: Sequence[SplitFeatures] | None = None,
    log: Callable[[str], None] = print,
) -> TrainedHier:
    """Stages 2 (optional) and 3 for one seed; returns the dev-selected model and timings.

    ``synthetic``: teacher-scored splits for stage 2 (computed here when not given)."""
    torch.set_num_threads(max(1, opts.threads))
    t0 = time.process_time()
    spec = InputSpec.parse(opts.inputs)
    gop_cols = gop_columns(train.phones) if spec.gop else []
    u_cols = utt_columns(train.utterances) if spec.utt else []
    layers = opts.vector_layers
    tr = prepare_items(train, spec, opts.deep_cache, gop_cols, u_cols, layers)
    dv = prepare_items(dev, spec, opts.deep_cache, gop_cols, u_cols, layers)
    mean, std = fit_input_norm(tr)
    u_mean, u_std = fit_utt_norm(tr)
    tr, dv = fill_nan(tr, mean, u_mean), fill_nan(dv, mean, u_mean)
    in_dim = tr[0].x.shape[-1]
    n_layers = len(spec.whisper_layers) if len(spec.whisper_layers) > 1 else 1
    extra = {"inputs": opts.inputs, "gop_columns": gop_cols, "utt_columns": u_cols}
    kw = {
        "n_input_layers": n_layers,
        "attention": opts.attention,
        "utt_dim": len(u_cols),
        "extra": extra,
    }
    config = HierConfig.multi(in_dim, **kw) if opts.multi else HierConfig(in_dim=in_dim, **kw)
    torch.manual_seed(opts.seed)
    model = HierarchicalScorer(config)
    model.in_mean.copy_(torch.from_numpy(mean))
    model.in_std.copy_(torch.from_numpy(std))
    if u_cols:
        model.utt_mean.copy_(torch.from_numpy(u_mean))
        model.utt_std.copy_(torch.from_numpy(u_std))
    info: dict[str, Any] = {"options": opts.__dict__, "n_parameters": model.n_parameters()}
    if opts.pretrain == "synthetic":
        synth = synthetic if synthetic is not None else synthetic_splits(train, dev, opts, log)
        syn_items = [
            it
            for s in synth
            for it in _fill(
                model, prepare_items(s, spec, opts.deep_cache, gop_cols, u_cols, layers)
            )
        ]
        log(f"stage 2: pre-training on {len(syn_items)} synthetically scored utterances")
        model, info["pretrain"] = fit(
            model, syn_items, dv, FitOptions(epochs=opts.pretrain_epochs, seed=opts.seed), log=log
        )
    elif opts.pretrain != "none":
        raise ModelError(f"unknown pretrain {opts.pretrain!r}", field="pretrain")
    if opts.finetune:
        log("stage 3: fine-tuning on human scores")
        model, info["finetune"] = fit(
            model,
            tr,
            dv,
            FitOptions(epochs=opts.epochs, seed=opts.seed),
            trainable=opts.finetune_trainable,
            log=log,
        )
    info["cpu_seconds"] = time.process_time() - t0
    return TrainedHier(model, info)


# --- predictor -------------------------------------------------------------------------------


def assessments(
    model: HierarchicalScorer, split: SplitFeatures, items: Sequence[UttArrays]
) -> dict[str, Assessment]:
    """Predictions for a FEATURES split as Assessments (scores clipped to their scales)."""
    from pronscore.heads.gbt import assemble

    preds = predict_items(model, items)
    c = model.config
    utts, words, phones = split.utterances, split.words, split.phones
    u_pred = {}
    for a in UTTERANCE_ASPECTS:
        if a in c.utterance_outputs:
            j = c.utterance_outputs.index(a)
            u_pred[a] = np.array(
                [
                    preds[str(i)]["utterance"][j] * 10.0 if str(i) in preds else np.nan
                    for i in utts["id"]
                ]
            )
    w_pred: dict[str, np.ndarray | None] = {}
    for a in c.word_outputs:
        j = c.word_outputs.index(a)
        w_pred[a] = np.array(
            [
                _at(preds, str(i), "word", (int(k), j)) * WORD_SCALE
                for i, k in zip(words["id"], words["word_index"], strict=True)
            ]
        )
    p_pred = None
    if c.phone_output:
        slot = phones.groupby(["id", "word_index"]).cumcount()
        p_pred = np.array(
            [
                _at(preds, str(i), "phone", (int(w), int(s))) * PHONE_SCALE
                for i, w, s in zip(phones["id"], phones["word_index"], slot, strict=True)
            ]
        )
    return assemble(utts, words, phones, u_pred, w_pred, p_pred)


def _at(preds: dict, uid: str, level: str, idx: tuple[int, ...]) -> float:
    arr = preds.get(uid, {}).get(level)
    try:
        return float(arr[idx])
    except (TypeError, IndexError):
        return float("nan")


class HierHead:
    """The ``hier`` run kind: model + how its inputs are built. The Scorer runs it on one
    recording (``predict_features``, with the encoder vectors of :attr:`encoder` for whisper
    inputs); ``pronscore evaluate`` goes through the Scorer."""

    def __init__(self, model: HierarchicalScorer, run_dir: Path, config: dict) -> None:
        self.model, self.run_dir, self.config = model, run_dir, config
        self.spec = InputSpec.parse(model.config.extra["inputs"])

    @classmethod
    def from_pretrained(cls, run_dir: str | Path) -> HierHead:
        d = Path(run_dir)
        return cls(
            HierarchicalScorer.from_pretrained(d),
            d,
            json.loads((d / "config.json").read_text(encoding="utf-8")),
        )

    @property
    def encoder(self) -> EncoderSpec | None:
        """The encoder vectors whisper inputs read (``None`` without whisper inputs): those of
        the training features (``config.json["encoder"]``, all their layers, so that every
        split the head reads has one layout), else -- runs trained on a deep cache -- the
        inputs' layers of ``whisper_model`` (default ``openai/whisper-base``)."""
        from pronscore.features.deep import DEFAULT_WHISPER

        if not self.spec.whisper_layers:
            return None
        if self.config.get("encoder"):
            try:
                return EncoderSpec.from_dict(self.config["encoder"])
            except (KeyError, TypeError, ValueError) as exc:
                raise ModelError(
                    f"unreadable encoder spec ({exc})",
                    path=self.run_dir / "config.json",
                    field="encoder",
                ) from None
        model = self.config.get("whisper_model") or DEFAULT_WHISPER
        return EncoderSpec(model=str(model), layers=self.spec.whisper_layers)

    def predict_features(self, split: SplitFeatures) -> dict[str, Assessment]:
        """Scores of every utterance of ``split``; its encoder vectors (if any) are of the
        layers of :attr:`encoder`."""
        extra = self.model.config.extra
        encoder = self.encoder
        items = prepare_items(
            split,
            self.spec,
            self.config.get("deep_cache"),
            extra.get("gop_columns", []),
            extra.get("utt_columns", []),
            encoder.layers if encoder is not None else None,
        )
        if items and items[0].x.shape[-1] != self.model.config.in_dim:
            raise ModelError(
                f"inputs have {items[0].x.shape[-1]} values per phone; the model was trained on "
                f"{self.model.config.in_dim}",
                path=self.run_dir / "config.json",
                field="inputs",
            )
        items = _fill(self.model, items)
        return assessments(self.model, split, items)


# --- seeds, evaluation, saving ---------------------------------------------------------------


def evaluate_dev(
    model: HierarchicalScorer, dev: SplitFeatures, opts: HierTrainOptions, n_boot: int = 1000
) -> dict:
    """The metrics JSON (pronscore.evaluation layout) of ``model`` on a labelled split."""
    from pronscore.evaluation.metrics import evaluate_assessments
    from pronscore.training.gop_baselines import labels_from_features, speaker_meta

    spec = InputSpec.parse(opts.inputs)
    extra = model.config.extra
    items = prepare_items(
        dev,
        spec,
        opts.deep_cache,
        extra.get("gop_columns", []),
        extra.get("utt_columns", []),
        opts.vector_layers,
    )
    hyps = assessments(model, dev, _fill(model, items))
    return evaluate_assessments(labels_from_features(dev), hyps, speaker_meta(dev), n_boot=n_boot)


def train_seeds(
    train: SplitFeatures,
    dev: SplitFeatures,
    opts: HierTrainOptions,
    seeds: Sequence[int],
    *,
    n_boot: int = 1000,
    log: Callable[[str], None] = print,
) -> tuple[TrainedHier, list[dict]]:
    """One run per seed; returns the run with the best dev utterance-total PCC and every
    seed's ``{"seed", "metrics", "info"}``."""
    runs, best, best_pcc = [], None, -np.inf
    synth = None
    if opts.pretrain == "synthetic":  # one teacher for all seeds (its CPU time is reported)
        t0 = time.process_time()
        synth = synthetic_splits(train, dev, opts, log)
        teacher_cpu = time.process_time() - t0
    for seed in seeds:
        o = replace(opts, seed=seed)
        trained = train_hier(train, dev, o, synthetic=synth, log=log)
        if synth is not None:
            trained.info["teacher_cpu_seconds"] = teacher_cpu
            trained.info["cpu_seconds"] += teacher_cpu
        metrics = evaluate_dev(trained.model, dev, o, n_boot=n_boot)
        runs.append({"seed": seed, "metrics": metrics, "info": trained.info})
        pcc = (metrics.get("utterance", {}).get("total", {}) or {}).get("pcc") or -1.0
        log(f"seed {seed}: dev utterance total PCC {pcc:.3f}")
        if pcc > best_pcc:
            best, best_pcc = trained, pcc
    assert best is not None
    return best, runs


def mean_metrics(runs: Sequence[dict]) -> dict:
    """PCC / CI bounds / MSE averaged over seeds, per level and aspect."""
    out: dict[str, dict] = {}
    for level in ("utterance", "word", "phone"):
        aspects = {a for r in runs for a in r["metrics"].get(level, {})}
        for a in sorted(aspects):
            ms = [r["metrics"][level][a] for r in runs if r["metrics"].get(level, {}).get(a)]
            ms = [m for m in ms if m.get("pcc") is not None]
            if not ms:
                continue
            ci = [m["ci95"] for m in ms if m.get("ci95")]
            out.setdefault(level, {})[a] = {
                "pcc": float(np.mean([m["pcc"] for m in ms])),
                "pcc_sd": float(np.std([m["pcc"] for m in ms])),
                "ci95": [float(np.mean([c[0] for c in ci])), float(np.mean([c[1] for c in ci]))]
                if ci
                else None,
                "mse": float(np.mean([m["mse"] for m in ms])),
                "n": int(ms[0]["n"]),
            }
    return out


def save_run(out_dir: str | Path, trained: TrainedHier, runs: Sequence[dict], extra: dict) -> None:
    """RUN_DIR: model.safetensors + config.json (kind "hier") + metrics.json, via a temp dir."""
    with replace_dir(out_dir) as tmp:
        trained.model.save_pretrained(tmp, extra={**extra, "train_info": trained.info})
        summary = {"seeds": list(runs), "mean": mean_metrics(runs)}
        (tmp / "metrics.json").write_text(json.dumps(summary, indent=1, default=str))
