"""Align every utterance with pocketsphinx and extract GOP / prosody features (resumable);
with ``--encoder``, also per-phone encoder vectors (:mod:`pronscore.features.encoder`).

Defaults: :data:`pronscore.features.extract.RECOMMENDED` (the shipped default's settings).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pronscore.acoustic.pocketsphinx import ModelConfig
from pronscore.commands.lists import names
from pronscore.errors import PronscoreError
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
        "--warp",
        type=_optional_float,
        default=rec.model.warp,
        help="vocal-tract length normalisation: divide the front end's frequencies by this "
        "(e.g. 1.15; 'none': no warping)",
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
    p.add_argument(
        "--encoder",
        metavar="ID_OR_PATH",
        help="also pool this Whisper encoder's hidden states over every aligned phone "
        "(hub id, e.g. openai/whisper-base, or a local folder); models trained on these "
        "features read them",
    )
    p.add_argument(
        "--layers",
        default="4",
        help="encoder hidden states to pool, e.g. 4, 3-6 or 2,4,6 (0 = embeddings; default 4)",
    )
    p.add_argument(
        "--ctc",
        metavar="RUN_DIR",
        help="also add the columns of this CTC phone recogniser (`pronscore train ctc`): "
        "alignment-free GOP and the phone heard, per phone (p_ctc_*, ctc_heard)",
    )
    p.add_argument(
        "--frames",
        metavar="CACHE_DIR",
        help="with --ctc: the encoder frames cache (missing utterances are encoded into it)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _optional_float(text: str) -> float | None:
    return None if text.lower() == "none" else float(text)


def run(args: argparse.Namespace) -> int:
    splits = names(args.splits) or None
    out = extract_dataset(
        args.dataset_dir,
        args.out,
        splits=splits,
        jobs=max(1, args.jobs),
        limit=args.limit,
        progress=not args.quiet,
        config=ExtractorConfig(
            model=ModelConfig(aligner=args.aligner, topn=args.topn, warp=args.warp),
            level_dbfs=args.level_dbfs,
            trim_db=args.trim_db,
        ),
    )
    if args.encoder:
        from pronscore.features.encoder import EncoderSpec, extract_split_vectors, parse_layers

        # a local folder is recorded absolute, so runs trained here score from any folder
        local = Path(args.encoder)
        model = str(local.resolve()) if local.is_dir() else args.encoder
        spec = EncoderSpec(model=model, layers=parse_layers(args.layers))
        for split in splits or _splits_in(out):
            extract_split_vectors(
                args.dataset_dir,
                out,
                split,
                spec,
                threads=max(1, args.jobs),
                progress=not args.quiet,
            )
    if args.ctc:
        _add_ctc(args, out, splits or _splits_in(out))
    print(f"features written to {out}")
    return 0


def _add_ctc(args: argparse.Namespace, out: Path, splits: list[str]) -> None:
    from pronscore.features.ctc_store import extract_split_ctc

    if not args.frames:
        raise PronscoreError("--ctc needs --frames CACHE_DIR (the encoder frames it reads)")
    for split in splits:
        encode_missing(
            args.dataset_dir,
            out,
            split,
            args.frames,
            args.ctc,
            args.encoder,
            threads=max(1, args.jobs),
            progress=not args.quiet,
        )
        extract_split_ctc(out, split, args.ctc, args.frames, progress=not args.quiet)


def encode_missing(
    dataset_dir: str,
    features_dir: Path,
    split: str,
    frames: str,
    run_dir: str | None,
    encoder: str | None,
    **kw,
) -> int:
    """Encode into the frames cache the utterances of ``split`` it lacks, with ``encoder``,
    else ``$PRONSCORE_WHISPER``, else the recogniser's own encoder."""
    import os

    import pandas as pd

    from pronscore.acoustic.phone_ctc import PhoneRecogniser
    from pronscore.features.deep import WHISPER_ENV, dataset_audio
    from pronscore.features.frames_cache import cache_frames, state_path

    ids = pd.read_parquet(Path(features_dir) / split / "utterances.parquet", columns=["id"])
    todo = [u for u in ids["id"].astype(str) if not state_path(frames, u).is_file()]
    if not todo:
        return 0
    model = encoder or os.environ.get(WHISPER_ENV)
    model = model or PhoneRecogniser.from_pretrained(run_dir).encoder
    return cache_frames(todo, dataset_audio(dataset_dir, [split]), frames, model=model, **kw)


def _splits_in(features_dir) -> list[str]:
    return sorted(p.parent.name for p in features_dir.glob("*/utterances.parquet"))
