"""Make synthetic negatives (train audio against the wrong text) as an extra FEATURES_DIR split.

    pronscore negatives DATASET_DIR --out FEATURES_DIR [--kinds other-text,substitute]
        [--per-utt 1] [--seed 0] [--split train] [--name train_neg] [--like FEATURES_DIR]
        [--limit N] [--jobs N]

Extractor settings: those of ``--like`` (a FEATURES_DIR's meta.json), else of ``--out`` when it
is already a FEATURES_DIR, else the recommended ones. Train with them through
``pronscore train default|gop-gbt ... --negatives FEATURES_DIR:SPLIT``.
"""

from __future__ import annotations

import argparse

from pronscore.commands.lists import names
from pronscore.errors import PronscoreError
from pronscore.training.negatives import ALL_KINDS, KINDS, NegativeOptions, make_negatives


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset_dir", help="DATASET_DIR written by `pronscore prepare`")
    p.add_argument("--out", required=True, help="FEATURES_DIR to add the split to")
    p.add_argument(
        "--kinds",
        default=",".join(KINDS),
        help=f"comma-separated kinds among {', '.join(ALL_KINDS)} (default: the two negatives)",
    )
    p.add_argument("--per-utt", type=int, default=1, help="negatives of each kind per utterance")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", default="train", help="dataset split the audio comes from")
    p.add_argument("--name", default=None, help="output split name (default: SPLIT_neg)")
    p.add_argument("--like", default=None, help="FEATURES_DIR whose extractor settings to use")
    p.add_argument("--limit", type=int, default=None, help="only the first N source utterances")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from pronscore.training.negatives import extractor_config_of

    try:
        options = NegativeOptions(
            kinds=tuple(names(args.kinds)),
            per_utt=args.per_utt,
            seed=args.seed,
        )
    except ValueError as exc:
        raise PronscoreError(str(exc)) from None
    split_dir = make_negatives(
        args.dataset_dir,
        args.out,
        options,
        split=args.split,
        name=args.name,
        config=extractor_config_of(args.like) if args.like else None,
        limit=args.limit,
        jobs=max(1, args.jobs),
        progress=not args.quiet,
    )
    print(f"negatives written to {split_dir}")
    return 0
