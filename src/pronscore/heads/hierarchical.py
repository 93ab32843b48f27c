"""Hierarchical attention scoring module (Lin & Wang, Interspeech 2021), multi-granularity.

Per phone: mean of its frames' features (done upstream, :mod:`pronscore.features.deep`) ->
frame LayerNorm -> Linear(in, 32) -> + phoneme embedding (32) -> phone LayerNorm ->
4-head self-attention over the phones of each word -> word vector = mean of attended phones
-> non-linear 32x32 -> 4-head self-attention over the words -> utterance vector = mean ->
sentence LayerNorm -> Linear(32, 1) -> sigmoid (scores on 0-1).

Beyond the paper: a learned weighted sum over input layers, optional utterance-level features
(``utt_dim``: speech rate, pauses, F0/energy statistics) projected and added to the utterance
vector before the sentence LayerNorm, extra outputs for phone accuracy
(from attended phones), word accuracy / stress / total (from word vectors) and the five
utterance aspects, and ``attention=False`` which replaces both self-attentions by averaging
(the paper's Table 6 ablation). Attention blocks are residual (``x + attn(x)``): the paper
does not say; this costs no parameters and trains more stably on 2k utterances.

Batch layout: ``x`` (B, W, P, F) or (B, W, P, L, F) for L input layers, ``phone_ids``
(B, W, P) (0 = padding, see :func:`phone_id`), masks derived from
``phone_ids > 0``, ``utt_x`` (B, utt_dim) when ``utt_dim > 0``. Padding never reaches a real
output.

``HierConfig.arch == "gopt"``: the flat transformer of :mod:`pronscore.heads.gopt`, on the same
batches, config, outputs and run folder (:func:`build_scorer`, :class:`PhoneScorer`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from pronscore.atomic import atomic_path, atomic_write_text
from pronscore.errors import ModelError
from pronscore.text import PHONE_INDEX, PHONES

N_PHONE_TYPES = len(PHONES) + 2  # + padding (0) and unknown (last)
UTTERANCE_OUTPUTS = ("accuracy", "completeness", "fluency", "prosodic", "total")
WORD_OUTPUTS = ("accuracy", "stress", "total")


def phone_id(phone: str) -> int:
    """Embedding index of a base phone: 1 + its index in PHONES, the last index if unknown."""
    i = PHONE_INDEX.get(phone)
    return N_PHONE_TYPES - 1 if i is None else i + 1


@dataclass(frozen=True)
class HierConfig:
    """Dimensions and switches; ``HierConfig()`` is the paper's configuration."""

    in_dim: int = 256
    n_input_layers: int = 1  # > 1: learned softmax-weighted sum over input layers
    d: int = 32
    heads: int = 4
    attention: bool = True
    dropout: float = 0.1
    utterance_outputs: tuple[str, ...] = ("total",)
    word_outputs: tuple[str, ...] = ()
    phone_output: bool = False
    utt_dim: int = 0  # > 0: utterance-level features (prosody, rates) added to the sentence vector
    arch: str = "hier"  # "hier" (this module) | "gopt" (pronscore.heads.gopt, a flat transformer)
    depth: int = 3  # gopt: transformer layers
    # bookkeeping for training / prediction (inputs spec, feature names): not used by forward
    extra: dict = field(default_factory=dict)

    @classmethod
    def multi(cls, in_dim: int, **kw) -> HierConfig:
        """All granularities: phone accuracy, 3 word aspects, 5 utterance aspects."""
        return cls(
            in_dim=in_dim,
            utterance_outputs=UTTERANCE_OUTPUTS,
            word_outputs=WORD_OUTPUTS,
            phone_output=True,
            **kw,
        )

    @classmethod
    def gopt(cls, in_dim: int, **kw) -> HierConfig:
        """GOPT's sizes (d 24, 1 head, 3 layers) with every granularity's outputs."""
        return cls.multi(in_dim, **{"arch": "gopt", "d": 24, "heads": 1, "depth": 3, **kw})

    def to_dict(self) -> dict:
        d = asdict(self)
        d["utterance_outputs"] = list(self.utterance_outputs)
        d["word_outputs"] = list(self.word_outputs)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> HierConfig:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        for k in ("utterance_outputs", "word_outputs"):
            if k in known:
                known[k] = tuple(known[k])
        return cls(**known)


@dataclass(frozen=True)
class HierOutput:
    """Scores on 0-1 (multiply by 10 for words/utterances, by 2 for phones)."""

    utterance: torch.Tensor  # (B, n_utterance_outputs)
    word: torch.Tensor | None  # (B, W, n_word_outputs)
    phone: torch.Tensor | None  # (B, W, P)
    word_mask: torch.Tensor  # (B, W) bool
    phone_mask: torch.Tensor  # (B, W, P) bool


class _Attend(nn.Module):
    """Residual multi-head self-attention over a padded set, or plain identity (averaging)."""

    def __init__(self, d: int, heads: int, attention: bool, dropout: float) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.attention = attention
        if not attention:
            self.attn = None  # type: ignore[assignment]

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.attn is None:
            return x
        # rows with no real element: let them attend to slot 0 (result is discarded) to avoid NaN
        empty = ~mask.any(-1)
        pad = ~mask
        pad[empty, 0] = False
        y, _ = self.attn(x, x, x, key_padding_mask=pad, need_weights=False)
        return x + y


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(-2) / m.sum(-2).clamp_min(1.0)


class PhoneScorer(nn.Module):
    """What both architectures of a ``hier`` run share: the config, the learned mix of input
    layers, input and utterance-feature standardisation (fitted on train features, saved with
    the weights), the utterance-feature projection, size and the run folder's files.
    :meth:`from_pretrained` builds the architecture its config names."""

    def __init__(self, config: HierConfig) -> None:
        super().__init__()
        c = self.config = config
        if c.d % c.heads:
            raise ModelError(f"d={c.d} not divisible by heads={c.heads}", field="heads")
        self.layer_logits = (
            nn.Parameter(torch.zeros(c.n_input_layers)) if c.n_input_layers > 1 else None
        )
        self.register_buffer("in_mean", torch.zeros(c.in_dim))
        self.register_buffer("in_std", torch.ones(c.in_dim))

    def add_utterance_features(self) -> None:
        """The utterance features' standardisation and projection (when ``utt_dim``); each
        architecture calls it where it always has, so that a seed gives the same weights."""
        c = self.config
        if c.utt_dim:
            self.register_buffer("utt_mean", torch.zeros(c.utt_dim))
            self.register_buffer("utt_std", torch.ones(c.utt_dim))
            self.utt_proj = nn.Sequential(nn.LayerNorm(c.utt_dim), nn.Linear(c.utt_dim, c.d))

    def standardised(
        self, x: torch.Tensor, phone_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, W, P, [L,] F) inputs -> (B, W, P, F) standardised (after the learned mix of
        layers), the phone mask (B, W, P) and the word mask (B, W)."""
        if self.layer_logits is not None:
            x = (x * torch.softmax(self.layer_logits, 0)[:, None]).sum(-2)
        phone_mask = phone_ids > 0
        return (x - self.in_mean) / self.in_std, phone_mask, phone_mask.any(-1)

    def utterance_vector(self, utt_x: torch.Tensor | None) -> torch.Tensor | None:
        """The projected utterance features (B, d), or None for a model without them."""
        if not self.config.utt_dim:
            return None
        if utt_x is None:
            raise ModelError("this model needs utterance features (utt_x)", field="utt_x")
        return self.utt_proj((utt_x - self.utt_mean) / self.utt_std)

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def save_pretrained(self, out_dir: str | Path, extra: dict | None = None) -> None:
        """``model.safetensors`` + ``config.json`` (``"kind": "hier"``), written atomically."""
        from safetensors.torch import save_file

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous() for k, v in self.state_dict().items()}
        with atomic_path(out / "model.safetensors") as tmp:
            save_file(state, str(tmp))
        cfg = {"kind": "hier", "model": self.config.to_dict(), **(extra or {})}
        atomic_write_text(out / "config.json", json.dumps(cfg, indent=1, default=str))

    @classmethod
    def from_pretrained(cls, run_dir: str | Path) -> nn.Module:
        from safetensors.torch import load_file

        d = Path(run_dir)
        try:
            cfg = json.loads((d / "config.json").read_text(encoding="utf-8"))
            model = build_scorer(HierConfig.from_dict(cfg["model"]))
            model.load_state_dict(load_file(str(d / "model.safetensors")))
        except (OSError, KeyError, RuntimeError, json.JSONDecodeError) as exc:
            raise ModelError(f"cannot load hierarchical model ({exc})", path=str(d)) from exc
        return model.eval()


def build_scorer(config: HierConfig) -> nn.Module:
    """A fresh model of ``config.arch``."""
    if config.arch == "hier":
        return HierarchicalScorer(config)
    if config.arch == "gopt":
        from pronscore.heads.gopt import GoptScorer

        return GoptScorer(config)
    raise ModelError(f"unknown architecture {config.arch!r} (known: hier, gopt)", field="arch")


class HierarchicalScorer(PhoneScorer):
    def __init__(self, config: HierConfig) -> None:
        super().__init__(config)
        c = config
        self.frame_norm = nn.LayerNorm(c.in_dim)
        self.proj = nn.Linear(c.in_dim, c.d)
        self.phone_emb = nn.Embedding(N_PHONE_TYPES, c.d, padding_idx=0)
        self.phone_norm = nn.LayerNorm(c.d)
        self.drop = nn.Dropout(c.dropout)
        self.phone_attn = _Attend(c.d, c.heads, c.attention, c.dropout)
        self.word_mlp = nn.Sequential(nn.Linear(c.d, c.d), nn.ReLU())
        self.word_attn = _Attend(c.d, c.heads, c.attention, c.dropout)
        self.sent_norm = nn.LayerNorm(c.d)
        self.add_utterance_features()
        self.utt_head = nn.Linear(c.d, len(c.utterance_outputs))
        self.word_head = nn.Linear(c.d, len(c.word_outputs)) if c.word_outputs else None
        self.phone_head = nn.Linear(c.d, 1) if c.phone_output else None

    def forward(
        self, x: torch.Tensor, phone_ids: torch.Tensor, utt_x: torch.Tensor | None = None
    ) -> HierOutput:
        c = self.config
        x, phone_mask, word_mask = self.standardised(x, phone_ids)
        B, W, P, _ = x.shape
        h = self.proj(self.frame_norm(x)) + self.phone_emb(phone_ids)
        h = self.drop(self.phone_norm(h))
        h = h * phone_mask.unsqueeze(-1)  # padding is zero before attention
        hp = self.phone_attn(h.reshape(B * W, P, c.d), phone_mask.reshape(B * W, P))
        hp = hp.reshape(B, W, P, c.d)
        words = self.word_mlp(masked_mean(hp, phone_mask))
        words = self.word_attn(words, word_mask)
        utt = masked_mean(words, word_mask)
        u = self.utterance_vector(utt_x)
        utt = self.sent_norm(utt if u is None else utt + u)
        out_u = torch.sigmoid(self.utt_head(utt))
        out_w = out_p = None
        if self.word_head is not None:
            out_w = torch.sigmoid(self.word_head(words)) * word_mask.unsqueeze(-1)
        if self.phone_head is not None:
            out_p = torch.sigmoid(self.phone_head(hp)).squeeze(-1) * phone_mask
        return HierOutput(out_u, out_w, out_p, word_mask, phone_mask)
