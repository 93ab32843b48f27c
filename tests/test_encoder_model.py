"""Encoder vectors per phone as a features stage, the phone classifier over them, and a GBT
model that reads them, scored through the Scorer exactly as its training features were made."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pronscore.errors import ModelError
from pronscore.features.encoder import EncoderSpec, parse_layers
from pronscore.heads.gbt import GbtConfig, GbtHead
from pronscore.heads.phone_classifier import COLUMNS, PhoneClassifier
from pronscore.text import PHONE_INDEX, PHONES
from pronscore.training.phone_classifier import (
    ClassifierOptions,
    cross_fitted_columns,
    fit_classifier,
)
from synthetic_features import make_split

PROTOTYPES = np.random.default_rng(0).normal(0, 1, (len(PHONES), 48))  # one vector per phone
FAST = ClassifierOptions(correct=1.6, hidden=32, epochs=30, threads=1)  # few synthetic 2s


def with_vectors(split, seed: int, dim: int = 48):
    """Vectors that carry the canonical phone, blurred in proportion to how badly it was said."""
    rng = np.random.default_rng(seed)
    p = split.phones
    ids = p["base_phone"].map(PHONE_INDEX).to_numpy()
    q = np.nan_to_num(p["y_score"].to_numpy(float), nan=1.0) / 2
    x = PROTOTYPES[ids, :dim] * q[:, None] + rng.normal(0, 0.6, (len(p), dim))
    return replace(split, phone_vectors=x.astype(np.float32))


def test_parse_layers() -> None:
    assert parse_layers("4") == (4,)
    assert parse_layers("3-6") == (3, 4, 5, 6)
    assert parse_layers("2,4,6") == (2, 4, 6)
    for bad in ("", "-1", "x"):
        with pytest.raises(ValueError):
            parse_layers(bad)


def test_numpy_classifier_computes_what_torch_trained() -> None:
    import torch

    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, (400, 12)).astype(np.float32)
    y = rng.integers(0, len(PHONES), 400)
    clf = fit_classifier(x, y, replace(FAST, epochs=1))
    z = (x - clf.mean) / clf.scale
    h = torch.nn.functional.gelu(torch.from_numpy(z @ clf.w1 + clf.b1), approximate="tanh")
    ref = torch.log_softmax(h @ torch.from_numpy(clf.w2) + torch.from_numpy(clf.b2), -1).numpy()
    np.testing.assert_allclose(clf.log_posteriors(x), ref, atol=1e-4)


def test_classifier_recognises_well_said_phones_and_doubts_badly_said_ones() -> None:
    train, test = with_vectors(make_split(150, 1), 1), with_vectors(make_split(60, 2), 2)
    good = train.phones["y_score"].to_numpy(float) >= 1.6  # few synthetic phones reach 2
    ids = train.phones["base_phone"].map(PHONE_INDEX).to_numpy()
    clf = fit_classifier(train.phone_vectors[good], ids[good], FAST)
    cols = clf.columns(test.phone_vectors, test.phones["base_phone"])
    y = test.phones["y_score"].to_numpy(float)
    ok = np.isfinite(y)
    assert np.corrcoef(cols["p_enc_lpp"][ok], y[ok])[0, 1] > 0.5
    # the ratio to every phone: 0 for the canonical one, the margin for the best rival
    canon = test.phones["base_phone"].to_numpy()
    assert all(cols[f"p_enc_lpr_{p}"][k] == 0 for k, p in enumerate(canon))
    rival = np.max([np.where(canon == p, -np.inf, -cols[f"p_enc_lpr_{p}"]) for p in PHONES], 0)
    np.testing.assert_allclose(cols["p_enc_lpr"], -rival, rtol=1e-5)
    nan_row = test.phone_vectors.copy()
    nan_row[0] = np.nan
    assert np.isnan(clf.columns(nan_row, test.phones["base_phone"])["p_enc_lpp"][0])


def test_cross_fitted_columns_never_come_from_a_classifier_that_saw_the_row() -> None:
    split = with_vectors(make_split(40, 3), 3)
    cols = cross_fitted_columns(split, FAST)
    assert set(cols) == set(COLUMNS)
    assert all(np.isfinite(cols[c]).all() for c in ("p_enc_lpp", "p_enc_lpr"))
    again = cross_fitted_columns(split, FAST)
    np.testing.assert_array_equal(cols["p_enc_lpp"], again["p_enc_lpp"])


def test_gbt_with_encoder_vectors_saves_loads_and_needs_its_vectors(tmp_path: Path) -> None:
    from pronscore.training.gbt import fit_gbt

    train, dev = with_vectors(make_split(120, 4), 4), with_vectors(make_split(40, 5), 5)
    config = GbtConfig(num_leaves=(7,), max_rounds=60, early_stopping=20, threads=1)
    spec = EncoderSpec(model="openai/whisper-base", layers=(4,))
    head, _ = fit_gbt(train, dev, config, log=lambda *_: None, encoder=spec)
    assert isinstance(head.classifier, PhoneClassifier)
    assert any(c.startswith("p_enc_") for c in head.features["phone"])
    head.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["encoder"]["layers"] == [4]
    loaded = GbtHead.from_pretrained(tmp_path)
    assert loaded.encoder == spec
    a, b = head.predict_features(dev), loaded.predict_features(dev)
    uid = str(dev.utterances["id"][0])
    assert a[uid].to_dict() == b[uid].to_dict()
    with pytest.raises(ModelError, match="encoder vectors"):
        loaded.predict_features(replace(dev, phone_vectors=None))
    # what was heard comes from the classifier: its top phone, where it is not the canonical one
    rows = (dev.phones["id"] == uid).to_numpy()
    top = loaded.classifier.heard(dev.phone_vectors[rows])
    canon = dev.phones.loc[rows, "base_phone"].tolist()
    want = [t if t != c else None for t, c in zip(top, canon, strict=True)]
    assert [p.heard for w in a[uid].words for p in w.phones] == want
    assert any(want) and not all(want)


def test_speech_that_does_not_sound_like_the_text_is_a_mismatch() -> None:
    from pronscore.training.gbt import fit_gbt

    train, dev = with_vectors(make_split(120, 4), 4), with_vectors(make_split(40, 5), 5)
    config = GbtConfig(num_leaves=(7,), max_rounds=60, early_stopping=20, threads=1)
    head, _ = fit_gbt(train, dev, config, log=lambda *_: None, encoder=EncoderSpec())
    checks = head.checks
    assert checks is not None and checks.utterance_below < 0 and checks.word_below < 0
    ok = head.predict_features(dev)
    assert all(a.status == "ok" for a in ok.values())
    # one utterance's phones spoken as other phones: its vectors are another phone's prototype
    uid = str(dev.utterances["id"][3])
    rows = (dev.phones["id"] == uid).to_numpy()
    wrong = dev.phone_vectors.copy()
    other = (dev.phones.loc[rows, "base_phone"].map(PHONE_INDEX).to_numpy() + 5) % len(PHONES)
    wrong[rows] = 3 * PROTOTYPES[other]  # clearly said, as other phones
    got = head.predict_features(replace(dev, phone_vectors=wrong))
    assert got[uid].status == "mismatch" and "does not sound like the text" in got[uid].reason
    assert [u for u in got if got[u].status != "ok"] == [uid]
    # words are flagged where their phones' mean canonical log posterior is below the bar
    phones = head.phone_rows(replace(dev, phone_vectors=wrong))
    means = phones.groupby(["id", "word_index"])["p_enc_lpp"].mean()
    low = {k for k, v in means.items() if v < checks.word_below}
    flagged = {(u, i) for u, a in got.items() for i, w in enumerate(a.words) if w.mispronounced}
    assert flagged == low and any(u == uid for u, _ in low)
    assert all(w.mispronounced in (True, None) for a in got.values() for w in a.words)


def test_subset_and_concat_keep_vectors_with_their_rows() -> None:
    from pronscore.features.extract import concat_features

    a, b = with_vectors(make_split(5, 6, "a"), 6), with_vectors(make_split(4, 7, "b"), 7)
    both = concat_features([a, b])
    assert both.phone_vectors.shape[0] == len(both.phones)
    uid = str(b.utterances["id"][1])
    sub = both.subset([uid])
    rows = (b.phones["id"] == uid).to_numpy()
    np.testing.assert_array_equal(sub.phone_vectors, b.phone_vectors[rows])
    assert concat_features([a, replace(b, phone_vectors=None)]).phone_vectors is None


def tiny_whisper(path: Path) -> Path:
    import torch
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForAudioClassification

    cfg = WhisperConfig(
        d_model=16, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=32,
        decoder_layers=1, decoder_attention_heads=2, decoder_ffn_dim=32, num_mel_bins=80,
        vocab_size=100, pad_token_id=0, bos_token_id=1, eos_token_id=2,
        decoder_start_token_id=3,
    )  # fmt: skip
    torch.manual_seed(0)
    WhisperForAudioClassification(cfg).save_pretrained(path)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(path)
    return path


@pytest.mark.realdata
def test_a_trained_encoder_run_scores_like_its_features_say(
    corpus_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """features --encoder -> train gop-gbt -> Scorer: the vectors the Scorer computes for a
    recording are the ones the features stage wrote, and so are the scores (1e-4)."""
    from pronscore.cli import main
    from pronscore.dataset import load_split
    from pronscore.features.extract import extract_utterance, load_features
    from pronscore.scorer import Scorer
    from pronscore.text import Pronunciation

    monkeypatch.delenv("PRONSCORE_WHISPER", raising=False)
    enc = tiny_whisper(tmp_path / "enc")
    data, feats, run = tmp_path / "ds", tmp_path / "f", tmp_path / "run"
    assert main(["prepare", str(corpus_dir), "--out", str(data), "--limit", "6", "--quiet"]) == 0
    argv = ["features", str(data), "--out", str(feats), "--quiet", "--jobs", "2"]
    assert main([*argv, "--encoder", str(enc), "--layers", "1-2"]) == 0
    assert json.loads((feats / "encoder.json").read_text())["layers"] == [1, 2]
    dev = load_features(feats, "dev")
    assert dev.phone_vectors.shape == (len(dev.phones), 32)
    argv = ["train", "gop-gbt", "--features", str(feats), "--out", str(run), "--bootstrap", "10"]
    assert main(argv) == 0
    head = GbtHead.from_pretrained(run)
    assert head.classifier is not None and head.encoder.layers == (1, 2)
    expected = head.predict_features(dev)

    scorer = Scorer.from_pretrained(run)
    for r in list(load_split(data, "dev"))[:3]:
        prons = [Pronunciation(w["text"], tuple(w["phones"]), "corpus") for w in r["words"]]
        audio = np.asarray(r["audio"], np.float32)
        got = scorer.score(audio, r["text"], pronunciations=prons)
        want = expected[r["id"]]
        if want.status != "ok":
            assert got.status != "ok"
            continue
        rows = (dev.phones["id"] == r["id"]).to_numpy()
        words = [(p.word, tuple(p.phones)) for p in prons]
        feats_one = extract_utterance(audio, words, extractor=scorer.extractor)
        np.testing.assert_allclose(
            scorer._encoder_stages(audio, feats_one)[0], dev.phone_vectors[rows], atol=1e-4
        )
        # six utterances train no utterance model: the phone and word scores carry the test
        assert [w.accuracy for w in got.words] == pytest.approx(
            [min(max(w.accuracy, 0), 10) for w in want.words], abs=1e-3
        )
        got_phones = [p.score for w in got.words for p in w.phones]
        want_phones = [min(max(p.score, 0), 2) for w in want.words for p in w.phones]
        assert got_phones == pytest.approx(want_phones, abs=1e-3)


def test_a_missing_encoder_is_a_clear_error_when_the_scorer_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pronscore.scorer import Scorer
    from pronscore.training.gbt import fit_gbt

    train, dev = with_vectors(make_split(60, 8), 8), with_vectors(make_split(20, 9), 9)
    config = GbtConfig(num_leaves=(7,), max_rounds=20, early_stopping=10, threads=1)
    spec = EncoderSpec(model=str(tmp_path / "no-such-encoder"), layers=(1,))
    head, _ = fit_gbt(train, dev, config, log=lambda *_: None, encoder=spec)
    head.save_pretrained(tmp_path / "run")
    monkeypatch.delenv("PRONSCORE_WHISPER", raising=False)
    with pytest.raises(ModelError, match="cannot load Whisper encoder") as err:
        Scorer.from_pretrained(tmp_path / "run")
    assert "no-such-encoder" in str(err.value)


@pytest.mark.realdata
def test_shipped_whisper_model_scores_the_example(
    whisper_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`pronscore score ... --model whisper --encoder PATH`, the command line of the issue."""
    from pronscore.cli import main
    from pronscore.scorer import shipped_dir

    if not (shipped_dir("whisper") / "config.json").is_file():
        pytest.fail("the whisper model is not in the package")
    monkeypatch.delenv("PRONSCORE_WHISPER", raising=False)
    example = Path(__file__).resolve().parents[1] / "examples" / "we_call_it_bear.wav"
    argv = ["score", str(example), "--text", "We call it bear", "--model", "whisper"]
    assert main([*argv, "--encoder", str(whisper_dir), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "ok"
    assert [w["text"] for w in out["words"]] == ["WE", "CALL", "IT", "BEAR"]
    assert all(0 <= p["score"] <= 2 for w in out["words"] for p in w["phones"])
    assert 0 < out["utterance"]["total"] <= 10


@pytest.mark.realdata
def test_whisper_model_catches_a_sentence_not_said(
    whisper_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another sentence is caught by the whisper model's reading check (as by the default's,
    tests/test_scorer.py): 'mismatch', the reason, every word flagged, the scores kept."""
    from pronscore.scorer import Scorer

    monkeypatch.setenv("PRONSCORE_WHISPER", str(whisper_dir))
    scorer = Scorer.from_pretrained("whisper")
    example = Path(__file__).resolve().parents[1] / "examples" / "we_call_it_bear.wav"
    right = scorer.score(example, "We call it bear")
    assert right.status == "ok"
    a = scorer.score(example, "Please open the window before lunch")
    assert a.status == "mismatch" and "does not sound like the text" in a.reason
    assert [w.mispronounced for w in a.words] == [True] * 6
    assert 0 < a.utterance.accuracy < right.utterance.accuracy


def test_the_shipped_whisper_model_reads_its_recogniser_and_averages_hierarchical_heads() -> None:
    """`whisper` = a tree head over the CTC recogniser's columns (every level) + three
    hierarchical heads on the same Whisper vectors, averaged on the utterance scores only
    (CV: phone 0.685 -> 0.777, word accuracy 0.690 -> 0.759, total 0.846 -> 0.855)."""
    from pronscore.heads.ensemble import EnsembleHead
    from pronscore.scorer import shipped_dir

    head = EnsembleHead.from_pretrained(shipped_dir("whisper"))
    assert head.names == ("whisper", "hier") and head.levels == ("utterance",)
    trees, hier = head.members
    assert isinstance(trees, GbtHead) and len(hier.members) == 3
    assert trees.encoder == hier.encoder == EncoderSpec("openai/whisper-base", (4,))
    assert head.recogniser is trees.recogniser and trees.recogniser.layers == (3, 4, 5, 6)
    assert trees.checks.column == "p_ctc_sf" and trees.reading_check is None
