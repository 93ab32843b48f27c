"""A tiny Speechocean762-shaped corpus written by tests: valid, or broken on purpose."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

WORDS = {
    "WE": ("W", "IY0"),
    "CALL": ("K", "AO1", "L"),
    "IT": ("IH0", "T"),
    "BEAR": ("B", "EH1", "R"),
}
SENTENCES = ["WE CALL IT BEAR", "CALL IT", "WE CALL IT", "IT BEAR"]


def _tone(seconds: float, sr: int, freq: float) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.2 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def make_corpus(
    root: Path,
    *,
    splits: dict[str, int] | None = None,
    speakers_per_split: int = 4,
    suffix: str = ".flac",
    sample_rate: int = 16000,
) -> Path:
    """Write ``root`` with ``splits`` ({name: utterances per speaker}); half the speakers are
    children (age 8), half adults (age 30). Returns ``root``."""
    splits = splits or {"train": 3}
    root.mkdir(parents=True, exist_ok=True)
    (root / "resource").mkdir(exist_ok=True)
    scores: dict[str, dict] = {}
    text_phone: list[str] = []
    for s_idx, (split, per_spk) in enumerate(splits.items()):
        lists: dict[str, list[str]] = {
            k: [] for k in ("wav.scp", "text", "utt2spk", "spk2age", "spk2gender")
        }
        for k in range(speakers_per_split):
            spk = f"{s_idx * 100 + k + 1:04d}"
            lists["spk2age"].append(f"{spk}\t{8 if k % 2 == 0 else 30}")
            lists["spk2gender"].append(f"{spk}\t{'f' if k % 3 == 0 else 'm'}")
            for j in range(per_spk):
                utt = f"{spk}{j:05d}"
                sentence = SENTENCES[(k + j) % len(SENTENCES)]
                rel = f"WAVE/SPEAKER{spk}/{utt}{suffix}"
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                sf.write(root / rel, _tone(0.5 + 0.1 * j, sample_rate, 200 + 20 * k), sample_rate)
                lists["wav.scp"].append(f"{utt}\t{rel}")
                lists["text"].append(f"{utt}\t{sentence}")
                lists["utt2spk"].append(f"{utt} {spk}")
                score = 3 + (k + j) % 7
                words = []
                for w_i, w in enumerate(sentence.split()):
                    phones = WORDS[w]
                    marks = (
                        ["_S"] if len(phones) == 1 else ["_B"] + ["_I"] * (len(phones) - 2) + ["_E"]
                    )
                    text_phone.append(
                        f"{utt}.{w_i}\t"
                        + " ".join(p + m for p, m in zip(phones, marks, strict=True))
                    )
                    words.append({
                        "accuracy": score, "stress": 10, "total": score, "text": w,
                        "phones": list(phones), "phones-accuracy": [2.0] * len(phones),
                    })  # fmt: skip
                scores[utt] = {
                    "accuracy": score, "completeness": 10.0, "fluency": score, "prosodic": score,
                    "total": score, "text": sentence, "words": words,
                }  # fmt: skip
        (root / split).mkdir(exist_ok=True)
        for name, lines in lists.items():
            (root / split / name).write_text("\n".join(lines) + "\n")
    (root / "resource/scores.json").write_text(json.dumps(scores, indent=1))
    (root / "resource/text-phone").write_text("\n".join(text_phone) + "\n")
    lex = [f"{w}\t{' '.join(p)}" for w, p in WORDS.items()]
    (root / "resource/lexicon.txt").write_text("\n".join(lex) + "\n")
    return root
