"""Self-supervised speech encoders: wav2vec2, HuBERT, WavLM (``AutoModel``) and the Whisper
encoder, behind one interface.

Two layers:

* backbone functions (:func:`load_backbone`, :func:`build_backbone`, :func:`backbone_inputs`,
  :func:`backbone_hidden_states`) work on torch batches with masks and are shared with the
  trainable scorer in :mod:`pronscore.models.ssl`;
* :class:`Encoder` is the numpy, no-grad view used downstream: ``encode(samples)`` returns every
  hidden layer of one utterance.

Whisper is run through its own sub-modules (conv1, conv2, ``embed_positions[:T]``, layers,
layer_norm) rather than ``WhisperEncoder.forward``, which insists on 30 s (3000 mel frames) inputs.
Training pads a batch only to its longest item and masks padded frames in the conv stem and in
attention, so padding does not change the output. :class:`Encoder` feeds one utterance's real
length of mel frames (rounded up to an even count) by default: on CPU a 4 s utterance then costs
~1/8 of the 30 s forward. The outputs differ from the original 30 s-padded Whisper, whose
attention also sees the padded frames: on Speechocean762 speech with whisper-base, the conv
stem output is the same (but for the last frame), the last layer correlates ~0.95 frame by frame
(~0.98 utterance means), but layers 4-5 differ much more (frame correlation 0.3-0.7).
``pad_to_30s=True`` reproduces Whisper exactly. Audio longer than 30 s is encoded in 30 s
windows, concatenated along time.

Hub ids and local folders go through the same ``from_pretrained`` code path; collection ids
``org/repo/sub/path`` are split into repo ``org/repo`` and ``subfolder="sub/path"``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pronscore.constants import SAMPLE_RATE
from pronscore.errors import AudioError, ModelError

HF_FAMILIES = ("wav2vec2", "hubert", "wavlm")
FAMILIES = (*HF_FAMILIES, "whisper")
WHISPER_HOP = 160  # mel hop in samples (10 ms)
WHISPER_WINDOW_S = 30.0
WHISPER_FRAME_RATE = SAMPLE_RATE / (2 * WHISPER_HOP)  # 50 Hz: conv2 has stride 2


def split_model_id(id_or_path: str | Path) -> tuple[str, str | None]:
    """``"org/repo/sub/path"`` -> ``("org/repo", "sub/path")``; a local path always wins.

    Hub ids have exactly two parts; anything longer that is not an existing folder names a
    subfolder of the repo (the form used by checkpoint collections).
    """
    s = str(id_or_path)
    if Path(s).exists() or s.startswith((".", "/", "~")):
        return s, None
    parts = [p for p in s.split("/") if p]
    if len(parts) <= 2:
        return s, None
    return "/".join(parts[:2]), "/".join(parts[2:])


def family_of(config: Any) -> str:
    """``wav2vec2`` | ``hubert`` | ``wavlm`` | ``whisper`` from a transformers config."""
    model_type = getattr(config, "model_type", "")
    if model_type not in FAMILIES:
        raise ModelError(f"unsupported backbone model_type {model_type!r} (use one of {FAMILIES})")
    return model_type


def load_backbone_config(id_or_path: str | Path):
    from transformers import AutoConfig

    repo, sub = split_model_id(id_or_path)
    try:
        return AutoConfig.from_pretrained(repo, subfolder=sub or "")
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load backbone config ({exc})", path=str(id_or_path)) from exc


def build_backbone(config: Any) -> nn.Module:
    """A randomly initialised backbone for ``config`` (tests; or to load weights into)."""
    from transformers import AutoModel
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    if family_of(config) == "whisper":
        return WhisperEncoder(config)
    return AutoModel.from_config(config)


def load_backbone(id_or_path: str | Path, *, dtype: torch.dtype = torch.float32) -> nn.Module:
    """Pretrained backbone weights from a hub id, a collection id or a local folder."""
    from transformers import AutoModel, WhisperForAudioClassification

    repo, sub = split_model_id(id_or_path)
    config = load_backbone_config(id_or_path)
    kwargs = {"subfolder": sub or "", "dtype": dtype}
    try:
        if family_of(config) == "whisper":
            # the shared folders hold only "encoder.*" keys: the classification model loads them
            return WhisperForAudioClassification.from_pretrained(repo, **kwargs).encoder
        return AutoModel.from_pretrained(repo, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load backbone weights ({exc})", path=str(id_or_path)) from exc


def load_ctc_backbone(
    id_or_path: str | Path, *, dtype: torch.dtype = torch.float32
) -> tuple[nn.Module, nn.Linear]:
    """Backbone and CTC output layer (``lm_head``) of a wav2vec2-family CTC checkpoint.

    A checkpoint without a CTC head gets a random one of ``config.vocab_size`` outputs.
    """
    from transformers import AutoModelForCTC

    repo, sub = split_model_id(id_or_path)
    if family_of(load_backbone_config(id_or_path)) == "whisper":
        raise ModelError("Whisper has no CTC head", path=str(id_or_path))
    try:
        model = AutoModelForCTC.from_pretrained(repo, subfolder=sub or "", dtype=dtype)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load CTC checkpoint ({exc})", path=str(id_or_path)) from exc
    return getattr(model, model.base_model_prefix), model.lm_head


def default_feature_extractor(config: Any):
    """The preprocessor a checkpoint of this family ships with, built from its config."""
    from transformers import Wav2Vec2FeatureExtractor, WhisperFeatureExtractor

    if family_of(config) == "whisper":
        return WhisperFeatureExtractor(feature_size=config.num_mel_bins)
    return Wav2Vec2FeatureExtractor(
        do_normalize=True, return_attention_mask=True, sampling_rate=SAMPLE_RATE
    )


def load_feature_extractor(id_or_path: str | Path, config: Any):
    from transformers import AutoFeatureExtractor

    repo, sub = split_model_id(id_or_path)
    try:
        return AutoFeatureExtractor.from_pretrained(repo, subfolder=sub or "")
    except (OSError, ValueError):  # many SSL checkpoints ship without one: the family default
        return default_feature_extractor(config)


def backbone_inputs(samples: np.ndarray, family: str, feature_extractor: Any) -> np.ndarray:
    """One utterance's model input, unpadded: normalised samples ``(N,)`` or log-mel ``(M, F)``.

    Whisper log-mel is time-major here so that one collator pads both kinds along axis 0.
    """
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim != 1 or x.size == 0:
        raise AudioError(f"expected non-empty mono samples, got shape {x.shape}")
    if family == "whisper":
        mel = feature_extractor(
            x, sampling_rate=SAMPLE_RATE, padding="longest", truncation=False, return_tensors="np"
        )["input_features"][0]
        return np.ascontiguousarray(mel.T[: max(1, x.size // WHISPER_HOP)], dtype=np.float32)
    if getattr(feature_extractor, "do_normalize", True):
        x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    return x


def _whisper_out_lengths(mel_lengths: torch.Tensor) -> torch.Tensor:
    return (mel_lengths - 1) // 2 + 1  # conv2: kernel 3, stride 2, padding 1


def frame_mask(backbone: nn.Module, family: str, input_mask: torch.Tensor) -> torch.Tensor:
    """Boolean ``(B, T)`` mask of encoder frames from the input mask (samples or mel frames)."""
    lengths = input_mask.long().sum(-1)
    if family == "whisper":
        out = _whisper_out_lengths(lengths)
        size = int(_whisper_out_lengths(torch.tensor(input_mask.shape[-1])))
    else:
        out = backbone._get_feat_extract_output_lengths(lengths)
        size = int(backbone._get_feat_extract_output_lengths(torch.tensor(input_mask.shape[-1])))
    return torch.arange(size, device=input_mask.device)[None, :] < out[:, None]


def _whisper_hidden_states(
    encoder: nn.Module, mel: torch.Tensor, mel_mask: torch.Tensor
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """``mel`` ``(B, M, F)``; returns embeddings + every layer (last after the final norm)."""
    m = mel_mask.to(mel.dtype)[:, None, :]
    x = nn.functional.gelu(encoder.conv1(mel.transpose(1, 2) * m))
    x = nn.functional.gelu(encoder.conv2(x * m))  # zeroed pad frames == the conv's own padding
    x = x.transpose(1, 2)
    t = x.shape[1]
    if t > encoder.embed_positions.num_embeddings:
        raise AudioError(f"Whisper input longer than {WHISPER_WINDOW_S:.0f} s ({t} frames)")
    x = x + encoder.embed_positions.weight[:t].to(x.dtype)
    x = nn.functional.dropout(x, p=encoder.dropout, training=encoder.training)
    fmask = frame_mask(encoder, "whisper", mel_mask)
    bias = torch.zeros(fmask.shape, dtype=x.dtype, device=x.device)
    bias = bias.masked_fill(~fmask, torch.finfo(x.dtype).min)[:, None, None, :]
    states = [x]
    for layer in encoder.layers:
        x = layer(x, bias)
        states.append(x)
    states[-1] = encoder.layer_norm(x)
    return states, fmask


def backbone_hidden_states(
    backbone: nn.Module, family: str, inputs: torch.Tensor, input_mask: torch.Tensor
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Hidden states ``[(B, T, D)] * (num_layers + 1)`` and the boolean frame mask ``(B, T)``.

    ``inputs`` is ``(B, N)`` samples (wav2vec2 family) or ``(B, M, F)`` log-mel (Whisper),
    right-padded; ``input_mask`` marks the real samples / mel frames.
    """
    if family == "whisper":
        return _whisper_hidden_states(backbone, inputs, input_mask)
    out = backbone(input_values=inputs, attention_mask=input_mask.long(), output_hidden_states=True)
    states = list(out.hidden_states)
    states[-1] = out.last_hidden_state  # stable-layer-norm models apply a final norm after it
    return states, frame_mask(backbone, family, input_mask)


def num_layers_of(config: Any) -> int:
    return config.encoder_layers if family_of(config) == "whisper" else config.num_hidden_layers


def hidden_size_of(config: Any) -> int:
    return config.d_model if family_of(config) == "whisper" else config.hidden_size


def frame_rate_of(config: Any) -> float:
    """Encoder frames per second: 50 for real checkpoints of every family."""
    if family_of(config) == "whisper":
        return WHISPER_FRAME_RATE
    return SAMPLE_RATE / math.prod(config.conv_stride)


# --- the numpy view ----------------------------------------------------------------------------


@dataclass(frozen=True)
class EncoderOutput:
    hidden_states: np.ndarray  # (num_layers + 1, T, D) float32: embeddings output + every layer
    frame_rate: float  # frames per second (50 for the wav2vec2 family and Whisper)


class Encoder:
    """A frozen SSL encoder: ``encode(samples) -> EncoderOutput`` for one 16 kHz utterance."""

    def __init__(
        self, backbone: nn.Module, config: Any, feature_extractor: Any, *, pad_to_30s: bool = False
    ) -> None:
        self.backbone = backbone.eval()
        self.pad_to_30s = pad_to_30s  # Whisper only: exact 30 s-padded forward (slow on CPU)
        self.config = config
        self.family = family_of(config)
        self.feature_extractor = feature_extractor
        self.num_layers = num_layers_of(config)
        self.hidden_size = hidden_size_of(config)
        self.frame_rate = frame_rate_of(config)

    @classmethod
    def from_pretrained(
        cls, id_or_path: str, *, dtype: torch.dtype = torch.float32, pad_to_30s: bool = False
    ) -> Encoder:
        config = load_backbone_config(id_or_path)
        backbone = load_backbone(id_or_path, dtype=dtype)
        fe = load_feature_extractor(id_or_path, config)
        return cls(backbone, config, fe, pad_to_30s=pad_to_30s)

    @classmethod
    def from_config(cls, config: Any, *, pad_to_30s: bool = False) -> Encoder:
        fe = default_feature_extractor(config)
        return cls(build_backbone(config), config, fe, pad_to_30s=pad_to_30s)

    @property
    def _dtype(self) -> torch.dtype:
        return next(self.backbone.parameters()).dtype

    @torch.no_grad()
    def encode(self, samples: np.ndarray) -> EncoderOutput:
        x = np.asarray(samples, dtype=np.float32)
        if x.ndim != 1 or x.size == 0:
            raise AudioError(f"expected non-empty mono samples, got shape {x.shape}")
        if self.family == "whisper":
            states = self._encode_whisper(x)
        else:
            inp = torch.from_numpy(backbone_inputs(x, self.family, self.feature_extractor))[None]
            mask = torch.ones(inp.shape, dtype=torch.bool)
            hs, _ = backbone_hidden_states(self.backbone, self.family, inp.to(self._dtype), mask)
            states = torch.stack([h[0] for h in hs]).float().numpy()
        return EncoderOutput(np.ascontiguousarray(states, np.float32), self.frame_rate)

    def _encode_whisper(self, x: np.ndarray) -> np.ndarray:
        """30 s windows; outputs trimmed to the real audio (``ceil(n / 320)`` frames each)."""
        window = int(WHISPER_WINDOW_S * SAMPLE_RATE)
        chunks = []
        for start in range(0, x.size, window):
            piece = x[start : start + window]
            # the log-mel of the 30 s-padded window, as Whisper computes it (its clamp to
            # max - 8 dB is over the window; zero padding never raises the max)
            mel = self.feature_extractor(piece, sampling_rate=SAMPLE_RATE, return_tensors="pt")
            feats = mel["input_features"].transpose(1, 2).to(self._dtype)  # (1, 3000, F)
            n = math.ceil(piece.size / (2 * WHISPER_HOP))  # encoder frames of real audio
            if not self.pad_to_30s:
                feats = feats[:, : 2 * n]  # an even count of mel frames: conv2 has stride 2
            mask = torch.ones(feats.shape[:2], dtype=torch.bool)
            hs, _ = _whisper_hidden_states(self.backbone, feats, mask)
            chunks.append(torch.stack([h[0, :n] for h in hs]).float().numpy())
        return np.concatenate(chunks, axis=1)
