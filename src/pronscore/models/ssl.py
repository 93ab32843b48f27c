"""An SSL encoder fine-tuned end to end into an utterance scorer (seed 000, done right).

``backbone -> [learned layer sum] -> masked pooling -> MLP -> 5 aspects`` (accuracy,
completeness, fluency, prosodic, total), targets scaled to 0-1.

Strategies (what trains):

==============  ===========================================================================
``general``     everything (Whisper's fixed sinusoidal positions excepted)
``freeze``      all but the CNN feature encoder (Whisper: the conv stem)
``ctc``         as ``freeze``, plus a phone CTC head trained on the canonical phone sequence
                (39 ARPAbet phones + blank) jointly with the score loss, ``ctc_weight``
``ctc-logits``  the seed's variant: as ``freeze``; the checkpoint's own CTC output layer
                (``AutoModelForCTC.lm_head``, ``vocab_size`` characters) gives per-frame
                logits, time-averaged (masked) and fed to the MLP; no CTC loss. Whisper has
                no CTC head: a random 40-class one stands in
``frozen``      the head only; the encoder stays in eval mode (no dropout)
==============  ===========================================================================

Pooling is masked: padded frames never enter the mean or the attention weights, so a padded
utterance scores as it would alone (for feature encoders with per-frame normalisation; the
group-norm CNN of wav2vec2-base normalises over time, so padding leaks into every frame).

Saved as ``model.safetensors`` + ``config.json`` (``SslConfig`` with the backbone config
embedded, so loading needs no hub access) + the preprocessor config.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pronscore.acoustic.encoders import (
    HF_FAMILIES,
    backbone_hidden_states,
    build_backbone,
    default_feature_extractor,
    family_of,
    hidden_size_of,
    load_backbone,
    load_backbone_config,
    load_ctc_backbone,
    load_feature_extractor,
    num_layers_of,
)
from pronscore.constants import UTTERANCE_ASPECTS
from pronscore.errors import ModelError
from pronscore.text import PHONES

KIND = "ssl"
STRATEGIES = ("general", "freeze", "ctc", "ctc-logits", "frozen")
POOLINGS = ("mean", "attention")
CTC_BLANK = 0  # phone i of PHONES is CTC class i + 1
CTC_CLASSES = len(PHONES) + 1


@dataclass(frozen=True)
class SslConfig:
    backbone_config: dict[str, Any] = field(default_factory=dict)  # transformers config dict
    backbone_source: str = ""  # hub id / folder it was initialised from
    strategy: str = "freeze"
    pooling: str = "mean"
    layer_sum: bool = False
    head_hidden: int = 256
    head_dropout: float = 0.1
    ctc_weight: float = 0.3
    aspects: tuple[str, ...] = UTTERANCE_ASPECTS

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ModelError(f"unknown strategy {self.strategy!r} (use one of {STRATEGIES})")
        if self.pooling not in POOLINGS:
            raise ModelError(f"unknown pooling {self.pooling!r} (use one of {POOLINGS})")

    def to_json(self) -> dict[str, Any]:
        return {"kind": KIND, **asdict(self), "aspects": list(self.aspects)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SslConfig:
        names = cls.__dataclass_fields__
        kw = {k: v for k, v in d.items() if k in names}
        kw["aspects"] = tuple(kw.get("aspects", UTTERANCE_ASPECTS))
        return cls(**kw)


def _backbone_config_object(d: dict[str, Any]):
    from transformers import AutoConfig

    d = dict(d)
    model_type = d.pop("model_type", None)
    if model_type is None:
        raise ModelError("backbone config has no model_type", field="backbone_config")
    return AutoConfig.for_model(model_type, **d)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over frames ``(..., T, D)`` where ``mask`` ``(B, T)`` is true."""
    m = mask.to(x.dtype).unsqueeze(-1)  # (B, T, 1)
    return (x * m).sum(-2) / m.sum(-2).clamp_min(1.0)


class SslScorer(nn.Module):
    """Backbone + pooling + MLP head; ``forward`` follows the HF Trainer convention."""

    def __init__(self, config: SslConfig, backbone: nn.Module | None = None) -> None:
        super().__init__()
        bcfg = _backbone_config_object(config.backbone_config)
        self.family = family_of(bcfg)
        self.backbone = backbone if backbone is not None else build_backbone(bcfg)
        if getattr(self.backbone.config, "layerdrop", 0.0):  # skipped layers vanish from
            self.backbone.config.layerdrop = 0.0  # hidden_states: the layer sum needs them all
        # the config as the backbone really is, JSON-normalised so a saved run compares equal
        bdict = json.loads(json.dumps(self.backbone.config.to_dict()))
        self.settings = config = replace(config, backbone_config=bdict)
        d = hidden_size_of(bcfg)
        n_states = num_layers_of(bcfg) + 1
        self.layer_weights = nn.Parameter(torch.zeros(n_states)) if config.layer_sum else None
        uses_ctc = config.strategy in ("ctc", "ctc-logits")
        n_ctc = ctc_outputs(config.strategy, bcfg)
        self.ctc_head = nn.Linear(d, n_ctc) if uses_ctc else None
        head_in = n_ctc if config.strategy == "ctc-logits" else d
        self.attention = nn.Linear(head_in, 1) if config.pooling == "attention" else None
        self.head = nn.Sequential(
            nn.Dropout(config.head_dropout),
            nn.Linear(head_in, config.head_hidden),
            nn.GELU(),
            nn.Dropout(config.head_dropout),
            nn.Linear(config.head_hidden, len(config.aspects)),
        )
        self.apply_strategy()

    # --- strategies ---------------------------------------------------------------------------

    def frozen_parameter_names(self) -> list[str]:
        """Backbone parameters the strategy keeps fixed (prefixed ``backbone.``)."""
        strategy = self.settings.strategy
        bc = self.backbone.config
        spec_augment = getattr(bc, "apply_spec_augment", False) and (
            getattr(bc, "mask_time_prob", 0) > 0 or getattr(bc, "mask_feature_prob", 0) > 0
        )
        out = []
        for name, _ in self.backbone.named_parameters():
            # fixed: Whisper's sinusoids; the mask embedding when SpecAugment is off (a
            # parameter without gradient would stall DDP's all-reduce)
            unused = name == "masked_spec_embed" and not spec_augment
            if (
                strategy == "frozen"
                or unused
                or name.startswith("embed_positions")
                or (
                    strategy != "general"
                    and name.startswith(("feature_extractor", "conv1", "conv2"))
                )
            ):
                out.append(name)
        return [f"backbone.{n}" for n in out]

    def apply_strategy(self) -> None:
        frozen = set(self.frozen_parameter_names())
        for name, p in self.named_parameters():
            p.requires_grad_(name not in frozen)
        cnn = getattr(self.backbone, "feature_extractor", None)
        if cnn is not None and hasattr(cnn, "_requires_grad"):
            # HF's CNN marks its input as requiring grad unless told the CNN is frozen: the
            # whole CNN graph would be built and back-propagated through for nothing
            cnn._requires_grad = self.settings.strategy == "general"

    def train(self, mode: bool = True) -> SslScorer:
        super().train(mode)
        if self.settings.strategy == "frozen":  # a fixed encoder is a fixed function: no dropout
            self.backbone.eval()
        return self

    # --- forward ------------------------------------------------------------------------------

    def encode(
        self, input_values: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        if self.settings.strategy == "frozen":
            with torch.no_grad():
                return backbone_hidden_states(
                    self.backbone, self.family, input_values, attention_mask.bool()
                )
        return backbone_hidden_states(
            self.backbone, self.family, input_values, attention_mask.bool()
        )

    def _mix(self, states: torch.Tensor) -> torch.Tensor:
        """``(L+1, ...) -> (...)``: learned softmax-weighted sum, or the last layer."""
        if self.layer_weights is None:
            return states[-1]
        w = torch.softmax(self.layer_weights, 0).to(states.dtype)
        return torch.einsum("l,l...->...", w, states)

    def pooled_layers(self, states: list[torch.Tensor], fmask: torch.Tensor) -> torch.Tensor:
        """Masked mean of every layer, ``(B, L+1, D)``: what ``frozen`` training caches."""
        return torch.stack([masked_mean(h, fmask) for h in states], dim=1)

    def head_from_pooled(self, pooled: torch.Tensor) -> torch.Tensor:
        """Scores ``(B, A)`` from per-layer means (mean pooling commutes with the layer sum)."""
        return self.head(self._mix(pooled.transpose(0, 1)))

    def forward(
        self,
        input_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        phone_ids: torch.Tensor | None = None,
        phone_lengths: torch.Tensor | None = None,
        pooled: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        ctc = None
        if pooled is not None:  # cached encoder outputs (frozen + mean pooling)
            scores = self.head_from_pooled(pooled)
        else:
            if attention_mask is None:
                attention_mask = torch.ones(input_values.shape[:2], dtype=torch.bool)
            states, fmask = self.encode(input_values, attention_mask)
            scores, ctc_logits = self._scores(states, fmask)
            if self.settings.strategy == "ctc" and phone_ids is not None:
                ctc = ctc_loss(ctc_logits, fmask, phone_ids, phone_lengths)
        out = {"logits": scores}  # first: the Trainer's predictions are the first output
        if ctc is not None:
            out["ctc_loss"] = ctc
        if labels is not None:
            loss = masked_mse(scores, labels)
            out["loss"] = loss if ctc is None else loss + self.settings.ctc_weight * ctc
        return out

    def _scores(
        self, states: list[torch.Tensor], fmask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        cfg = self.settings
        ctc_logits = None
        if cfg.pooling == "mean" and cfg.strategy != "ctc-logits":
            scores = self.head_from_pooled(self.pooled_layers(states, fmask))
        else:
            frames = self._mix(torch.stack(states))
            if cfg.strategy == "ctc-logits":
                frames = self.ctc_head(frames)
            scores = self.head(self._pool(frames, fmask))
        if cfg.strategy == "ctc":
            ctc_logits = self.ctc_head(states[-1])
        return scores, ctc_logits

    def _pool(self, frames: torch.Tensor, fmask: torch.Tensor) -> torch.Tensor:
        if self.attention is None:
            return masked_mean(frames, fmask)
        a = self.attention(frames).squeeze(-1).masked_fill(~fmask, torch.finfo(frames.dtype).min)
        return torch.einsum("bt,btd->bd", torch.softmax(a, -1), frames)

    # --- persistence --------------------------------------------------------------------------

    @classmethod
    def from_backbone(cls, id_or_path: str, config: SslConfig) -> SslScorer:
        """A new scorer around pretrained backbone weights."""
        bcfg = load_backbone_config(id_or_path)
        cfg = replace(config, backbone_config=bcfg.to_dict(), backbone_source=str(id_or_path))
        if config.strategy == "ctc-logits" and family_of(bcfg) in HF_FAMILIES:
            backbone, lm_head = load_ctc_backbone(id_or_path)  # as the seed: its CTC logits
            model = cls(cfg, backbone)
            model.ctc_head.load_state_dict(lm_head.state_dict())
            return model
        return cls(cfg, load_backbone(id_or_path))

    def save_pretrained(self, out_dir: str | Path, feature_extractor: Any = None) -> None:
        from safetensors.torch import save_file

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
        (out / "config.json").write_text(json.dumps(self.settings.to_json(), indent=2))
        fe = feature_extractor or default_feature_extractor(
            _backbone_config_object(self.settings.backbone_config)
        )
        fe.save_pretrained(str(out))

    @classmethod
    def from_pretrained(cls, run_dir: str | Path) -> SslScorer:
        from safetensors.torch import load_file

        run = Path(run_dir)
        try:
            config = SslConfig.from_json(json.loads((run / "config.json").read_text()))
            state = load_file(str(run / "model.safetensors"))
        except (OSError, ValueError, TypeError) as exc:
            raise ModelError(f"cannot load SSL scorer ({exc})", path=run) from exc
        model = cls(config)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ModelError(
                f"weights do not fit the config (missing {missing[:3]}, unexpected "
                f"{unexpected[:3]})",
                path=run / "model.safetensors",
            )
        return model.eval()

    def feature_extractor(self, run_dir: str | Path | None = None) -> Any:
        bcfg = _backbone_config_object(self.settings.backbone_config)
        if run_dir is not None:
            return load_feature_extractor(str(run_dir), bcfg)
        return default_feature_extractor(bcfg)


def ctc_outputs(strategy: str, backbone_config: Any) -> int:
    """Classes of the CTC layer: the checkpoint's characters for ``ctc-logits``, else phones."""
    if strategy == "ctc-logits" and family_of(backbone_config) in HF_FAMILIES:
        return int(backbone_config.vocab_size)
    return CTC_CLASSES


def masked_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE over the labelled entries (NaN marks a missing label)."""
    ok = ~torch.isnan(target)
    diff = torch.where(ok, pred - torch.nan_to_num(target), torch.zeros_like(pred))
    return (diff**2).sum() / ok.sum().clamp_min(1)


def ctc_loss(
    logits: torch.Tensor, fmask: torch.Tensor, phone_ids: torch.Tensor, phone_lengths: torch.Tensor
) -> torch.Tensor:
    """Mean-per-target CTC of canonical phones; infeasible items (cropped audio) give zero."""
    log_probs = torch.log_softmax(logits.float(), -1).transpose(0, 1)  # (T, B, C)
    return nn.functional.ctc_loss(
        log_probs,
        phone_ids,
        fmask.long().sum(-1),
        phone_lengths,
        blank=CTC_BLANK,
        reduction="mean",
        zero_infinity=True,
    )
