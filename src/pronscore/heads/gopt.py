"""GOPT-style transformer over the phones of an utterance (Gong et al., ICASSP 2022).

Per phone: its input vector -> Linear(in, d) + canonical phone embedding + position in the
utterance (sinusoidal) + position in its word (begin / inside / end / single) -> a flat sequence
of the utterance's phones, after one token per utterance aspect -> ``depth`` pre-norm transformer
layers -> each aspect token -> its utterance score; each phone token -> its phone score and the
scores of its word (a word's score is the mean over its phones, as GOPT scores words).

Differences from the paper, and why: sinusoidal positions instead of learned ones (a learner's
sentence may be longer than any training one); the within-word position, so that phone tokens
know the word boundaries that GOPT only saw through its word labels; the optional
utterance-level features (``utt_dim``) added to every aspect token; sigmoid outputs on 0-1 like
:class:`~pronscore.heads.hierarchical.HierarchicalScorer`, whose batch layout, config and output
this model shares (``HierConfig.arch == "gopt"``), so that training, cross-validation and the
Scorer run both.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pronscore.heads.hierarchical import (
    N_PHONE_TYPES,
    HierConfig,
    HierOutput,
    PhoneScorer,
    masked_mean,
)

N_WORD_POSITIONS = 5  # padding, begin, inside, end, single-phone word


def sinusoid(positions: torch.Tensor, d: int) -> torch.Tensor:
    """(..., ) integer positions -> (..., d) fixed sinusoidal encodings (Vaswani et al.)."""
    half = torch.arange(0, d, 2, dtype=torch.float32, device=positions.device)
    freq = torch.exp(-math.log(10000.0) * half / d)
    angle = positions.unsqueeze(-1).float() * freq
    enc = torch.zeros(*positions.shape, d, device=positions.device)
    enc[..., 0::2] = torch.sin(angle)
    enc[..., 1::2] = torch.cos(angle[..., : d // 2])
    return enc


def word_positions(phone_mask: torch.Tensor) -> torch.Tensor:
    """(B, W, P) mask -> (B, W, P) ids: 0 padding, 1 first, 2 inside, 3 last, 4 only phone."""
    n = phone_mask.sum(-1, keepdim=True)
    slot = torch.arange(phone_mask.shape[-1], device=phone_mask.device).expand_as(phone_mask)
    pos = torch.full_like(slot, 2)
    pos = torch.where(slot == n - 1, torch.full_like(pos, 3), pos)
    pos = torch.where(slot == 0, torch.ones_like(pos), pos)
    pos = torch.where((n == 1) & (slot == 0), torch.full_like(pos, 4), pos)
    return pos * phone_mask


class GoptScorer(PhoneScorer):
    def __init__(self, config: HierConfig) -> None:
        super().__init__(config)
        c = config
        self.proj = nn.Linear(c.in_dim, c.d)
        self.phone_emb = nn.Embedding(N_PHONE_TYPES, c.d, padding_idx=0)
        self.word_pos = nn.Embedding(N_WORD_POSITIONS, c.d, padding_idx=0)
        self.aspects = nn.Parameter(torch.randn(len(c.utterance_outputs), c.d) * 0.02)
        self.add_utterance_features()
        layer = nn.TransformerEncoderLayer(
            c.d, c.heads, 4 * c.d, c.dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, c.depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(c.d)
        # one small regressor per output, as GOPT has
        self.utt_head = nn.ModuleList(_regressor(c.d) for _ in c.utterance_outputs)
        self.word_head = nn.ModuleList(_regressor(c.d) for _ in c.word_outputs) or None
        self.phone_head = _regressor(c.d) if c.phone_output else None

    def forward(
        self, x: torch.Tensor, phone_ids: torch.Tensor, utt_x: torch.Tensor | None = None
    ) -> HierOutput:
        c = self.config
        x, phone_mask, word_mask = self.standardised(x, phone_ids)
        B, W, P, _ = x.shape
        flat_mask = phone_mask.reshape(B, W * P)
        order = (flat_mask.cumsum(-1) - 1).clamp_min(0)  # position among the real phones
        h = self.proj(x) + self.phone_emb(phone_ids)
        h = h + self.word_pos(word_positions(phone_mask))
        h = h.reshape(B, W * P, c.d) + sinusoid(order, c.d)
        h = h * flat_mask.unsqueeze(-1)
        cls = self.aspects.expand(B, -1, -1)
        u = self.utterance_vector(utt_x)
        if u is not None:
            cls = cls + u.unsqueeze(1)
        n_cls = cls.shape[1]
        keep = torch.cat([torch.ones(B, n_cls, dtype=torch.bool), flat_mask], 1)
        z = self.norm(self.encoder(torch.cat([cls, h], 1), src_key_padding_mask=~keep))
        out_u = torch.sigmoid(torch.cat([f(z[:, j]) for j, f in enumerate(self.utt_head)], -1))
        tokens = z[:, n_cls:].reshape(B, W, P, c.d)
        out_w = out_p = None
        if self.word_head is not None:
            per_phone = torch.sigmoid(torch.cat([f(tokens) for f in self.word_head], -1))
            out_w = masked_mean(per_phone, phone_mask) * word_mask.unsqueeze(-1)
        if self.phone_head is not None:
            out_p = torch.sigmoid(self.phone_head(tokens)).squeeze(-1) * phone_mask
        return HierOutput(out_u, out_w, out_p, word_mask, phone_mask)


def _regressor(d: int) -> nn.Module:
    return nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 1))
