"""Same recording, same score: nothing scored before may change what a scorer returns.

Pocketsphinx searches keep state from one utterance to the next; a decoder reused across
utterances moved phone boundaries of 8 kHz test recordings after other recordings were decoded
(utterance total 6.969 then 6.930 for the same file). These tests score real utterances
interleaved with others, in one process and in a fresh one, with both aligners, and extract a
dataset's features with one and with two worker processes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soxr

from pronscore.audio import load_audio
from pronscore.cli import main
from pronscore.constants import SAMPLE_RATE
from pronscore.scorer import Scorer

# Three dev-like utterances of one speaker; the first two moved under a reused decoder.
UTTS = {
    "WAVE/SPEAKER0594/005940025.flac": "I have no chance what to express",
    "WAVE/SPEAKER0594/005940141.flac": "Where are you playing to play now",
    "WAVE/SPEAKER0594/005940019.flac": "I could take no more of the face of",
}


def _band_8k(x: np.ndarray) -> np.ndarray:
    down = soxr.resample(x, SAMPLE_RATE, 8000)
    return soxr.resample(down, 8000, SAMPLE_RATE).astype(np.float32)


@pytest.fixture(scope="module")
def clips(corpus_dir: Path) -> list[tuple[np.ndarray, str]]:
    return [(_band_8k(load_audio(corpus_dir / p)), t) for p, t in UTTS.items()]


def _scorer(aligner: str) -> Scorer:
    base = Scorer.from_pretrained("default")
    model = replace(base.config.extractor.model, aligner=aligner)
    config = replace(base.config, extractor=replace(base.config.extractor, model=model))
    return Scorer(base.head, config=config, lexicon_path=base.lexicon_path, name=base.name)


@pytest.mark.realdata
@pytest.mark.parametrize("aligner", ["pocketsphinx", "viterbi"])
def test_same_recording_same_assessment_in_one_process(clips, aligner: str) -> None:
    scorer = _scorer(aligner)
    results = {0: [], 1: []}
    for order in ((0, 1, 2), (2, 0, 1), (1, 2, 0)):
        for i in order:
            x, text = clips[i]
            got = scorer.score(x, text).to_dict()
            if i in results:
                results[i].append(got)
    for runs in results.values():
        assert runs[0]["status"] == "ok"
        assert runs[1] == runs[0] and runs[2] == runs[0]


@pytest.mark.realdata
def test_same_assessment_in_a_fresh_process(clips, tmp_path: Path) -> None:
    scorer = Scorer.from_pretrained("default")
    x, text = clips[0]
    for other, other_text in clips[1:]:
        scorer.score(other, other_text)
    here = scorer.score(x, text).to_dict()
    np.save(tmp_path / "x.npy", x)
    code = (
        "import json, sys, numpy as np; from pronscore.scorer import Scorer; "
        "x = np.load(sys.argv[1]); "
        "print(json.dumps(Scorer.from_pretrained('default').score(x, sys.argv[2]).to_dict()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "x.npy"), text],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout) == json.loads(json.dumps(here))


@pytest.mark.realdata
@pytest.mark.slow
def test_features_do_not_depend_on_jobs(corpus_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "ds"
    assert main(["prepare", str(corpus_dir), "--out", str(data), "--limit", "6", "--quiet"]) == 0
    for jobs in (1, 2):
        args = ["features", str(data), "--out", str(tmp_path / f"f{jobs}"), "--splits", "dev"]
        assert main([*args, "--jobs", str(jobs), "--quiet"]) == 0
    for table in ("utterances", "words", "phones"):
        one = pd.read_parquet(tmp_path / "f1" / "dev" / f"{table}.parquet")
        two = pd.read_parquet(tmp_path / "f2" / "dev" / f"{table}.parquet")
        assert len(one) > 0
        pd.testing.assert_frame_equal(one, two, check_exact=True)
