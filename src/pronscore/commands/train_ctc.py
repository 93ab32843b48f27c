"""Train the CTC phone recogniser over a frozen encoder (:mod:`pronscore.acoustic.phone_ctc`).

    pronscore train ctc --data DATASET_DIR --features FEATURES_DIR --frames CACHE_DIR \\
        --out RUN_DIR [--folds 5] [--epochs 12] [--encoder ID_OR_PATH]

Targets are the canonical phones of every utterance of ``--splits`` (default train,dev). The
encoder's hidden states are cached once in CACHE_DIR (utterances it lacks are encoded, with
``--encoder``, else ``$PRONSCORE_WHISPER``). With ``--folds K`` (default 5, the folds of
``pronscore cv``) RUN_DIR also holds one recogniser per speaker fold, trained without it:
``pronscore features --ctc RUN_DIR`` gives labelled utterances their out-of-fold columns.
"""

from __future__ import annotations

import argparse

from pronscore.acoustic.phone_ctc import PhoneCtcConfig
from pronscore.commands.lists import names
from pronscore.features.encoder import parse_layers
from pronscore.training.phone_ctc import CtcTrainOptions


def add_arguments(p: argparse.ArgumentParser) -> None:
    d, c = CtcTrainOptions(), PhoneCtcConfig()
    p.add_argument("--data", required=True, help="DATASET_DIR from `pronscore prepare`")
    p.add_argument("--features", required=True, help="FEATURES_DIR: canonical phones, speakers")
    p.add_argument("--frames", required=True, help="encoder frames cache (CACHE_DIR)")
    p.add_argument("--out", required=True, help="RUN_DIR to write")
    p.add_argument("--splits", default="train,dev", help="labelled splits to train on")
    p.add_argument(
        "--encoder", help="Whisper encoder to fill the cache (default $PRONSCORE_WHISPER)"
    )
    p.add_argument(
        "--layers",
        default="-".join(map(str, (c.layers[0], c.layers[-1]))),
        help="hidden states the recogniser mixes (default %(default)s)",
    )
    p.add_argument("--hidden", type=int, default=c.hidden)
    p.add_argument("--folds", type=int, default=5, help="speaker folds (0: one recogniser)")
    p.add_argument("--fold-seed", type=int, default=1)
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--threads", type=int, default=d.threads)
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pronscore.commands.features import encode_missing
    from pronscore.features.extract import concat_features, load_features
    from pronscore.features.frames_cache import read_meta
    from pronscore.training.phone_ctc import check_cache, load_ctc_data, train_cross_fitted

    splits = names(args.splits)
    for split in splits:
        encode_missing(
            args.data,
            Path(args.features),
            split,
            args.frames,
            None,
            args.encoder,
            threads=args.threads,
            progress=not args.quiet,
        )
    tables = concat_features([load_features(args.features, s) for s in splits])
    dim = int(read_meta(args.frames)["dim"])
    config = PhoneCtcConfig(layers=parse_layers(args.layers), dim=dim, hidden=args.hidden)
    encoder = check_cache(args.frames, config)
    data = load_ctc_data(tables.phones, args.frames, config.layers)
    opts = CtcTrainOptions(epochs=args.epochs, seed=args.seed, threads=args.threads)
    train_cross_fitted(
        tables.utterances,
        data,
        args.out,
        config=config,
        opts=opts,
        folds=args.folds,
        fold_seed=args.fold_seed,
        encoder=encoder,
        log=lambda m: print(m, flush=True),
    )
    print(f"recogniser written to {args.out}")
    return 0
