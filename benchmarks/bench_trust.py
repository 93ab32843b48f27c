"""Can a learner trust the scores? Channel robustness and text mismatch on a prepared dev split.

    .venv/bin/python benchmarks/bench_trust.py --data DATASET_DIR [--split dev] [--n 240]
        [--model default] [--parts degrade,wrong,half,substitute] [--out results.json]

Every number goes through ``Scorer.score`` (the path users run). Parts:

* ``degrade``: each utterance clean and as degraded copies -- MP3 32 kbit/s (ffmpeg), 8 kHz
  (down and up again), -20 dB gain, 1 s of digital silence at each end, white noise at 10 dB SNR.
  Per copy: PCC of the utterance total with the clean prediction, mean |delta total|, PCC with
  the human total, and the share not ``ok`` (the right text called a mismatch or not aligned).
  Goals (issue 11): PCC >= 0.95 and mean |delta| <= 0.4 (noise: 0.90 / 0.6).
* ``wrong``: the audio scored against the text of another utterance of the split. Share where
  the right text gets the higher utterance accuracy (goal >= 99%), share where the wrong text gets
  ``status != "ok"`` or total <= 3 (goal >= 95%).
* ``half``: audio cut after the middle word (from the clean scoring's times) against the full
  text: share with completeness in [3, 7] (goal >= 90%), shares ``failed`` (goal 0) and
  ``mismatch``.
* ``substitute``: one word of the text replaced by another word of the split's vocabulary: share
  where that word is flagged mispronounced (goal >= 90%); share of words with human accuracy
  >= 8 flagged in the unmodified text (goal <= 5%).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pronscore.audio import add_noise, band_limit
from pronscore.evaluation.metrics import channel_stability

SR = 16000


def pcc(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.corrcoef(a, b)[0, 1]) if a.size > 1 and a.std() and b.std() else float("nan")


def mp3(x: np.ndarray, kbps: int = 32) -> np.ndarray:
    """An MP3 round trip through ffmpeg (libmp3lame)."""
    import soundfile as sf

    if shutil.which("ffmpeg") is None:
        raise SystemExit("the mp3 copy needs ffmpeg (apt-get install ffmpeg)")
    with tempfile.TemporaryDirectory() as d:
        src, enc, dec = Path(d, "a.wav"), Path(d, "a.mp3"), Path(d, "b.wav")
        sf.write(src, x, SR)
        run = {"check": True, "capture_output": True}
        subprocess.run(["ffmpeg", "-y", "-i", src, "-b:a", f"{kbps}k", enc], **run)
        subprocess.run(["ffmpeg", "-y", "-i", enc, "-ar", str(SR), dec], **run)
        return sf.read(dec, dtype="float32")[0]


def band8k(x: np.ndarray) -> np.ndarray:
    return band_limit(x, 8000)


def noise(x: np.ndarray, snr_db: float = 10.0, seed: int = 0) -> np.ndarray:
    return add_noise(x, snr_db, seed)


DEGRADATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "mp3_32k": mp3,
    "8khz": band8k,
    "gain_-20db": lambda x: (x * 0.1).astype(np.float32),
    "pad_1s": lambda x: np.pad(x, SR).astype(np.float32),
    "noise_10db": noise,
}
GOALS = {"noise_10db": (0.90, 0.6)}


def load_rows(data: str, split: str, n: int) -> list[dict]:
    from pronscore.dataset import load_split

    ds = load_split(data, split)
    rows = []
    for i in range(min(n, len(ds))):
        r = ds[i]
        r["audio"] = np.asarray(r["audio"], dtype=np.float32)
        rows.append(r)
    return rows


def part_degrade(scorer, rows, clean) -> dict:
    human = [r["total"] for r in rows]
    ref = [a.utterance.total for a in clean]
    out = {"clean": {"pcc_human": pcc(ref, human)}}
    out["clean"]["not_ok"] = float(np.mean([a.status != "ok" for a in clean]))
    for name, fn in DEGRADATIONS.items():
        scored = [scorer.score(fn(r["audio"]), r["text"]) for r in rows]
        p_goal, d_goal = GOALS.get(name, (0.95, 0.4))
        # not_ok: the right text through this channel called a mismatch (or not aligned)
        stats = channel_stability(clean, scored, human)
        out[name] = {**stats, "goal": f"pcc >= {p_goal}, |delta| <= {d_goal}"}
    return out


def part_wrong(scorer, rows, clean) -> dict:
    higher, caught = [], []
    for i, r in enumerate(rows):
        other = rows[(i + len(rows) // 2) % len(rows)]
        a = scorer.score(r["audio"], other["text"])
        higher.append(clean[i].utterance.accuracy > a.utterance.accuracy)
        caught.append(a.status != "ok" or a.utterance.total <= 3)
    return {
        "right_text_higher": float(np.mean(higher)),
        "wrong_text_caught": float(np.mean(caught)),
    }


def part_half(scorer, rows, clean) -> dict:
    comp, status = [], []
    for r, a in zip(rows, clean, strict=True):
        if a.status != "ok" or len(a.words) < 2:
            continue
        mid = a.words[len(a.words) // 2 - 1]
        end = mid.phones[-1].end
        if end is None:
            continue
        h = scorer.score(r["audio"][: int(end * SR)], r["text"])
        status.append(h.status)
        comp.append(h.utterance.completeness)
    comp_a = np.asarray(comp, float)
    return {
        "n": len(comp),
        "completeness_3_to_7": float(np.mean((comp_a >= 3) & (comp_a <= 7))),
        "failed": float(np.mean([s == "failed" for s in status])),
        "mismatch": float(np.mean([s == "mismatch" for s in status])),
        "completeness_mean": float(comp_a.mean()),
    }


def part_substitute(scorer, rows, clean) -> dict:
    rng = np.random.default_rng(0)
    vocab = sorted({w["text"] for r in rows for w in r["words"]})
    flagged, false_flags = [], []
    for r, a in zip(rows, clean, strict=True):
        words = [w["text"] for w in r["words"]]
        for w, hw in zip(r["words"], a.words, strict=True):
            if (w.get("accuracy") or 0) >= 8:
                false_flags.append(bool(hw.mispronounced))
        k = int(rng.integers(len(words)))
        new = words[k]
        while new == words[k]:
            new = vocab[int(rng.integers(len(vocab)))]
        text = " ".join([*words[:k], new, *words[k + 1 :]])
        s = scorer.score(r["audio"], text)
        flagged.append(s.status != "ok" or bool(s.words[k].mispronounced))
    return {
        "substituted_flagged": float(np.mean(flagged)),
        "good_words_flagged": float(np.mean(false_flags)),
    }


PARTS = {
    "degrade": part_degrade,
    "wrong": part_wrong,
    "half": part_half,
    "substitute": part_substitute,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="DATASET_DIR from `pronscore prepare`")
    ap.add_argument("--split", default="dev")
    ap.add_argument("--n", type=int, default=240, help="utterances (first N of the split)")
    ap.add_argument("--model", default="default")
    ap.add_argument("--parts", default=",".join(PARTS))
    ap.add_argument("--out", help="also write the results JSON here")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    from pronscore.scorer import Scorer

    scorer = Scorer.from_pretrained(args.model)
    rows = load_rows(args.data, args.split, args.n)
    t0 = time.perf_counter()
    clean = [scorer.score(r["audio"], r["text"]) for r in rows]
    result = {"model": args.model, "split": args.split, "n": len(rows)}
    for part in args.parts.split(","):
        result[part] = PARTS[part](scorer, rows, clean)
        print(part, json.dumps(result[part], indent=1), file=sys.stderr)
    result["seconds"] = time.perf_counter() - t0
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
