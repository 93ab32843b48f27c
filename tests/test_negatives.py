"""Synthetic negatives: planned labels, the extracted split (resumable) and training with them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pronscore.cli import main
from pronscore.dataset import PrepareConfig, load_split, prepare_dataset
from pronscore.errors import CorpusError
from pronscore.features.cache import UtteranceCache
from pronscore.features.extract import ExtractorConfig, extract_dataset, load_features
from pronscore.training.negatives import (
    NegativeOptions,
    make_negatives,
    plan_negatives,
    substitute_row,
    with_negatives,
    word_ends,
)
from synthetic_corpus import make_corpus

LEXICON = {
    "A": ("AH0",),
    "BIG": ("B", "IH1", "G"),
    "CAT": ("K", "AE1", "T"),
    "SAT": ("S", "AE1", "T"),
    "ON": ("AA1", "N"),
    "THE": ("DH", "AH0"),
    "MAT": ("M", "AE1", "T"),
    "DOG": ("D", "AO1", "G"),
    "RAN": ("R", "AE1", "N"),
    "HOME": ("HH", "OW1", "M"),
}


def _row(uid: str, speaker: str, text: str, score: float = 8.0) -> dict:
    words = [
        {
            "text": w,
            "accuracy": score - i,
            "stress": 10.0,
            "total": score - i,
            "phones": list(LEXICON[w]),
            "phones_accuracy": [2.0] * len(LEXICON[w]),
        }
        for i, w in enumerate(text.split())
    ]
    return {
        "id": uid, "speaker": speaker, "age": 30, "gender": "m", "text": text, "words": words,
        "accuracy": score, "completeness": 10.0, "fluency": 7.0, "prosodic": 6.0, "total": score,
    }  # fmt: skip


ROWS = [
    _row("a1", "s1", "A BIG CAT SAT ON THE MAT"),
    _row("a2", "s1", "THE DOG RAN HOME"),
    _row("b1", "s2", "A CAT SAT"),
    _row("b2", "s2", "A BIG DOG RAN HOME ON THE MAT"),
    _row("c1", "s3", "THE BIG CAT RAN"),
    _row("c2", "s3", "DOG SAT ON A MAT"),
]


def test_other_text_takes_another_speakers_text_and_zeroes_text_scores() -> None:
    by_id = {r["id"]: r for r in ROWS}
    plan = plan_negatives(ROWS, NegativeOptions(kinds=("other-text",), per_utt=2))
    assert [n.row["id"] for n in plan[:2]] == ["a1#other", "a1#other2"]
    assert len(plan) == 2 * len(ROWS)
    for neg in plan:
        source, donor = ROWS[neg.source_index], by_id[neg.donor]
        assert neg.kind == "other-text" and donor["speaker"] != source["speaker"]
        assert donor["text"] != source["text"]
        assert [w["text"] for w in neg.row["words"]] == donor["text"].split()
        assert [w["phones"] for w in neg.row["words"]] == [w["phones"] for w in donor["words"]]
        assert {(w["accuracy"], w["total"]) for w in neg.row["words"]} == {(0.0, 0.0)}
        assert [w["stress"] for w in neg.row["words"]] == [w["stress"] for w in donor["words"]]
        assert {a for w in neg.row["words"] for a in w["phones_accuracy"]} == {0.0}
        utt = {a: neg.row[a] for a in ("accuracy", "completeness", "total", "fluency", "prosodic")}
        assert utt == {"accuracy": 0.0, "completeness": 0.0, "total": 0.0,
                       "fluency": 7.0, "prosodic": 6.0}  # fmt: skip
        assert neg.row["speaker"] == source["speaker"]
    # the two copies of one utterance use two different donors
    assert plan[0].donor != plan[1].donor


def test_substitute_zeroes_the_replaced_word_and_scales_the_utterance() -> None:
    plan = plan_negatives(ROWS, NegativeOptions(kinds=("substitute",), seed=3))
    assert [n.row["id"] for n in plan] == [f"{r['id']}#sub" for r in ROWS]
    for neg in plan:
        source = ROWS[neg.source_index]
        n = len(source["words"])
        changed = [
            i for i, (a, b) in enumerate(zip(source["words"], neg.row["words"], strict=True))
            if a != b
        ]  # fmt: skip
        assert len(changed) == (2 if n >= 8 else 1)
        for i, (old, new) in enumerate(zip(source["words"], neg.row["words"], strict=True)):
            if i in changed:
                assert new["text"] != old["text"] and new["phones"] != old["phones"]
                assert (new["accuracy"], new["total"], new["stress"]) == (0.0, 0.0, 10.0)
                assert new["phones_accuracy"] == [0.0] * len(new["phones"])
                assert new["phones"] == list(LEXICON[new["text"]])
            else:
                assert new == old
        share = (n - len(changed)) / n
        assert neg.row["accuracy"] == pytest.approx(8.0 * share)
        assert neg.row["total"] == pytest.approx(8.0 * share)
        assert neg.row["completeness"] == pytest.approx(10.0 * share)
        assert (neg.row["fluency"], neg.row["prosodic"]) == (7.0, 6.0)
    # four of five words kept -> x 0.8
    five = _row("x", "s9", "A BIG CAT SAT ON")
    row = substitute_row(five, {2: ("DOG", LEXICON["DOG"])}, "x#sub")
    assert (row["accuracy"], row["total"], row["completeness"]) == pytest.approx((6.4, 6.4, 8.0))
    assert row["text"] == "A BIG DOG SAT ON"


def test_truncated_reading_keeps_the_words_read_and_scores_the_rest_0() -> None:
    ends = {r["id"]: [0.5 * (i + 1) for i in range(len(r["words"]))] for r in ROWS}
    plan = plan_negatives(ROWS, NegativeOptions(kinds=("truncated",), seed=2), word_ends=ends)
    assert [n.row["id"] for n in plan] == [f"{r['id']}#cut" for r in ROWS]
    reads = set()
    for neg in plan:
        source, n = ROWS[neg.source_index], len(ROWS[neg.source_index]["words"])
        read = round(neg.cut / 0.5)  # cut at the end of word `read - 1`
        reads.add(read)
        assert 1 <= read < n and neg.kind == "truncated" and neg.donor is None
        assert neg.row["text"] == source["text"]  # scored against the whole text
        assert neg.row["words"][:read] == source["words"][:read]
        for old, new in zip(source["words"][read:], neg.row["words"][read:], strict=True):
            assert (new["text"], new["phones"], new["stress"]) == (old["text"], old["phones"], 10.0)
            assert (new["accuracy"], new["total"]) == (0.0, 0.0)
            assert new["phones_accuracy"] == [0.0] * len(new["phones"])
        assert neg.row["completeness"] == pytest.approx(10.0 * read / n)
        assert neg.row["total"] == pytest.approx(8.0 * read / n)
    assert len(reads) > 1  # where the reading stops is drawn
    # no word times, or the word to cut after was not aligned: no truncated reading
    assert plan_negatives(ROWS, NegativeOptions(kinds=("truncated",))) == []
    nan = {k: [float("nan")] * len(v) for k, v in ends.items()}
    assert plan_negatives(ROWS, NegativeOptions(kinds=("truncated",)), word_ends=nan) == []


def test_word_ends_are_each_words_last_phone_end(tmp_path) -> None:
    import numpy as np
    import pandas as pd

    from pronscore.features.extract import SplitFeatures

    phones = pd.DataFrame({
        "id": ["a", "a", "a", "b", "b"], "word_index": [0, 0, 2, 0, 1],
        "end": [0.3, 0.5, 1.2, 0.4, None],
    })  # fmt: skip
    ends = word_ends(SplitFeatures(pd.DataFrame(), pd.DataFrame(), phones, tmp_path))
    assert ends["a"][0] == 0.5 and np.isnan(ends["a"][1]) and ends["a"][2] == 1.2
    assert ends["b"][0] == 0.4 and np.isnan(ends["b"][1])


def test_plan_is_seeded_per_row_so_a_limit_is_a_prefix() -> None:
    opts = NegativeOptions(seed=5)
    full = plan_negatives(ROWS, opts)
    assert plan_negatives(ROWS, opts, limit=3) == full[:6]
    assert plan_negatives(ROWS, opts) == full
    assert plan_negatives(ROWS, NegativeOptions(seed=6)) != full
    with pytest.raises(ValueError, match="kinds"):
        NegativeOptions(kinds=("shuffle",))


# ---------------------------------------------------------------- on a tiny prepared corpus


@pytest.fixture(scope="module")
def feats(tmp_path_factory) -> tuple[Path, Path]:
    """(DATASET_DIR, FEATURES_DIR with train, dev and train_neg for 4 train utterances)."""
    tmp = tmp_path_factory.mktemp("neg")
    corpus = make_corpus(tmp / "c", splits={"train": 4}, speakers_per_split=6)
    ds = prepare_dataset(corpus, tmp / "ds", PrepareConfig(), progress=False, log=lambda _: None)
    out = extract_dataset(ds, tmp / "feats", progress=False)
    make_negatives(ds, out, limit=4, progress=False)
    return ds, out


def test_negatives_split_has_ids_labels_and_kinds(feats) -> None:
    ds, out = feats
    train_rows = list(load_split(ds, "train").remove_columns(["audio"]))[:4]
    neg = load_features(out, "train_neg")
    u, w, p = neg.utterances, neg.words, neg.phones
    expect = [f"{r['id']}#{s}" for r in train_rows for s in ("other", "sub")]
    assert list(u["id"]) == expect
    assert list(u["synthetic"]) == ["other-text", "substitute"] * 4
    speakers = {r["id"]: r["speaker"] for r in load_split(ds, "train").remove_columns(["audio"])}
    for r in u[u["synthetic"] == "other-text"].itertuples():
        assert speakers[r.donor] != r.speaker == speakers[r.id.split("#")[0]]
        assert (r.y_accuracy, r.y_completeness, r.y_total) == (0.0, 0.0, 0.0)
        assert (w.loc[w["id"] == r.id, "y_accuracy"] == 0.0).all()
        assert (p.loc[p["id"] == r.id, "y_score"] == 0.0).all()
    for src in train_rows:
        sub = w[w["id"] == src["id"] + "#sub"].sort_values("word_index")
        assert [x["text"] for x in src["words"]] != list(sub["text"])
        for old, new in zip(src["words"], sub.itertuples(), strict=True):
            if old["text"] == new.text:
                assert (new.y_accuracy, new.y_total) == (old["accuracy"], old["total"])
            else:
                assert (new.y_accuracy, new.y_total) == (0.0, 0.0)
        share = (sub["y_accuracy"] != 0.0).sum() / len(sub)
        row = u[u["id"] == src["id"] + "#sub"].iloc[0]
        assert row["y_total"] == pytest.approx(src["total"] * share)
        assert row["y_fluency"] == src["fluency"]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["extractor"] == ExtractorConfig().to_dict()  # the FEATURES_DIR's own settings
    assert set(u.columns) <= set(meta["columns"])


def test_negatives_resume_and_refuse_other_settings(feats, tmp_path) -> None:
    ds, src = feats
    out = tmp_path / "feats"
    shutil.copytree(src, out)
    before = load_features(out, "train_neg")
    cache = UtteranceCache(out / "train_neg")
    ids = list(before.utterances["id"])
    kept = cache.record_path(ids[0]).stat().st_mtime_ns
    cache.record_path(ids[3]).unlink()
    make_negatives(ds, out, limit=4, progress=False)
    assert cache.record_path(ids[0]).stat().st_mtime_ns == kept
    assert cache.record_path(ids[3]).is_file()
    assert load_features(out, "train_neg").words.equals(before.words)
    with pytest.raises(CorpusError, match="other settings"):
        make_negatives(ds, out, NegativeOptions(seed=9), limit=4, progress=False)
    with pytest.raises(CorpusError, match="another extractor config"):
        make_negatives(ds, out, config=ExtractorConfig(trim_db=30.0), limit=1, progress=False)
    with pytest.raises(CorpusError, match="run `pronscore features` for the train split"):
        make_negatives(ds, tmp_path / "none", NegativeOptions(kinds=("truncated",)), limit=1,
                       progress=False)  # fmt: skip


def test_negatives_join_training_only(feats, tmp_path) -> None:
    from pronscore.commands.train_default import _train_head
    from pronscore.training.recipe import GOP_ONLY

    _, out = feats
    train, dev = load_features(out, "train"), load_features(out, "dev")
    both = with_negatives(train, f"{out}:train_neg", out)
    assert len(both.utterances) == len(train.utterances) + 8
    assert list(both.utterances["id"][: len(train.utterances)]) == list(train.utterances["id"])
    # the synthetic corpus's audio does not align: nothing for a phone classifier to learn
    with pytest.raises(CorpusError, match="too few to train the phone classifier"):
        _train_head(out, tmp_path / "no", seed=1, negatives=f"{out}:train_neg")
    extra = _train_head(out, tmp_path / "head", seed=1, negatives=f"{out}:train_neg",
                        recipe=GOP_ONLY)  # fmt: skip
    assert (extra["n_train_utterances"], extra["n_train_negatives"]) == (len(train.utterances), 8)

    run = tmp_path / "run"
    args = ["train", "gop-gbt", "--features", str(out), "--out", str(run), "--threads", "1"]
    assert main([*args, "--bootstrap", "10", "--negatives", f"{out}:train_neg"]) == 0
    config = json.loads((run / "config.json").read_text())
    assert (config["n_train_utterances"], config["n_train_negatives"]) == (len(train.utterances), 8)
    assert config["negatives"] == [f"{out}:train_neg"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["n_utterances"] == len(dev.utterances)
    assert not any("#" in i for i in dev.utterances["id"])


def test_negatives_spec_errors(feats, tmp_path) -> None:
    _, out = feats
    train = load_features(out, "train")
    with pytest.raises(CorpusError, match="FEATURES_DIR:SPLIT"):
        with_negatives(train, str(out), out)
    other = tmp_path / "other"
    other.mkdir()
    (other / "meta.json").write_text(
        json.dumps({"extractor": ExtractorConfig(trim_db=30.0).to_dict()})
    )
    with pytest.raises(CorpusError, match="other extractor settings"):
        with_negatives(train, f"{other}:train_neg", out)
    with pytest.raises(CorpusError, match="in more than one split"):
        with_negatives(train, f"{out}:train", out)


def test_channel_copies_keep_words_and_labels_and_change_the_audio() -> None:
    import numpy as np

    from pronscore.training.negatives import CHANNEL

    plan = plan_negatives(ROWS, NegativeOptions(kinds=("band-8k", "noise")))
    assert [n.row["id"] for n in plan[:2]] == [f"{ROWS[0]['id']}#8k", f"{ROWS[0]['id']}#noise"]
    for n in plan:
        source = ROWS[n.source_index]
        assert {**n.row, "id": source["id"]} == source and n.donor is None
    x = (0.3 * np.sin(2 * np.pi * 6000 * np.arange(16000) / 16000)).astype(np.float32)
    narrow = CHANNEL["band-8k"](x, 0)  # a 6 kHz tone does not pass a phone line (4 kHz)
    assert narrow.shape == x.shape and np.sqrt(np.mean(narrow**2)) < 0.01 * np.sqrt(np.mean(x**2))
    noisy = CHANNEL["noise"](x, 1)
    snr = 10 * np.log10(np.mean(x**2) / np.mean((noisy - x) ** 2))
    assert snr == pytest.approx(15.0, abs=0.1)
    np.testing.assert_array_equal(noisy, CHANNEL["noise"](x, 1))  # seeded by the source row


def test_negative_audio_is_the_source_cut_or_through_the_channel() -> None:
    import numpy as np

    from pronscore.training.negatives import CHANNEL, Negative, negative_samples

    x = np.linspace(-0.5, 0.5, 16000).astype(np.float32)
    row = ROWS[0]
    np.testing.assert_array_equal(negative_samples(Negative(row, 0, "other-text", "b1"), x), x)
    cut = negative_samples(Negative(row, 0, "truncated", None, 0.25), x)
    assert cut.dtype == np.float32 and len(cut) == 4000
    np.testing.assert_array_equal(cut, x[:4000])
    noisy = negative_samples(Negative(row, 3, "noise", None), x)
    np.testing.assert_array_equal(noisy, CHANNEL["noise"](x, 3))
