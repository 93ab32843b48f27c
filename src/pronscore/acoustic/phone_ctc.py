"""A phone recogniser over a frozen encoder's frames: a small CTC head (blank + the 39
ARPAbet phones) on a learned mix of the encoder's hidden states.

Per 20 ms frame: softmax-weighted sum of the chosen hidden states -> LayerNorm -> Linear ->
GELU -> Conv1d (a few frames of context) -> GELU -> Linear -> log-softmax over
:data:`~pronscore.align.ctc.CTC_VOCAB`. Trained by ``pronscore train ctc``
(:mod:`pronscore.training.phone_ctc`) on the canonical phones of the training utterances; its
frame posteriors give the alignment-free GOP and the "heard" phone of
:mod:`pronscore.features.ctc_gop`.

A run folder holds ``config.json`` (``kind: "phone-ctc"``, :class:`PhoneCtcConfig`, the
encoder's name) and ``phone_ctc.safetensors``; never a pickle.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pronscore.align.ctc import CTC_VOCAB
from pronscore.errors import ModelError

KIND = "phone-ctc"
WEIGHTS = "phone_ctc.safetensors"
FOLDS_FILE = "folds.json"  # speaker -> fold of a cross-fitted run (``fold-<k>/``)


@dataclass(frozen=True)
class PhoneCtcConfig:
    layers: tuple[int, ...] = (3, 4, 5, 6)  # hidden states mixed (0 = input embeddings)
    dim: int = 512  # the encoder's width
    hidden: int = 256
    kernel: int = 5  # frames of context in the convolution (odd)
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.kernel % 2 != 1 or not self.layers:
            raise ValueError(f"kernel must be odd and layers non-empty: {self}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PhoneCtcConfig:
        return cls(**{**d, "layers": tuple(int(x) for x in d["layers"])})


class PhoneCtcNet(nn.Module):
    """(B, L, T, D) hidden states -> (B, T, |CTC_VOCAB|) log-probabilities."""

    def __init__(self, config: PhoneCtcConfig) -> None:
        super().__init__()
        self.config = config
        self.mix = nn.Parameter(torch.zeros(len(config.layers)))
        self.norm = nn.LayerNorm(config.dim)
        self.proj = nn.Linear(config.dim, config.hidden)
        self.conv = nn.Conv1d(
            config.hidden, config.hidden, config.kernel, padding=config.kernel // 2
        )
        self.out = nn.Linear(config.hidden, len(CTC_VOCAB))
        self.drop = nn.Dropout(config.dropout)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        w = torch.softmax(self.mix, 0).view(1, -1, 1, 1)
        x = self.norm((states * w).sum(1))
        x = self.drop(nn.functional.gelu(self.proj(x)))
        x = nn.functional.gelu(self.conv(x.transpose(1, 2))).transpose(1, 2)
        return torch.log_softmax(self.out(self.drop(x)), dim=-1)


@dataclass
class PhoneRecogniser:
    """A trained :class:`PhoneCtcNet` for inference, with the encoder it was trained on."""

    net: PhoneCtcNet
    encoder: str  # the encoder's name (hub id or the path it was trained from)
    extra: dict[str, Any]

    @property
    def layers(self) -> tuple[int, ...]:
        return self.net.config.layers

    def log_probs(self, states: np.ndarray) -> np.ndarray:
        """(L_all, T, D) every hidden state of one utterance -> (T, |CTC_VOCAB|) float32."""
        x = torch.from_numpy(np.asarray(states, dtype=np.float32)[list(self.layers)])
        with torch.inference_mode():
            return self.net.eval()(x[None])[0].numpy()

    def save_pretrained(self, out_dir: str | Path) -> None:
        from safetensors.torch import save

        from pronscore.atomic import atomic_write_bytes, atomic_write_text

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().contiguous() for k, v in self.net.state_dict().items()}
        atomic_write_bytes(out / WEIGHTS, save(tensors))
        cfg = {**asdict(self.net.config), "layers": list(self.layers)}
        config = {"kind": KIND, "config": cfg, "encoder": self.encoder, **self.extra}
        atomic_write_text(out / "config.json", json.dumps(config, indent=1))

    @classmethod
    def from_pretrained(cls, run_dir: str | Path) -> PhoneRecogniser:
        from safetensors.torch import load_file

        d = Path(run_dir)
        try:
            config = json.loads((d / "config.json").read_text(encoding="utf-8"))
            if config.get("kind") != KIND:
                raise ModelError(
                    f"not a phone recogniser (kind {config.get('kind')!r})", path=d / "config.json"
                )
            net = PhoneCtcNet(PhoneCtcConfig.from_dict(config["config"]))
            net.load_state_dict(load_file(str(d / WEIGHTS)))
        except (OSError, KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ModelError(f"cannot load phone recogniser ({exc})", path=d) from exc
        extra = {k: v for k, v in config.items() if k not in ("kind", "config", "encoder")}
        return cls(net.eval(), str(config["encoder"]), extra)


def recogniser_for(run_dir: str | Path) -> Callable[[str], PhoneRecogniser]:
    """speaker -> the recogniser that never heard them: their fold's, else the run's own."""
    d = Path(run_dir)
    fold_of = {}
    if (d / FOLDS_FILE).is_file():
        fold_of = json.loads((d / FOLDS_FILE).read_text(encoding="utf-8"))
    loaded: dict[str, PhoneRecogniser] = {}

    def get(speaker: str) -> PhoneRecogniser:
        key = f"fold-{fold_of[speaker]}" if speaker in fold_of else "."
        if key not in loaded:
            loaded[key] = PhoneRecogniser.from_pretrained(d / key)
        return loaded[key]

    return get
