"""Per-phone pooled deep features: frame features of an acoustic model averaged over each
aligned phone, cached once per utterance.

Cache layout (``CACHE_DIR``, a folder given on the command line, e.g. ``data/deep-whisper``)::

    meta.json                   {"model": path or id, "n_layers": L+1, "dim": D, "frame_rate"}
    <utt_id>.safetensors        "pooled" float16 (L+1, n_phones, D): mean of each phone's
                                frames per layer (zeros for phones without timing);
                                "has_time" uint8 (n_phones,)

Phones follow the order of ``phones.parquet`` rows of that utterance (``phone_index``).
The encoder is ``--model``, else the environment variable ``PRONSCORE_WHISPER``, else the hub
id ``openai/whisper-base`` (transformers takes it from the Hugging Face cache when present).
The pooling itself (:func:`pool_phones`) is a pure function so that any frame features -- an
encoder's hidden states or pocketsphinx's per-frame phone scores -- go through the same code.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from pronscore.atomic import atomic_write_bytes, atomic_write_text
from pronscore.errors import ModelError

WHISPER_ENV = "PRONSCORE_WHISPER"
DEFAULT_WHISPER = "openai/whisper-base"


def whisper_model(explicit: str | Path | None = None) -> str:
    """The Whisper encoder to load: ``explicit``, else ``$PRONSCORE_WHISPER``, else the hub id."""
    return str(explicit or os.environ.get(WHISPER_ENV) or DEFAULT_WHISPER)


def frame_span(start: float, end: float, frame_rate: float, n_frames: int) -> tuple[int, int]:
    """Frames ``[a, b)`` covering ``[start, end)`` seconds; at least one frame, inside the array."""
    a = math.floor(start * frame_rate + 1e-6)
    b = math.ceil(end * frame_rate - 1e-6)
    a = min(max(a, 0), max(n_frames - 1, 0))
    b = min(max(b, a + 1), n_frames)
    return a, b


def pool_phones(
    frames: np.ndarray, starts: Iterable[float], ends: Iterable[float], frame_rate: float
) -> tuple[np.ndarray, np.ndarray]:
    """Mean of ``frames[..., t, :]`` over each phone's span.

    ``frames``: (..., T, D). Returns (pooled (..., n_phones, D) float32, has_time (n_phones,)
    bool); phones with a missing (NaN/None) time or an empty frame array pool to zeros.
    """
    frames = np.asarray(frames, dtype=np.float32)
    starts, ends = list(starts), list(ends)
    n_frames = frames.shape[-2]
    out = np.zeros((*frames.shape[:-2], len(starts), frames.shape[-1]), dtype=np.float32)
    has = np.zeros(len(starts), dtype=bool)
    for i, (s, e) in enumerate(zip(starts, ends, strict=True)):
        if n_frames == 0 or s is None or e is None or not (np.isfinite(s) and np.isfinite(e)):
            continue
        a, b = frame_span(float(s), float(e), frame_rate, n_frames)
        out[..., i, :] = frames[..., a:b, :].mean(axis=-2)
        has[i] = True
    return out, has


class WhisperFrames:
    """Hidden states of a Whisper encoder for one utterance: the forward of
    :class:`pronscore.acoustic.encoders.Encoder` (the one the SSL scorers use too), on the
    utterance's own mel frames -- the 30 s-padded computation except for attention to the
    padding -- with ``ceil(samples / 320)`` frames at 50 per second."""

    frame_rate = 50.0

    def __init__(self, path: str | Path, *, threads: int = 1) -> None:
        import torch
        from transformers.utils import logging as hf_logging

        from pronscore.acoustic.encoders import Encoder

        torch.set_num_threads(threads)
        verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()  # the classifier's unused head is "missing": expected
        hf_logging.disable_progress_bar()  # a scorer's output is its result, not load progress
        try:
            self.encoder = Encoder.from_pretrained(str(path))
        except ModelError as exc:
            raise ModelError(f"cannot load Whisper encoder ({exc.reason})", path=str(path)) from exc
        finally:
            hf_logging.set_verbosity(verbosity)
            if bars:
                hf_logging.enable_progress_bar()
        if self.encoder.family != "whisper":
            raise ModelError(f"not a Whisper encoder ({self.encoder.family})", path=str(path))
        self.n_layers = self.encoder.num_layers + 1
        self.dim = self.encoder.hidden_size

    def meta(self, model: str | Path) -> dict[str, Any]:
        """What a cache of this encoder's outputs records about it (``meta.json``)."""
        return {"model": str(model), "n_layers": self.n_layers, "dim": self.dim,
                "frame_rate": self.frame_rate}  # fmt: skip

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        """(L+1, T, D) float32 hidden states at 50 frames/s (last one after the final norm)."""
        return self.encoder.encode(np.asarray(samples, dtype=np.float32)).hidden_states


def cache_path(cache_dir: str | Path, utt_id: str) -> Path:
    return Path(cache_dir) / f"{utt_id}.safetensors"


def write_pooled(cache_dir: str | Path, utt_id: str, pooled: np.ndarray, has: np.ndarray) -> None:
    """Atomically write one utterance's pooled vectors (float16 to halve the cache)."""
    from safetensors.numpy import save

    arrays = {"pooled": pooled.astype(np.float16), "has_time": has.astype(np.uint8)}
    atomic_write_bytes(cache_path(cache_dir, utt_id), save(arrays))


def load_pooled(cache_dir: str | Path, utt_id: str, layers: Iterable[int]) -> np.ndarray:
    """(len(layers), n_phones, D) float32 pooled vectors of the chosen layers."""
    from safetensors import safe_open

    path = cache_path(cache_dir, utt_id)
    if not path.is_file():
        raise ModelError("no cached deep features for this utterance", path=str(path))
    with safe_open(str(path), framework="numpy") as f:
        pooled = f.get_tensor("pooled")
    return pooled[list(layers)].astype(np.float32)


def extract_pooled(
    phones: Any,  # pandas.DataFrame: id, phone_index, start, end
    audio_of: Any,  # callable utt_id -> 16 kHz float32 samples
    cache_dir: str | Path,
    *,
    model: str | Path,
    threads: int = 1,
    progress: bool = True,
) -> int:
    """Pool Whisper hidden states over each phone of every utterance not yet cached.

    Resumable: finished utterances are skipped. Returns how many utterances were computed.
    """
    from tqdm.auto import tqdm

    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    groups = {str(k): g.sort_values("phone_index") for k, g in phones.groupby("id", sort=True)}
    todo = [u for u in groups if not cache_path(cache, u).is_file()]
    if not todo:
        return 0
    frames = WhisperFrames(model, threads=threads)
    atomic_write_text(cache / "meta.json", json.dumps(frames.meta(model), indent=1))
    for utt in tqdm(todo, desc="whisper features", unit="utt", disable=not progress):
        g = groups[utt]
        states = frames(audio_of(utt))
        pooled, has = pool_phones(states, g["start"], g["end"], frames.frame_rate)
        write_pooled(cache, utt, pooled, has)
    return len(todo)


def dataset_audio(dataset_dir: str | Path, splits: Iterable[str]):
    """A ``utt_id -> samples`` function over a prepared dataset's splits (lazy row access)."""
    from pronscore.dataset import load_split

    tables = [load_split(dataset_dir, s) for s in splits]
    index = {str(i): (k, j) for k, t in enumerate(tables) for j, i in enumerate(t["id"])}

    def audio_of(utt_id: str) -> np.ndarray:
        k, j = index[utt_id]
        return np.asarray(tables[k][j]["audio"], dtype=np.float32)

    return audio_of


def main(argv: list[str] | None = None) -> int:
    """``python -m pronscore.features.deep FEATURES_DIR DATASET_DIR CACHE_DIR [--model M]``."""
    import argparse

    from pronscore.features.extract import load_features

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("features_dir")
    p.add_argument("dataset_dir")
    p.add_argument("cache_dir")
    p.add_argument(
        "--model",
        default=None,
        help=f"Whisper folder or hub id (default: ${WHISPER_ENV}, else {DEFAULT_WHISPER})",
    )
    p.add_argument("--splits", default="dev,train")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    splits = args.splits.split(",")
    audio_of = dataset_audio(args.dataset_dir, splits)
    for split in splits:
        phones = load_features(args.features_dir, split).phones
        model = whisper_model(args.model)
        extract_pooled(phones, audio_of, args.cache_dir, model=model, threads=args.threads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
