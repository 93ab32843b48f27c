"""Audio in: any file soundfile reads, any rate, any channel count -> 16 kHz mono float32.

In-memory arrays may be integer PCM (rescaled to [-1, 1]) and (samples, channels) as soundfile
gives them or (channels, samples) with at most :data:`MAX_CHANNELS` channels.

Silence is not an error here (scoring decides what to do with it) but :func:`is_silent`
detects it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf
import soxr

from pronscore.constants import MAX_DURATION_S, SAMPLE_RATE
from pronscore.errors import AudioError

AudioSource = str | Path | bytes | BinaryIO

SILENCE_DBFS = -50.0
"""Recordings whose loudest 25 ms frame stays below this level are treated as silent."""
DIGITAL_SILENCE_DBFS = -70.0
"""Below this, not even quiet speech: level normalisation leaves such audio alone."""

MAX_CHANNELS = 8
"""A 2-D array's shorter side (at most this) is its channels, the longer side its samples."""


@dataclass(frozen=True)
class AudioInfo:
    """What the file was before conversion, for messages and model cards."""

    sample_rate: int
    channels: int
    duration: float


def _name(source: AudioSource) -> str:
    if isinstance(source, (str, Path)):
        return str(source)
    return getattr(source, "name", None) or "<audio bytes>"


def pcm_to_float(samples: np.ndarray, *, name: str = "<array>") -> np.ndarray:
    """Integer PCM -> float32 in [-1, 1]; float samples pass through as float32.

    Signed integers are divided by 2**(bits-1) (int16 / 32768, int32 / 2**31, as soundfile
    reads PCM files); unsigned ones are centred first (uint8: (x - 128) / 128).
    """
    x = np.asarray(samples)
    if x.dtype.kind in "iu":
        half = 2.0 ** (8 * x.dtype.itemsize - 1)
        centre = half if x.dtype.kind == "u" else 0.0
        return ((x.astype(np.float64) - centre) / half).astype(np.float32)
    if x.dtype.kind != "f":
        raise AudioError(
            f"samples must be integer or float numbers, got dtype {x.dtype}",
            path=name,
            field="dtype",
        )
    return x.astype(np.float32, copy=False)


def downmix(samples: np.ndarray, *, name: str = "<array>") -> np.ndarray:
    """(N,), (N, C) or (C, N) with C <= :data:`MAX_CHANNELS` < N -> mono (N,) by averaging.

    Anything else (empty, 3-D, two short or two long sides) is an :class:`AudioError` on
    ``shape``: guessing which side is time would score noise.
    """
    x = np.asarray(samples)
    if x.size == 0:
        raise AudioError(f"audio is empty (shape {x.shape})", path=name, field="shape")
    if x.ndim == 1:
        return x
    if x.ndim == 2:
        rows, cols = x.shape
        if cols <= MAX_CHANNELS < rows:  # (samples, channels), as soundfile reads files
            return x.mean(axis=1)
        if rows <= MAX_CHANNELS < cols:  # (channels, samples), as torchaudio and librosa give
            return x.mean(axis=0)
    raise AudioError(
        f"expected samples of shape (N,), (N, C) or (C, N) with C <= {MAX_CHANNELS} < N, "
        f"got shape {x.shape}",
        path=name,
        field="shape",
    )


def to_mono_16k(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """(N,) or (N, C) samples (soundfile's layout): average channels, convert to float32 and
    resample to 16 kHz with soxr (HQ)."""
    x = pcm_to_float(samples)
    if x.ndim == 2:
        x = x.mean(axis=1)
    if sample_rate != SAMPLE_RATE and x.size:
        x = soxr.resample(x, sample_rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
    return np.ascontiguousarray(x)


def array_to_mono_16k(
    samples: np.ndarray, sample_rate: int = SAMPLE_RATE, *, name: str = "<array>"
) -> np.ndarray:
    """In-memory samples as callers hand them (any integer or float dtype, channels first or
    last) -> 16 kHz mono float32."""
    return to_mono_16k(downmix(pcm_to_float(samples, name=name), name=name), sample_rate)


def _check_file(path: Path, name: str) -> None:
    if path.is_dir():
        raise AudioError("is a directory, not an audio file", path=name)
    if not path.is_file():
        raise AudioError("file not found", path=name)
    if path.stat().st_size == 0:
        raise AudioError("file is empty (0 bytes)", path=name)


def _bytes_left(source: bytes | BinaryIO) -> int | None:
    """Bytes from the current position to the end; None for a stream that cannot seek."""
    if isinstance(source, bytes):
        return len(source)
    try:
        pos = source.tell()
        end = source.seek(0, io.SEEK_END)
        source.seek(pos)
    except (AttributeError, OSError, ValueError):
        return None
    return end - pos


def read_audio(
    source: AudioSource, *, max_duration: float | None = MAX_DURATION_S
) -> tuple[np.ndarray, AudioInfo]:
    """Read ``source`` (path, bytes or binary file) and return 16 kHz mono float32 + info.

    Raises :class:`AudioError` naming the file for missing, unreadable, empty or too long audio
    (and for a directory given as a file).
    The duration limit is checked from the header before decoding, so a huge file costs nothing.
    """
    name = _name(source)
    if isinstance(source, (str, Path)):
        _check_file(Path(source), name)
    elif _bytes_left(source) == 0:
        raise AudioError("audio is empty (0 bytes)", path=name)
    handle = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with sf.SoundFile(handle) as f:
            info = AudioInfo(f.samplerate, f.channels, f.frames / f.samplerate)
            if max_duration is not None and info.duration > max_duration:
                raise AudioError(
                    f"audio is {info.duration:.1f} s long; the limit is {max_duration:g} s",
                    path=name,
                )
            data = f.read(dtype="float32", always_2d=True)
    except AudioError:
        raise
    except Exception as exc:  # soundfile raises several types for corrupt/unknown formats
        raise AudioError(f"cannot decode audio ({exc})", path=name) from exc
    if data.shape[0] == 0:
        raise AudioError("audio is empty (0 samples)", path=name)
    return to_mono_16k(data, info.sample_rate), info


def load_audio(source: AudioSource, *, max_duration: float | None = MAX_DURATION_S) -> np.ndarray:
    """Like :func:`read_audio` but only the samples."""
    return read_audio(source, max_duration=max_duration)[0]


def validate_samples(
    samples: np.ndarray, *, name: str = "<array>", max_duration: float | None = MAX_DURATION_S
) -> np.ndarray:
    """Check an in-memory 16 kHz signal the way :func:`read_audio` checks a file.

    Integer PCM is rescaled (:func:`pcm_to_float`); channels are not guessed here (see
    :func:`array_to_mono_16k`).
    """
    x = pcm_to_float(samples, name=name)
    if x.ndim != 1:
        raise AudioError(
            f"expected mono 1-D samples, got shape {x.shape}", path=name, field="shape"
        )
    if x.size == 0:
        raise AudioError("audio is empty (0 samples)", path=name)
    if not np.all(np.isfinite(x)):
        raise AudioError("audio contains NaN or infinite samples", path=name)
    if max_duration is not None and x.size / SAMPLE_RATE > max_duration:
        raise AudioError(
            f"audio is {x.size / SAMPLE_RATE:.1f} s long; the limit is {max_duration:g} s",
            path=name,
        )
    return x


def frame_dbfs(samples: np.ndarray, frame: int = 400, hop: int = 160) -> np.ndarray:
    """Per-frame RMS level in dBFS (25 ms frames, 10 ms hop at 16 kHz)."""
    x = np.asarray(samples, dtype=np.float32)
    if x.size < frame:
        x = np.pad(x, (0, frame - x.size))
    n = 1 + (x.size - frame) // hop
    idx = np.arange(frame)[None, :] + hop * np.arange(n)[:, None]
    rms = np.sqrt(np.mean(x[idx] ** 2, axis=1) + 1e-12)
    return (20.0 * np.log10(rms)).astype(np.float32)


def normalise_level(
    samples: np.ndarray, target_dbfs: float, *, max_gain_db: float = 40.0, peak: float = 0.99
) -> np.ndarray:
    """Scale so that the speech level (95th percentile of 25 ms frame levels) is ``target_dbfs``.

    Scores must not depend on how far the learner sat from the microphone. Digital silence (no
    frame above :data:`DIGITAL_SILENCE_DBFS`) is returned unchanged so that it still reads as
    silent; quiet speech is lifted (a dev reading peaking at -32 dBFS, 20 dB quieter, is -52
    dBFS), by at most ``max_gain_db``, and never above ``peak``.
    """
    x = np.asarray(samples, dtype=np.float32)
    levels = frame_dbfs(x)
    top = float(np.abs(x).max()) if x.size else 0.0
    if levels.max() < DIGITAL_SILENCE_DBFS or top == 0.0:
        return x
    gain_db = min(target_dbfs - speech_level(levels), max_gain_db)
    gain = min(10.0 ** (gain_db / 20.0), peak / top)
    return (x * np.float32(gain)).astype(np.float32)


def speech_span(
    samples: np.ndarray, *, below_db: float = 35.0, margin_s: float = 0.2
) -> tuple[int, int]:
    """First and one-past-last sample of the part worth scoring: from ``margin_s`` before the
    first to ``margin_s`` after the last 25 ms frame within ``below_db`` of the speech level
    (95th percentile of frame levels). Leading and trailing silence is not part of a reading:
    one more second of it must not change fluency."""
    x = np.asarray(samples, dtype=np.float32)
    levels = frame_dbfs(x)
    heard = np.flatnonzero(levels >= DIGITAL_SILENCE_DBFS)
    loud = np.flatnonzero(levels >= speech_level(levels) - below_db)
    if heard.size == 0 or loud.size == 0:  # digital silence: nothing to cut it down to
        return 0, x.size
    hop, frame, margin = 160, 400, int(margin_s * SAMPLE_RATE)
    # the margin never reaches into digital silence (padding): it would change the statistics
    start = max(int(heard[0]) * hop, int(loud[0]) * hop - margin)
    end = min(int(heard[-1]) * hop + frame, int(loud[-1]) * hop + frame + margin, x.size)
    return start, end


def speech_level(levels: np.ndarray) -> float:
    """95th percentile of frame levels (dBFS), digital silence left out so that padding a
    recording with zeros does not move it."""
    heard = levels[levels >= DIGITAL_SILENCE_DBFS]
    return float(np.percentile(heard if heard.size else levels, 95))


def is_silent(samples: np.ndarray, threshold_dbfs: float = SILENCE_DBFS) -> bool:
    """True when no 25 ms frame rises above ``threshold_dbfs``."""
    return bool(np.max(frame_dbfs(samples)) < threshold_dbfs)


def to_int16_bytes(samples: np.ndarray) -> bytes:
    """16-bit little-endian PCM, the input pocketsphinx expects."""
    x = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
    return (x * 32767.0).astype("<i2").tobytes()


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write 16-bit PCM WAV (for fixtures and examples)."""
    sf.write(str(path), np.asarray(samples, dtype=np.float32), sample_rate, subtype="PCM_16")


def band_limit(samples: np.ndarray, rate: int = 8000) -> np.ndarray:
    """16 kHz audio as a ``rate`` recording would give it (down and up again): a phone line."""
    import soxr

    x = np.asarray(samples, dtype=np.float32)
    return soxr.resample(soxr.resample(x, SAMPLE_RATE, rate), rate, SAMPLE_RATE).astype(np.float32)


def add_noise(samples: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    """White noise at ``snr_db`` below the recording's mean power (seeded, clipped to [-1, 1])."""
    x = np.asarray(samples, dtype=np.float32)
    n = np.random.default_rng(seed).standard_normal(x.size).astype(np.float32)
    scale = np.sqrt(np.mean(x**2) / (np.mean(n**2) * 10 ** (snr_db / 10)))
    return np.clip(x + scale * n, -1, 1).astype(np.float32)
