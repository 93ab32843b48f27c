"""A cache of an encoder's frame-level hidden states, for training heads over frames (the CTC
phone recogniser) without running the encoder once per epoch.

Layout (``CACHE_DIR``)::

    meta.json              {"model": id or path, "n_layers": L+1, "dim": D, "frame_rate": 50}
    <utt_id>.safetensors   "states" float16 (L+1, T, D): every hidden state, 0 = embeddings

float16 halves the cache (Speechocean762's 2,500 labelled utterances: ~3.5 GB for
whisper-base); the recogniser trains on what the scorer computes in float32, rounded.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from pronscore.atomic import atomic_write_bytes, atomic_write_text
from pronscore.errors import CorpusError

META = "meta.json"


def state_path(cache_dir: str | Path, utt_id: str) -> Path:
    return Path(cache_dir) / f"{utt_id}.safetensors"


def read_meta(cache_dir: str | Path) -> dict:
    path = Path(cache_dir) / META
    if not path.is_file():
        raise CorpusError("not a frames cache (no meta.json)", path=path)
    return json.loads(path.read_text(encoding="utf-8"))


def cache_frames(
    ids: Sequence[str],
    audio_of: Callable[[str], np.ndarray],
    cache_dir: str | Path,
    *,
    model: str,
    threads: int = 1,
    progress: bool = True,
) -> int:
    """Encode every utterance of ``ids`` not yet cached (resumable); returns how many."""
    from safetensors.numpy import save
    from tqdm.auto import tqdm

    from pronscore.features.deep import WhisperFrames

    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    todo = [u for u in ids if not state_path(cache, u).is_file()]
    if not todo:
        return 0
    frames = WhisperFrames(model, threads=threads)
    meta = frames.meta(model)
    if (cache / META).is_file() and read_meta(cache)["model"] != meta["model"]:
        raise CorpusError(f"this cache holds {read_meta(cache)['model']}", path=cache / META)
    atomic_write_text(cache / META, json.dumps(meta, indent=1))
    for utt in tqdm(todo, desc="encoder frames", unit="utt", disable=not progress):
        states = frames(audio_of(utt)).astype(np.float16)
        atomic_write_bytes(state_path(cache, utt), save({"states": states}))
    return len(todo)


def load_states(cache_dir: str | Path, utt_id: str, layers: Sequence[int]) -> np.ndarray:
    """(len(layers), T, D) float16 hidden states of one cached utterance."""
    from safetensors import safe_open

    path = state_path(cache_dir, utt_id)
    if not path.is_file():
        raise CorpusError("utterance not in the frames cache", path=path)
    with safe_open(str(path), framework="numpy") as f:
        return f.get_tensor("states")[list(layers)]
