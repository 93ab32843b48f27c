"""The CTC phone recogniser over encoder frames: its alignment-free GOP columns, training,
the features stage that stores them, and a GBT run whose Scorer makes them the same way."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pronscore.acoustic.phone_ctc import PhoneCtcConfig, PhoneCtcNet, PhoneRecogniser
from pronscore.align.ctc import CTC_INDEX as INDEX
from pronscore.align.ctc import CTC_VOCAB, ctc_log_likelihood
from pronscore.features.ctc_gop import _alternatives_ll, ctc_phone_columns


def spiky(phones: list[str], frames_per_phone: int = 4, sure: float = 0.97) -> np.ndarray:
    """Log-posteriors of a clear reading: each phone peaks on one frame, blanks between."""
    t = len(phones) * frames_per_phone
    p = np.full((t, len(CTC_VOCAB)), (1 - sure) / (len(CTC_VOCAB) - 1))
    p[:, 0] = sure  # blank
    for i, ph in enumerate(phones):
        k = i * frames_per_phone + 1
        p[k] = (1 - sure) / (len(CTC_VOCAB) - 1)
        p[k, INDEX[ph]] = sure
    return np.log(p / p.sum(1, keepdims=True)).astype(np.float32)


def times(n: int, frames_per_phone: int = 4, rate: float = 50.0):
    starts = [i * frames_per_phone / rate for i in range(n)]
    return starts, [s + frames_per_phone / rate for s in starts]


def test_batched_alternatives_match_the_forward_algorithm() -> None:
    lp = spiky(["B", "EH", "R"])
    lp = np.log(np.exp(lp) * 0.5 + 0.5 / lp.shape[1]).astype(np.float32)  # blurred
    targets = [INDEX[p] for p in ("B", "EH", "R")]
    got = _alternatives_ll(lp, targets)
    for i in range(3):
        deleted = targets[:i] + targets[i + 1 :]
        assert got[i, 0] == pytest.approx(ctc_log_likelihood(lp, deleted), abs=1e-3)
        for v in (1, targets[i], 17):
            alt = [*targets[:i], v, *targets[i + 1 :]]
            assert got[i, v] == pytest.approx(ctc_log_likelihood(lp, alt), abs=1e-3)


def test_a_clear_reading_scores_every_phone_and_hears_no_other() -> None:
    phones = ["B", "EH", "R"]
    cols = ctc_phone_columns(spiky(phones), phones, *times(3), 50.0)
    assert cols.heard == (None, None, None)
    assert (cols.phones["p_ctc_sf"] > -0.1).all()  # the canonical phone takes ~all the mass
    assert (cols.phones["p_ctc_rival"] < -3).all()
    assert cols.utterance["u_ctc_per"] == 0.0


def test_a_substituted_phone_is_heard_and_loses_its_share() -> None:
    said = spiky(["B", "AE", "R"])  # BEAR read as "bar"-like: EH sounded like AE
    cols = ctc_phone_columns(said, ["B", "EH", "R"], *times(3), 50.0)
    assert cols.heard == (None, "AE", None)
    sf = cols.phones["p_ctc_sf"]
    assert sf[1] < -3 and sf[0] > -0.1 and sf[2] > -0.1
    assert cols.phones["p_ctc_lpp"][1] < cols.phones["p_ctc_lpp"][0]
    assert cols.utterance["u_ctc_per"] == pytest.approx(1 / 3)


def test_words_the_aligner_left_out_do_not_sink_the_read_ones() -> None:
    """A half reading: the aligner reads W IY and leaves BEAR out (no time). The shares are
    over what was said, so the read phones keep theirs and the unread ones get none."""
    said = spiky(["W", "IY"])
    starts, ends = times(2)
    text = ["W", "IY", "B", "EH", "R"]
    cols = ctc_phone_columns(said, text, [*starts, None, None, None], [*ends, None, None, None],
                             50.0)  # fmt: skip
    sf = cols.phones["p_ctc_sf"]
    assert (sf[:2] > -0.1).all() and np.isnan(sf[2:]).all()
    assert cols.heard[2:] == (None, None, None) and cols.utterance["u_ctc_per"] == 0.0
    # the whole text forced onto the same audio: every share sinks
    forced = ctc_phone_columns(said, text, [*starts, 0.1, 0.1, 0.1], [*ends, 0.2, 0.2, 0.2], 50.0)
    assert (forced.phones["p_ctc_sf"][:2] < sf[:2]).all()


def test_with_no_phone_placed_the_shares_cover_the_whole_text() -> None:
    phones = ["W", "IY"]
    cols = ctc_phone_columns(spiky(phones), phones, [None, None], [None, None], 50.0)
    assert np.isfinite(cols.phones["p_ctc_sf"]).all() and np.isnan(cols.phones["p_ctc_lpp"]).all()


def test_recogniser_round_trip(tmp_path: Path) -> None:
    import torch

    torch.manual_seed(0)
    net = PhoneCtcNet(PhoneCtcConfig(layers=(1, 2), dim=8, hidden=6, kernel=3)).eval()
    rec = PhoneRecogniser(net, "some/encoder", {"note": 1})
    rec.save_pretrained(tmp_path / "r")
    back = PhoneRecogniser.from_pretrained(tmp_path / "r")
    states = np.random.default_rng(0).normal(size=(3, 20, 8)).astype(np.float32)
    np.testing.assert_allclose(back.log_probs(states), rec.log_probs(states), atol=1e-6)
    assert back.encoder == "some/encoder" and back.extra == {"note": 1}
    assert back.log_probs(states).shape == (20, len(CTC_VOCAB))


def test_training_learns_to_recognise_phones() -> None:
    from pronscore.training.phone_ctc import CtcData, CtcTrainOptions, train_phone_ctc

    rng = np.random.default_rng(0)
    proto = rng.normal(0, 1, (len(CTC_VOCAB), 16)).astype(np.float32)
    states, targets = {}, {}
    for k in range(60):
        seq = rng.integers(1, 8, 5).tolist()  # a few phones, so that few epochs suffice
        frames = [0] + [t for p in seq for t in (p, p, 0)]
        x = proto[frames] + rng.normal(0, 0.3, (len(frames), 16))
        states[f"u{k}"], targets[f"u{k}"] = x[None].astype(np.float16), seq
    data = CtcData(states, targets)
    ids = sorted(states)
    config = PhoneCtcConfig(layers=(0,), dim=16, hidden=32, kernel=3, dropout=0.0)
    opts = CtcTrainOptions(epochs=30, batch=8, lr=1e-2, threads=1)
    net, info = train_phone_ctc(data, ids[:50], ids[50:], config, opts, log=lambda m: None)
    assert info["best_val_loss"] < info["history"][0]["val_loss"]
    rec = PhoneRecogniser(net, "synthetic", {})
    from pronscore.features.ctc_gop import _edit_distance, _greedy

    errors = sum(_edit_distance(_greedy(rec.log_probs(states[u])), targets[u]) for u in ids[50:])
    assert errors / sum(len(targets[u]) for u in ids[50:]) < 0.1


@pytest.mark.realdata
def test_a_run_with_a_recogniser_scores_with_the_columns_its_features_hold(
    corpus_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """features --encoder -> train ctc -> features --ctc -> train gop-gbt -> Scorer: the
    recogniser travels with the run, and the columns the Scorer makes for a recording are
    those the features stage stored (from float16 frames, so to ~1e-2)."""
    from pronscore.cli import main
    from pronscore.dataset import load_split
    from pronscore.features.ctc_store import PHONE_COLUMNS
    from pronscore.features.extract import extract_utterance, load_features
    from pronscore.heads.gbt import GbtHead
    from pronscore.scorer import Scorer
    from pronscore.text import Pronunciation
    from test_encoder_model import tiny_whisper

    monkeypatch.delenv("PRONSCORE_WHISPER", raising=False)
    enc = tiny_whisper(tmp_path / "enc")
    data, feats, run = tmp_path / "ds", tmp_path / "f", tmp_path / "run"
    frames, ctc = tmp_path / "frames", tmp_path / "ctc"
    assert main(["prepare", str(corpus_dir), "--out", str(data), "--limit", "6", "--quiet"]) == 0
    argv = ["features", str(data), "--out", str(feats), "--quiet"]
    assert main([*argv, "--encoder", str(enc), "--layers", "1"]) == 0
    train = ["train", "ctc", "--data", str(data), "--features", str(feats), "--frames",
             str(frames), "--out", str(ctc), "--layers", "1-2", "--hidden", "8", "--epochs", "2",
             "--folds", "0", "--encoder", str(enc), "--quiet", "--threads", "1"]  # fmt: skip
    assert main(train) == 0
    assert json.loads((ctc / "config.json").read_text())["kind"] == "phone-ctc"
    assert main([*argv, "--ctc", str(ctc), "--frames", str(frames)]) == 0
    dev = load_features(feats, "dev")
    assert set(PHONE_COLUMNS) <= set(dev.phones) and "u_ctc_per" in dev.utterances
    # synthetic negatives get the columns too, from the encoder over each row's own audio
    neg = ["negatives", str(data), "--out", str(feats), "--limit", "2", "--quiet"]
    assert main(neg) == 0
    rows = load_features(feats, "train_neg").phones
    timed = rows["start"].notna().to_numpy()
    assert timed.any() and np.isfinite(rows["p_ctc_sf"][timed]).all()
    assert np.isnan(rows["p_ctc_sf"][~timed]).all()  # words the aligner left out
    argv = ["train", "gop-gbt", "--features", str(feats), "--out", str(run), "--bootstrap", "10"]
    assert main(argv) == 0
    assert GbtHead.from_pretrained(run).recogniser is not None

    scorer = Scorer.from_pretrained(run)
    r = next(r for r in load_split(data, "dev"))
    prons = [Pronunciation(w["text"], tuple(w["phones"]), "corpus") for w in r["words"]]
    audio = np.asarray(r["audio"], np.float32)
    one = extract_utterance(audio, [(p.word, tuple(p.phones)) for p in prons],
                            extractor=scorer.extractor)  # fmt: skip
    _, got = scorer._encoder_stages(audio, one)
    rows = dev.phones[dev.phones["id"] == r["id"]]
    np.testing.assert_allclose(got["phones"], rows[list(PHONE_COLUMNS)].to_numpy(), atol=2e-2)
    want = GbtHead.from_pretrained(run).predict_features(dev)[r["id"]]
    have = scorer.score(audio, r["text"], pronunciations=prons)
    assert have.status == want.status
    assert [p.score for w in have.words for p in w.phones] == pytest.approx(
        [min(max(p.score, 0), 2) for w in want.words for p in w.phones], abs=0.05
    )


def test_a_head_with_a_recogniser_reports_the_phone_the_recogniser_heard(tmp_path: Path) -> None:
    """With a recogniser the GBT head's `heard` is the recogniser's alignment-free one (fewer
    false alarms and more hits than the classifier's, out of fold), saved and loaded with it."""
    import torch

    from pronscore.features.encoder import EncoderSpec
    from pronscore.heads.gbt import GbtConfig, GbtHead
    from pronscore.training.gbt import fit_gbt
    from test_encoder_model import make_split, with_vectors

    train, dev = with_vectors(make_split(120, 4), 4), with_vectors(make_split(40, 5), 5)
    rng = np.random.default_rng(0)
    heard = rng.choice([None, "AE", "S"], size=len(dev.phones)).tolist()
    dev = replace(dev, phones=dev.phones.assign(ctc_heard=heard))
    torch.manual_seed(0)
    rec = PhoneRecogniser(PhoneCtcNet(PhoneCtcConfig(layers=(1,), dim=8, hidden=4)), "e", {})
    config = GbtConfig(num_leaves=(7,), max_rounds=40, early_stopping=20, threads=1)
    head, _ = fit_gbt(train, dev, config, log=lambda *_: None, encoder=EncoderSpec(),
                      recogniser=rec)  # fmt: skip
    head.save_pretrained(tmp_path)
    loaded = GbtHead.from_pretrained(tmp_path)
    assert loaded.recogniser is not None and loaded.recogniser.layers == (1,)
    out = loaded.predict_features(dev)
    uid = str(dev.utterances["id"][0])
    rows = (dev.phones["id"] == uid).to_numpy()
    canon = dev.phones.loc[rows, "base_phone"].tolist()
    want = [h if h != c else None for h, c in zip(np.array(heard)[rows], canon, strict=True)]
    assert [p.heard for w in out[uid].words for p in w.phones] == want


def test_with_recogniser_columns_the_checks_read_the_alignment_free_share() -> None:
    """The reading and word bars sit on ``p_ctc_sf`` when the features have it: a reading
    whose canonical phones the recogniser cannot find is another text, with no synthetic
    rows to learn that from."""
    from pronscore.features.encoder import EncoderSpec
    from pronscore.heads.gbt import GbtConfig
    from pronscore.training.gbt import fit_gbt
    from test_encoder_model import make_split, with_vectors

    def with_share(split, seed):
        q = np.nan_to_num(split.phones["y_score"].to_numpy(float), nan=1.0) / 2
        rng = np.random.default_rng(seed)
        noise = rng.normal(0, 0.1, len(q))
        margin = rng.gamma(2.0, 0.3, len(split.utterances))
        return replace(split, phones=split.phones.assign(p_ctc_sf=np.log(0.05 + 0.95 * q) + noise),
                       utterances=split.utterances.assign(ctc_said_margin=margin))  # fmt: skip

    train = with_share(with_vectors(make_split(120, 4), 4), 4)
    dev = with_share(with_vectors(make_split(40, 5), 5), 5)
    config = GbtConfig(num_leaves=(7,), max_rounds=40, early_stopping=20, threads=1)
    head, _ = fit_gbt(train, dev, config, log=lambda *_: None, encoder=EncoderSpec())
    assert head.checks.column == "p_ctc_sf"
    means = train.phones.groupby("id")["p_ctc_sf"].mean()
    assert head.checks.utterance_below == pytest.approx(np.quantile(means, 0.005))
    margins = train.utterances["ctc_said_margin"]
    assert head.checks.said_margin_within == pytest.approx(np.quantile(margins, 0.99))
    before = {u for u, a in head.predict_features(dev).items() if a.status == "mismatch"}
    uid = next(str(u) for u in dev.utterances["id"] if str(u) not in before)
    rows = (dev.phones["id"] == uid).to_numpy()
    lost = dev.phones.assign(p_ctc_sf=np.where(rows, -12.0, dev.phones["p_ctc_sf"]))
    got = head.predict_features(replace(dev, phones=lost))
    assert {u for u in got if got[u].status == "mismatch"} - before == {uid}
    assert all(w.mispronounced for w in got[uid].words)
    # words the aligner left unread (no time) say nothing about another text: a half reading
    last = rows & (dev.phones["word_index"] == dev.phones.loc[rows, "word_index"].max()).to_numpy()
    half = dev.phones.assign(
        p_ctc_sf=np.where(last, -12.0, dev.phones["p_ctc_sf"]),
        start=np.where(last, np.nan, dev.phones["start"]),
    )
    got = head.predict_features(replace(dev, phones=half))
    assert {u for u in got if got[u].status == "mismatch"} == before


def test_the_read_extent_finds_where_a_reading_stopped() -> None:
    """ "we bear" said, the aligner stretched "we bear chair" over it (every phone timed):
    the prefix of two words explains the audio, and over that prefix alone its phones keep
    their shares; read in full, the whole text is the prefix and the margin is small."""
    text = ["W", "IY", "B", "EH", "R", "CH", "EH", "R"]
    words = [0, 0, 1, 1, 1, 2, 2, 2]
    starts, ends = times(len(text), frames_per_phone=2)
    said = spiky(text[:5])
    stretched = ctc_phone_columns(said, text, starts, ends, 50.0, words)
    assert stretched.said["said_words"] == 2
    assert stretched.said["said_sf"] > -0.1 > np.mean(stretched.phones["p_ctc_sf"])
    assert stretched.said["said_margin"] < 1.0
    full = ctc_phone_columns(spiky(text), text, *times(len(text)), 50.0, words)
    assert full.said["said_words"] == 3 and full.said["said_margin"] < 1.0
    assert full.said["said_sf"] == pytest.approx(np.mean(full.phones["p_ctc_sf"]))
    # another text: its best prefix is far from the best path through the audio
    other = ctc_phone_columns(spiky(["S", "IH", "T", "D", "AW", "N"]), text, *times(8), 50.0,
                              words)  # fmt: skip
    assert other.said["said_margin"] > 5.0


def test_a_reading_that_stopped_early_is_not_called_another_text() -> None:
    """Below the reading bar, a reading passes when its read extent shows a prefix that
    explains the audio (margin within the bar) and clears the bar on its own."""
    import pandas as pd

    from pronscore.heads.phone_classifier import EncoderChecks

    phones = pd.DataFrame({"id": ["half", "half", "other", "other", "weak", "weak"],
                           "word_index": [0, 1, 0, 1, 0, 1], "start": [0.0] * 6,
                           "p_ctc_sf": [-0.1, -12.0, -9.0, -8.0, -6.0, -5.0]})  # fmt: skip
    utts = pd.DataFrame({"id": ["half", "other", "weak"], "ctc_said_sf": [-0.1, -1.0, -5.5],
                         "ctc_said_margin": [0.4, 9.0, 0.3]})  # fmt: skip
    checks = EncoderChecks(utterance_below=-4.0, word_below=-4.0, column="p_ctc_sf")
    assert checks.mismatched(phones, utts) == {"half", "other", "weak"}  # no rule: the bar
    ruled = replace(checks, said_margin_within=2.0)
    assert ruled.mismatched(phones, utts) == {"other", "weak"}
    assert ruled.mismatched(phones) == {"half", "other", "weak"}  # no extent columns
