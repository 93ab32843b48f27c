"""Real-data tier: the shared Speechocean762 train split (skips when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pronscore.cli import main
from pronscore.corpora.speechocean762 import prepare_speechocean762
from pronscore.dataset import load_prepared

pytestmark = pytest.mark.realdata


def test_loads_every_utterance(corpus_dir: Path) -> None:
    m = prepare_speechocean762(corpus_dir, strict=True)
    train = m.splits["train"]
    assert len(train) == 2500 and m.problems == ()
    assert len({u.speaker for u in train}) == 125
    u = next(x for x in train if x.id == "000010011")
    s = u.labels.utterance
    assert (s.accuracy, s.fluency, s.prosodic, s.total) == (8, 9, 9, 8)
    assert u.text == "WE CALL IT BEAR" and u.age == 6 and u.gender == "m"
    bear = u.labels.words[3]
    assert bear.text == "BEAR" and bear.accuracy == 6
    assert [p.phone for p in bear.phones] == ["B", "EH0", "R"]
    assert all(x.audio_path.is_file() for x in train[:50])
    n_children = len({x.speaker for x in train if x.is_child})
    assert 40 < n_children < 85  # about half the speakers are children


def test_prepare_subset_end_to_end(corpus_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    rc = main(["prepare", str(corpus_dir), "--out", str(out), "--limit", "8", "--quiet"])
    assert rc == 0
    dd = load_prepared(out)
    assert set(dd) == {"train", "dev"}
    assert len(dd["train"]) == 8 and len(dd["dev"]) == 8
    assert not set(dd["train"]["speaker"]) & set(dd["dev"]["speaker"])
    assert all(r["duration"] > 0.5 for r in dd["dev"])
