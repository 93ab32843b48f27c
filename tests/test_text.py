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
    number_words,
    read_lexicon,
)


def test_phone_set() -> None:
    assert len(PHONES) == 39 and len(set(PHONES)) == 39
    assert base_phone("EH1_I") == "EH" and base_phone("t_e") == "T"


def test_normalize() -> None:
    assert normalize_words("We call it, bear!") == ["WE", "CALL", "IT", "BEAR"]
    assert normalize_words("Café don’t") == ["CAFE", "DON'T"]
    for bad in ("", "   ", "...", "我们 bear", "room 10000", "3.5 cats", "mp3", "Tom & Jerry"):
        with pytest.raises(TextError):
            normalize_words(bad)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("We call it 'bear'.", ["WE", "CALL", "IT", "BEAR"]),
        ('We call it "bear"!', ["WE", "CALL", "IT", "BEAR"]),
        ("\u201cbear\u201d \u2018bear\u2019 `bear`", ["BEAR", "BEAR", "BEAR"]),
        ("don't, it's \u2014 don\u2019t", ["DON'T", "IT'S", "DON'T"]),
        ("a teddy-bear -- two", ["A", "TEDDY-BEAR", "TWO"]),
        ("café naïve résumé", ["CAFE", "NAIVE", "RESUME"]),
        ("I am 3, you are 21.", ["I", "AM", "THREE", "YOU", "ARE", "TWENTY", "ONE"]),
        ("call 911", ["CALL", "NINE", "HUNDRED", "ELEVEN"]),
        ("1,000", ["ONE", "THOUSAND"]),
    ],
)
def test_normalize_quotes_hyphens_accents_numbers(text: str, words: list[str]) -> None:
    assert normalize_words(text) == words


def test_number_words() -> None:
    said = {0: "ZERO", 7: "SEVEN", 13: "THIRTEEN", 40: "FORTY", 99: "NINETY NINE",
            100: "ONE HUNDRED", 305: "THREE HUNDRED FIVE", 1000: "ONE THOUSAND",
            2024: "TWO THOUSAND TWENTY FOUR",
            9999: "NINE THOUSAND NINE HUNDRED NINETY NINE"}  # fmt: skip
    for n, words in said.items():
        assert number_words(n) == words.split()
    with pytest.raises(TextError, match="above 9999"):
        normalize_words("10000")


def test_hyphenated_word_whole_when_listed_else_parts(tmp_path: Path) -> None:
    lex_file = tmp_path / "lex.txt"
    lex_file.write_text("TEDDY-BEAR\tT EH1 D IY0 B EH2 R\n")
    whole = Lexicon.from_file(lex_file).pronounce("a teddy-bear")
    assert [(p.word, p.source) for p in whole] == [("A", "cmudict"), ("TEDDY-BEAR", "corpus")]
    parts = Lexicon().pronounce("a teddy-bear x-ray")
    assert [(p.word, p.source) for p in parts] == [
        ("A", "cmudict"), ("TEDDY", "cmudict"), ("BEAR", "cmudict"), ("X-RAY", "cmudict")
    ]  # fmt: skip


def test_accented_words_are_pronounced_from_the_dictionary() -> None:
    prons = Lexicon().pronounce("café naïve résumé")
    assert [(p.word, p.source) for p in prons] == [
        ("CAFE", "cmudict"), ("NAIVE", "cmudict"), ("RESUME", "cmudict")
    ]  # fmt: skip
    assert prons[0].phones == ("K", "AH0", "F", "EY1")


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


def test_variants_list_every_pronunciation_of_the_source_that_has_the_word() -> None:
    lex = Lexicon({"READ": [("R", "IY1", "D"), ("R", "EH1", "D")]})
    got = lex.pronounce_variants("I read")
    assert [[v.phones for v in vs] for vs in got][1] == [("R", "IY1", "D"), ("R", "EH1", "D")]
    assert [v.source for v in got[0]] == ["cmudict"] and got[0][0] == lex.lookup("I")
    assert [p.phones for p in lex.pronounce("I read")][1] == ("R", "IY1", "D")  # the first
    assert len(Lexicon().variants("zorblax")) == 1  # the fallback's one guess
