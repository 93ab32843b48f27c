"""Join trained runs into one served model that averages their scores (a mixed ensemble).

    pronscore ensemble RUN_DIR RUN_DIR [...] --out RUN_DIR [--levels utterance,word]

The members are saved under ``members/``; the first run's ``scorer.json`` and lexicon become the
ensemble's (how recordings are aligned and pronounced), and its checks decide status and flags
(:mod:`pronscore.heads.ensemble`). ``pronscore blend`` scores the same average over CV runs.
"""

from __future__ import annotations

import argparse

from pronscore.commands import lists


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "runs", nargs="+", metavar="RUN_DIR", help="trained runs, 'default' or 'whisper'"
    )
    p.add_argument("--out", required=True, help="RUN_DIR to write")
    p.add_argument(
        "--levels",
        default="utterance,word,phone",
        help="levels whose scores are averaged (comma list); the others are the first run's",
    )
    p.add_argument("--names", help="member names, comma-separated (default member-1, ...)")


def run(args: argparse.Namespace) -> int:
    import sys

    from pronscore.heads.ensemble import EnsembleHead, check_levels
    from pronscore.runs import load_predictor
    from pronscore.scorer import resolve_model, save_head_like

    names = lists.names(args.names)
    names = names or [f"member-{k + 1}" for k in range(len(args.runs))]
    levels = check_levels(lists.names(args.levels))  # before any member loads
    problem = (
        "give two or more RUN_DIRs" if len(args.runs) < 2
        else "one name per RUN_DIR" if len(names) != len(args.runs)
        else None
    )  # fmt: skip
    if problem:
        print(f"pronscore ensemble: error: {problem}", file=sys.stderr)
        return 2
    members = tuple(load_predictor(resolve_model(r)[1]) for r in args.runs)
    extra = {"levels": list(levels), "sources": [str(r) for r in args.runs]}
    save_head_like(EnsembleHead(members, tuple(names), extra), args.runs[0], args.out)
    print(
        f"ensemble of {len(names)} ({', '.join(names)}), averaging {', '.join(levels)}: {args.out}"
    )
    return 0
