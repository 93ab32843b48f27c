"""Speaker-grouped K-fold cross-validation of a head over the labelled splits of a FEATURES_DIR.

    pronscore cv gop-gbt --features FEATURES_DIR --folds 5 --out CV_DIR [--seeds 1] [--ensemble]

Writes ``CV_DIR/cv.json`` (the ``pronscore evaluate`` layout per fold in ``folds`` and for the
pooled out-of-fold predictions in ``pooled``; with ``--ensemble`` the seeds' averaged predictions,
per fold in ``ensemble_folds``) and ``CV_DIR/predictions.jsonl`` (id, seed, fold
and the out-of-fold assessment), atomically; prints a short table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pronscore.commands import recipe as recipe_option
from pronscore.commands.lists import ints, names
from pronscore.commands.train_hier import add_model_arguments
from pronscore.errors import PronscoreError
from pronscore.training.cv import KINDS
from pronscore.training.recipe import GOP_ONLY


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", choices=KINDS, help="the head to cross-validate")
    p.add_argument("--features", required=True, help="FEATURES_DIR from `pronscore features`")
    p.add_argument("--out", required=True, help="CV_DIR to write")
    p.add_argument("--folds", type=int, default=5, help="number of speaker folds")
    p.add_argument("--splits", default="train,dev", help="labelled splits to pool (comma list)")
    p.add_argument(
        "--copies",
        default=None,
        help="splits of FEATURES_DIR with channel copies of the pooled recordings (`pronscore "
        "negatives --kinds band-8k,noise --name SPLIT`), comma list: each fold scores its own "
        "recordings' copies (cv.json `channels`); with --channel-copies they also train",
    )
    p.add_argument("--fold-seed", type=int, default=1, help="speaker -> fold assignment")
    p.add_argument(
        "--seeds", type=ints, default=(1,), help="model seeds, comma-separated (one CV each)"
    )
    p.add_argument(
        "--ensemble",
        action="store_true",
        help="score the seeds' averaged predictions, as `train default --ensemble N` serves them",
    )
    p.add_argument(
        "--val-fraction",
        type=float,
        default=0.1,
        help="training-fold speakers held out for early stopping / selection",
    )
    p.add_argument("--threads", type=int, default=2, help="CPU threads (LightGBM / torch)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for CIs")
    p.add_argument("--feature-set", choices=("paper", "all"), default="all", help="gop-gbt")
    p.add_argument(
        "--num-leaves", type=ints, help="gop-gbt: num_leaves grid, comma-separated (7,15,31)"
    )
    p.add_argument("--max-rounds", type=int, help="gop-gbt: boosting rounds cap (3000)")
    recipe_option.add_arguments(p, defaults=GOP_ONLY)
    p.add_argument("--epochs", type=int, help="gop-blstm / hier: maximum epochs")
    p.add_argument("--inputs", default="gop", help="hier: its --inputs")
    add_model_arguments(p)


def run(args: argparse.Namespace) -> int:
    from pronscore.features.extract import concat_features, extractor_config_of, load_features
    from pronscore.training.cv import CvOptions, cross_validate

    opts = CvOptions(
        folds=args.folds,
        fold_seed=args.fold_seed,
        seeds=args.seeds,
        val_fraction=args.val_fraction,
        threads=args.threads,
        bootstrap=args.bootstrap,
        feature_set=args.feature_set,
        num_leaves=args.num_leaves or None,
        max_rounds=args.max_rounds,
        recipe=recipe_option.from_args(args),
        epochs=args.epochs,
        inputs=args.inputs,
        arch=args.arch,
        pcc_weight=args.pcc_weight,
        select_on=args.select_on,
        ensemble=args.ensemble,
    )
    splits = names(args.splits)
    data = concat_features([load_features(args.features, s) for s in splits])
    copy_splits = names(args.copies) if args.copies else []
    copies = load_copies(args.features, copy_splits) if copy_splits else None
    if opts.recipe.channel_copies and copies is None:
        raise PronscoreError("--channel-copies trains on channel copies: name them with --copies")
    result = cross_validate(
        args.kind, data, opts, log=lambda m: print(m, file=sys.stderr), copies=copies
    )
    made = Path(args.features, "meta.json").is_file()  # how its features were made, if known
    extractor = extractor_config_of(args.features).to_dict() if made else None
    result.metrics.update(
        {
            "features_dir": str(args.features),
            "splits": splits,
            "copies": copy_splits,
            "extractor": extractor,
        }
    )
    write_cv_dir(args.out, result.metrics, result.predictions, result.copies)
    return 0


def load_copies(features_dir: str, splits: list[str]):
    """The channel-copy splits as one; any other row (a negative, a human reading) is an
    error naming its split."""
    from pronscore.features.extract import concat_features, load_features
    from pronscore.training.negatives import CHANNEL

    parts = []
    for name in splits:
        split = load_features(features_dir, name)
        kinds = split.utterances.get("synthetic")
        if kinds is None or not kinds.isin(list(CHANNEL)).all():
            raise PronscoreError(
                f"{features_dir}/{name}: --copies takes channel copies only "
                f"(`pronscore negatives --kinds {','.join(CHANNEL)}`)"
            )
        parts.append(split)
    return concat_features(parts)


def write_cv_dir(out: str, metrics: dict, predictions, copies=None) -> None:
    """CV_DIR/cv.json and predictions.jsonl (id, seed, fold, assessment), with channel copies
    their out-of-fold assessments in copies.jsonl (id, assessment), atomically; prints the
    summary."""
    from pronscore.atomic import replace_dir
    from pronscore.evaluation.metrics import format_table

    with replace_dir(out) as tmp:
        (tmp / "cv.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
        lines = (
            json.dumps({"id": uid, "seed": seed, "fold": fold, **a.to_dict()})
            for seed, fold, uid, a in predictions
        )
        (tmp / "predictions.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        if copies:
            rows = (json.dumps({"id": uid, **a.to_dict()}) for uid, a in copies.items())
            (tmp / "copies.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    print(summary(metrics, format_table))
    print(f"cross-validation written to {out}")


def _num(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _pcc(m: dict) -> str:
    return _num(m.get("utterance", {}).get("total", {}).get("pcc"))


def summary(metrics: dict, format_table) -> str:
    """Per-fold utterance-total PCC, the pooled table and the child / adult lines."""
    m = metrics["pooled"]
    lines = [f"{metrics['kind']}: {metrics['n_folds']}-fold speaker CV, seeds {metrics['seeds']}"]
    lines += [
        f"seed {f['seed']} fold {f['fold']}: {f['n_utterances']} utts, utterance total PCC "
        f"{_pcc(f)}"
        for f in metrics["folds"]
    ]
    for f in metrics.get("ensemble_folds", []):
        lines.append(f"ensemble fold {f['fold']}: utterance total PCC {_pcc(f)}")
    what = "the seeds' average" if "ensemble_folds" in metrics else f"seed {metrics['seeds'][0]}"
    lines.append(f"pooled out-of-fold ({what}):")
    lines.append(format_table(m))
    for g in ("child", "adult"):
        sub = m.get("subgroups", {}).get(g)
        if sub:
            lines.append(f"{g}: {sub['n_utterances']} utts, utterance total PCC {_pcc(sub)}")
    for kind, c in metrics.get("channels", {}).items():
        lines.append(
            f"{kind} copies: {c['n']}, utterance total PCC with clean {_num(c['pcc_clean'])}, "
            f"mean |delta| {_num(c['mean_abs_delta'])}, PCC with experts {_num(c['pcc_human'])}"
        )
    lines.append(f"CPU {metrics['cpu_seconds']:.0f} s")
    return "\n".join(lines)
