"""Shared fixtures. Real-data tests use ../shared/data/speechocean762 and skip when absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("PRONSCORE_CORPUS", REPO.parent / "shared/data/speechocean762"))
WHISPER = Path(
    os.environ.get("PRONSCORE_WHISPER", REPO.parent / "shared/models/whisper-base-encoder")
)


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The real Speechocean762 train split, or a skip naming where it was looked for."""
    if not (CORPUS / "resource/scores.json").is_file():
        pytest.skip(f"real-data tier: Speechocean762 not found at {CORPUS}")
    return CORPUS


@pytest.fixture(scope="session")
def whisper_dir() -> Path:
    """The shared Whisper-base encoder folder, or a skip."""
    if not (WHISPER / "config.json").is_file():
        pytest.skip(f"Whisper-base encoder not found at {WHISPER}")
    return WHISPER
