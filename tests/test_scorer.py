"""Scorer (Python API) and `pronscore score` (CLI) with the shipped default model.

Every bad input of the reliability list gives a clear typed error or a result whose status and
reason say what went wrong, never a crash or a hang.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from pronscore import Assessment, AudioError, ModelError, TextError
from pronscore.audio import load_audio
from pronscore.cli import main
from pronscore.commands.score import format_assessment, use_color
from pronscore.constants import SAMPLE_RATE
from pronscore.scorer import Scorer

UTT = "WAVE/SPEAKER0001/000010011.flac"  # "WE CALL IT BEAR"
TEXT = "We call it bear"
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "we_call_it_bear.wav"  # 16 kHz PCM16


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    return Scorer.from_pretrained("default")


@pytest.fixture(scope="module")
def bear(corpus_dir: Path) -> np.ndarray:
    return load_audio(corpus_dir / UTT)


@pytest.fixture(scope="module")
def bear_result(scorer: Scorer, bear: np.ndarray) -> Assessment:
    return scorer.score(bear, TEXT)


def _in_range(a: Assessment) -> None:
    for v in a.utterance.to_dict().values():
        assert v is not None and 0.0 <= v <= 10.0
    for w in a.words:
        assert all(0.0 <= s <= 10.0 for s in (w.accuracy, w.stress, w.total) if s is not None)
        assert all(p.score is None or 0.0 <= p.score <= 2.0 for p in w.phones)


@pytest.mark.realdata
def test_scores_a_real_utterance(bear_result: Assessment) -> None:
    a = bear_result
    assert a.status == "ok" and a.reason is None
    assert [w.text for w in a.words] == ["WE", "CALL", "IT", "BEAR"]
    assert [len(w.phones) for w in a.words] == [2, 3, 2, 3]
    _in_range(a)
    assert a.utterance.total > 3.0  # a fair reading, rated 8/10 by the experts
    starts = [p.start for p in a.phones]
    assert all(s is not None for s in starts) and starts == sorted(starts)
    assert all(p.end > p.start for p in a.phones)
    assert Assessment.from_dict(json.loads(json.dumps(a.to_dict()))) == a


@pytest.mark.realdata
def test_every_audio_form_gives_the_same_scores(
    scorer: Scorer, corpus_dir: Path, bear: np.ndarray, bear_result: Assessment, tmp_path: Path
) -> None:
    path = corpus_dir / UTT
    assert scorer.score(path, TEXT) == bear_result
    assert scorer.score(str(path), TEXT) == bear_result
    assert scorer.score(path.read_bytes(), TEXT) == bear_result
    with path.open("rb") as f:
        assert scorer.score(f, TEXT) == bear_result
    x8 = soxr.resample(bear, SAMPLE_RATE, 8000)
    assert scorer.score(x8, TEXT, sample_rate=8000).status == "ok"


@pytest.mark.realdata
def test_8k_and_44k_stereo_files_are_scored(
    scorer: Scorer, bear: np.ndarray, tmp_path: Path
) -> None:
    sf.write(tmp_path / "8k.wav", soxr.resample(bear, SAMPLE_RATE, 8000), 8000)
    x44 = soxr.resample(bear, SAMPLE_RATE, 44100)
    sf.write(tmp_path / "44k.wav", np.stack([x44, 0.8 * x44], axis=1), 44100)
    for name in ("8k.wav", "44k.wav"):
        a = scorer.score(tmp_path / name, TEXT)
        assert a.status == "ok", name
        _in_range(a)


@pytest.mark.realdata
def test_mismatched_sentence_scores_lower(
    scorer: Scorer, bear: np.ndarray, bear_result: Assessment
) -> None:
    a = scorer.score(bear, "Please open the window before lunch")
    assert a.utterance.accuracy < bear_result.utterance.accuracy - 1.0  # measured 6.4 vs 8.6


@pytest.mark.realdata
def test_a_sentence_not_said_is_a_mismatch(scorer: Scorer, bear: np.ndarray) -> None:
    a = scorer.score(bear, "Please open the window before lunch")
    assert a.status == "mismatch" and a.reason
    assert [w.mispronounced for w in a.words] == [True] * 6


@pytest.mark.realdata
def test_word_in_no_lexicon_is_scored_and_named(scorer: Scorer, bear: np.ndarray) -> None:
    a = scorer.score(bear, "We call it Zorblax")
    assert a.status == "ok" and a.words[-1].text == "ZORBLAX"
    assert "ZORBLAX" in (a.reason or "")
    assert [w.mispronounced for w in a.words] == [False, False, False, True]  # "bear" was said


def test_silence_fails_with_reason_and_zero_scores(scorer: Scorer) -> None:
    a = scorer.score(np.zeros(2 * SAMPLE_RATE, np.float32), TEXT)
    assert a.status == "failed" and "silent" in a.reason
    assert a.utterance.total == 0.0 and all(w.mispronounced for w in a.words)
    assert len(a.phones) == 10


def test_noise_never_crashes(scorer: Scorer) -> None:
    noise = 0.3 * np.random.default_rng(0).standard_normal(3 * SAMPLE_RATE).astype(np.float32)
    a = scorer.score(noise, TEXT)
    assert a.status == "mismatch" and "none of the text" in a.reason  # no word of it heard
    assert a.utterance.total == 0.0 and [w.mispronounced for w in a.words] == [True] * 4
    _in_range(a)


def test_bad_audio_is_a_clear_error(scorer: Scorer, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    folder = tmp_path / "folder.wav"
    folder.mkdir()
    reasons = {
        corrupt: "cannot decode",
        empty: "file is empty (0 bytes)",
        tmp_path / "missing.wav": "file not found",
        folder: "is a directory, not an audio file",
    }
    for path, reason in reasons.items():
        with pytest.raises(AudioError) as err:
            scorer.score(path, TEXT)
        assert path.name in str(err.value) and reason in str(err.value)
    with pytest.raises(AudioError, match="cannot decode"):
        scorer.score(b"not audio at all", TEXT)
    with pytest.raises(AudioError, match="empty"):
        scorer.score(np.zeros(0, np.float32), TEXT)
    with pytest.raises(AudioError, match="NaN"):
        scorer.score(np.full(SAMPLE_RATE, np.nan, np.float32), TEXT)


@pytest.fixture(scope="module")
def example_float(scorer: Scorer) -> tuple[np.ndarray, Assessment]:
    x, rate = sf.read(EXAMPLE, dtype="float32")
    assert rate == SAMPLE_RATE
    return x, scorer.score(x, TEXT)


def test_int16_array_scores_like_float32(
    scorer: Scorer, example_float: tuple[np.ndarray, Assessment]
) -> None:
    _, expected = example_float
    assert expected.status == "ok" and expected.utterance.total > 0
    as_int, _ = sf.read(EXAMPLE, dtype="int16")
    assert scorer.score(as_int, TEXT) == expected
    assert scorer.score(as_int.astype(np.int32) << 16, TEXT) == expected


def test_channels_first_and_last_arrays_score_like_mono(
    scorer: Scorer, example_float: tuple[np.ndarray, Assessment]
) -> None:
    x, expected = example_float
    assert scorer.score(np.stack([x, x]), TEXT) == expected  # (2, N)
    assert scorer.score(np.stack([x, x], axis=1), TEXT) == expected  # (N, 2)
    for bad in (np.stack([x, x])[None], np.zeros((2, 0), np.float32)):
        with pytest.raises(AudioError) as err:
            scorer.score(bad, TEXT)
        assert err.value.field == "shape" and str(bad.shape) in str(err.value)


def test_quoted_and_spelled_text_scores_like_plain(
    scorer: Scorer, example_float: tuple[np.ndarray, Assessment]
) -> None:
    x, expected = example_float
    assert scorer.score(x, "We call it 'bear'.") == expected
    assert scorer.score(x, '"We" call it \u201cbear\u201d!') == expected
    assert [p.word for p in scorer.pronounce("my teddy-bear is 3")] == [
        "MY", "TEDDY", "BEAR", "IS", "THREE"
    ]  # fmt: skip
    assert all(p.source != "fallback" for p in scorer.pronounce("café naïve résumé"))


def test_scoring_raises_no_warning(scorer: Scorer) -> None:
    x, _ = sf.read(EXAMPLE, dtype="float32")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. pandas PerformanceWarning from the design matrix
        assert scorer.score(x, TEXT).status == "ok"


def test_three_minute_file_is_refused_from_its_header(scorer: Scorer, tmp_path: Path) -> None:
    long = tmp_path / "long.wav"
    sf.write(long, np.zeros(180 * SAMPLE_RATE, np.int16), SAMPLE_RATE)
    with pytest.raises(AudioError, match=r"180\.0 s long; the limit is 60 s"):
        scorer.score(long, TEXT)


def test_bad_text_is_a_clear_error(scorer: Scorer) -> None:
    x = np.zeros(SAMPLE_RATE, np.float32)
    for text in ("", "   ", "你好世界", "call 10000", "mp3"):
        with pytest.raises(TextError):
            scorer.score(x, text)
    assert [p.word for p in scorer.pronounce("Café, naïve!")] == ["CAFE", "NAIVE"]


def test_unknown_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        Scorer.from_pretrained(tmp_path / "nope")
    with pytest.raises(ModelError, match="config.json"):
        Scorer.from_pretrained(tmp_path)


@pytest.mark.realdata
def test_save_pretrained_round_trip(
    scorer: Scorer, bear: np.ndarray, bear_result: Assessment, tmp_path: Path
) -> None:
    out = scorer.save_pretrained(tmp_path / "copy")
    assert (out / "scorer.json").is_file() and (out / "lexicon.txt").is_file()
    assert Scorer.from_pretrained(out).score(bear, TEXT) == bear_result
    assert scorer.fork().score(bear, TEXT) == bear_result


# ---------------------------------------------------------------------- CLI


@pytest.mark.realdata
def test_cli_table_and_json(corpus_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(corpus_dir / UTT)
    assert main(["score", path, "--text", TEXT]) == 0
    out = capsys.readouterr().out
    assert "completeness" in out and "BEAR" in out and "\033[" not in out  # not a tty
    assert main(["score", path, "--text", TEXT, "--json"]) == 0
    a = Assessment.from_dict(json.loads(capsys.readouterr().out))
    assert a.status == "ok" and len(a.words) == 4


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["score", str(tmp_path / "missing.wav"), "--text", TEXT]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pronscore score: error:") and "file not found" in err
    assert "\n" not in err
    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE)
    assert main(["score", str(wav), "--text", "你好"]) == 2
    assert "English letters" in capsys.readouterr().err
    assert main(["score", str(wav), "--text", TEXT, "--model", str(tmp_path / "x")]) == 2
    assert "model folder not found" in capsys.readouterr().err


def test_colour_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty:
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert use_color("auto", Tty()) and not use_color("never", Tty())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_color("auto", Tty())
    assert use_color("always")
    table = format_assessment(Assessment(), color=True)
    assert "\033[" in table


@pytest.mark.realdata
def test_cli_batch_bad_lines_become_error_records(
    corpus_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bad.wav").write_bytes(b"garbage")
    lines = [
        "# audio<TAB>text",
        f"{corpus_dir / UTT}\t{TEXT}",
        "bad.wav\tWe call it bear",
        "only-one-column",
        f"u1\t{corpus_dir / UTT}\t你好",
        "",
    ]
    lst = tmp_path / "list.tsv"
    lst.write_text("\n".join(lines), encoding="utf-8")
    out = tmp_path / "out" / "results.jsonl"
    assert main(["score", "--batch", str(lst), "--out", str(out), "--quiet"]) == 1
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["line"] for r in recs] == [2, 3, 4, 5]
    assert recs[0]["status"] == "ok" and "error" not in recs[0]
    assert recs[1]["error_type"] == "AudioError" and "bad.wav" in recs[1]["error"]
    assert "column" in recs[2]["error"]
    assert recs[3]["id"] == "u1" and recs[3]["error_type"] == "TextError"
    assert "1 scored, 3 error(s)" in capsys.readouterr().err


@pytest.mark.realdata
def test_cli_batch_with_two_jobs_writes_the_same_records_in_order(
    corpus_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "bad.wav").write_bytes(b"garbage")
    second = "WAVE/SPEAKER0594/005940195.flac"  # "IT WAS A GREAT NIGHT"
    lines = [
        f"{corpus_dir / UTT}\t{TEXT}",
        "bad.wav\tWe call it bear",
        f"{corpus_dir / second}\tIt was a great night",
        f"{corpus_dir / UTT}\t{TEXT}",
    ]
    lst = tmp_path / "list.tsv"
    lst.write_text("\n".join(lines), encoding="utf-8")
    runs = {}
    for jobs in ("1", "2"):
        out = tmp_path / f"out{jobs}.jsonl"
        assert (
            main(["score", "--batch", str(lst), "--out", str(out), "--jobs", jobs, "--quiet"]) == 1
        )
        runs[jobs] = [json.loads(line) for line in out.read_text().splitlines()]
    assert runs["2"] == runs["1"]
    assert [r.get("status") for r in runs["2"]] == ["ok", None, "ok", "ok"]
    assert runs["2"][0]["utterance"] == runs["2"][3]["utterance"]


@pytest.mark.realdata
@pytest.mark.slow
def test_evaluate_predictions_are_what_the_scorer_returns(corpus_dir: Path, tmp_path: Path) -> None:
    from pronscore.dataset import load_split
    from pronscore.text import Pronunciation

    data = tmp_path / "ds"
    assert main(["prepare", str(corpus_dir), "--out", str(data), "--limit", "3", "--quiet"]) == 0
    pred = tmp_path / "pred.jsonl"
    argv = ["evaluate", "default", "--data", str(data), "--split", "dev", "--quiet"]
    assert main([*argv, "--predictions", str(pred), "--bootstrap", "10", "--jobs", "2"]) == 0
    written = {r["id"]: r for r in map(json.loads, pred.read_text().splitlines())}
    scorer = Scorer.from_pretrained("default")
    rows = list(load_split(data, "dev"))
    assert sorted(written) == sorted(r["id"] for r in rows)
    for r in rows:
        prons = [Pronunciation(w["text"], tuple(w["phones"]), "corpus") for w in r["words"]]
        audio = np.asarray(r["audio"], np.float32)
        direct = json.loads(
            json.dumps(scorer.score(audio, r["text"], pronunciations=prons).to_dict())
        )
        assert {k: v for k, v in written[r["id"]].items() if k != "id"} == direct
