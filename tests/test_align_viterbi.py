"""Partial readings with the numpy Viterbi aligner: skipped words, extra speech, mismatch.

Clips are synthesised with espeak-ng (en-us voice) into a temporary folder; the full-reading
check also runs on a real Speechocean762 utterance.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pronscore.acoustic.pocketsphinx import ModelConfig, default_mdef
from pronscore.align.pocketsphinx import PocketsphinxAligner
from pronscore.align.viterbi import FILLER, GARBAGE, PHONE, _units, coverage_problem, viterbi_align
from pronscore.audio import load_audio
from pronscore.features.extract import Extractor, ExtractorConfig, extract_utterance
from pronscore.scorer import Scorer, packaged_lexicon
from pronscore.text import Lexicon

VITERBI = ModelConfig(aligner="viterbi")
NO_ARCS = replace(
    VITERBI, skip_penalty=1e9, garbage_penalty=1e9, insert_penalty=0.0, stop_penalty=None
)
"""Word skips and garbage priced out: the aligner as it was before partial readings."""


@pytest.fixture(scope="module")
def say(tmp_path_factory):
    """``say(text)`` -> 16 kHz samples of espeak-ng (en-us, 140 words/min) reading ``text``."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    folder = tmp_path_factory.mktemp("espeak")

    def run(text: str) -> np.ndarray:
        out = folder / (text.replace(" ", "_") + ".wav")
        subprocess.run([exe, "-v", "en-us", "-s", "140", "-w", str(out), text], check=True)
        return load_audio(out)

    return run


@pytest.fixture(scope="module")
def lexicon() -> Lexicon:
    return Lexicon.from_file(packaged_lexicon())


@pytest.fixture(scope="module")
def aligner() -> PocketsphinxAligner:
    return PocketsphinxAligner(VITERBI)


def _words(lexicon: Lexicon, text: str) -> list[tuple[str, tuple[str, ...]]]:
    return [(p.word, tuple(p.phones)) for p in lexicon.pronounce(text)]


def test_planted_scores_skip_a_missing_word_and_absorb_an_extra_one():
    mdef = default_mdef()
    prons = [("K", "AA1", "T"), ("D", "AO1", "G")]
    units = [u for u in _units(prons, mdef) if u.kind == PHONE]
    senscr = np.full((90, mdef.n_sen), 200, dtype=np.int16)

    def plant(senones, a: int, b: int) -> None:
        for sen, frames in zip(senones, np.array_split(np.arange(a, b), 3), strict=True):
            senscr[frames, sen] = 0

    for u, (a, b) in zip(units[:3], [(0, 10), (10, 20), (20, 30)], strict=True):
        plant(u.senones, a, b)  # "cat" in frames 0-29
    s = mdef.ciphones.index("S")
    plant(mdef.phone_senones[s], 30, 60)  # an extra "s" sound: no word of the text has one
    plant(mdef.phone_senones[mdef.ciphones.index("SIL")], 60, 90)  # then silence, no "dog"
    words = viterbi_align(senscr, prons, mdef)
    assert [(w.name, w.start, w.end) for w in words] == [
        ("k_aa_t", 0, 30),
        (GARBAGE, 30, 60),
        ("<sil>", 60, 90),
        ("d_ao_g", 90, 90),  # nothing of "dog" in the audio: omitted, zero length
    ]
    assert [(p.start, p.end) for p in words[3].phones] == [(90, 90)] * 3


def test_units_have_a_silence_and_a_garbage_unit_in_every_junction():
    kinds = [(u.kind, u.word) for u in _units([("AY1",), ("S", "IY1")], default_mdef())]
    assert [k for k, _ in kinds].count(FILLER) == 3  # before, between and after the words
    assert [w for k, w in kinds if k == PHONE] == [0, 1, 1]


def test_coverage_problem_needs_little_read_and_much_other_speech():
    assert coverage_problem(4, 0, 0, 0) == "none of the text's words were heard"
    assert coverage_problem(6, 1, 30, 200) == "only 1 of 6 words were heard, among other speech"
    assert coverage_problem(6, 1, 30, 20) is None  # one word and silence: a (short) reading
    assert coverage_problem(6, 2, 30, 200) is None  # a third of the words read


def test_unread_end_of_the_text_is_omitted(say, lexicon, aligner):
    al = aligner.align(say("we call it bear"), _words(lexicon, "we call it bear and sleep"))
    assert al.status == "ok"
    assert [w.status for w in al.words] == ["read"] * 4 + ["omitted"] * 2
    for w in al.words[4:]:
        assert w.start == w.end >= al.words[3].end
        assert all(p.start == p.end == w.start for p in w.phones)


def test_extra_words_are_inserted_speech_not_stretched_neighbours(say, lexicon, aligner):
    al = aligner.align(say("we call it a big bear"), _words(lexicon, "we call it bear"))
    assert al.status == "ok" and [w.status for w in al.words] == ["read"] * 4
    it, bear = al.words[2], al.words[3]
    spans = [(a, b) for a, b in al.inserted if it.end <= a and b <= bear.start]
    assert spans and max(b - a for a, b in spans) >= 15  # 150 ms of "a big" at least


def test_speech_with_none_of_the_words_is_a_mismatch(say, lexicon, aligner):
    al = aligner.align(say("please open the window"), _words(lexicon, "it is raining today"))
    assert al.status == "mismatch" and al.words == ()
    assert al.reason == "only 1 of 4 words were heard, among other speech"


def test_full_reading_keeps_its_boundaries(say, lexicon, aligner):
    words = _words(lexicon, "we call it bear")
    x = say("we call it bear")
    al, before = aligner.align(x, words), PocketsphinxAligner(NO_ARCS).align(x, words)
    assert al.ok and all(w.read for w in al.words) and al.inserted == ()
    assert [(p.start, p.end) for p in al.phones] == [(p.start, p.end) for p in before.phones]


@pytest.mark.realdata
def test_full_real_reading_keeps_its_boundaries(corpus_dir, aligner):
    scores = json.loads((corpus_dir / "resource/scores.json").read_text())["000010011"]
    words = [(w["text"], tuple(w["phones"])) for w in scores["words"]]
    x = load_audio(corpus_dir / "WAVE/SPEAKER0001/000010011.flac")
    al, before = aligner.align(x, words), PocketsphinxAligner(NO_ARCS).align(x, words)
    assert al.ok and all(w.read for w in al.words) and al.inserted == ()
    assert [(p.start, p.end) for p in al.phones] == [(p.start, p.end) for p in before.phones]


def test_omitted_words_get_nan_features_and_no_times(say, lexicon):
    extractor = Extractor(ExtractorConfig(model=VITERBI))
    words = _words(lexicon, "we call it bear and sleep")
    feats = extract_utterance(say("we call it bear"), words, extractor=extractor)
    assert feats.utterance["status"] == "ok"
    assert feats.utterance["u_read_share"] == pytest.approx(4 / 6)
    assert [w["w_read"] for w in feats.words] == [1.0] * 4 + [0.0] * 2
    for row in feats.phones:
        read = row["word_index"] < 4
        assert (row["start"] is not None) == read
        assert math.isfinite(row["p_gop_forced"]) == read
    assert all(math.isnan(w["w_duration"]) for w in feats.words[4:])
    assert math.isfinite(feats.utterance["u_speech_rate"])


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    base = Scorer.from_pretrained("default")
    model = replace(base.config.extractor.model, aligner="viterbi")
    config = replace(base.config, extractor=replace(base.config.extractor, model=model))
    return Scorer(base.head, config=config, lexicon_path=base.lexicon_path, name=base.name)


def test_scorer_half_reading_is_scored_with_half_completeness(say, scorer, tmp_path: Path):
    a = scorer.score(say("we call it bear"), "we call it bear and sleep")
    assert a.status == "ok"
    assert 3.0 <= a.utterance.completeness <= 7.0
    assert [w.status for w in a.words] == ["read"] * 4 + ["omitted"] * 2
    for w in a.words[4:]:
        assert (w.accuracy, w.total, w.mispronounced) == (0.0, 0.0, True)
        assert all(p.score == 0.0 and p.start is None for p in w.phones)
    d = a.to_dict()
    assert d["words"][5]["status"] == "omitted" and d["inserted"] == []


def test_scorer_reports_extra_speech_and_mismatch(say, scorer):
    a = scorer.score(say("we call it a big bear"), "we call it bear")
    assert a.status == "ok" and a.inserted
    assert all(w.status == "read" for w in a.words)
    bad = scorer.score(say("please open the window"), "it is raining today")
    assert bad.status == "mismatch" and "heard" in bad.reason
    assert bad.utterance.total == 0.0 and all(w.total == 0.0 for w in bad.words)


def test_stopping_early_costs_at_most_the_stop_penalty() -> None:
    from pronscore.align.viterbi import _graph

    prons = [("W", "IY1"), ("K", "AO1", "L"), ("IH1", "T"), ("B", "EH1", "R")]
    units = _units(prons, default_mdef())
    last_of_first = max(i for i, u in enumerate(units) if u.kind == PHONE and u.word == 0)
    capped = _graph(units, 4, skip=600.0, insert=600.0, stop=450.0)
    per_word = _graph(units, 4, skip=600.0, insert=600.0, stop=None)
    assert capped.end[last_of_first] == -450.0  # three words left out at the end: one stop
    assert per_word.end[last_of_first] == -1800.0
    second = min(i for i, u in enumerate(units) if u.kind == PHONE and u.word == 2)
    skip_one = dict(capped.arcs[second])[last_of_first]
    assert skip_one == -600.0  # a word left out mid-sentence still costs skip_penalty


def test_the_aligner_picks_the_variant_that_was_said(say, aligner) -> None:
    x = say("I read books every day")  # espeak says the present tense, R IY D
    words = [("I", ("AY1",)), ("READ", ("R", "EH1", "D")), ("BOOKS", ("B", "UH1", "K", "S")),
             ("EVERY", ("EH1", "V", "R", "IY0")), ("DAY", ("D", "EY1"))]  # fmt: skip
    for first, second in (
        (("R", "EH1", "D"), ("R", "IY1", "D")),
        (("R", "IY1", "D"), ("R", "EH1", "D")),
    ):
        variants = [[p] for _, p in words]
        variants[1] = [first, second]
        out = aligner.run(x, [*words[:1], ("READ", first), *words[2:]], variants=variants)
        assert out.alignment.ok
        assert out.words[1] == ("READ", ("R", "IY1", "D"))  # whichever was listed first
        assert [p.phone for p in out.alignment.words[1].phones] == ["R", "IY1", "D"]
    plain = aligner.run(x, words)  # without variants the given phones are aligned
    assert plain.words[1] == ("READ", ("R", "EH1", "D"))
