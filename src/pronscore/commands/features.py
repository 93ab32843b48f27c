"""Align every utterance with pocketsphinx and extract GOP / prosody features (resumable).

Defaults: :data:`pronscore.features.extract.RECOMMENDED` (the shipped default's settings).
"""

from __future__ import annotations

import argparse

from pronscore.acoustic.pocketsphinx import ModelConfig
from pronscore.features.extract import RECOMMENDED, ExtractorConfig, extract_dataset


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
    rec = RECOMMENDED
    p.add_argument(
        "--aligner",
        choices=("pocketsphinx", "viterbi"),
        default=rec.model.aligner,
        help="one decoder pass + numpy Viterbi over the model's HMMs (default; no beam "
        "failures, ~2.5x faster) or pocketsphinx's own two-pass state alignment",
    )
    p.add_argument(
        "--topn",
        type=int,
        default=rec.model.topn,
        help="Gaussians per codebook in each senone score (fewer: faster, coarser)",
    )
    p.add_argument(
        "--level-dbfs",
        type=_optional_float,
        default=rec.level_dbfs,
        help="scale speech to this level before scoring ('none': as recorded)",
    )
    p.add_argument(
        "--trim-db",
        type=_optional_float,
        default=rec.trim_db,
        help="cut leading/trailing audio this far below the speech level ('none': keep)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _optional_float(text: str) -> float | None:
    return None if text.lower() == "none" else float(text)


def run(args: argparse.Namespace) -> int:
    splits = [s.strip() for s in args.splits.split(",") if s.strip()] if args.splits else None
    out = extract_dataset(
        args.dataset_dir,
        args.out,
        splits=splits,
        jobs=max(1, args.jobs),
        limit=args.limit,
        progress=not args.quiet,
        config=ExtractorConfig(
            model=ModelConfig(aligner=args.aligner, topn=args.topn),
            level_dbfs=args.level_dbfs,
            trim_db=args.trim_db,
        ),
    )
    print(f"features written to {out}")
    return 0
