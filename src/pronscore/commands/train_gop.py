"""Train the GOP baselines (Lin & Wang 2021, Table 2): gop-gbt and gop-blstm."""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from pronscore.features.extract import load_features


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--features", required=True, help="FEATURES_DIR from `pronscore features`")
    p.add_argument("--out", required=True, help="RUN_DIR to write")
    p.add_argument("--train-split", default="train")
    p.add_argument("--dev-split", default="dev", help="model selection split (never test)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--feature-set", choices=("paper", "all"), default="all",
                   help="gop-gbt: the paper's features or all features (default)")  # fmt: skip
    p.add_argument("--epochs", type=int, default=60, help="gop-blstm: maximum epochs")


def run(args: argparse.Namespace) -> int:
    train = load_features(args.features, args.train_split)
    dev = load_features(args.features, args.dev_split)
    out = Path(args.out)
    started = time.perf_counter()
    if args.kind == "gop-gbt":
        from pronscore.heads.gbt import GbtConfig
        from pronscore.training.gbt import fit_gbt

        head, dev_pcc = fit_gbt(train, dev, GbtConfig(feature_set=args.feature_set, seed=args.seed,
                                                      threads=args.threads))  # fmt: skip
    else:
        from pronscore.heads.blstm import BlstmConfig
        from pronscore.training.blstm import fit_blstm

        head, dev_pcc = fit_blstm(train, dev, BlstmConfig(seed=args.seed, epochs=args.epochs))
    head.extra.update({
        "features_dir": str(Path(args.features).resolve()),
        "run_dir": str(out.resolve()),
        "dev_pcc": dev_pcc,
        "train_seconds": round(time.perf_counter() - started, 1),
    })  # fmt: skip
    save_run(head, out)
    print(json.dumps({"run": str(out), "dev_pcc": dev_pcc}, indent=2))
    return 0


def save_run(head, out: Path) -> None:
    """Write to a sibling temp folder, then swap it in: no half-written RUN_DIR."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        head.save_pretrained(tmp)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
