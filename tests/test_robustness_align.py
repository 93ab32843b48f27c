"""Bad inputs give a clear error or a flagged result: never a crash or a hang."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf
import soxr

from pronscore.acoustic.pocketsphinx import ModelConfig
from pronscore.align.pocketsphinx import PocketsphinxAligner
from pronscore.audio import load_audio, read_audio
from pronscore.constants import SAMPLE_RATE
from pronscore.errors import AudioError, TextError
from pronscore.features.extract import Extractor, ExtractorConfig, extract_utterance
from pronscore.text import Lexicon

HELLO = [("HELLO", ("HH", "AH0", "L", "OW1")), ("WORLD", ("W", "ER1", "L", "D"))]


@pytest.fixture(scope="module", params=["pocketsphinx", "viterbi"])
def extractor(request) -> Extractor:
    return Extractor(ExtractorConfig(model=ModelConfig(aligner=request.param)))


@pytest.fixture(scope="module")
def aligner(extractor) -> PocketsphinxAligner:
    return extractor.aligner


def _tone(seconds: float, sr: int = SAMPLE_RATE, channels: int = 1) -> np.ndarray:
    """A speech-like buzz: harmonics of a wobbling F0 under a syllable envelope, plus noise."""
    rng = np.random.default_rng(1)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 140 + 20 * np.sin(2 * np.pi * 1.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 8))
    x = 0.2 * x * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t) ** 2) + 0.01 * rng.normal(size=t.size)
    x = x.astype(np.float32)
    return np.stack([x, 0.5 * x], axis=1) if channels == 2 else x


def _assert_wellformed(feats, n_words: int, n_phones: int) -> None:
    assert len(feats.words) == n_words and len(feats.phones) == n_phones
    if feats.alignment.ok:  # omitted words (partial readings) have NaN features, no times
        read = {w["word_index"]: bool(w["w_read"]) for w in feats.words}
        for p in feats.phones:
            assert math.isfinite(p["p_gop_forced"]) == read[p["word_index"]]
            assert (p["start"] is not None) == read[p["word_index"]]
        assert feats.frames["phone_scores"].shape[1] == 39
    else:
        assert feats.utterance["status"] == feats.alignment.status
        assert feats.alignment.status in ("failed", "mismatch") and feats.alignment.reason
        assert all(p["start"] is None and math.isnan(p["p_lpp"]) for p in feats.phones)


def test_empty_text_is_a_clear_error_or_a_failed_result(aligner):
    with pytest.raises(TextError, match="empty"):
        Lexicon().pronounce("   ")
    al = aligner.align(_tone(1.0), [])
    assert not al.ok and "empty" in al.reason


def test_word_in_no_lexicon_uses_the_fallback_and_is_flagged(extractor):
    with pytest.raises(TextError, match="no lexicon"):
        Lexicon(fallback=False).lookup("ZORBLAXIAN")
    prons = Lexicon().pronounce("hello zorblaxian")
    assert [p.source for p in prons] == ["cmudict", "fallback"]
    feats = extract_utterance(
        _tone(2.0),
        [(p.word, p.phones) for p in prons],
        extractor=extractor,
        sources=[p.source for p in prons],
    )
    assert [w["w_fallback"] for w in feats.words] == [0.0, 1.0]
    assert feats.utterance["u_n_fallback_words"] == 1.0
    _assert_wellformed(feats, 2, sum(len(p.phones) for p in prons))


def test_silence_is_a_failed_result(extractor):
    feats = extract_utterance(np.zeros(3 * SAMPLE_RATE, np.float32), HELLO, extractor=extractor)
    assert feats.alignment.status == "failed" and "silent" in feats.alignment.reason
    _assert_wellformed(feats, 2, 8)
    assert feats.utterance["duration"] == 3.0
    assert feats.frames["phone_scores"].shape == (0, 39)


def _assert_flagged(feats, aligner: str) -> None:
    """Text that is not in the audio: pocketsphinx finds no path; the viterbi aligner skips
    every word (garbage fits a buzz better than any word) and says so."""
    if aligner == "pocketsphinx":
        assert feats.alignment.status == "failed" and "does not fit" in feats.alignment.reason
    else:
        assert feats.alignment.status == "mismatch" and "none" in feats.alignment.reason


def test_noise_only_gives_a_result_not_a_crash(extractor):
    noise = (0.1 * np.random.default_rng(0).normal(size=3 * SAMPLE_RATE)).astype(np.float32)
    feats = extract_utterance(noise, HELLO, extractor=extractor)
    _assert_wellformed(feats, 2, 8)
    _assert_flagged(feats, extractor.config.model.aligner)


@pytest.mark.parametrize("rate", [8000, 44100])
def test_other_sample_rates_are_resampled(tmp_path, rate):
    # Alignment across rates is checked on real speech below: a buzz has no right alignment.
    x16 = _tone(2.0)
    path = tmp_path / f"x{rate}.wav"
    sf.write(path, soxr.resample(x16, SAMPLE_RATE, rate), rate)
    samples, info = read_audio(path)
    assert info.sample_rate == rate and samples.size == pytest.approx(2 * SAMPLE_RATE, abs=2)
    assert np.corrcoef(samples[: x16.size], x16[: samples.size])[0, 1] > 0.998  # 8 kHz: 0.9986


@pytest.mark.realdata
@pytest.mark.parametrize("rate", [8000, 44100])
def test_real_speech_at_other_rates_aligns_like_16k(corpus_dir, tmp_path, aligner, rate):
    scores = json.loads((corpus_dir / "resource/scores.json").read_text())["000010011"]
    words = [(w["text"], tuple(w["phones"])) for w in scores["words"]]
    x16 = load_audio(corpus_dir / "WAVE/SPEAKER0001/000010011.flac")
    path = tmp_path / f"bear{rate}.flac"
    sf.write(path, soxr.resample(x16, SAMPLE_RATE, rate), rate)
    ref = aligner.align(x16, words)
    got = aligner.align(load_audio(path), words)
    assert got.ok
    for a, b in zip(ref.words, got.words, strict=True):
        assert abs(a.start - b.start) <= 8 and abs(a.end - b.end) <= 8  # within 80 ms


@pytest.mark.realdata
def test_real_speech_in_a_stereo_file_aligns_like_mono(corpus_dir, tmp_path, aligner):
    scores = json.loads((corpus_dir / "resource/scores.json").read_text())["000010011"]
    words = [(w["text"], tuple(w["phones"])) for w in scores["words"]]
    x16 = load_audio(corpus_dir / "WAVE/SPEAKER0001/000010011.flac")
    path = tmp_path / "bear-stereo.wav"
    sf.write(path, np.stack([x16, 0.5 * x16], axis=1), SAMPLE_RATE)
    ref = aligner.align(x16, words)
    got = aligner.align(load_audio(path), words)
    assert got.ok
    for a, b in zip(ref.words, got.words, strict=True):
        assert abs(a.start - b.start) <= 8 and abs(a.end - b.end) <= 8


def test_stereo_file_is_downmixed_and_stereo_array_is_refused(tmp_path, aligner):
    path = tmp_path / "stereo.wav"
    sf.write(path, _tone(2.0, channels=2), SAMPLE_RATE)
    samples, info = read_audio(path)
    assert info.channels == 2 and samples.ndim == 1
    np.testing.assert_allclose(samples, 0.75 * _tone(2.0), atol=1e-4)  # channel mean, 16-bit
    al = aligner.align(_tone(2.0, channels=2), HELLO)
    assert not al.ok and "mono" in al.reason


def test_three_minute_input_is_refused_quickly(tmp_path, aligner, extractor):
    long = np.tile(_tone(2.0), 90)  # 180 s
    path = tmp_path / "long.wav"
    sf.write(path, long, SAMPLE_RATE)
    with pytest.raises(AudioError, match="limit is 60"):
        read_audio(path)
    al = aligner.align(long, HELLO)
    assert not al.ok and "limit" in al.reason and al.n_frames == 18000
    feats = extract_utterance(long, HELLO, extractor=extractor)
    _assert_wellformed(feats, 2, 8)
    assert feats.utterance["duration"] == pytest.approx(180.0)


def test_mismatched_or_impossible_text_is_flagged(aligner, extractor):
    long_text = [("WORD", ("W", "ER1", "D"))] * 40  # 120 phones in 1 s of audio
    al = aligner.align(_tone(1.0), long_text)
    assert not al.ok and "too short" in al.reason
    feats = extract_utterance(_tone(3.0), HELLO * 3, extractor=extractor)
    _assert_wellformed(feats, 6, 24)
    _assert_flagged(feats, extractor.config.model.aligner)


def test_nan_and_empty_audio_are_failed_results(aligner):
    bad = _tone(1.0)
    bad[100] = np.nan
    assert "NaN" in aligner.align(bad, HELLO).reason
    assert "empty" in aligner.align(np.zeros(0, np.float32), HELLO).reason
