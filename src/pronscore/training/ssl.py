"""Fine-tune an SSL scorer (:mod:`pronscore.models.ssl`) with the Hugging Face Trainer.

Fixes over the seed: model selection on the dev split (``load_best_model_at_end`` on the mean
dev PCC; the test split is never looked at), dynamic padding with attention masks, batches
grouped by length, crops longer than ``max_duration``, gradient accumulation, bf16 / fp16 only
on a GPU, seeds set before the model is built. ``torchrun`` / ``accelerate launch`` run it
data-parallel with no code change (the Trainer reads the environment).

``frozen`` with ``cache_features``: every utterance is encoded once, unpadded and uncropped, and
its per-layer masked means ``(L+1, D)`` are stored beside the run
(``RUN_DIR.features/<split>.safetensors``, reused when the utterance ids match).
With mean pooling the head sees exactly what it would see end to end (a weighted layer sum
commutes with the mean), so the cached run trains the same model at a fraction of the cost.
Attention pooling and the CTC strategies need frames and cannot use the cache.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from pronscore.atomic import atomic_write_bytes, replace_dir
from pronscore.errors import ModelError
from pronscore.heads.ssl import SslPredictor
from pronscore.models.ssl import SslConfig, SslScorer
from pronscore.models.ssl_inputs import AudioScores, pad_batch


@dataclass(frozen=True)
class TrainSslConfig:
    epochs: float = 10.0
    lr: float | None = None  # None: 1e-3 for `frozen` (head only), 3e-5 otherwise
    batch_size: int = 8
    grad_accum: int = 1
    max_duration: float = 15.0  # training crops (s); evaluation sees whole utterances
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    seed: int = 0
    max_train: int | None = None
    max_dev: int | None = None
    max_steps: int = -1  # > 0 overrides epochs (smoke runs)
    cache_features: bool = False
    group_by_length: bool = True
    logging_steps: int = 20

    def learning_rate(self, strategy: str) -> float:
        return self.lr if self.lr is not None else (1e-3 if strategy == "frozen" else 3e-5)


# --- data ---------------------------------------------------------------------------------


def _subset(ds, limit: int | None):
    return ds if limit is None or limit >= len(ds) else ds.select(range(limit))


class PooledScores(torch.utils.data.Dataset):
    def __init__(self, pooled: np.ndarray, labels: np.ndarray) -> None:
        self.pooled, self.labels = pooled, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        return {"pooled": self.pooled[i], "labels": self.labels[i]}


@torch.no_grad()
def pooled_features(model: SslScorer, data: AudioScores, *, desc: str = "encode") -> np.ndarray:
    """Per-layer masked means ``(N, L+1, D)``, one utterance at a time (no padding at all)."""
    model.eval()
    out = []
    for i in tqdm(range(len(data)), desc=desc, mininterval=5):
        x = torch.from_numpy(data[i]["input_values"])[None]
        states, fmask = model.encode(x, torch.ones(x.shape[:2], dtype=torch.bool))
        out.append(model.pooled_layers(states, fmask)[0].float().numpy())
    return np.stack(out)


def cached_pooled(model: SslScorer, data: AudioScores, path: Path) -> np.ndarray:
    """:func:`pooled_features`, stored at ``path`` (safetensors) and reused when ids match."""
    from safetensors.numpy import load_file, save

    ids = "\n".join(data.ids)
    if path.is_file():
        cached = load_file(str(path))
        if bytes(cached["ids"]).decode() == ids:
            return cached["pooled"]
    pooled = pooled_features(model, data, desc=f"encode {path.stem}")
    ids_bytes = np.frombuffer(ids.encode(), dtype=np.uint8)
    atomic_write_bytes(path, save({"pooled": pooled, "ids": ids_bytes}))
    return pooled


# --- metrics ---------------------------------------------------------------------------------


def dev_pcc(pred: np.ndarray, labels: np.ndarray, aspects: tuple[str, ...]) -> dict[str, float]:
    """PCC per aspect over labelled rows and their mean (``mean_pcc``, the selection metric)."""
    from pronscore.evaluation.metrics import pearson

    out: dict[str, float] = {}
    for k, a in enumerate(aspects):
        ok = ~np.isnan(labels[:, k])
        r = pearson(pred[ok, k], labels[ok, k])
        out[f"pcc_{a}"] = float("nan") if r is None else r
    vals = [v for v in out.values() if not math.isnan(v)]
    out["mean_pcc"] = float(np.mean(vals)) if vals else 0.0
    return out


# --- training --------------------------------------------------------------------------------


def _trainer_class():
    from transformers import Trainer
    from transformers.trainer_pt_utils import LengthGroupedSampler

    class SslTrainer(Trainer):
        """Length-grouped batches from known durations (no pass over the audio to measure)."""

        def _get_train_sampler(self, train_dataset=None):
            ds = train_dataset if train_dataset is not None else self.train_dataset
            if self.args.train_sampling_strategy == "group_by_length" and hasattr(ds, "lengths"):
                size = self.args.train_batch_size * self.args.gradient_accumulation_steps
                return LengthGroupedSampler(size, lengths=ds.lengths)
            return super()._get_train_sampler(train_dataset)

        def _get_eval_sampler(self, eval_dataset):
            return torch.utils.data.SequentialSampler(eval_dataset)

    return SslTrainer


def training_arguments(cfg: TrainSslConfig, strategy: str, out_dir: Path, grouped: bool):
    from transformers import TrainingArguments

    cuda = torch.cuda.is_available()
    bf16 = cuda and torch.cuda.is_bf16_supported()
    return TrainingArguments(
        output_dir=str(out_dir),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate(strategy),
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        lr_scheduler_type="linear",
        warmup_steps=cfg.warmup_ratio,  # < 1: a fraction of the steps
        weight_decay=cfg.weight_decay,
        eval_strategy="steps" if cfg.max_steps > 0 else "epoch",
        save_strategy="steps" if cfg.max_steps > 0 else "epoch",
        eval_steps=max(1, cfg.max_steps) if cfg.max_steps > 0 else None,
        save_steps=max(1, cfg.max_steps) if cfg.max_steps > 0 else None,
        save_total_limit=2,
        load_best_model_at_end=True,
        metric_for_best_model="mean_pcc",
        greater_is_better=True,
        bf16=bf16,
        fp16=cuda and not bf16,
        seed=cfg.seed,
        data_seed=cfg.seed,
        train_sampling_strategy="group_by_length" if grouped else "random",
        remove_unused_columns=False,
        label_names=["labels"],
        logging_steps=cfg.logging_steps,
        report_to=[],
        dataloader_num_workers=0,
        dataloader_pin_memory=cuda,
        use_cpu=not cuda,  # also what makes torchrun on CPU-only hosts run DDP over gloo
        ddp_find_unused_parameters=False,
    )


def train_ssl(
    dataset_dir: str | Path,
    backbone: str,
    model_config: SslConfig,
    cfg: TrainSslConfig,
    out_dir: str | Path,
    *,
    backbone_model: SslScorer | None = None,
    extra_args: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train, select on dev, write RUN_DIR; returns the dev metrics JSON.

    ``backbone_model`` replaces loading ``backbone`` (tests pass a tiny random model).
    """
    from transformers import set_seed

    from pronscore.dataset import load_split

    if cfg.cache_features and (model_config.strategy != "frozen" or model_config.pooling != "mean"):
        raise ModelError("--cache-features needs --strategy frozen and --pooling mean")
    set_seed(cfg.seed)  # before the head is initialised
    model = backbone_model or SslScorer.from_backbone(backbone, model_config)
    fe = _feature_extractor(backbone, model, backbone_model is not None)
    aspects = model.settings.aspects
    train_rows = _subset(load_split(dataset_dir, "train"), cfg.max_train)
    dev_rows = _subset(load_split(dataset_dir, "dev"), cfg.max_dev)
    train = AudioScores(train_rows, model.family, fe, aspects, cfg.max_duration)
    dev = AudioScores(dev_rows, model.family, fe, aspects)

    out = Path(out_dir)
    work = out.with_name(f".{out.name}.work")  # checkpoints; the run is renamed into place
    args = training_arguments(
        cfg, model.settings.strategy, work / "checkpoints", not cfg.cache_features
    )
    if cfg.cache_features:
        with args.main_process_first(desc="feature cache"):
            cache = out.with_name(f"{out.name}.features")
            train = PooledScores(
                cached_pooled(model, train, cache / "train.safetensors"), train.labels
            )
            dev = PooledScores(cached_pooled(model, dev, cache / "dev.safetensors"), dev.labels)

    def compute_metrics(p) -> dict[str, float]:
        preds = p.predictions[0] if isinstance(p.predictions, tuple) else p.predictions
        return dev_pcc(np.clip(preds, 0, 1), np.asarray(p.label_ids), aspects)  # as predicted

    trainer = _trainer_class()(
        model=model, args=args, train_dataset=train, eval_dataset=dev,
        data_collator=pad_batch, compute_metrics=compute_metrics,
    )  # fmt: skip
    trainer.train()
    best = trainer.evaluate()  # every rank: evaluation gathers across processes
    try:
        if not trainer.is_world_process_zero():
            return {}
        model = trainer.model.float().cpu().eval()
        extra = {"data": str(Path(dataset_dir).resolve()), "backbone": backbone,
                 "train": asdict(cfg), **(extra_args or {})}  # fmt: skip
        metrics = write_run(model, fe, trainer, out, dataset_dir, cfg, best, extra)
        shutil.rmtree(work, ignore_errors=True)
        return metrics
    finally:
        _leave_process_group()


def _leave_process_group() -> None:
    """Under torchrun / accelerate: every rank waits for the others (rank 0 writes the run),
    then the process group is destroyed. A rank that returned at once and exited with the group
    alive was aborted at interpreter teardown (SIGABRT: torchrun exit 1 in a clean-clone
    `make test`, after rank 0 had written the run)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _feature_extractor(backbone: str, model: SslScorer, random_init: bool):
    from pronscore.acoustic.encoders import load_feature_extractor

    if random_init:
        return model.feature_extractor()
    from pronscore.models.ssl import _backbone_config_object

    return load_feature_extractor(backbone, _backbone_config_object(model.settings.backbone_config))


def write_run(
    model: SslScorer, fe: Any, trainer, out: Path, dataset_dir: str | Path,
    cfg: TrainSslConfig, best: dict[str, float], extra: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    """RUN_DIR: weights, configs, trainer state, args, dev metrics JSON and a model card."""
    from pronscore.dataset import load_split, split_references
    from pronscore.evaluation.metrics import evaluate_assessments

    with replace_dir(out) as tmp:
        model.save_pretrained(tmp, fe)
        trainer.state.save_to_json(str(tmp / "trainer_state.json"))
        (tmp / "args.json").write_text(json.dumps(extra, indent=2, default=str))
        predictor = SslPredictor(model, fe)
        dev = _subset(load_split(dataset_dir, "dev"), cfg.max_dev)
        refs, meta = split_references(dev)
        hyps = predictor.predict_rows(dev)
        metrics = evaluate_assessments(refs, hyps, meta)
        metrics["split"] = "dev"
        metrics["selection"] = {k: v for k, v in best.items() if "pcc" in k}
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2))
        (tmp / "README.md").write_text(model_card(model.settings, extra, metrics))
    return metrics


def model_card(config: SslConfig, extra: dict[str, Any], metrics: dict[str, Any]) -> str:
    utt = metrics.get("utterance", {})
    rows = []
    for a in config.aspects:
        m = utt.get(a, {})
        pcc = m.get("pcc") if isinstance(m, dict) else None
        rows.append(f"| {a} | {pcc if pcc is None else f'{pcc:.3f}'} |")
    train = extra.get("train", {})
    subset = f", first {train['max_train']}" if train.get("max_train") else ""
    return "\n".join([
        "# pronscore SSL scorer",
        "",
        f"- backbone: `{extra.get('backbone')}` ({config.backbone_config.get('model_type')})",
        f"- strategy: `{config.strategy}`, pooling: `{config.pooling}`, "
        f"layer sum: {config.layer_sum}, CTC weight: {config.ctc_weight}",
        f"- data: `{extra.get('data')}` (train split{subset}; "
        "model selected on the dev split by mean PCC)",
        f"- training: {json.dumps(train)}",
        "",
        f"Dev metrics ({metrics.get('n_utterances')} utterances), utterance PCC:",
        "",
        "| aspect | PCC |",
        "| --- | --- |",
        *rows,
        "",
        "Load: `pronscore.models.ssl.SslScorer.from_pretrained(RUN_DIR)`; evaluate: "
        "`pronscore evaluate RUN_DIR --data DATASET_DIR --split dev`.",
        "",
    ])  # fmt: skip
