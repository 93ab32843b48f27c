"""Every trainable run kind scores single recordings through ``Scorer.from_pretrained(RUN_DIR)``
with the numbers its own predictor gives for the same utterance: ``gop-blstm``, ``hier`` (GOP +
utterance features, pocketsphinx frames, Whisper vectors of the features stage) and ``ssl``
(``gop-gbt``: tests/test_scorer.py and tests/test_encoder_model.py). Tiny runs on
tiny real data (six train and six dev utterances of Speechocean762)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pronscore.constants import UTTERANCE_ASPECTS

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "we_call_it_bear.wav"


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch):
    """Tiny models gain nothing from threads; the encoder is the one each run recorded."""
    monkeypatch.delenv("PRONSCORE_WHISPER", raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_real(corpus_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """DATASET_DIR (6 + 6 utterances) and its FEATURES_DIR with tiny-Whisper vectors of
    layers 0-2 (hier runs select the layers they read)."""
    from pronscore.cli import main
    from test_encoder_model import tiny_whisper

    root = tmp_path_factory.mktemp("serving")
    data, feats = root / "ds", root / "f"
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("PRONSCORE_WHISPER", raising=False)
        assert (
            main(["prepare", str(corpus_dir), "--out", str(data), "--limit", "6", "--quiet"]) == 0
        )
        argv = ["features", str(data), "--out", str(feats), "--quiet", "--jobs", "2"]
        enc = tiny_whisper(root / "enc")
        assert main([*argv, "--encoder", str(enc), "--layers", "0-2"]) == 0
    return data, feats


def _dev_rows(data: Path) -> list[dict]:
    from pronscore.dataset import load_split

    return list(load_split(data, "dev"))


def _prons(row: dict) -> list:
    from pronscore.text import Pronunciation

    return [Pronunciation(w["text"], tuple(w["phones"]), "corpus") for w in row["words"]]


def _score_cli(run: Path, capsys: pytest.CaptureFixture[str]) -> dict:
    from pronscore.cli import main

    capsys.readouterr()
    argv = ["score", str(EXAMPLE), "--text", "We call it bear", "--model", str(run), "--json"]
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def _utterance(a) -> list:
    return [getattr(a.utterance, k) for k in UTTERANCE_ASPECTS]


def _scores_as_expected(scorer, data: Path, expected: dict) -> None:
    """The Scorer's scores for the first dev utterances equal the head's own (1e-3)."""
    compared = 0
    for r in _dev_rows(data)[:3]:
        got = scorer.score(np.asarray(r["audio"], np.float32), r["text"], pronunciations=_prons(r))
        want = expected[r["id"]]
        assert got.status == want.status
        if want.status != "ok":
            continue
        compared += 1
        assert _utterance(got) == pytest.approx(_utterance(want), abs=1e-3)
        for g, w in zip(got.words, want.words, strict=True):
            assert [g.accuracy, g.stress, g.total] == pytest.approx(
                [w.accuracy, w.stress, w.total], abs=1e-3
            )
        assert [p.score for p in got.phones] == pytest.approx(
            [p.score for p in want.phones], abs=1e-3
        )
    assert compared >= 2


@pytest.mark.realdata
@pytest.mark.parametrize("inputs", ["gop+utt", "ps-frames", "whisper:1-2+gop"])
def test_a_hier_run_scores_a_recording_as_its_features_say(
    tiny_real: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    inputs: str,
) -> None:
    from pronscore.cli import main
    from pronscore.features.extract import load_features
    from pronscore.heads.hier_head import HierHead
    from pronscore.scorer import Scorer

    data, feats = tiny_real
    run = tmp_path / "run"
    argv = ["train", "hier", "--features", str(feats), "--out", str(run), "--inputs", inputs]
    assert main([*argv, "--epochs", "2"]) == 0  # whisper inputs: no --deep-cache needed
    head = HierHead.from_pretrained(run)
    if "whisper" in inputs:  # the features' encoder, all its layers: one vector layout
        assert head.encoder is not None and head.encoder.layers == (0, 1, 2)
        named = tmp_path / "named"  # --encoder-name: a name to record, not this machine's path
        assert main([*argv[:5], str(named), *argv[6:], "--epochs", "1",
                     "--encoder-name", "org/enc"]) == 0  # fmt: skip
        spec = HierHead.from_pretrained(named).encoder
        assert (spec.model, spec.layers) == ("org/enc", (0, 1, 2))
    else:
        assert head.encoder is None
    expected = head.predict_features(load_features(feats, "dev"))

    _scores_as_expected(Scorer.from_pretrained(run), data, expected)
    if "whisper" in inputs or inputs == "ps-frames":
        out = _score_cli(run, capsys)
        assert out["status"] == "ok"
        assert [w["text"] for w in out["words"]] == ["WE", "CALL", "IT", "BEAR"]
        assert all(0 <= p["score"] <= 2 for w in out["words"] for p in w["phones"])
        assert 0 <= out["utterance"]["total"] <= 10


@pytest.mark.realdata
def test_an_ssl_run_scores_a_recording_as_its_predictor_does(
    tiny_real: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pronscore.cli import main
    from pronscore.dataset import load_split
    from pronscore.heads.ssl import SslPredictor
    from pronscore.scorer import Scorer
    from test_ssl_training import save_tiny_backbone

    data, _ = tiny_real
    backbone = save_tiny_backbone(tmp_path, "wav2vec2")
    run = tmp_path / "run"
    argv = ["train", "ssl", "--data", str(data), "--backbone", str(backbone), "--out", str(run),
            "--strategy", "frozen", "--max-steps", "1", "--batch-size", "2"]  # fmt: skip
    assert main(argv) == 0
    expected = SslPredictor.from_pretrained(run).predict_rows(load_split(data, "dev"))

    scorer = Scorer.from_pretrained(run)
    for r in _dev_rows(data)[:3]:
        prons = _prons(r)
        got = scorer.score(np.asarray(r["audio"], np.float32), r["text"], pronunciations=prons)
        assert got.status == "ok"
        assert _utterance(got) == pytest.approx(_utterance(expected[r["id"]]), abs=1e-3)
        # an utterance-only model: the text's words and phones, without scores
        assert [w.text for w in got.words] == [p.word for p in prons]
        assert all(w.accuracy is None and w.total is None for w in got.words)
        assert all(p.score is None for w in got.words for p in w.phones)
    out = _score_cli(run, capsys)
    assert out["status"] == "ok"
    assert [w["text"] for w in out["words"]] == ["WE", "CALL", "IT", "BEAR"]
    assert 0 <= out["utterance"]["total"] <= 10


@pytest.mark.realdata
def test_a_gop_blstm_run_scores_a_recording_as_its_features_say(
    tiny_real: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pronscore.cli import main
    from pronscore.features.extract import load_features
    from pronscore.heads.blstm import BlstmHead
    from pronscore.scorer import Scorer

    data, feats = tiny_real
    run = tmp_path / "run"
    argv = ["train", "gop-blstm", "--features", str(feats), "--out", str(run), "--epochs", "2"]
    assert main([*argv, "--bootstrap", "10", "--threads", "1"]) == 0
    expected = BlstmHead.from_pretrained(run).predict_features(load_features(feats, "dev"))

    _scores_as_expected(Scorer.from_pretrained(run), data, expected)
    out = _score_cli(run, capsys)
    assert out["status"] == "ok" and 0 <= out["utterance"]["total"] <= 10
