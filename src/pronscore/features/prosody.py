"""Prosody and fluency features per word and per utterance.

Tracks on the alignment's 100 frames/s grid: F0 from Praat's autocorrelation pitch tracker
(praat-parselmouth; semitones re 100 Hz, NaN when unvoiced) and frame energy (dBFS, 25 ms
frames). Pauses are gaps between consecutive aligned words of at least ``min_pause`` seconds.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from pronscore.align.base import Alignment
from pronscore.audio import frame_dbfs
from pronscore.constants import SAMPLE_RATE

WORD_FEATURES: dict[str, str] = {
    "w_duration": "word duration (s)",
    "w_n_phones": "canonical phones in the word",
    "w_dur_per_phone": "mean phone duration (s)",
    "w_pause_before": "silence before the word (s, 0 for the first word)",
    "w_pause_after": "silence after the word (s, 0 for the last word)",
    "w_f0_mean": "mean F0 over voiced frames (semitones re 100 Hz)",
    "w_f0_std": "F0 standard deviation (semitones)",
    "w_f0_range": "F0 range, 95th - 5th percentile (semitones)",
    "w_f0_rel": "word mean F0 minus utterance mean F0 (semitones)",
    "w_voiced_ratio": "fraction of voiced frames",
    "w_energy_mean": "mean frame energy (dBFS)",
    "w_energy_max": "max frame energy (dBFS)",
    "w_energy_rel": "word mean energy minus utterance speech mean energy (dB)",
}

UTTERANCE_PROSODY: dict[str, str] = {
    "u_duration": "recording duration (s)",
    "u_speech_duration": "first word start to last word end (s)",
    "u_phonation_time": "summed word durations (s)",
    "u_speech_rate": "canonical phones per second of recording",
    "u_articulation_rate": "canonical phones per second of phonation time",
    "u_pause_count": "pauses between words (>= min_pause)",
    "u_pause_mean": "mean pause length (s, 0 without pauses)",
    "u_pause_max": "longest pause (s)",
    "u_pause_total": "summed pause length (s)",
    "u_silence_ratio": "1 - phonation time / recording duration",
    "u_lead_silence": "silence before the first word (s)",
    "u_trail_silence": "silence after the last word (s)",
    "u_f0_mean": "mean F0 over voiced frames (semitones re 100 Hz)",
    "u_f0_std": "F0 standard deviation (semitones)",
    "u_f0_range": "F0 range, 95th - 5th percentile (semitones)",
    "u_voiced_ratio": "fraction of voiced frames in the recording",
    "u_energy_mean": "mean frame energy (dBFS)",
    "u_energy_std": "frame energy standard deviation (dB)",
    "u_energy_max": "loudest frame (dBFS)",
    "u_energy_range": "energy range, 95th - 5th percentile (dB)",
}


@dataclass(frozen=True)
class Tracks:
    f0: np.ndarray  # (T,) semitones re 100 Hz, NaN where unvoiced
    energy: np.ndarray  # (T,) dBFS


def prosody_tracks(
    samples: np.ndarray,
    n_frames: int,
    *,
    frame_rate: float = 100.0,
    f0_floor: float = 75.0,
    f0_ceiling: float = 600.0,
) -> Tracks:
    """F0 and energy sampled at the centres of ``n_frames`` analysis frames."""
    import parselmouth

    x = np.asarray(samples, dtype=np.float64)
    centres = (np.arange(n_frames) + 0.5) / frame_rate + 0.0075  # 25 ms window, 10 ms shift
    f0 = np.full(n_frames, np.nan)
    if x.size / SAMPLE_RATE > 3.0 / f0_floor:  # Praat needs 3 periods of the floor
        pitch = parselmouth.Sound(x, SAMPLE_RATE).to_pitch(
            time_step=1.0 / frame_rate, pitch_floor=f0_floor, pitch_ceiling=f0_ceiling
        )
        hz = pitch.selected_array["frequency"]
        if hz.size:
            idx = np.clip(np.round((centres - pitch.xs()[0]) * frame_rate), 0, hz.size - 1)
            picked = hz[idx.astype(int)]
            voiced = picked > 0
            f0[voiced] = 12.0 * np.log2(picked[voiced] / 100.0)
    energy = frame_dbfs(x.astype(np.float32)).astype(np.float64)
    if energy.size < n_frames:
        energy = np.pad(energy, (0, n_frames - energy.size), mode="edge")
    return Tracks(f0, energy[:n_frames])


def _f0_stats(f0: np.ndarray) -> tuple[float, float, float, float]:
    v = f0[np.isfinite(f0)]
    ratio = float(v.size / f0.size) if f0.size else math.nan
    if v.size < 2:
        return math.nan, math.nan, math.nan, ratio
    lo, hi = np.percentile(v, [5, 95])
    return float(v.mean()), float(v.std()), float(hi - lo), ratio


def utterance_prosody(
    alignment: Alignment, tracks: Tracks, duration: float, *, min_pause: float = 0.1
) -> dict[str, float]:
    """Utterance-level rate, pause, F0 and energy features (NaN where alignment is missing)."""
    out = dict.fromkeys(UTTERANCE_PROSODY, math.nan)
    out["u_duration"] = duration
    f0m, f0s, f0r, vr = _f0_stats(tracks.f0)
    e = tracks.energy
    lo, hi = np.percentile(e, [5, 95]) if e.size else (math.nan, math.nan)
    out.update(
        u_f0_mean=f0m,
        u_f0_std=f0s,
        u_f0_range=f0r,
        u_voiced_ratio=vr,
        u_energy_mean=float(e.mean()) if e.size else math.nan,
        u_energy_std=float(e.std()) if e.size else math.nan,
        u_energy_max=float(e.max()) if e.size else math.nan,
        u_energy_range=float(hi - lo),
    )
    if not alignment.ok or not alignment.words:
        return out
    sec = 1.0 / alignment.frame_rate
    words = alignment.words
    gaps = np.array([(b.start - a.end) * sec for a, b in itertools.pairwise(words)])
    pauses = gaps[gaps >= min_pause] if gaps.size else gaps
    phonation = sum(w.end - w.start for w in words) * sec
    n_phones = sum(len(w.phones) for w in words)
    out.update(
        u_speech_duration=(words[-1].end - words[0].start) * sec,
        u_phonation_time=phonation,
        u_speech_rate=n_phones / duration if duration > 0 else math.nan,
        u_articulation_rate=n_phones / phonation if phonation > 0 else math.nan,
        u_pause_count=float(pauses.size),
        u_pause_mean=float(pauses.mean()) if pauses.size else 0.0,
        u_pause_max=float(pauses.max()) if pauses.size else 0.0,
        u_pause_total=float(pauses.sum()),
        u_silence_ratio=max(0.0, 1.0 - phonation / duration) if duration > 0 else math.nan,
        u_lead_silence=words[0].start * sec,
        u_trail_silence=max(0.0, duration - words[-1].end * sec),
    )
    return out


def word_prosody(alignment: Alignment, tracks: Tracks) -> list[dict[str, Any]]:
    """One dict per aligned word (ok alignments only)."""
    sec = 1.0 / alignment.frame_rate
    words = alignment.words
    utt_f0 = _f0_stats(tracks.f0)[0]
    speech = np.concatenate([tracks.energy[w.start : w.end] for w in words]) if words else []
    utt_e = float(np.mean(speech)) if len(speech) else math.nan
    rows = []
    for i, w in enumerate(words):
        f0m, f0s, f0r, vr = _f0_stats(tracks.f0[w.start : w.end])
        e = tracks.energy[w.start : max(w.end, w.start + 1)]
        dur = (w.end - w.start) * sec
        rows.append(
            {
                "w_duration": dur,
                "w_n_phones": float(len(w.phones)),
                "w_dur_per_phone": dur / max(len(w.phones), 1),
                "w_pause_before": (w.start - words[i - 1].end) * sec if i else 0.0,
                "w_pause_after": (words[i + 1].start - w.end) * sec if i + 1 < len(words) else 0.0,
                "w_f0_mean": f0m,
                "w_f0_std": f0s,
                "w_f0_range": f0r,
                "w_f0_rel": f0m - utt_f0,
                "w_voiced_ratio": vr,
                "w_energy_mean": float(e.mean()) if e.size else math.nan,
                "w_energy_max": float(e.max()) if e.size else math.nan,
                "w_energy_rel": float(e.mean()) - utt_e if e.size else math.nan,
            }
        )
    return rows
