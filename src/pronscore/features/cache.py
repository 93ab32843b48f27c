"""Resumable per-utterance cache: one JSON record (+ one safetensors frames file) per utterance.

Every file is written to a temporary name in its final folder and renamed, and the JSON record
is written last, so it marks a finished utterance: a crash loses nothing that was done and
leaves no half-written file that looks complete.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; outputs are shared read-only data
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(_jsonable(obj), indent=None).encode("utf-8"))


def _jsonable(obj: Any) -> Any:
    """NaN/inf -> None (strict JSON); numpy scalars -> Python."""
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


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
