"""A FEATURES_DIR split in the exact column layout, with features that carry the labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pronscore.features.extract import SplitFeatures
from pronscore.text import PHONES


def make_split(n_utts: int, seed: int, prefix: str = "u") -> SplitFeatures:
    """Utterances of 2-5 words of 1-4 phones; phone quality q drives every label and feature."""
    rng = np.random.default_rng(seed)
    urows, wrows, prows = [], [], []
    for u in range(n_utts):
        uid = f"{prefix}{u:04d}"
        skill = rng.uniform(0, 1)
        pi = 0
        word_q = []
        for w in range(rng.integers(2, 6)):
            qs = []
            n_ph = int(rng.integers(1, 5))
            for k in range(n_ph):
                q = float(np.clip(skill + rng.normal(0, 0.15), 0, 1))
                qs.append(q)
                phone = PHONES[int(rng.integers(len(PHONES)))]
                pos = "S" if n_ph == 1 else "B" if k == 0 else "E" if k == n_ph - 1 else "I"
                row = {
                    "id": uid,
                    "word_index": w,
                    "phone_index": pi,
                    "phone": phone + "1",
                    "base_phone": phone,
                    "position": pos,
                    "start": 0.1 * pi,
                    "end": 0.1 * pi + 0.1,
                    "p_gop_forced": -3 * (1 - q) + rng.normal(0, 0.3),
                    "p_gop_free": -2 * (1 - q) + rng.normal(0, 0.3),
                    "p_lpp": -4 * (1 - q) + rng.normal(0, 0.5),
                    "p_duration": 0.1,
                    "y_score": round(2 * q, 1) if rng.uniform() > 0.1 else np.nan,
                }
                for ph in PHONES[:3]:
                    row[f"p_lpr_{ph}"] = rng.normal()
                prows.append(row)
                pi += 1
            wq = float(np.mean(qs))
            word_q.append(wq)
            wrows.append(
                {
                    "id": uid,
                    "word_index": w,
                    "text": f"W{w}",
                    "start": 0.0,
                    "end": 1.0,
                    "w_duration": 0.3,
                    "w_lpp_mean": -4 * (1 - wq) + rng.normal(0, 0.3),
                    "y_accuracy": round(10 * wq),
                    "y_stress": 10.0,
                    "y_total": round(10 * wq),
                }
            )
        s = float(np.mean(word_q))
        urows.append(
            {
                "id": uid,
                "status": "ok",
                "reason": None,
                "duration": 2.0,
                "n_words": len(word_q),
                "n_phones": pi,
                "u_speech_rate": 3 + 2 * skill,
                "u_lpp_mean": -4 * (1 - s) + rng.normal(0, 0.2),
                **{f"y_{a}": round(10 * s) for a in ("accuracy", "fluency", "prosodic", "total")},
                "y_completeness": 10.0,
                "speaker": f"s{u % 7}",
                "age": 10,
                "gender": "f",
            }
        )
    return SplitFeatures(
        pd.DataFrame(urows), pd.DataFrame(wrows), pd.DataFrame(prows), Path("/nonexistent")
    )


def random_phone_batch(gen: torch.Generator, lens: list[list[int]], dim: int):
    """A (B, W, P, dim) batch of random phone vectors and its phone ids (0 = padding):
    ``lens[b][w]`` phones in word w of utterance b."""
    W = max(len(w) for w in lens)
    P = max(max(w) for w in lens)
    x = torch.randn(len(lens), W, P, dim, generator=gen)
    ids = torch.zeros(len(lens), W, P, dtype=torch.long)
    for b, words in enumerate(lens):
        for w, n in enumerate(words):
            ids[b, w, :n] = torch.randint(1, len(PHONES) + 1, (n,), generator=gen)
    return x, ids
