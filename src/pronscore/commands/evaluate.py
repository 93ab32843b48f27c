"""Score a prepared split with a trained run and print or write the metrics JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pronscore.atomic import atomic_write_text
from pronscore.commands import encoder
from pronscore.dataset import load_split, split_references
from pronscore.evaluation.metrics import N_BOOTSTRAP, evaluate_assessments, format_table


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "run_dir", help="a shipped model name ('default', 'whisper') or a trained RUN_DIR"
    )
    p.add_argument("--data", required=True, help="DATASET_DIR written by `pronscore prepare`")
    p.add_argument("--split", default="dev", help="split to score (dev, test, ...)")
    p.add_argument("--json", action="store_true", help="print the metrics JSON")
    encoder.add_argument(p)
    p.add_argument("--out", help="also write the metrics JSON to this file")
    p.add_argument("--predictions", help="write predictions as JSON lines (id + assessment)")
    p.add_argument("--plots", help="write prediction-vs-human scatter PNGs into this folder")
    p.add_argument("--jobs", type=int, default=1, help="scoring processes (one core each)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--bootstrap", type=int, default=N_BOOTSTRAP, help="bootstrap resamples")


def predict(model: str, data: str, split: str, *, jobs: int, progress: bool) -> tuple[dict, str]:
    """Assessments of every utterance and how they were made: through the Scorer, the path
    users run (every run kind loads there)."""
    from pronscore.evaluation.scoring import score_split
    from pronscore.scorer import Scorer

    scorer = Scorer.from_pretrained(model)
    hyps = score_split(model, data, split, jobs=jobs, scorer=scorer, progress=progress)
    return hyps, "scorer"


def run(args: argparse.Namespace) -> int:
    encoder.apply(args)
    refs, meta = split_references(load_split(args.data, args.split))
    hyps, path = predict(
        args.run_dir, args.data, args.split, jobs=max(1, args.jobs), progress=not args.quiet
    )
    metrics = evaluate_assessments(refs, hyps, meta, n_boot=args.bootstrap)
    name = args.run_dir
    metrics["run"] = name if not Path(name).is_dir() else str(Path(name).resolve())
    metrics["scored_by"] = path
    metrics["split"] = args.split
    text = json.dumps(metrics, indent=2)
    if args.out:
        atomic_write_text(args.out, text)
    if args.predictions:
        lines = (json.dumps({"id": i, **hyps[i].to_dict()}) for i in sorted(hyps))
        atomic_write_text(args.predictions, "\n".join(lines) + "\n")
    if args.plots:
        from pronscore.evaluation.plots import scatter_plots

        scatter_plots(refs, hyps, args.plots)
    print(text if args.json else format_table(metrics), file=sys.stdout)
    return 0
