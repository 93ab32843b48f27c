"""Inputs of the hierarchical scorer (:mod:`pronscore.heads.hierarchical`) from feature tables:
per-phone vectors grouped by word, 0-1 labels, padding into batches.

``--inputs`` (joined with ``+``):

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
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from pronscore.constants import PHONE_SCALE, UTTERANCE_ASPECTS, WORD_ASPECTS, WORD_SCALE
from pronscore.errors import ModelError
from pronscore.features.extract import SplitFeatures
from pronscore.heads.hierarchical import phone_id

_WHISPER = re.compile(r"^whisper:(\d+)(?:-(\d+))?$")


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
    from pronscore.features.frame_vectors import frame_clock

    if not split.has_frames(utt):  # zeros would be read as a confident "nothing heard"
        raise ModelError(
            "ps-frames input: no frame file for this utterance (rerun `pronscore features`)",
            path=split.frames_path(utt),
        )
    fr = split.frames(utt)
    frames = np.concatenate([fr["phone_scores"], fr["nonspeech_scores"]], axis=1)
    offset, rate = frame_clock(fr)
    return pool_phones(frames, g["start"] - offset, g["end"] - offset, rate)[0]


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
