"""Read a corpus into a datasets.DatasetDict (train, speaker-disjoint dev, test)."""

from __future__ import annotations

import argparse

from pronscore.dataset import PrepareConfig, prepare_dataset


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("corpus_dir", help="Speechocean762 root (original layout or parquet export)")
    p.add_argument("--out", required=True, help="output DATASET_DIR")
    p.add_argument(
        "--dev-speakers", type=float, default=0.1, help="fraction of train speakers held out"
    )
    p.add_argument("--seed", type=int, default=0)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--strict", action="store_true", help="stop at the first bad utterance")
    mode.add_argument(
        "--lenient", dest="strict", action="store_false", help="skip and report (default)"
    )
    p.add_argument("--max-duration", type=float, default=60.0, help="longest audio accepted (s)")
    p.add_argument(
        "--limit", type=int, default=None, help="at most N utterances per split (smoke runs)"
    )
    p.add_argument(
        "--force", action="store_true", help="rebuild even when the output is up to date"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    config = PrepareConfig(args.dev_speakers, args.seed, args.strict, args.max_duration)
    prepare_dataset(
        args.corpus_dir,
        args.out,
        config,
        limit=args.limit,
        force=args.force,
        progress=not args.quiet,
    )
    return 0
