"""Resumable per-utterance cache: one JSON record (+ one safetensors frames file) per utterance.

Every file is written to a temporary name in its final folder and renamed, and the JSON record
is written last, so it marks a finished utterance: a crash loses nothing that was done and
leaves no half-written file that looks complete.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from pronscore.atomic import atomic_write_bytes, atomic_write_json


class UtteranceCache:
    """``SPLIT_DIR/cache/<id>.json`` records and ``SPLIT_DIR/frames/<id>.safetensors`` arrays."""

    def __init__(self, split_dir: str | Path) -> None:
        self.split_dir = Path(split_dir)
        self.records = self.split_dir / "cache"
        self.frames = self.split_dir / "frames"

    def record_path(self, utt_id: str) -> Path:
        return self.records / f"{utt_id}.json"

    def frames_path(self, utt_id: str) -> Path:
        return self.frames / f"{utt_id}.safetensors"

    def done(self) -> set[str]:
        if not self.records.is_dir():
            return set()
        return {p.stem for p in self.records.glob("*.json")}

    def write(self, utt_id: str, record: dict[str, Any], frames: dict[str, np.ndarray]) -> None:
        from safetensors.numpy import save

        arrays = {k: np.ascontiguousarray(v) for k, v in frames.items()}
        atomic_write_bytes(self.frames_path(utt_id), save(arrays))
        atomic_write_json(self.record_path(utt_id), record)  # last: marks the utterance done

    def read(self, utt_id: str) -> dict[str, Any]:
        return json.loads(self.record_path(utt_id).read_text(encoding="utf-8"))
