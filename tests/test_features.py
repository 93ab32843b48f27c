"""GOP / prosody features and the FEATURES_DIR format (extraction, cache, resume)."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest

from pronscore.align.base import Alignment, PhoneSegment, WordSegment
from pronscore.audio import load_audio
from pronscore.constants import SAMPLE_RATE, UTTERANCE_ASPECTS
from pronscore.features.cache import UtteranceCache, atomic_write_json
from pronscore.features.extract import (
    Extractor,
    ExtractorConfig,
    extract_dataset,
    extract_utterance,
    load_features,
)
from pronscore.features.gop import LPR_COLUMNS, log_posteriors, phone_features
from pronscore.features.prosody import prosody_tracks, utterance_prosody, word_prosody
from pronscore.text import PHONES

UTTS = ("000010011", "000010035")


@pytest.fixture(scope="module")
def extractor() -> Extractor:
    return Extractor()


def _alignment(spans: list[list[tuple[str, int, int]]], n: int) -> Alignment:
    words = []
    for wi, phones in enumerate(spans):
        segs = tuple(
            PhoneSegment(p, s, e, -5.0 * (e - s), wi, "BIE"[min(i, 2)] if len(phones) > 1 else "S")
            for i, (p, s, e) in enumerate(phones)
        )
        words.append(WordSegment(f"W{wi}", segs[0].start, segs[-1].end, segs))
    return Alignment(tuple(words), n, 100.0)


def test_log_posteriors_are_normalised_and_scale_invariant_to_shifts():
    rng = np.random.default_rng(0)
    scores = -rng.uniform(0, 20, size=(7, 42)).astype(np.float32)
    lp = log_posteriors(scores)
    assert np.allclose(np.exp(lp).sum(axis=1), 1.0, atol=1e-5)
    assert np.allclose(log_posteriors(scores - 3.0), lp, atol=1e-5)
    flat = log_posteriors(scores, scale=0.0)
    assert np.allclose(flat, -np.log(42), atol=1e-5)


def test_lpp_and_lpr_follow_the_kaldi_definition():
    n = 10
    scores = np.full((n, 42), -10.0, np.float32)
    aa, iy = PHONES.index("AA"), PHONES.index("IY")
    scores[:5, aa] = 0.0  # frames 0-4 clearly AA
    scores[5:, iy] = 0.0  # frames 5-9 clearly IY
    al = _alignment([[("AA1", 0, 5), ("IY0", 5, 10)]], n)
    lp = log_posteriors(scores)
    rows = phone_features(al, lp)
    assert len(rows) == 2
    good, _ = rows
    assert good["p_lpp"] == pytest.approx(lp[:5, aa].mean(), abs=1e-5)
    assert good["p_lpp"] > -0.01 and good["p_best_ratio"] == 1.0
    assert good["p_lpr_AA"] == 0.0
    assert good["p_lpr_IY"] == pytest.approx(10.0, abs=1e-3)
    assert good["p_min_lpr"] > 9.9
    assert good["p_gop_forced"] == pytest.approx(-5.0)
    assert math.isnan(good["p_gop_free"])  # no phone loop given
    assert good["p_stress"] == 1.0 and good["p_is_vowel"] == 1.0 and good["p_duration"] == 0.05
    # the same frames labelled with the wrong phone score badly
    wrong = phone_features(_alignment([[("IY1", 0, 5), ("AA0", 5, 10)]], n), lp)
    assert wrong[0]["p_lpp"] < -9.0 and wrong[0]["p_min_lpr"] < -9.0
    assert set(LPR_COLUMNS) <= set(good)


def test_prosody_measures_pitch_and_pauses():
    sr = SAMPLE_RATE
    t = np.arange(2 * sr) / sr
    x = (0.3 * np.sin(2 * np.pi * 200.0 * t)).astype(np.float32)
    x[int(0.8 * sr) : int(1.2 * sr)] = 0.0  # a 0.4 s gap
    n = 200
    tracks = prosody_tracks(x, n)
    assert tracks.f0.shape == (n,) and tracks.energy.shape == (n,)
    assert np.nanmedian(tracks.f0) == pytest.approx(12.0, abs=0.2)  # 200 Hz = 12 st re 100 Hz
    al = _alignment([[("AA1", 10, 80)], [("IY1", 120, 190)]], n)
    u = utterance_prosody(al, tracks, 2.0)
    assert u["u_pause_count"] == 1.0 and u["u_pause_max"] == pytest.approx(0.4)
    assert u["u_phonation_time"] == pytest.approx(1.4)
    assert u["u_articulation_rate"] == pytest.approx(2 / 1.4)
    assert u["u_lead_silence"] == pytest.approx(0.1) and u["u_trail_silence"] == pytest.approx(0.1)
    w = word_prosody(al, tracks)
    assert w[0]["w_pause_after"] == pytest.approx(0.4) and w[1]["w_pause_before"] == 0.4
    assert w[0]["w_voiced_ratio"] > 0.9
    failed = utterance_prosody(Alignment.failed("x", n, 100.0), tracks, 2.0)
    assert math.isnan(failed["u_pause_count"]) and math.isfinite(failed["u_f0_mean"])


def test_cache_writes_are_atomic_and_complete(tmp_path):
    cache = UtteranceCache(tmp_path / "train")
    cache.write("u1", {"a": float("nan"), "b": [1.0]}, {"x": np.ones((2, 3), np.float32)})
    assert cache.done() == {"u1"}
    assert cache.read("u1") == {"a": None, "b": [1.0]}
    assert cache.frames_path("u1").is_file()
    atomic_write_json(tmp_path / "m.json", {"k": 1})
    assert not [p for p in tmp_path.rglob("*.tmp")]


@pytest.mark.realdata
def test_extract_utterance_on_real_audio(corpus_dir, extractor):
    scores = json.loads((corpus_dir / "resource/scores.json").read_text())[UTTS[0]]
    words = [(w["text"], tuple(w["phones"])) for w in scores["words"]]
    x = load_audio(corpus_dir / f"WAVE/SPEAKER0001/{UTTS[0]}.flac")
    f = extract_utterance(x, words, extractor=extractor)
    assert f.utterance["status"] == "ok" and f.utterance["n_phones"] == 10
    frames = f.frames["phone_scores"]
    assert frames.shape == (f.alignment.n_frames, 39) and frames.dtype == np.float32
    assert f.frames["offset"].tolist() == [f.offset]  # where frame 0 is in the recording
    full = np.concatenate([frames, f.frames["nonspeech_scores"]], axis=1)
    assert np.allclose(np.exp(full).sum(axis=1), 1.0, atol=1e-4)
    # non-speech gets far more posterior mass in the leading silence (0-0.5 s) than in speech
    nonspeech = np.exp(f.frames["nonspeech_scores"]).sum(axis=1)
    assert nonspeech[:50].mean() > 10 * nonspeech[60:200].mean()
    assert 3.0 < f.utterance["u_articulation_rate"] < 10.0
    assert [p["position"] for p in f.phones[:2]] == ["B", "E"]
    for p in f.phones:
        assert p["start"] < p["end"] and math.isfinite(p["p_gop_free"])


def _tiny_dataset(corpus_dir, path):
    import datasets

    from pronscore.dataset import dataset_features

    scores = json.loads((corpus_dir / "resource/scores.json").read_text())
    rows = []
    for uid in UTTS:
        s = scores[uid]
        audio = load_audio(corpus_dir / f"WAVE/SPEAKER0001/{uid}.flac")
        rows.append((uid, s, audio))
    rows.append((UTTS[0] + "s", scores[UTTS[0]], np.zeros(SAMPLE_RATE, np.float32)))  # silent
    data = {
        "id": [r[0] for r in rows],
        "speaker": ["0001"] * 3,
        "age": [6] * 3,
        "gender": ["m"] * 3,
        "text": [r[1]["text"] for r in rows],
        "audio": [r[2] for r in rows],
        "duration": [len(r[2]) / SAMPLE_RATE for r in rows],
        **{a: [float(r[1][a]) for r in rows] for a in UTTERANCE_ASPECTS},
        "words": [
            [
                {
                    "text": w["text"],
                    "accuracy": float(w["accuracy"]),
                    "stress": float(w["stress"]),
                    "total": float(w["total"]),
                    "phones": w["phones"],
                    "phones_accuracy": w.get("phones-accuracy"),
                }
                for w in r[1]["words"]
            ]
            for r in rows
        ],
    }
    ds = datasets.Dataset.from_dict(data, features=dataset_features())
    datasets.DatasetDict({"dev": ds}).save_to_disk(str(path))
    return path


@pytest.mark.realdata
def test_extract_dataset_writes_the_contract_and_resumes(corpus_dir, tmp_path):
    dataset = _tiny_dataset(corpus_dir, tmp_path / "ds")
    out = extract_dataset(dataset, tmp_path / "feats", progress=False)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["version"] == 2 and meta["frame_rate"] == 100
    assert meta["extractor"] == ExtractorConfig().to_dict()
    f = load_features(out, "dev")
    u, w, p = f.utterances, f.words, f.phones
    assert list(u["id"]) == [*UTTS, UTTS[0] + "s"]
    assert list(u["status"]) == ["ok", "ok", "failed"]
    need_u = ["id", "status", "reason", "duration", "n_words", "n_phones", "speaker", "age"]
    need_u += ["gender", *(f"y_{a}" for a in UTTERANCE_ASPECTS)]
    assert set(need_u) <= set(u.columns)
    assert all(c in meta["columns"] for c in [*u.columns, *w.columns, *p.columns])
    assert {"id", "word_index", "text", "start", "end", "y_accuracy", "y_stress", "y_total"} <= set(
        w.columns
    )
    need = {"id", "word_index", "phone_index", "phone", "base_phone", "position", "start", "end"}
    need |= {"p_gop_forced", "p_gop_free", "p_lpp", "p_duration", "y_score", *LPR_COLUMNS}
    assert need <= set(p.columns)
    failed = p[p["id"] == UTTS[0] + "s"]
    assert len(failed) == 10 and failed["start"].isna().all() and failed["p_lpp"].isna().all()
    assert u.loc[2, "reason"] == "audio is silent"
    ok = p[p["id"] == UTTS[0]]
    assert ok["y_score"].iloc[0] == 2.0 and ok["y_score"].iloc[-1] != ok["y_score"].iloc[-1]
    assert f.frames(UTTS[1])["phone_scores"].shape[1] == 39

    # resume: one record lost -> only that one is recomputed, the result is identical
    cache = UtteranceCache(out / "dev")
    kept = cache.record_path(UTTS[0]).stat().st_mtime_ns
    cache.record_path(UTTS[1]).unlink()
    extract_dataset(dataset, out, progress=False)
    assert cache.record_path(UTTS[0]).stat().st_mtime_ns == kept
    assert load_features(out, "dev").phones.equals(p)


def test_heard_phone_is_the_loop_majority_and_reported_only_for_low_scores() -> None:
    from pronscore.features.gop import heard_phone
    from pronscore.heads.gbt import heard_instead
    from pronscore.scorer import Scorer
    from pronscore.text import PHONE_INDEX

    ae, eh = PHONE_INDEX["AE"], PHONE_INDEX["EH"]
    assert heard_phone(np.array([ae, ae, eh, -1, -1, -1])) == "AE"  # non-speech frames ignored
    assert heard_phone(np.array([-1, -1])) is None
    assert heard_instead("EH", "AE") == "AE"
    assert heard_instead("EH", "EH") is None and heard_instead("EH", None) is None
    scorer = Scorer.from_pretrained("default")  # shown only below mispronounced_phone_below
    assert scorer._heard(0.4, "AE") == "AE"
    assert scorer._heard(1.6, "AE") is None and scorer._heard(None, "AE") is None


class _HalfRateAligner:
    """An aligner of another frame rate (50 Hz): every phone of "a b" gets 10 frames."""

    frame_rate = 50.0

    def run(self, samples, pronunciations, *, phone_loop=None, variants=None):
        from pronscore.acoustic.pocketsphinx import MODEL_PHONES
        from pronscore.align.base import AlignerOutput

        spans = [[(p, 10 * k, 10 * k + 10)] for k, (_, (p,)) in enumerate(pronunciations)]
        al = _alignment(spans, 10 * len(spans))
        scores = np.full((al.n_frames, len(MODEL_PHONES)), -3.0, np.float32)
        scores[:, 0] = 0.0
        return AlignerOutput(replace(al, frame_rate=self.frame_rate), scores)


def test_features_take_any_aligner_and_its_frame_rate():
    x = np.random.default_rng(0).normal(0, 0.1, SAMPLE_RATE).astype(np.float32)
    f = extract_utterance(
        x, [("a", ("AH0",)), ("b", ("B",))], extractor=Extractor(aligner=_HalfRateAligner())
    )
    assert f.utterance["status"] == "ok"
    # 10 frames at 50 Hz are 0.2 s (at pocketsphinx's 100 Hz they would be 0.1 s)
    assert [p["p_duration"] for p in f.phones] == pytest.approx([0.2, 0.2])
    assert [t for p in f.phones for t in (p["start"], p["end"])] == pytest.approx(
        [0, 0.2, 0.2, 0.4]
    )


def test_a_features_dir_made_otherwise_says_which_setting_differs(tmp_path):
    from pronscore.acoustic.pocketsphinx import ModelConfig
    from pronscore.errors import CorpusError
    from pronscore.features.extract import ExtractorConfig, write_meta

    write_meta(tmp_path, ExtractorConfig())
    write_meta(tmp_path, ExtractorConfig())  # the same settings: fine
    with pytest.raises(CorpusError, match=r"\(model.warp: none here, 1.3 asked\); use a new"):
        write_meta(tmp_path, ExtractorConfig(model=ModelConfig(warp=1.3)))
