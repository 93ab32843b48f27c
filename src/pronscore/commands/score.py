"""Score your own recording against its text: ``pronscore score AUDIO --text "..."``.

One file prints a table (coloured on a terminal unless ``NO_COLOR`` is set) or, with ``--json``,
the :class:`~pronscore.schema.Assessment` JSON. ``--batch LIST.tsv --out results.jsonl`` scores
many: each line of the list is ``AUDIO<TAB>TEXT`` or ``ID<TAB>AUDIO<TAB>TEXT`` (relative paths are
relative to the list's folder; blank lines and lines starting with ``#`` are skipped). Every line
gets one JSON record, an error record (``"error"``) when that line could not be scored. Exit
status: 0 when every line was scored, 1 when some lines gave error records.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from pronscore.atomic import atomic_path
from pronscore.commands import encoder
from pronscore.errors import CorpusError, PronscoreError
from pronscore.schema import Assessment

GREEN, YELLOW, RED, DIM, BOLD, RESET = (
    "\033[32m",
    "\033[33m",
    "\033[31m",
    "\033[2m",
    "\033[1m",
    "\033[0m",
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("audio", nargs="?", help="audio file (WAV, FLAC, OGG; any rate)")
    p.add_argument("--text", help="the sentence that was read")
    p.add_argument("--model", default="default", help="'default', 'whisper' or a trained RUN_DIR")
    p.add_argument("--json", action="store_true", help="print the Assessment JSON")
    encoder.add_argument(p)
    p.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour the table (auto: on a terminal, unless NO_COLOR is set)",
    )
    p.add_argument("--batch", metavar="LIST.tsv", help="score every line of a TSV list")
    p.add_argument("--out", metavar="RESULTS.jsonl", help="where --batch writes its records")
    p.add_argument(
        "--jobs", type=int, default=1, help="worker processes for --batch (one core each)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar (--batch)")


def run(args: argparse.Namespace) -> int:
    encoder.apply(args)
    from pronscore.scorer import Scorer

    if args.batch:
        if args.audio or args.text:
            raise PronscoreError("give either AUDIO --text ... or --batch LIST.tsv, not both")
        if not args.out:
            raise PronscoreError("--batch needs --out RESULTS.jsonl")
        if args.jobs < 1:
            raise PronscoreError("--jobs must be >= 1")
        items = read_batch(args.batch)  # bad list file: clear error before loading the model
        scorer = Scorer.from_pretrained(args.model)  # a bad --model: one clear error, here
        jobs = min(args.jobs, max(1, len(items)))
        return run_batch(
            scorer, items, Path(args.out), progress=not args.quiet, jobs=jobs, model=args.model
        )
    if not args.audio or args.text is None:
        raise PronscoreError('give AUDIO and --text "the sentence" (or --batch LIST.tsv)')
    scorer = Scorer.from_pretrained(args.model)
    assessment = scorer.score(args.audio, args.text)
    if args.json:
        print(json.dumps(assessment.to_dict(), indent=2, ensure_ascii=False))
    else:
        header = f'"{args.text}"  ({args.audio}, model {scorer.name})'
        print(format_assessment(assessment, color=use_color(args.color), header=header))
    return 0


def use_color(mode: str, stream: TextIO | None = None) -> bool:
    """``auto``: only on a terminal, never with ``NO_COLOR`` set or ``TERM=dumb``."""
    if mode != "auto":
        return mode == "always"
    stream = stream or sys.stdout
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return bool(getattr(stream, "isatty", lambda: False)())


# ---------------------------------------------------------------------- the table


def _level(value: float | None, top: float) -> str:
    if value is None:
        return DIM
    frac = value / top
    return GREEN if frac >= 0.8 else YELLOW if frac >= 0.5 else RED


def _num(value: float | None, top: float, width: int, color: bool) -> str:
    text = ("-" if value is None else f"{value:.1f}").rjust(width)
    return f"{_level(value, top)}{text}{RESET}" if color else text


def format_assessment(a: Assessment, *, color: bool = False, header: str | None = None) -> str:
    """A readable table: the five utterance scores, then one line per word with its phones."""
    bold = (lambda s: f"{BOLD}{s}{RESET}") if color else (lambda s: s)
    lines = [header, ""] if header else []
    if a.status != "ok":
        scored = a.status == "mismatch" and any(v for v in a.utterance.to_dict().values())
        msg = f"{'text mismatch' if scored else 'could not score'}: {a.reason}"
        lines += [f"{RED}{msg}{RESET}" if color else msg, ""]
    elif a.reason:
        lines += [f"note: {a.reason}", ""]
    u = a.utterance.to_dict()
    lines.append(bold("  ".join(name.rjust(12) for name in u)))
    lines.append("  ".join(_num(v, 10.0, 12, color) for v in u.values()))
    lines.append("")
    width = max([4, *(len(w.text) for w in a.words)])
    lines.append(bold(f"{'word'.ljust(width)}  accuracy  stress  total  phones (0-2)"))
    for w in a.words:
        phones = " ".join(
            f"{p.phone}:{_num(p.score, 2.0, 1, color).strip() if p.score is not None else '-'}"
            + (f"({p.heard}?)" if p.heard else "")
            for p in w.phones
        )
        flag = " (not read)" if w.status == "omitted" else " *" if w.mispronounced else ""
        lines.append(
            f"{w.text.ljust(width)}  {_num(w.accuracy, 10.0, 8, color)}"
            f"  {_num(w.stress, 10.0, 6, color)}  {_num(w.total, 10.0, 5, color)}"
            f"  {phones}{flag}"
        )
    if a.inserted:
        spans = ", ".join(f"{s:.2f}-{e:.2f} s" for s, e in a.inserted)
        lines.append(f"extra speech (not in the text): {spans}")
    if (why := _from_words(a)) is not None:
        lines += ["", why]
    if a.channel is not None and a.channel >= POOR_CHANNEL:
        lines.append(
            f"the recording sounds like a phone line or a noisy room (P {a.channel:.2f}): the "
            "sentence scores lean on trees trained on such recordings"
        )
    lines.append("")
    lines.append(
        "scores: utterance and word 0-10, phone 0-2 (Speechocean762); * mispronounced; "
        "(X?) sounded like X"
    )
    return "\n".join(lines)


POOR_CHANNEL = 0.98
"""The channel gate's P above which the table says so: out of fold (default recipe, 2,500
readings) 0.4% of the clean readings, 37% of their 8 kHz copies and 99.3% of those in white
noise at 15 dB reach it."""


def _from_words(a: Assessment, most: int = 3) -> str | None:
    """Why the sentence sits below its words: the accuracy its words alone give on the
    experts' scale, and the words that cost it most (pronscore.levels)."""
    if a.from_words is None:
        return None
    costly = [w for w in a.words if (w.sentence_cost or 0.0) >= 0.05]  # shows as -0.1 or more
    costly.sort(key=lambda w: -w.sentence_cost)
    worst = ", ".join(f"{w.text} -{w.sentence_cost:.1f}" for w in costly[:most])
    return (
        f"sentence accuracy from the words alone: {a.from_words:.1f} (experts rate a sentence "
        "below its words: a word at 8 is already an error)"
        + (f"; costing most: {worst}" if worst else "")
    )


# ---------------------------------------------------------------------- batches


@dataclass(frozen=True)
class BatchItem:
    line: int
    id: str | None
    audio: str | None
    text: str | None
    error: str | None = None  # a malformed line: reported, not scored


def read_batch(path: str | os.PathLike) -> list[BatchItem]:
    """Parse the list; malformed lines become items carrying their error."""
    p = Path(path)
    if not p.is_file():
        raise CorpusError("batch list not found", path=p)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CorpusError(f"batch list is not UTF-8 text ({exc})", path=p) from exc
    items = []
    for n, raw in enumerate(text.splitlines(), 1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        cols = raw.rstrip("\r").split("\t")
        if len(cols) == 2:
            uid, audio, sent = None, cols[0], cols[1]
        elif len(cols) == 3:
            uid, audio, sent = cols
        else:
            want = "AUDIO<TAB>TEXT or ID<TAB>AUDIO<TAB>TEXT"
            msg = f"{p}:{n}: expected {want}, got {len(cols)} column(s)"
            items.append(BatchItem(n, None, None, None, msg))
            continue
        audio = audio.strip()
        resolved = audio if Path(audio).is_absolute() else str(p.parent / audio)
        items.append(BatchItem(n, uid.strip() if uid else None, resolved, sent.strip()))
    return items


def score_item(scorer: Any, it: BatchItem) -> dict[str, Any]:
    """One record; a failure becomes an error record, never an exception."""
    record: dict[str, Any] = {"line": it.line, "id": it.id or it.audio, "audio": it.audio,
                              "text": it.text}  # fmt: skip
    if it.error is not None:
        return {**record, "error": it.error, "error_type": "CorpusError"}
    try:
        return {**record, **scorer.score(it.audio, it.text).to_dict()}
    except PronscoreError as err:
        return {**record, "error": str(err), "error_type": type(err).__name__}
    except Exception as exc:  # a batch reports what it could not do and goes on
        return {**record, "error": f"internal error: {exc}", "error_type": type(exc).__name__}


def score_items(scorer: Any, items: list[BatchItem]) -> Iterator[dict[str, Any]]:
    """One record per item, in order; a failure of one item never stops the others."""
    for it in items:
        yield score_item(scorer, it)


def run_batch(
    scorer: Any,
    items: list[BatchItem],
    out: Path,
    *,
    progress: bool = True,
    jobs: int = 1,
    model: str | None = None,
) -> int:
    """Write one record per item to ``out`` (atomically). ``jobs > 1`` scores ``model`` in
    that many processes; ``scorer`` may then be ``None``."""
    from tqdm.auto import tqdm

    errors = 0
    if jobs > 1 and model is None:
        raise PronscoreError("--jobs needs the model's name or folder")
    if jobs > 1:
        from pronscore.parallel import map_scorer

        records = map_scorer(score_item, model, items, jobs)
    else:
        records = score_items(scorer, items)
    with atomic_path(out) as tmp, tmp.open("w", encoding="utf-8") as f:
        for rec in tqdm(records, total=len(items), desc="score", unit="file",
                        disable=not progress):  # fmt: skip
            errors += "error" in rec
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    print(f"{len(items) - errors} scored, {errors} error(s) -> {out}", file=sys.stderr)
    return 1 if errors else 0
