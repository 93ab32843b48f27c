"""Align every utterance with pocketsphinx and extract GOP / prosody features (resumable)."""

from __future__ import annotations

import argparse

from pronscore.acoustic.pocketsphinx import ModelConfig
from pronscore.features.extract import ExtractorConfig, extract_dataset


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset_dir", help="DATASET_DIR written by `pronscore prepare`")
    p.add_argument("--out", required=True, help="output FEATURES_DIR")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    p.add_argument(
        "--splits", default=None, help="comma-separated splits (default: all in the dataset)"
    )
    p.add_argument(
        "--limit", type=int, default=None, help="at most N utterances per split (smoke runs)"
    )
    p.add_argument(
        "--aligner",
        choices=("pocketsphinx", "viterbi"),
        default="pocketsphinx",
        help="pocketsphinx two-pass state alignment (default) or the one-pass numpy Viterbi "
        "over the same HMMs (about 2.5x faster)",
    )
    p.add_argument(
        "--topn",
        type=int,
        default=ModelConfig.topn,
        help="Gaussians per codebook in each senone score (fewer: faster, coarser)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    splits = [s.strip() for s in args.splits.split(",") if s.strip()] if args.splits else None
    out = extract_dataset(
        args.dataset_dir,
        args.out,
        splits=splits,
        jobs=max(1, args.jobs),
        limit=args.limit,
        progress=not args.quiet,
        config=ExtractorConfig(model=ModelConfig(aligner=args.aligner, topn=args.topn)),
    )
    print(f"features written to {out}")
    return 0
