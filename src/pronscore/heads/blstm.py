"""GOP + 2-layer BLSTM + MLP with phoneme embeddings: the NN baseline of Lin & Wang (2021),
Table 2, with outputs at every level.

Per phone: standardised GOP features ``p_*`` + a learned phoneme embedding -> 2-layer BiLSTM over
the utterance's phones (packed: padding never enters the recurrence or the pooling) -> phone
score head; word scores from the mean of the word's phone states; utterance scores from the
masked mean over phones. Targets are scaled to 0-1. Saved as ``model.safetensors`` +
``config.json`` (config, feature names and standardisation statistics).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from pronscore.constants import (
    PHONE_SCALE,
    UTTERANCE_ASPECTS,
    UTTERANCE_SCALE,
    WORD_ASPECTS,
    WORD_SCALE,
)
from pronscore.errors import ModelError
from pronscore.features.extract import SplitFeatures
from pronscore.heads.gbt import assemble
from pronscore.runs import read_run_config
from pronscore.text import PHONE_INDEX

KIND = "gop-blstm"


@dataclass(frozen=True)
class BlstmConfig:
    n_features: int = 0  # set from the data
    embed_dim: int = 32
    hidden: int = 64
    layers: int = 2
    dropout: float = 0.2
    epochs: int = 60
    batch_size: int = 32
    lr: float = 2e-3
    patience: int = 10
    seed: int = 1


class BlstmNet(nn.Module):
    def __init__(self, c: BlstmConfig) -> None:
        super().__init__()
        self.embed = nn.Embedding(len(PHONE_INDEX) + 1, c.embed_dim, padding_idx=len(PHONE_INDEX))
        self.lstm = nn.LSTM(c.n_features + c.embed_dim, c.hidden, num_layers=c.layers,
                            batch_first=True, bidirectional=True, dropout=c.dropout)  # fmt: skip
        d = 2 * c.hidden

        def mlp(n_out: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Linear(d, d), nn.ReLU(), nn.Dropout(c.dropout), nn.Linear(d, n_out)
            )

        self.phone_head, self.word_head, self.utt_head = (
            mlp(1),
            mlp(len(WORD_ASPECTS)),
            mlp(len(UTTERANCE_ASPECTS)),
        )

    def forward(self, x, phone_ids, lengths, word_of, n_words):
        """x: (B, P, F); phone_ids: (B, P); lengths: (B,); word_of: (B, P) word index (-1 pad)."""
        h = torch.cat([x, self.embed(phone_ids)], dim=-1)
        packed = nn.utils.rnn.pack_padded_sequence(
            h, lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        out, _ = self.lstm(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        mask = (word_of >= 0).unsqueeze(-1).float()
        utt = (out * mask).sum(1) / mask.sum(1).clamp(min=1)
        w_max = int(n_words.max())
        onehot = (
            torch.nn.functional.one_hot(word_of.clamp(min=0), w_max).float() * mask
        )  # (B, P, W)
        words = onehot.transpose(1, 2) @ out / onehot.sum(1).unsqueeze(-1).clamp(min=1)  # (B, W, D)
        return (
            torch.sigmoid(self.phone_head(out).squeeze(-1)),
            torch.sigmoid(self.word_head(words)),
            torch.sigmoid(self.utt_head(utt)),
        )


@dataclass
class Batch:
    ids: list[str]
    x: torch.Tensor
    phone_ids: torch.Tensor
    lengths: torch.Tensor
    word_of: torch.Tensor
    n_words: torch.Tensor
    y_phone: torch.Tensor
    y_word: torch.Tensor
    y_utt: torch.Tensor


def feature_columns(phones: pd.DataFrame) -> list[str]:
    return [
        c for c in phones.columns if c.startswith("p_") and pd.api.types.is_numeric_dtype(phones[c])
    ]


def make_batches(
    split: SplitFeatures, cols: list[str], mean: np.ndarray, std: np.ndarray, size: int
) -> list[Batch]:
    """Group phones per utterance (in utterance order) into padded batches."""
    ph = split.phones
    x_all = np.nan_to_num((ph[cols].to_numpy("float64") - mean) / std).astype("float32")
    pid = ph["base_phone"].map(PHONE_INDEX).fillna(len(PHONE_INDEX)).to_numpy("int64")
    y_ph = (
        ph["y_score"].to_numpy("float64") / PHONE_SCALE
        if "y_score" in ph
        else np.full(len(ph), np.nan)
    )
    groups = ph.groupby("id", sort=False).indices
    w_lab = split.words.set_index(["id", "word_index"])
    u_lab = split.utterances.set_index("id")
    ids = [str(i) for i in split.utterances["id"]]
    batches = []
    for s in range(0, len(ids), size):
        chunk = ids[s : s + size]
        rows = [groups.get(u, np.zeros(0, int)) for u in chunk]
        p_max = max(1, *(len(r) for r in rows))
        n_words = [int(ph["word_index"].to_numpy()[r].max()) + 1 if len(r) else 1 for r in rows]
        w_max = max(n_words)
        b = len(chunk)
        x = np.zeros((b, p_max, len(cols)), "float32")
        p_ids = np.full((b, p_max), len(PHONE_INDEX), "int64")
        word_of = np.full((b, p_max), -1, "int64")
        yp = np.full((b, p_max), np.nan, "float32")
        yw = np.full((b, w_max, len(WORD_ASPECTS)), np.nan, "float32")
        yu = np.full((b, len(UTTERANCE_ASPECTS)), np.nan, "float32")
        for i, (u, r) in enumerate(zip(chunk, rows, strict=True)):
            n = len(r)
            x[i, :n], p_ids[i, :n], yp[i, :n] = x_all[r], pid[r], y_ph[r]
            word_of[i, :n] = ph["word_index"].to_numpy()[r]
            for a_i, a in enumerate(UTTERANCE_ASPECTS):
                if f"y_{a}" in u_lab:
                    yu[i, a_i] = u_lab.at[u, f"y_{a}"] / UTTERANCE_SCALE
            for w in range(n_words[i]):
                for a_i, a in enumerate(WORD_ASPECTS):
                    if f"y_{a}" in w_lab and (u, w) in w_lab.index:
                        yw[i, w, a_i] = w_lab.at[(u, w), f"y_{a}"] / WORD_SCALE
        lengths = np.array([max(1, len(r)) for r in rows])
        word_of[np.arange(b), 0] = np.maximum(word_of[np.arange(b), 0], 0)  # empty rows: one dummy
        tensors = [torch.from_numpy(a) for a in (x, p_ids, lengths, word_of)]
        labels = [torch.from_numpy(a) for a in (yp, yw, yu)]
        batches.append(Batch(chunk, *tensors, torch.tensor(n_words), *labels))
    return batches


@dataclass
class BlstmHead:
    config: BlstmConfig
    net: BlstmNet
    columns: list[str]
    mean: np.ndarray
    std: np.ndarray
    extra: dict = field(default_factory=dict)
    run_dir: Path | None = None  # where it was loaded from: home of its features cache

    @torch.no_grad()
    def predict_features(self, split: SplitFeatures) -> dict:
        self.net.eval()
        ph_pred = {}
        w_pred: dict[tuple[str, int], np.ndarray] = {}
        u_pred: dict[str, np.ndarray] = {}
        for b in make_batches(split, self.columns, self.mean, self.std, 64):
            p, w, u = self.net(b.x, b.phone_ids, b.lengths, b.word_of, b.n_words)
            for i, uid in enumerate(b.ids):
                ph_pred[uid] = p[i].numpy()
                u_pred[uid] = u[i].numpy()
                for k in range(int(b.n_words[i])):
                    w_pred[(uid, k)] = w[i, k].numpy()
        phones, words, utts = split.phones, split.words, split.utterances
        order = phones.groupby("id", sort=False).cumcount().to_numpy()
        p_arr = (
            np.array([ph_pred[str(u)][k] for u, k in zip(phones["id"], order, strict=True)])
            * PHONE_SCALE
        )
        keys = zip(words["id"].astype(str), words["word_index"].astype(int), strict=True)
        w_arr = np.array([w_pred.get(k, np.full(3, np.nan)) for k in keys]).reshape(-1, 3)
        u_arr = np.array([u_pred[str(u)] for u in utts["id"]]).reshape(-1, len(UTTERANCE_ASPECTS))
        return assemble(
            utts, words, phones,
            {a: u_arr[:, i] * UTTERANCE_SCALE for i, a in enumerate(UTTERANCE_ASPECTS)},
            {a: w_arr[:, i] * WORD_SCALE for i, a in enumerate(WORD_ASPECTS)},
            p_arr if len(phones) else None,
        )  # fmt: skip

    def save_pretrained(self, out_dir: str | Path) -> None:
        from safetensors.torch import save_file

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        save_file(
            {k: v.contiguous() for k, v in self.net.state_dict().items()},
            str(out / "model.safetensors"),
        )
        config = {"kind": KIND, "blstm": asdict(self.config), "columns": self.columns,
                  "mean": self.mean.tolist(), "std": self.std.tolist(), **self.extra}  # fmt: skip
        (out / "config.json").write_text(json.dumps(config, indent=2))

    @classmethod
    def from_pretrained(cls, run_dir: str | Path) -> BlstmHead:
        from safetensors.torch import load_file

        d = Path(run_dir)
        config = read_run_config(d)
        if config.get("kind") != KIND:
            raise ModelError(f"not a {KIND} run (kind {config.get('kind')!r})", path=d)
        try:
            c = BlstmConfig(**config["blstm"])
            columns, mean, std = (
                config["columns"],
                np.array(config["mean"]),
                np.array(config["std"]),
            )
        except (KeyError, TypeError) as exc:
            raise ModelError(f"malformed config ({exc!r})", path=d / "config.json") from exc
        net = BlstmNet(c)
        weights = d / "model.safetensors"
        if not weights.is_file():
            raise ModelError("model file missing", path=weights)
        try:
            net.load_state_dict(load_file(str(weights)))
        except (RuntimeError, OSError) as exc:  # wrong shapes, truncated file
            raise ModelError(f"weights do not fit the config ({exc})", path=weights) from exc
        extra = {
            k: v for k, v in config.items() if k not in ("kind", "blstm", "columns", "mean", "std")
        }
        return cls(c, net, columns, np.array(mean), np.array(std), extra, d)
