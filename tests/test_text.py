"""Text normalisation and pronunciation lookup."""

from __future__ import annotations

from pathlib import Path

import pytest

from pronscore.errors import CorpusError, TextError
from pronscore.text import (
    PHONES,
    Lexicon,
    base_phone,
    letter_to_sound,
    normalize_words,
    read_lexicon,
)


def test_phone_set() -> None:
    assert len(PHONES) == 39 and len(set(PHONES)) == 39
    assert base_phone("EH1_I") == "EH" and base_phone("t_e") == "T"


def test_normalize() -> None:
    assert normalize_words("We call it, bear!") == ["WE", "CALL", "IT", "BEAR"]
    assert normalize_words("Café don’t") == ["CAFE", "DON'T"]
    for bad in ("", "   ", "...", "我们 bear", "room 101"):
        with pytest.raises(TextError):
            normalize_words(bad)


def test_lookup_order(tmp_path: Path) -> None:
    lex_file = tmp_path / "lex.txt"
    lex_file.write_text("BEAR\tB EH0 R\nBEAR\tB AE1 R\n")
    lex = Lexicon.from_file(lex_file)
    assert lex.lookup("bear").phones == ("B", "EH0", "R") and lex.lookup("bear").source == "corpus"
    assert lex.lookup("table").source == "cmudict"
    unknown = lex.lookup("zyxtrophane")
    assert unknown.source == "fallback" and all(base_phone(p) in PHONES for p in unknown.phones)
    with pytest.raises(TextError, match="in no lexicon"):
        Lexicon(use_cmudict=False, fallback=False).lookup("table")


def test_letter_to_sound_stress() -> None:
    assert letter_to_sound("SHIP") == ("SH", "IH1", "P")
    assert letter_to_sound("BANANA")[1] == "AE1"


def test_bad_lexicon(tmp_path: Path) -> None:
    p = tmp_path / "lex.txt"
    p.write_text("BEAR B EH0 R\nTABLE\n")
    with pytest.raises(CorpusError, match=r"lex.txt:2"):
        read_lexicon(p)
    p.write_text("BEAR B XX R\n")
    with pytest.raises(CorpusError, match="unknown phone 'XX'"):
        read_lexicon(p)
