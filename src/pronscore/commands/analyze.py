"""``pronscore analyze pca``: PCA of features written by ``pronscore extract``.

Writes ``pca.json`` (explained variance, PC-score correlations, and with ``--eval`` a held-out
PC-subset curve) and ``pca_scatter.png`` (PC1-PC2 coloured by the chosen aspect).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from pronscore.atomic import atomic_write_text
from pronscore.constants import UTTERANCE_ASPECTS


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="analysis", metavar="ANALYSIS", required=True)
    pca = sub.add_parser("pca", help="PCA of pooled features (fitted on FEATURES)")
    pca.add_argument("features", help="FILE from `pronscore extract --pooling mean`")
    pca.add_argument("--out", required=True, help="folder for pca.json and pca_scatter.png")
    pca.add_argument("--aspect", choices=UTTERANCE_ASPECTS, default="total")
    pca.add_argument("--components", type=int, default=10, help="PCs to correlate / report")
    pca.add_argument("--eval", help="held-out FEATURES file: PC-subset ridge curve")


def run(args: argparse.Namespace) -> int:
    from pronscore.analysis.pca import (
        fit_pca,
        pc_score_correlations,
        pc_subset_curve,
        scatter_png,
    )
    from pronscore.commands.extract import read_arrays
    from pronscore.errors import ModelError

    data = read_arrays(args.features)
    if "features" not in data:
        raise ModelError("needs pooled features (extract --pooling mean)", path=args.features)
    x, y = data["features"], data["labels"]
    pca = fit_pca(x)
    pcs = pca.transform(x)
    j = UTTERANCE_ASPECTS.index(args.aspect)
    k = args.components
    result = {
        "features": str(Path(args.features).resolve()),
        "n": len(x),
        "dim": int(x.shape[1]),
        "explained_variance_ratio": pca.explained_variance_ratio[:k].tolist(),
        "cumulative": np.cumsum(pca.explained_variance_ratio)[:k].tolist(),
        "pc_score_pcc": pc_score_correlations(pcs, y, UTTERANCE_ASPECTS, k),
    }
    if args.eval:
        held = read_arrays(args.eval)
        result["pc_subset"] = {
            "eval": str(Path(args.eval).resolve()),
            "aspect": args.aspect,
            "pcc_by_k": pc_subset_curve(pca, (x, y), (held["features"], held["labels"]), j),
        }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    scatter_png(pcs, y[:, j], out / "pca_scatter.png", args.aspect)
    atomic_write_text(out / "pca.json", json.dumps(result, indent=2))
    print(json.dumps({"explained_variance_ratio": result["explained_variance_ratio"][:3],
                      "pc_subset": result.get("pc_subset", {}).get("pcc_by_k")}))  # fmt: skip
    return 0
