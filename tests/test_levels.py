"""The sentence accuracy its words give (pronscore.levels): fitted on labels, served beside the
model's, shown in the table, measured by evaluation."""

from __future__ import annotations

import json

import pytest

from pronscore.commands.score import format_assessment
from pronscore.evaluation.metrics import level_consistency
from pronscore.levels import WordsToSentence, fit_words_to_sentence
from pronscore.schema import Assessment, UtteranceScores, WordAssessment
from pronscore.scorer import ScorerConfig


def _reading(sentence: float | None, *words: float | None) -> Assessment:
    return Assessment(
        utterance=UtteranceScores(accuracy=sentence),
        words=tuple(WordAssessment(f"W{i}", accuracy=a) for i, a in enumerate(words)),
    )


def test_the_line_is_fitted_on_the_labels_and_shares_the_shortfall_out_by_word() -> None:
    # the experts' rubric: sentence = 2 * mean(words) - 11 on these readings
    labels = [_reading(2 * m - 11, m, m) for m in (7.0, 8.0, 9.0, 10.0)]
    labels.append(_reading(None, 9.0))  # no sentence label: not fitted on
    line = fit_words_to_sentence(labels)
    assert (line.intercept, line.slope, line.n) == (pytest.approx(-11.0), pytest.approx(2.0), 4)
    assert line.figure([10.0, 8.0]) == pytest.approx(7.0)
    costs = line.costs([10.0, 8.0, 9.0])
    assert costs == pytest.approx([0.0, 4 / 3, 2 / 3], abs=1e-3)  # rounded to 3 places
    # the costs add up to the gap between a perfect reading and this one
    gap = line.figure([10.0] * 3) - line.figure([10.0, 8.0, 9.0])
    assert gap == pytest.approx(sum(costs), abs=2e-3)
    assert line.figure([0.0]) == 0.0 and line.figure([]) is None  # clipped; nothing to say
    with pytest.raises(ValueError, match="3 or more"):
        fit_words_to_sentence(labels[:2])


def test_an_explained_assessment_keeps_its_scores_and_round_trips_through_json() -> None:
    line = WordsToSentence(-3.79, 1.22)
    a = _reading(6.3, 9.1, 7.3, None, 8.5)
    got = line.explain(a)
    assert got.utterance == a.utterance and [w.accuracy for w in got.words] == [
        w.accuracy for w in a.words
    ]
    assert got.from_words == pytest.approx(-3.79 + 1.22 * (9.1 + 7.3 + 8.5) / 3, abs=1e-3)
    assert got.words[2].sentence_cost is None  # unscored: no share of the figure
    assert got.words[1].sentence_cost == pytest.approx(1.22 * 2.7 / 3, abs=1e-3)
    assert Assessment.from_dict(json.loads(json.dumps(got.to_dict()))) == got
    assert line.explain(_reading(6.0, None)) == _reading(6.0, None)
    table = format_assessment(got)
    assert "sentence accuracy from the words alone: 6.3" in table
    assert "costing most: W1 -1.1, W3 -0.6, W0 -0.4" in table
    assert "from the words alone" not in format_assessment(a)


def test_the_scorer_config_carries_the_line() -> None:
    config = ScorerConfig(words_to_sentence=WordsToSentence(-3.79, 1.22, 2500))
    again = ScorerConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    assert ScorerConfig.from_dict({}).words_to_sentence is None  # older scorer.json files


def test_evaluation_reports_how_well_the_words_explain_the_sentence() -> None:
    line = WordsToSentence(-11.0, 2.0)
    refs = [_reading(s, 9.0) for s in (6.0, 7.0, 8.0)]
    hyps = [line.explain(_reading(s, w)) for s, w in ((7.2, 9.0), (4.5, 8.5), (8.9, 9.9))]
    got = level_consistency(refs, hyps)["from_words"]
    assert got["n"] == 3
    assert got["within_1"] == pytest.approx(2 / 3)  # words 7.0, 6.0, 8.8: 4.5 is 1.5 off
    assert got["pcc_served"] > 0.9
    assert "from_words" not in level_consistency(refs, refs)


def test_the_table_says_when_the_recording_sounds_like_a_poor_channel() -> None:
    a = Assessment(utterance=UtteranceScores(accuracy=6.0), channel=0.995)
    assert "sounds like a phone line or a noisy room (P 0.99" in format_assessment(a)
    assert "phone line" not in format_assessment(Assessment(channel=0.5))
    assert "phone line" not in format_assessment(Assessment())  # no gate: nothing said
    assert Assessment.from_dict(json.loads(json.dumps(a.to_dict()))) == a
