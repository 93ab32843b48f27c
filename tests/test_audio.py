"""Audio loading: rates, channels, sample formats and every bad input."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pronscore.audio import (
    array_to_mono_16k,
    downmix,
    is_silent,
    load_audio,
    pcm_to_float,
    read_audio,
    to_int16_bytes,
    validate_samples,
)
from pronscore.constants import SAMPLE_RATE
from pronscore.errors import AudioError


def _sine(sr: int, seconds: float = 1.0, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("sr", [8000, 16000, 22050, 44100, 48000])
def test_any_rate_becomes_16k(tmp_path: Path, sr: int) -> None:
    path = tmp_path / f"a{sr}.wav"
    sf.write(path, _sine(sr), sr)
    x, info = read_audio(path)
    assert info.sample_rate == sr and x.dtype == np.float32
    assert abs(x.size - 16000) <= 2
    # the tone survives resampling: its spectrum peaks at 440 Hz
    assert abs(np.argmax(np.abs(np.fft.rfft(x))) * 16000 / x.size - 440) < 3


def test_stereo_to_mono_and_int_to_float(tmp_path: Path) -> None:
    left = _sine(16000)
    stereo = np.stack([left, np.zeros_like(left)], axis=1)
    sf.write(tmp_path / "s.wav", (stereo * 32767).astype(np.int16), 16000, subtype="PCM_16")
    x, info = read_audio(tmp_path / "s.wav")
    assert info.channels == 2 and x.ndim == 1
    np.testing.assert_allclose(x, left / 2, atol=1e-3)


def test_flac(tmp_path: Path) -> None:
    sf.write(tmp_path / "a.flac", _sine(16000), 16000)
    assert load_audio(tmp_path / "a.flac").size == 16000


def test_bytes_input() -> None:

    buf = io.BytesIO()
    sf.write(buf, _sine(44100), 44100, format="WAV")
    assert abs(load_audio(buf.getvalue()).size - 16000) <= 2


def test_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="nope.wav: file not found"):
        load_audio(tmp_path / "nope.wav")
    bad = tmp_path / "corrupt.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEgarbage")
    with pytest.raises(AudioError, match="corrupt.wav: cannot decode audio"):
        load_audio(bad)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError, match="empty.wav: audio is empty"):
        load_audio(empty)
    zero = tmp_path / "zero.wav"
    zero.write_bytes(b"")
    with pytest.raises(AudioError, match=r"zero.wav: file is empty \(0 bytes\)"):
        load_audio(zero)
    with pytest.raises(AudioError, match="audio is empty"):
        load_audio(b"")
    stream = io.BytesIO(b"")
    stream.name = "upload.wav"
    with pytest.raises(AudioError, match=r"upload.wav: audio is empty \(0 bytes\)"):
        load_audio(stream)
    folder = tmp_path / "takes.wav"
    folder.mkdir()
    with pytest.raises(AudioError, match="takes.wav: is a directory, not an audio file"):
        load_audio(folder)


def test_too_long_checked_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "long.wav"
    sf.write(path, np.zeros(16000 * 5, np.float32), 16000)
    with pytest.raises(AudioError, match=r"5.0 s long; the limit is 4 s"):
        load_audio(path, max_duration=4)
    assert load_audio(path, max_duration=None).size == 16000 * 5


def test_silence_detected_not_rejected(tmp_path: Path) -> None:
    sf.write(tmp_path / "quiet.wav", np.zeros(16000, np.float32), 16000)
    x = load_audio(tmp_path / "quiet.wav")
    assert is_silent(x)
    assert not is_silent(_sine(16000))
    assert not is_silent(np.concatenate([np.zeros(8000, np.float32), _sine(16000, 0.1)]))


def test_validate_samples_and_int16() -> None:
    with pytest.raises(AudioError, match="mono"):
        validate_samples(np.zeros((2, 10)))
    with pytest.raises(AudioError, match="NaN"):
        validate_samples(np.array([0.0, np.nan]))
    raw = to_int16_bytes(np.array([0.0, 1.0, -1.0, 2.0], np.float32))
    assert np.frombuffer(raw, "<i2").tolist() == [0, 32767, -32767, 32767]


def test_integer_pcm_is_rescaled() -> None:
    i16 = np.array([-32768, 0, 16384, 32767], np.int16)
    assert pcm_to_float(i16).tolist() == [-1.0, 0.0, 0.5, 32767 / 32768]
    assert pcm_to_float(np.array([-(2**31), 2**30], np.int32)).tolist() == [-1.0, 0.5]
    assert pcm_to_float(np.array([0, 128, 192], np.uint8)).tolist() == [-1.0, 0.0, 0.5]
    assert pcm_to_float(i16).dtype == np.float32
    assert validate_samples(i16).tolist() == [-1.0, 0.0, 0.5, 32767 / 32768]
    with pytest.raises(AudioError, match=r"\[dtype\]: .*got dtype bool"):
        pcm_to_float(np.zeros(4, bool))


def test_int16_file_samples_equal_soundfile_float(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    sf.write(path, _sine(16000), 16000, subtype="PCM_16")
    as_int, _ = sf.read(path, dtype="int16")
    as_float, _ = sf.read(path, dtype="float32")
    np.testing.assert_array_equal(array_to_mono_16k(as_int), as_float)


def test_channels_first_or_last_are_downmixed() -> None:
    x = _sine(16000)
    half = 0.5 * x
    for arr in (np.stack([x, half], axis=1), np.stack([x, half])):  # (N, 2) and (2, N)
        np.testing.assert_allclose(downmix(arr), 0.75 * x, atol=1e-7)
    assert downmix(x[None, :]).shape == (16000,) and downmix(x[:, None]).shape == (16000,)
    six = np.tile(x, (6, 1))
    np.testing.assert_allclose(array_to_mono_16k(six, 16000), x, atol=1e-7)


@pytest.mark.parametrize(
    ("shape", "reason"),
    [
        ((2, 3, 100), "got shape (2, 3, 100)"),
        ((6, 8), "got shape (6, 8)"),  # both sides could be channels
        ((100, 50), "got shape (100, 50)"),  # neither side is a channel count
        ((0,), "audio is empty (shape (0,))"),
        ((0, 2), "audio is empty (shape (0, 2))"),
        ((2, 0), "audio is empty (shape (2, 0))"),
    ],
)
def test_unusable_array_shapes_name_the_shape(shape: tuple[int, ...], reason: str) -> None:
    with pytest.raises(AudioError) as err:
        array_to_mono_16k(np.zeros(shape, np.float32))
    assert err.value.field == "shape" and reason in str(err.value)


def _tone_burst(seconds: float = 1.0, level: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (level * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def test_normalise_level_removes_gain_and_leaves_digital_silence_alone() -> None:
    from pronscore.audio import frame_dbfs, normalise_level, speech_level

    x = _tone_burst()
    a, b = normalise_level(x, -20.0), normalise_level(0.01 * x, -20.0)
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert speech_level(frame_dbfs(a)) == pytest.approx(-20.0, abs=0.01)
    zeros = np.zeros(16000, np.float32)
    assert not normalise_level(zeros, -20.0).any()
    loud = normalise_level(np.r_[x, 0.999], -3.0)  # never lifted above the peak limit
    assert np.abs(loud).max() <= 0.99 + 1e-6


def test_speech_span_cuts_padding_but_not_into_speech() -> None:
    from pronscore.audio import speech_span

    x = _tone_burst()
    padded = np.r_[np.zeros(SAMPLE_RATE, np.float32), x, np.zeros(SAMPLE_RATE, np.float32)]
    start, end = speech_span(padded)
    frame = 400  # edges are found to within one 25 ms analysis frame
    assert SAMPLE_RATE - frame < start <= SAMPLE_RATE  # the margin stops at digital silence
    assert 2 * SAMPLE_RATE <= end < 2 * SAMPLE_RATE + frame
    assert speech_span(np.zeros(16000, np.float32)) == (0, 16000)  # silence is kept whole
    quiet = np.r_[np.full(8000, 1e-3, np.float32), x, np.full(8000, 1e-3, np.float32)]
    start, end = speech_span(quiet, margin_s=0.2)
    assert 8000 - 3200 - frame < start <= 8000 - 3200  # 0.2 s of the room kept
    assert 8000 + x.size + 3200 - frame <= end <= 8000 + x.size + 3200 + frame
