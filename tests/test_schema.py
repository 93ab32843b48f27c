"""Assessment JSON round trip."""

from __future__ import annotations

import json

from pronscore.schema import Assessment, PhoneAssessment, UtteranceScores, WordAssessment


def test_round_trip() -> None:
    a = Assessment(
        utterance=UtteranceScores(accuracy=8, fluency=9.5),
        words=(
            WordAssessment(
                "BEAR", accuracy=6, stress=10, total=6, mispronounced=True,
                phones=(PhoneAssessment("B", 2.0, 0.1, 0.2), PhoneAssessment("EH1", 0.5)),
            ),
        ),
        status="ok",
    )  # fmt: skip
    d = json.loads(json.dumps(a.to_dict()))
    assert Assessment.from_dict(d) == a
    assert d["utterance"]["completeness"] is None
    assert [p.phone for p in a.phones] == ["B", "EH1"]


def test_heard_phone_round_trips_and_defaults_to_none() -> None:
    p = PhoneAssessment("EH1", 0.4, 0.1, 0.2, heard="AE")
    assert PhoneAssessment.from_dict(p.to_dict()) == p
    assert PhoneAssessment.from_dict({"phone": "EH1"}).heard is None
