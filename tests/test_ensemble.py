"""Seed ensembles: the served head averages its members' scores (the first member's status and
flags speak for it), cross-validation averages seeds the same way, and a refit repeats the
ensemble its cross-validation measured."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

import pronscore
from pronscore.errors import ModelError
from pronscore.heads.ensemble import EnsembleHead, average_assessments
from pronscore.heads.gbt import GbtConfig
from pronscore.runs import load_predictor
from pronscore.schema import Assessment, PhoneAssessment, UtteranceScores, WordAssessment
from synthetic_features import make_split

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "we_call_it_bear.wav"
DEFAULT = Path(pronscore.__file__).parent / "pretrained" / "default"
CONFIG = GbtConfig(num_leaves=(7,), max_rounds=60, early_stopping=20, threads=1)


def _assessment(total: float, word: float, phone: float | None, *, flag=None, status="ok"):
    phones = (PhoneAssessment("B", phone, 0.1, 0.2, heard="P"), PhoneAssessment("EH1", 2.0))
    words = (WordAssessment("BEAR", word, 10.0, word, phones, mispronounced=flag),)
    utt = UtteranceScores(total, 10.0, total, total, total)
    return Assessment(utt, words, status=status, reason="why" if status != "ok" else None)


def test_scores_are_averaged_and_the_rest_is_the_first_members() -> None:
    first = _assessment(6.0, 8.0, 1.0, flag=True, status="mismatch")
    second = _assessment(8.0, 6.0, 2.0, flag=None)
    mean = average_assessments([first, second])
    assert mean.utterance.total == 7.0 and mean.utterance.completeness == 10.0
    (word,) = mean.words
    assert (word.accuracy, word.total, word.stress) == (7.0, 7.0, 10.0)
    assert [p.score for p in word.phones] == [1.5, 2.0]
    assert word.mispronounced is True and word.phones[0].heard == "P"
    assert (mean.status, mean.reason) == ("mismatch", "why")
    # a member with no score for a phone: no score, not the other member's alone
    no_score = average_assessments([first, _assessment(8.0, 6.0, None)])
    assert no_score.words[0].phones[0].score is None
    assert average_assessments([first]) == first
    other_words = replace(second, words=second.words * 2)
    with pytest.raises(ModelError, match="different words"):
        average_assessments([first, other_words])


def test_levels_left_out_of_the_average_keep_the_first_members_scores() -> None:
    first, second = _assessment(6.0, 8.0, 1.0), _assessment(8.0, 6.0, 2.0)
    mean = average_assessments([first, second], levels=("utterance", "word"))
    assert mean.utterance.total == 7.0 and mean.words[0].accuracy == 7.0
    assert [p.score for p in mean.words[0].phones] == [1.0, 2.0]  # the first member's phones
    only_phones = average_assessments([first, second], levels=("phone",))
    assert only_phones.utterance == first.utterance and only_phones.words[0].accuracy == 8.0
    assert only_phones.words[0].phones[0].score == 1.5
    with pytest.raises(ModelError, match="unknown levels"):
        average_assessments([first, second], levels=("sentence",))
    with pytest.raises(ModelError, match=r"unknown levels \['sentence'\]"):
        EnsembleHead((first, second), ("a", "b"), {"levels": ["sentence"]})


@pytest.fixture(scope="module")
def members():
    from pronscore.training.gbt import fit_gbt

    train, dev = make_split(120, seed=1, prefix="t"), make_split(30, seed=2, prefix="d")
    heads = [fit_gbt(train, dev, replace(CONFIG, seed=s), log=lambda *_: None)[0] for s in (1, 2)]
    return heads, dev


def test_an_ensemble_run_predicts_its_members_mean(members, tmp_path: Path) -> None:
    heads, dev = members
    EnsembleHead(tuple(heads), ("seed-1", "seed-2"), {"note": "kept"}).save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["members"] == ["seed-1", "seed-2"]
    loaded = load_predictor(tmp_path)
    assert isinstance(loaded, EnsembleHead) and loaded.extra == {"note": "kept"}
    got = loaded.predict_features(dev)
    one, two = (h.predict_features(dev) for h in heads)
    assert set(got) == set(one)
    totals = [(got[i].utterance.total, one[i].utterance.total, two[i].utterance.total) for i in got]
    assert [t[0] for t in totals] == pytest.approx([(a + b) / 2 for _, a, b in totals])
    assert len({round(a - b, 6) for _, a, b in totals}) > 1  # the seeds differ: a real average
    uid = next(iter(got))
    want = [(p.score + q.score) / 2 for p, q in zip(one[uid].phones, two[uid].phones, strict=True)]
    assert [p.score for p in got[uid].phones] == pytest.approx(want)
    # an ensemble that averages utterances and words only serves the first member's phones
    EnsembleHead(tuple(heads), ("a", "b"), {"levels": ["utterance", "word"]}).save_pretrained(
        tmp_path / "uw"
    )
    uw = load_predictor(tmp_path / "uw").predict_features(dev)
    assert [p.score for p in uw[uid].phones] == [p.score for p in one[uid].phones]
    assert uw[uid].utterance == got[uid].utterance


@pytest.mark.parametrize("members", [[], ["../seed-1"], "seed-1"])
def test_a_bad_member_list_is_a_clear_error(tmp_path: Path, members) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"kind": "ensemble", "members": members}))
    with pytest.raises(ModelError, match="member"):
        load_predictor(tmp_path)


def test_an_ensemble_of_two_copies_of_the_default_scores_as_the_default(tmp_path: Path) -> None:
    from pronscore.scorer import Scorer

    run = tmp_path / "ens"
    for name in ("a", "b"):
        shutil.copytree(DEFAULT, run / "members" / name)
    for name in ("scorer.json", "lexicon.txt"):
        shutil.copyfile(DEFAULT / name, run / name)
    (run / "config.json").write_text(json.dumps({"kind": "ensemble", "members": ["a", "b"]}))
    got = Scorer.from_pretrained(run).score(EXAMPLE, "We call it bear")
    want = Scorer.from_pretrained("default").score(EXAMPLE, "We call it bear")
    assert got.status == want.status == "ok"
    assert got.utterance.total == pytest.approx(want.utterance.total, abs=1e-9)
    assert [w.accuracy for w in got.words] == pytest.approx([w.accuracy for w in want.words])
    assert [w.mispronounced for w in got.words] == [w.mispronounced for w in want.words]
    assert [p.score for p in got.phones] == pytest.approx([p.score for p in want.phones])


def test_a_refit_repeats_the_ensemble_its_cross_validation_measured() -> None:
    from pronscore.commands.train_default import _refit_sizes
    from pronscore.errors import CorpusError
    from pronscore.training.recipe import SHIPPED

    options = {"frame_vectors": True, "phone_scorer": True, "round_floor": True,
               "channel_copies": True, "channel_gate": True}  # fmt: skip
    fold = {"selection": {"utterance/y_total": {"num_leaves": 7, "rounds": 120}}}
    cv = {"kind": "gop-gbt", "folds": [fold], "options": {**options, "seeds": [1, 2, 3]}}
    assert _refit_sizes(cv, "cv", SHIPPED, 1) == {
        "utterance/y_total": {"num_leaves": 7, "rounds": 120}
    }
    cv["options"]["ensemble"] = True
    assert _refit_sizes(cv, "cv", SHIPPED, 3)["utterance/y_total"]["rounds"] == 120
    with pytest.raises(CorpusError, match="--ensemble 3"):
        _refit_sizes(cv, "cv", SHIPPED, 1)


def test_an_ensemble_of_no_heads_is_refused_before_any_work(tmp_path: Path) -> None:
    from pronscore.commands.train_default import train_default
    from pronscore.errors import CorpusError

    with pytest.raises(CorpusError, match="--ensemble 0: at least one head"):
        train_default(tmp_path / "no-data", tmp_path / "out", members=0)
    assert not any(tmp_path.iterdir())  # nothing extracted, nothing written
