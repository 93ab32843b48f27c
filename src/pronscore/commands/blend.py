"""Average the out-of-fold predictions of `pronscore cv` runs on the same folds (mixed CV).

    pronscore blend CV_DIR CV_DIR [...] --features FEATURES_DIR --out CV_DIR [--levels L,...]

Scores the mean of the runs' predictions, as an ensemble of their heads serves it
(:mod:`pronscore.evaluation.blend`); writes a CV_DIR that ``pronscore report cv`` reads.
"""

from __future__ import annotations

import argparse

from pronscore.commands.lists import names


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", metavar="CV_DIR", help="`pronscore cv` folders, 2 or more")
    p.add_argument("--features", required=True, help="FEATURES_DIR the runs were made on")
    p.add_argument("--splits", default="train,dev", help="labelled splits they pooled")
    p.add_argument("--out", required=True, help="CV_DIR to write")
    p.add_argument(
        "--levels",
        default="utterance,word,phone",
        help="levels whose scores are averaged (comma list); the others are the first run's",
    )
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for CIs")


def run(args: argparse.Namespace) -> int:
    import sys

    from pronscore.commands.cv import write_cv_dir
    from pronscore.evaluation.blend import blend_runs
    from pronscore.features.extract import concat_features, load_features

    if len(args.runs) < 2:
        print("pronscore blend: error: give two or more CV_DIRs", file=sys.stderr)
        return 2
    splits = names(args.splits)
    data = concat_features([load_features(args.features, s) for s in splits])
    levels = names(args.levels)
    metrics, rows = blend_runs(args.runs, data, levels=levels, n_boot=args.bootstrap)
    metrics.update({"features_dir": str(args.features), "splits": splits})
    write_cv_dir(args.out, metrics, rows)
    return 0
