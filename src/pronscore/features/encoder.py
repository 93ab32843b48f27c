"""Per-phone encoder vectors: a Whisper encoder's hidden states averaged over each aligned phone.

The one stage that turns audio + phone times into encoder vectors, for a whole dataset
(``pronscore features DS --out F --encoder ID_OR_PATH --layers 4``) and for one recording
(:class:`~pronscore.scorer.Scorer`), so training and scoring see the same numbers.

On disk, beside the pocketsphinx features of a FEATURES_DIR::

    encoder.json                      {"model": id or path, "layers": [...], "dim": D}
    <split>/encoder/<id>.safetensors  "vectors" float32 (n_phones, len(layers) * D), rows in
                                      phone_index order; NaN rows: phone without aligned time

The encoder is the one named by ``$PRONSCORE_WHISPER`` (what ``--encoder`` sets) when that is
set, else the model recorded in the spec (a hub id such as ``openai/whisper-base`` resolves
from the Hugging Face cache or hub).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pronscore.errors import CorpusError, ModelError
from pronscore.features.cache import atomic_write_bytes, atomic_write_json
from pronscore.features.deep import DEFAULT_WHISPER, WHISPER_ENV, WhisperFrames, pool_phones

SPEC_FILE = "encoder.json"
VECTORS_DIR = "encoder"


@dataclass(frozen=True)
class EncoderSpec:
    """Which encoder and which of its hidden states (0 = input embeddings) are pooled."""

    model: str = DEFAULT_WHISPER
    layers: tuple[int, ...] = (4,)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "layers": list(self.layers)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EncoderSpec:
        return cls(model=str(d["model"]), layers=tuple(int(x) for x in d["layers"]))

    def resolved_model(self) -> str:
        """``$PRONSCORE_WHISPER`` (set by ``--encoder``) over the recorded model."""
        return os.environ.get(WHISPER_ENV) or self.model


def parse_layers(text: str) -> tuple[int, ...]:
    """``"4"``, ``"3-6"`` or ``"2,4,6"`` -> layer indices."""
    out: list[int] = []
    for part in text.split(","):
        a, _, b = part.strip().partition("-")
        out.extend(range(int(a), int(b) + 1) if b else [int(a)])
    if not out or min(out) < 0:
        raise ValueError(f"bad layer list {text!r} (e.g. 4, 3-6 or 2,4,6)")
    return tuple(out)


class PhoneVectors:
    """``(samples, starts, ends) -> (n_phones, len(layers) * D)`` float32 pooled vectors.

    The encoder loads on first use (a scorer for a pocketsphinx-only model never pays for it).
    """

    def __init__(self, spec: EncoderSpec, *, threads: int = 1) -> None:
        self.spec = spec
        self.threads = threads
        self._frames: WhisperFrames | None = None

    def load(self) -> WhisperFrames:
        """The encoder, loaded on the first call (:class:`ModelError` when it cannot be)."""
        if self._frames is None:
            try:
                self._frames = WhisperFrames(self.spec.resolved_model(), threads=self.threads)
            except ModelError as err:
                hint = f"; give --encoder PATH or set ${WHISPER_ENV} to a local copy"
                raise ModelError(err.reason + hint, path=err.path) from err
            if max(self.spec.layers) >= self._frames.n_layers:
                raise ModelError(
                    f"layer {max(self.spec.layers)} asked, the encoder has "
                    f"{self._frames.n_layers} hidden states",
                    path=self.spec.resolved_model(),
                )
        return self._frames

    frames = property(load)

    @property
    def dim(self) -> int:
        return len(self.spec.layers) * self.frames.dim

    def __call__(
        self, samples: np.ndarray, starts: Sequence[float | None], ends: Sequence[float | None]
    ) -> np.ndarray:
        return self.pool(self.frames(samples), starts, ends)

    def pool(
        self, states: np.ndarray, starts: Sequence[float | None], ends: Sequence[float | None]
    ) -> np.ndarray:
        """The vectors from every hidden state of the recording, ``self.frames(samples)``
        (computed once when other stages read them too)."""
        states = states[list(self.spec.layers)]  # (L, T, D)
        pooled, has = pool_phones(states, starts, ends, self.frames.frame_rate)
        out = np.concatenate(list(pooled), axis=-1)  # (n, L * D)
        out[~has] = np.nan  # no time: no vector (a head must not read zeros as speech)
        return out


def read_spec(features_dir: str | Path) -> EncoderSpec | None:
    """The encoder spec of a FEATURES_DIR, ``None`` when it has no encoder vectors."""
    path = Path(features_dir) / SPEC_FILE
    if not path.is_file():
        return None
    try:
        return EncoderSpec.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (KeyError, TypeError, ValueError) as exc:
        raise CorpusError(f"unreadable encoder spec ({exc})", path=path) from None


def _write_spec(features_dir: Path, spec: EncoderSpec) -> None:
    old = read_spec(features_dir)
    if old is not None and old.layers != spec.layers:
        raise CorpusError(
            f"encoder vectors here are of layers {list(old.layers)}; use a new --out",
            path=features_dir / SPEC_FILE,
        )
    atomic_write_json(features_dir / SPEC_FILE, spec.to_dict())


def vectors_path(features_dir: str | Path, split: str, utt_id: str) -> Path:
    return Path(features_dir) / split / VECTORS_DIR / f"{utt_id}.safetensors"


def extract_split_vectors(
    dataset_dir: str | Path,
    features_dir: str | Path,
    split: str,
    spec: EncoderSpec,
    *,
    threads: int = 1,
    progress: bool = True,
    audio_of: Callable[[str], np.ndarray] | None = None,
) -> int:
    """Encoder vectors of every utterance of ``split`` whose file is missing (resumable; run
    after the pocketsphinx features, whose phone times it pools over). ``audio_of``: utterance
    id -> 16 kHz samples (default: the dataset split's recordings). Returns how many were
    computed."""
    import pandas as pd
    from safetensors.numpy import save
    from tqdm.auto import tqdm

    from pronscore.features.deep import dataset_audio

    fdir = Path(features_dir)
    _write_spec(fdir, spec)
    # the table only: its vectors (loaded by load_features) are what is missing
    phones = pd.read_parquet(fdir / split / "phones.parquet",
                             columns=["id", "phone_index", "start", "end"])  # fmt: skip
    groups = {str(k): g.sort_values("phone_index") for k, g in phones.groupby("id", sort=False)}
    todo = [u for u in groups if not vectors_path(fdir, split, u).is_file()]
    if not todo:
        return 0
    (fdir / split / VECTORS_DIR).mkdir(parents=True, exist_ok=True)
    audio_of = audio_of or dataset_audio(dataset_dir, [split])
    stage = PhoneVectors(spec, threads=threads)
    for utt in tqdm(todo, desc=f"encoder {split}", unit="utt", disable=not progress):
        g = groups[utt]
        vec = stage(audio_of(utt), g["start"].tolist(), g["end"].tolist())
        atomic_write_bytes(
            vectors_path(fdir, split, utt), save({"vectors": vec.astype(np.float32)})
        )
    return len(todo)


def load_split_vectors(features_dir: str | Path, split: str, phones: Any) -> np.ndarray | None:
    """(rows of ``phones``, D) float32 in the table's row order; ``None`` without vectors."""
    from safetensors.numpy import load_file

    fdir = Path(features_dir)
    if read_spec(fdir) is None or not (fdir / split / VECTORS_DIR).is_dir():
        return None
    blocks: dict[str, np.ndarray] = {}
    for utt in dict.fromkeys(phones["id"].astype(str)):
        path = vectors_path(fdir, split, utt)
        if not path.is_file():
            raise CorpusError(
                "encoder vectors missing for this utterance (rerun `pronscore features --encoder`)",
                path=path,
            )
        blocks[utt] = load_file(str(path))["vectors"].astype(np.float32)
    ids = phones["id"].astype(str).to_numpy()
    index = phones["phone_index"].to_numpy(dtype=np.int64)
    dim = next(iter(blocks.values())).shape[1] if blocks else 0
    out = np.empty((len(phones), dim), dtype=np.float32)
    for i, (utt, k) in enumerate(zip(ids, index, strict=True)):
        out[i] = blocks[utt][k]
    return out
