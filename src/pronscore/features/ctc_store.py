"""The CTC recogniser's columns (:mod:`pronscore.features.ctc_gop`) for a whole FEATURES_DIR,
beside its pocketsphinx features (``pronscore features DS --out F --ctc RUN --frames CACHE``).

On disk::

    ctc.json                      {"run": the recogniser's run folder, "encoder": its encoder}
    <split>/ctc/<id>.safetensors  "phones" float32 (n_phones, len(PHONE_COLUMNS)) in
                                  phone_index order; "heard" int16 (n_phones,) CTC_VOCAB
                                  index of the phone heard instead (-1: the canonical one);
                                  "utterance" float32 (len(UTTERANCE_COLUMNS),); "said"
                                  float32 (len(EXTENT_COLUMNS),) (absent in files written
                                  before it: NaN)

:func:`load_split_ctc` adds them to the tables as ``p_ctc_*`` / ``u_ctc_*`` features, a
``ctc_heard`` column and the read extent as ``ctc_said_*`` (what the checks read; not
features: no ``u_`` prefix, so the trees never see them). A recogniser run with speaker
folds (``pronscore train ctc --folds 5``) gives each utterance the columns of the fold
recogniser that never heard its speaker.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pronscore.align.ctc import CTC_INDEX, CTC_VOCAB
from pronscore.atomic import atomic_write_bytes, atomic_write_text
from pronscore.errors import CorpusError
from pronscore.features.ctc_gop import (
    EXTENT_COLUMNS,
    PHONE_COLUMNS,
    UTTERANCE_COLUMNS,
    CtcColumns,
    ctc_phone_columns,
)

SPEC_FILE = "ctc.json"
COLUMNS_DIR = "ctc"
HEARD_COLUMN = "ctc_heard"
SAID_COLUMNS = tuple(f"ctc_{c}" for c in EXTENT_COLUMNS)  # utterance columns of the checks


def columns_path(features_dir: str | Path, split: str, utt_id: str) -> Path:
    return Path(features_dir) / split / COLUMNS_DIR / f"{utt_id}.safetensors"


def encode(cols: CtcColumns) -> dict[str, np.ndarray]:
    return {
        "phones": np.stack([cols.phones[c] for c in PHONE_COLUMNS], axis=1).astype(np.float32),
        "heard": np.array([CTC_INDEX[h] if h else -1 for h in cols.heard], dtype=np.int16),
        "utterance": np.array([cols.utterance[c] for c in UTTERANCE_COLUMNS], np.float32),
        "said": np.array([cols.said[c] for c in EXTENT_COLUMNS], np.float32),
    }


def extract_split_ctc(
    features_dir: str | Path,
    split: str,
    run_dir: str | Path,
    cache_dir: str | Path | None = None,
    *,
    audio_of: Callable[[str], np.ndarray] | None = None,
    encoder: str | None = None,
    progress: bool = True,
) -> int:
    """Columns of every utterance of ``split`` not yet written (resumable). The encoder's
    states come from the frames cache (:mod:`pronscore.features.frames_cache`) when it holds
    the utterance, else from ``encoder`` run on ``audio_of(id)`` (synthetic negatives: each
    row's own audio). Returns how many were computed."""
    import pandas as pd
    from safetensors.numpy import save
    from tqdm.auto import tqdm

    from pronscore.acoustic.phone_ctc import recogniser_for
    from pronscore.features.frames_cache import read_meta

    fdir = Path(features_dir)
    meta = read_meta(cache_dir) if cache_dir is not None else None
    encoder = encoder or (str(meta["model"]) if meta else None)
    states_of = _states(cache_dir, meta, audio_of, encoder)
    spec = {"run": str(run_dir), "encoder": encoder}
    old = read_spec(fdir)
    if old is not None and old["run"] != spec["run"]:
        raise CorpusError(
            f"CTC columns here come from {old['run']}; use a new --out", path=fdir / SPEC_FILE
        )
    atomic_write_text(fdir / SPEC_FILE, json.dumps(old or spec, indent=1))
    utts = pd.read_parquet(fdir / split / "utterances.parquet", columns=["id", "speaker"])
    phones = pd.read_parquet(
        fdir / split / "phones.parquet",
        columns=["id", "phone_index", "word_index", "base_phone", "start", "end"],
    )
    groups = {str(k): g.sort_values("phone_index") for k, g in phones.groupby("id", sort=False)}
    speaker = dict(zip(utts["id"].astype(str), utts["speaker"].astype(str), strict=True))
    todo = [u for u in groups if not columns_path(fdir, split, u).is_file()]
    (fdir / split / COLUMNS_DIR).mkdir(parents=True, exist_ok=True)
    recogniser = recogniser_for(run_dir)
    for utt in tqdm(todo, desc=f"ctc {split}", unit="utt", disable=not progress):
        rec, g = recogniser(speaker.get(utt, "")), groups[utt]
        states, rate = states_of(utt, max(rec.layers) + 1)
        cols = ctc_phone_columns(
            rec.log_probs(states), g["base_phone"].tolist(), g["start"].tolist(),
            g["end"].tolist(), rate, g["word_index"].tolist(),
        )  # fmt: skip
        atomic_write_bytes(columns_path(fdir, split, utt), save(encode(cols)))
    return len(todo)


def _states(
    cache_dir: str | Path | None,
    meta: dict[str, Any] | None,
    audio_of: Callable[[str], np.ndarray] | None,
    encoder: str | None,
) -> Callable[[str, int], tuple[np.ndarray, float]]:
    """``(utt_id, n_states) -> (states, frame rate)``: cached (``meta``: the cache's
    meta.json), else encoded now."""
    from pronscore.features.frames_cache import load_states, state_path

    frames: list[Any] = []  # the encoder, built on the first utterance the cache lacks

    def get(utt: str, n: int) -> tuple[np.ndarray, float]:
        if meta is not None and state_path(cache_dir, utt).is_file():
            return load_states(cache_dir, utt, range(n)), float(meta["frame_rate"])
        if audio_of is None or encoder is None:
            raise CorpusError("no cached frames and no audio for this utterance", field=utt)
        if not frames:
            from pronscore.features.deep import WhisperFrames

            frames.append(WhisperFrames(encoder))
        return frames[0](audio_of(utt))[:n], frames[0].frame_rate

    return get


def read_spec(features_dir: str | Path) -> dict[str, str] | None:
    path = Path(features_dir) / SPEC_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def recogniser_of(features_dir: str | Path) -> Any:
    """The recogniser (on every speaker) whose columns a FEATURES_DIR holds, or None."""
    spec = read_spec(features_dir)
    if spec is None:
        return None
    from pronscore.acoustic.phone_ctc import PhoneRecogniser

    return PhoneRecogniser.from_pretrained(spec["run"])


def with_ctc_columns(utts: Any, phones: Any, arrays: dict[str, dict[str, np.ndarray]]):
    """``utts`` and ``phones`` with the columns of ``arrays`` (utterance id -> :func:`encode`'s
    arrays) joined on id / phone_index; utterances without arrays get NaN."""
    import pandas as pd

    ids = phones["id"].astype(str).to_numpy()
    k = phones["phone_index"].to_numpy(dtype=np.int64)
    block = np.full((len(phones), len(PHONE_COLUMNS)), np.nan)
    heard = np.full(len(phones), None, dtype=object)
    for i, (u, j) in enumerate(zip(ids, k, strict=True)):
        if u in arrays and j < len(arrays[u]["heard"]):
            block[i] = arrays[u]["phones"][j]
            h = int(arrays[u]["heard"][j])
            heard[i] = CTC_VOCAB[h] if h >= 0 else None
    phones = pd.concat(
        [
            phones.drop(columns=[*PHONE_COLUMNS, HEARD_COLUMN], errors="ignore"),
            pd.DataFrame(block, columns=list(PHONE_COLUMNS), index=phones.index),
            pd.Series(heard, index=phones.index, name=HEARD_COLUMN),
        ],
        axis=1,
    )
    u_ids = utts["id"].astype(str)
    names = [*UTTERANCE_COLUMNS, *SAID_COLUMNS]
    u_block = np.full((len(utts), len(names)), np.nan)
    for i, u in enumerate(u_ids):
        if u in arrays:
            u_block[i, : len(UTTERANCE_COLUMNS)] = arrays[u]["utterance"]
            if "said" in arrays[u]:
                u_block[i, len(UTTERANCE_COLUMNS) :] = arrays[u]["said"]
    utts = pd.concat(
        [
            utts.drop(columns=names, errors="ignore"),
            pd.DataFrame(u_block, columns=names, index=utts.index),
        ],
        axis=1,
    )
    return utts, phones


def load_split_ctc(features_dir: str | Path, split: str, utts: Any, phones: Any):
    """The tables with their CTC columns, unchanged when the FEATURES_DIR has none."""
    from safetensors.numpy import load_file

    d = Path(features_dir) / split / COLUMNS_DIR
    if read_spec(features_dir) is None or not d.is_dir():
        return utts, phones
    arrays = {}
    for u in utts["id"].astype(str):
        path = columns_path(features_dir, split, u)
        if not path.is_file():
            raise CorpusError(
                "CTC columns missing for this utterance (rerun `pronscore features --ctc`)",
                path=path,
            )
        arrays[u] = load_file(str(path))
    return with_ctc_columns(utts, phones, arrays)
