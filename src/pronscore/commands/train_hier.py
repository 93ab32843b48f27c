"""``pronscore train hier``: the hierarchical attention scorer (Lin & Wang 2021), three stages.

    pronscore train hier --features FEATURES_DIR --inputs gop|ps-frames|whisper:L|... \
        --pretrain synthetic|none --out RUN_DIR [--seeds 1,2,3]

Every seed is trained with model selection on dev; the best seed is saved, and
``RUN_DIR/metrics.json`` holds each seed's dev metrics and their mean. ``--arch gopt`` trains
the GOPT-style transformer (:mod:`pronscore.heads.gopt`) instead of the hierarchical head.
``--refit --cv CV_DIR`` trains on train + dev for the epochs that CV's folds chose, with no
selection; several ``--seeds`` are saved as a seed ensemble.

Whisper inputs read the encoder vectors of FEATURES_DIR (``pronscore features DS --out F
--encoder ID_OR_PATH --layers 3-6``), recorded as the run's ``encoder`` so the Scorer computes
them for a recording; features without them need ``--deep-cache`` (older runs).
"""

from __future__ import annotations

import argparse
import sys

from pronscore.commands.lists import ints


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--features", required=True, help="FEATURES_DIR from `pronscore features`")
    p.add_argument("--out", required=True, help="RUN_DIR to write")
    p.add_argument(
        "--inputs",
        default="gop",
        help="gop | ps-frames | whisper:L | whisper:A-B (weighted sum), joined by +",
    )
    p.add_argument(
        "--pretrain",
        choices=("none", "synthetic"),
        default="none",
        help="stage 2: pre-train on GBT-teacher scores of unlabelled utterances",
    )
    p.add_argument(
        "--unlabelled",
        action="append",
        default=[],
        metavar="FEATURES_DIR:SPLIT",
        help="extra unlabelled features for stage 2 (e.g. augmented audio)",
    )
    p.add_argument("--no-finetune", action="store_true", help="skip stage 3 (human scores)")
    p.add_argument("--finetune-trainable", choices=("all", "top"), default="all")
    p.add_argument("--no-attention", action="store_true", help="average instead of attention")
    add_model_arguments(p)
    p.add_argument(
        "--single",
        action="store_true",
        help="paper outputs only (utterance total), not multi-granularity",
    )
    p.add_argument("--seeds", default="1", help="comma-separated seeds")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--pretrain-epochs", type=int, default=15)
    p.add_argument(
        "--deep-cache",
        default=None,
        help="CACHE_DIR of per-phone pooled Whisper vectors (python -m pronscore.features.deep); "
        "for whisper inputs when FEATURES_DIR has no encoder vectors (pronscore features "
        "--encoder)",
    )
    p.add_argument(
        "--refit",
        action="store_true",
        help="train on train + dev with no selection, for the epochs --cv chose (or "
        "--stop-after); several --seeds make a seed ensemble",
    )
    p.add_argument("--cv", help="CV_DIR of `pronscore cv hier` whose chosen epochs a refit uses")
    p.add_argument("--stop-after", type=int, help="refit: epochs to train (of --epochs)")
    p.add_argument(
        "--encoder-name",
        help="whisper inputs: the encoder name the run records instead of the FEATURES_DIR's "
        "(e.g. openai/whisper-base: found when scoring from --encoder / $PRONSCORE_WHISPER; "
        "members of one ensemble must name the same encoder)",
    )
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--train-split", default="train")
    p.add_argument("--dev-split", default="dev")


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """The architecture and loss flags that ``train hier`` and ``cv hier`` share."""
    p.add_argument(
        "--arch",
        choices=("hier", "gopt"),
        default="hier",
        help="hier: phone -> word -> utterance attention (Lin & Wang); gopt: one transformer "
        "over the utterance's phones with aspect tokens (Gong et al. 2022)",
    )
    p.add_argument(
        "--pcc-weight",
        type=float,
        default=0.0,
        help="add this times (1 - batch PCC) per level to the MSE (0: MSE alone)",
    )
    p.add_argument(
        "--select-on",
        default="total",
        help="validation PCC that picks the epoch: an utterance aspect, word_accuracy, phone, "
        "or levels (mean of total, word accuracy, phone)",
    )


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from pronscore.features.encoder import read_spec
    from pronscore.features.extract import concat_features, load_features
    from pronscore.heads.hier_inputs import InputSpec
    from pronscore.training.hier import HierTrainOptions, save_run, train_seeds

    encoder = read_spec(args.features) if InputSpec.parse(args.inputs).whisper_layers else None
    if encoder is not None and args.encoder_name:  # a name, not this machine's path
        encoder = replace(encoder, model=args.encoder_name)
    opts = HierTrainOptions(
        inputs=args.inputs,
        arch=args.arch,
        pcc_weight=args.pcc_weight,
        select_on=args.select_on,
        pretrain=args.pretrain,
        finetune=not args.no_finetune,
        finetune_trainable=args.finetune_trainable,
        attention=not args.no_attention,
        multi=not args.single,
        epochs=args.epochs,
        pretrain_epochs=args.pretrain_epochs,
        deep_cache=args.deep_cache,
        vector_layers=encoder.layers if encoder is not None else None,
        unlabelled=tuple(args.unlabelled),
        threads=args.threads,
    )
    train = load_features(args.features, args.train_split)
    dev = load_features(args.features, args.dev_split)
    seeds = list(ints(args.seeds))
    if args.refit:
        return _refit(args, opts, concat_features([train, dev]), seeds, encoder)
    result = train_seeds(train, dev, opts, seeds)
    extra = {"features_dir": str(args.features), "deep_cache": args.deep_cache}
    if encoder is not None:  # the vectors the Scorer computes for a recording
        extra["encoder"] = encoder.to_dict()
    save_run(args.out, result, extra)
    for level, aspects in result.mean.items():
        for a, v in aspects.items():
            print(f"{level:9s} {a:12s} PCC {v['pcc']:.3f} (sd {v['pcc_sd']:.3f})  n={v['n']}")
    print(f"saved {args.out}")
    return 0


def _refit(args, opts, data, seeds, encoder) -> int:
    from dataclasses import replace

    from pronscore.evaluation.cv_report import read_cv
    from pronscore.training.hier import refit_epochs, save_refit, train_hier

    stop = args.stop_after
    if args.cv:
        cv = read_cv(args.cv)
        stop, o = refit_epochs(cv), cv.get("options", {})
        for key in ("arch", "inputs", "pcc_weight", "select_on"):
            if key in o and o[key] != getattr(opts, key):
                print(
                    f"pronscore train hier: error: --cv ran {key}={o[key]!r}, this refit "
                    f"{getattr(opts, key)!r}",
                    file=sys.stderr,
                )
                return 2
        opts = replace(opts, epochs=int(o.get("epochs") or opts.epochs))
    if stop is None:
        print("pronscore train hier: error: --refit needs --cv or --stop-after", file=sys.stderr)
        return 2
    opts = replace(opts, stop_after=stop)
    trained = [train_hier(data, None, replace(opts, seed=s)) for s in seeds]
    extra = {"features_dir": str(args.features), "deep_cache": args.deep_cache, "refit": True}
    extra["refit_epochs"] = stop
    if encoder is not None:
        extra["encoder"] = encoder.to_dict()
    save_refit(args.out, trained, extra)
    print(f"refit on {len(data.utterances)} utterances, {stop} epochs, seeds {seeds}: {args.out}")
    return 0
