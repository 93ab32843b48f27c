"""Train the GOP baselines (Lin & Wang 2021, Table 2): gop-gbt and gop-blstm.

    pronscore train gop-gbt --features FEATURES_DIR --out RUN_DIR [--feature-set paper|all]
    pronscore train gop-blstm --features FEATURES_DIR --out RUN_DIR [--epochs 60]

Both select their model on ``--dev-split``, print its metrics table (PCC with 95% CI per level
and aspect) and write RUN_DIR atomically, with the dev metrics JSON as ``metrics.json``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pronscore.training.gop_baselines import TrainOptions, train_gop


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--features", required=True, help="FEATURES_DIR from `pronscore features`")
    p.add_argument("--out", required=True, help="RUN_DIR to write")
    p.add_argument("--train-split", default="train")
    p.add_argument("--dev-split", default="dev", help="model selection split (never test)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--negatives", metavar="FEATURES_DIR:SPLIT", action="append",
                   help="synthetic rows (`pronscore negatives`) for the reading check, train "
                   "only, never dev; repeat for several splits")  # fmt: skip
    p.add_argument("--threads", type=int, default=2, help="CPU threads (LightGBM / torch)")
    p.add_argument("--feature-set", choices=("paper", "all"), default="all",
                   help="gop-gbt: the paper's features or all features (default)")  # fmt: skip
    p.add_argument("--epochs", type=int, default=60, help="gop-blstm: maximum epochs")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for CIs")


def run(args: argparse.Namespace) -> int:
    from pronscore.evaluation.metrics import format_table

    opts = TrainOptions(
        train_split=args.train_split,
        dev_split=args.dev_split,
        seed=args.seed,
        threads=args.threads,
        feature_set=args.feature_set,
        epochs=args.epochs,
        bootstrap=args.bootstrap,
        negatives=tuple(args.negatives or ()),
    )
    metrics = train_gop(args.kind, args.features, args.out, opts)
    write_scorer_config(args.out, args.features)
    print(f"{args.kind} on {args.dev_split}:")
    print(format_table(metrics))
    print(f"run written to {args.out}")
    return 0


def write_scorer_config(run_dir: str, features_dir: str) -> None:
    """``scorer.json`` with the extractor settings of the training features: the run scores a
    recording (``pronscore score --model RUN_DIR``) the way its training data was made, even
    after FEATURES_DIR is gone."""
    from pronscore.features.cache import atomic_write_json
    from pronscore.scorer import SCORER_FILE, features_scorer_config

    config = features_scorer_config(features_dir)
    if config is not None:
        atomic_write_json(Path(run_dir) / SCORER_FILE, config.to_dict())
