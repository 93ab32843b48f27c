"""``pronscore train ssl``: fine-tune wav2vec2 / HuBERT / WavLM / Whisper into a scorer."""

from __future__ import annotations

import argparse
import json

from pronscore.models.ssl import POOLINGS, STRATEGIES, SslConfig
from pronscore.training.ssl import TrainSslConfig, train_ssl


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="DATASET_DIR written by `pronscore prepare`")
    p.add_argument("--backbone", required=True, help="hub id, org/repo/sub/path, or a folder")
    p.add_argument("--strategy", choices=STRATEGIES, default="freeze")
    p.add_argument("--out", required=True, help="RUN_DIR to write")
    p.add_argument("--epochs", type=float, default=10.0)
    p.add_argument("--max-steps", type=int, default=-1, help="> 0: stop after this many steps")
    p.add_argument("--lr", type=float, default=None, help="default 1e-3 frozen, 3e-5 otherwise")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--max-duration", type=float, default=15.0, help="training crop (seconds)")
    p.add_argument("--pooling", choices=POOLINGS, default="mean")
    p.add_argument("--layer-sum", action="store_true", help="learned weighted sum of layers")
    p.add_argument("--ctc-weight", type=float, default=0.3)
    p.add_argument("--head-hidden", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-train", type=int, default=None, help="first N train utterances")
    p.add_argument("--max-dev", type=int, default=None, help="first N dev utterances")
    p.add_argument(
        "--cache-features", action="store_true", help="frozen + mean pooling: encode once"
    )
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")


def run(args: argparse.Namespace) -> int:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    model_cfg = SslConfig(
        strategy=args.strategy, pooling=args.pooling, layer_sum=args.layer_sum,
        ctc_weight=args.ctc_weight, head_hidden=args.head_hidden,
    )  # fmt: skip
    cfg = TrainSslConfig(
        epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, grad_accum=args.grad_accum,
        max_duration=args.max_duration, seed=args.seed, max_train=args.max_train,
        max_dev=args.max_dev, max_steps=args.max_steps, cache_features=args.cache_features,
    )  # fmt: skip
    cli = {k: v for k, v in vars(args).items() if not k.startswith("_") and k != "func"}
    metrics = train_ssl(args.data, args.backbone, model_cfg, cfg, args.out, extra_args={"cli": cli})
    if metrics:
        utt = metrics.get("utterance", {})
        print(json.dumps({a: (utt.get(a) or {}).get("pcc") for a in model_cfg.aspects}))
    return 0
