"""Pocketsphinx forced alignment on real Speechocean762 audio and on the model files."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from pronscore.acoustic.pocketsphinx import (
    MODEL_PHONES,
    ModelConfig,
    PocketsphinxModel,
    default_mdef,
    phone_frame_scores,
    word_name,
)
from pronscore.align.base import Alignment
from pronscore.align.pocketsphinx import PocketsphinxAligner
from pronscore.align.viterbi import FILLER, _units, viterbi_align
from pronscore.audio import load_audio
from pronscore.errors import ModelError
from pronscore.features.extract import Extractor, ExtractorConfig, extract_utterance
from pronscore.text import base_phone

UTT = "000010011"  # "WE CALL IT BEAR", 2.58 s


@pytest.fixture(scope="module")
def extractor() -> Extractor:
    return Extractor()


@pytest.fixture(scope="module")
def bear(corpus_dir):
    scores = json.loads((corpus_dir / "resource/scores.json").read_text())[UTT]
    words = [(w["text"], tuple(w["phones"])) for w in scores["words"]]
    samples = load_audio(corpus_dir / f"WAVE/SPEAKER0001/{UTT}.flac")
    return samples, words


def test_mdef_maps_every_senone_to_one_phone():
    mdef = default_mdef()
    assert mdef.n_sen == 5126
    assert len(mdef.ciphones) == 42 and set(MODEL_PHONES) == set(mdef.ciphones)
    # the first 3 * 42 senones are the context-independent ones, in phone order
    assert mdef.sen2ci[:126].tolist() == np.repeat(np.arange(42), 3).tolist()
    counts = np.bincount(mdef.sen2ci, minlength=42)
    assert counts.min() >= 3 and counts.sum() == 5126


def test_phone_frame_scores_pool_the_best_senone():
    mdef = default_mdef()
    rng = np.random.default_rng(0)
    senscr = rng.integers(1, 300, size=(5, mdef.n_sen)).astype(np.int16)
    senscr[2, 200] = 0  # the frame's best senone
    scores = phone_frame_scores(senscr, mdef)
    assert scores.shape == (5, 42)
    best = MODEL_PHONES.index(mdef.ciphones[mdef.sen2ci[200]])
    assert scores[2, best] == 0.0 and scores[2].max() == 0.0
    aa = MODEL_PHONES.index("AA")
    expected = -senscr[0, mdef.sen2ci == mdef.ciphones.index("AA")].min()
    assert scores[0, aa] == pytest.approx(expected * 0.10240, rel=1e-3)


def test_word_names_are_lowercase_pronunciations():
    assert word_name(("K", "AO1", "L")) == "k_ao_l"


@pytest.mark.realdata
def test_alignment_of_a_known_utterance_is_sensible(bear, extractor):
    samples, words = bear
    al = extractor.aligner.align(samples, words)
    assert isinstance(al, Alignment) and al.ok, al.reason
    assert al.frame_rate == 100
    assert abs(al.n_frames - len(samples) / 160) <= 2
    assert [w.text for w in al.words] == ["WE", "CALL", "IT", "BEAR"]
    phones = al.phones
    assert [p.phone for p in phones] == [p for _, ps in words for p in ps]
    assert [p.position for p in phones] == ["B", "E", "B", "I", "E", "B", "E", "B", "I", "E"]
    for a, b in itertools.pairwise(phones):
        assert a.end <= b.start  # in order, non-overlapping
    for p in phones:
        assert 0 <= p.start < p.end <= al.n_frames
        assert p.n_frames >= 3  # one frame per HMM state at least
        assert 0.03 <= p.n_frames / 100 <= 0.5
        assert p.score < 0
    for w in al.words:
        assert w.start == w.phones[0].start and w.end == w.phones[-1].end
    # the speaker talks from about 0.55 s to 2.05 s (leading and trailing silence)
    speech = (al.words[-1].end - al.words[0].start) / 100
    assert 1.0 <= speech <= 2.0
    assert 0.3 <= al.words[0].start / 100 <= 0.8
    assert 1.8 <= al.words[-1].end / 100 <= 2.3


@pytest.mark.realdata
def test_gop_is_lower_for_a_wrong_transcript(bear, extractor):
    samples, words = bear
    wrong = [
        ("SHE", ("SH", "IY1")),
        ("FOUND", ("F", "AW1", "N", "D")),
        ("SIX", ("S", "IH1", "K", "S")),
        ("FISH", ("F", "IH1", "SH")),
    ]
    right = extract_utterance(samples, words, extractor=extractor)
    bad = extract_utterance(samples, wrong, extractor=extractor)
    assert right.alignment.ok
    r, b = right.utterance, bad.utterance
    assert bad.alignment.ok  # a forced alignment always finds some path through 4 s of speech
    for key in ("u_gop_forced_mean", "u_gop_free_mean", "u_lpp_mean"):
        assert b[key] < r[key] - 2.0, key  # measured: about 8, 8 and 5 nats lower


@pytest.mark.realdata
def test_decoders_are_reused_and_results_repeat(bear, extractor):
    samples, words = bear
    a = extractor.aligner.align(samples, words)
    b = extractor.aligner.align(samples, words)
    assert a == b
    assert {base_phone(p.phone) for p in a.phones} <= set(MODEL_PHONES)


def test_viterbi_recovers_planted_boundaries():
    mdef = default_mdef()
    prons = [("K", "AA1", "T")]
    units = [u for u in _units(prons, mdef) if u.kind != FILLER]  # no garbage planted
    assert [u.word for u in units] == [0, 0, 0, 0, 1]  # silences carry their junction index
    # frames 0-9 silence, then K 10-19, AA 20-39, T 40-49, silence 50-59
    plan = [(0, 10), (10, 20), (20, 40), (40, 50), (50, 60)]
    senscr = np.full((60, mdef.n_sen), 200, dtype=np.int16)
    for u, (a, b) in zip(units, plan, strict=True):
        thirds = np.array_split(np.arange(a, b), 3)
        for sen, frames in zip(u.senones, thirds, strict=True):
            senscr[frames, sen] = 0
    words = viterbi_align(senscr, prons, mdef)
    assert [(w.name, w.start, w.end) for w in words] == [
        ("<sil>", 0, 10),
        ("k_aa_t", 10, 50),
        ("<sil>", 50, 60),
    ]
    assert [(p.phone, p.start, p.end) for p in words[1].phones] == [
        ("K", 10, 20),
        ("AA", 20, 40),
        ("T", 40, 50),
    ]
    # optional silences may be skipped: speech from the first frame to the last
    words = viterbi_align(senscr[10:50], prons, mdef)
    assert [(w.name, w.start, w.end) for w in words] == [("k_aa_t", 0, 40)]
    # too short for the word's 9 states: it is omitted (zero length, zero-length phones)
    words = viterbi_align(senscr[:8], prons, mdef)
    assert [(w.name, w.start, w.end) for w in words] == [("k_aa_t", 0, 0), ("<sil>", 0, 8)]
    assert [(p.start, p.end) for p in words[0].phones] == [(0, 0)] * 3


@pytest.mark.realdata
def test_one_pass_viterbi_agrees_with_pocketsphinx(bear, extractor):
    samples, words = bear
    fast = PocketsphinxAligner(ModelConfig(aligner="viterbi"))
    a = extractor.aligner.align(samples, words)
    b = fast.align(samples, words)
    assert b.ok and [p.phone for p in b.phones] == [p.phone for p in a.phones]
    close = [abs(p.start - q.start) <= 3 for p, q in zip(a.phones, b.phones, strict=True)]
    assert sum(close) >= 0.8 * len(close)


@pytest.mark.realdata
def test_a_frequency_warp_changes_the_scores_not_the_words(bear):
    """VTLN (``ModelConfig.warp``) reaches pocketsphinx's front end: the same audio scores
    otherwise, the same words are read, and the config round-trips through meta.json."""
    samples, words = bear
    plain = ExtractorConfig(model=ModelConfig(aligner="viterbi"))
    warped = ExtractorConfig(model=ModelConfig(aligner="viterbi", warp=1.15))
    a = extract_utterance(samples, words, extractor=Extractor(plain))
    b = extract_utterance(samples, words, extractor=Extractor(warped))
    assert a.alignment.ok and b.alignment.ok
    assert [w.text for w in b.alignment.read_words] == ["WE", "CALL", "IT", "BEAR"]
    assert a.utterance["u_lpp_mean"] != b.utterance["u_lpp_mean"]
    assert ExtractorConfig.from_dict(json.loads(json.dumps(warped.to_dict()))) == warped
    assert ExtractorConfig.from_dict({"model": {"aligner": "viterbi"}}).model.warp is None


def test_a_warp_out_of_range_is_refused():
    with pytest.raises(ModelError, match="warp"):
        PocketsphinxModel(ModelConfig(warp=0.0))


def test_a_warped_decoder_made_after_an_unwarped_one_is_still_warped():
    """Pocketsphinx keeps its warp in C globals that skip a repeated setting; every decoder
    sets it, so the order models are made in cannot change a score."""
    from pathlib import Path

    from pronscore.acoustic.pocketsphinx import samples_to_raw

    clip = Path(__file__).resolve().parents[1] / "examples" / "we_call_it_bear.wav"
    raw = samples_to_raw(load_audio(clip))

    def senones(warp):
        return PocketsphinxModel(ModelConfig(aligner="viterbi", warp=warp)).senones_and_loop(raw)[0]

    warped, plain = senones(1.3), senones(None)
    assert not np.array_equal(warped, plain)
    assert np.array_equal(senones(1.3), warped)  # made after an unwarped decoder
    assert np.array_equal(senones(1.0), plain)  # 1.0 is no warp
