"""The command line: help, errors as one clear line, prepare on a synthetic corpus."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pronscore.cli import main
from synthetic_corpus import make_corpus


def test_help_lists_commands() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pronscore.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for cmd in ("prepare", "evaluate"):
        assert cmd in out


def test_prepare_and_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_corpus(tmp_path / "c")
    assert main(["prepare", str(root), "--out", str(tmp_path / "ds"), "--quiet"]) == 0
    assert "train:" in capsys.readouterr().out
    assert main(["prepare", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pronscore prepare: error:") and "corpus folder not found" in err


def test_closed_stdout_pipe_exits_quietly() -> None:
    """`pronscore score ... --json | head -1`: no BrokenPipeError traceback, exit 141."""
    example = Path(__file__).resolve().parents[1] / "examples" / "we_call_it_bear.wav"
    cmd = [sys.executable, "-m", "pronscore.cli", "score", str(example)]
    proc = subprocess.Popen(
        [*cmd, "--text", "We call it bear", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # the reader is gone before anything is written
    err = proc.stderr.read().decode()
    assert proc.wait() == 141
    assert "Traceback" not in err and "BrokenPipeError" not in err


def test_encoder_option_sets_the_whisper_location_for_every_scoring_command(monkeypatch) -> None:
    import argparse

    from pronscore.commands import encoder
    from pronscore.features.deep import WHISPER_ENV, whisper_model

    monkeypatch.setenv(WHISPER_ENV, "before")  # restored after the test
    for command in ("score", "evaluate", "serve"):
        parser = argparse.ArgumentParser()
        __import__(f"pronscore.commands.{command}", fromlist=["x"]).add_arguments(parser)
        args = parser.parse_args(["x", "--data", "d"] if command == "evaluate" else [])
        assert args.encoder is None
    encoder.apply(argparse.Namespace(encoder="some/folder"))
    assert whisper_model() == "some/folder"


def test_comma_lists_parse_once_for_every_command() -> None:
    import argparse

    from pronscore.commands.lists import ints, names

    assert names(" train, dev,,") == ["train", "dev"] and names(None) == []
    assert ints("1,2, 3") == (1, 2, 3)
    with pytest.raises(argparse.ArgumentTypeError, match="comma-separated list of integers"):
        ints("1,two")
