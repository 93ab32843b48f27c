"""Training of the hierarchical scorer (:mod:`pronscore.heads.hierarchical`): masked
multi-level losses, the training loop, the three stages of Lin & Wang (2021), seeds and the run
folder. Inputs are built by :mod:`pronscore.heads.hier_inputs`; inference is
:class:`pronscore.heads.hier_head.HierHead`.

Stages: (1) the acoustic model is pretrained and frozen (features are cached);
(2) ``pretrain="synthetic"``: a GOP gradient-boosted-trees teacher
(:mod:`pronscore.training.hier_teacher`) scores the unlabelled utterances -- the train split
itself with out-of-fold teacher predictions, plus any extra FEATURES_DIR (e.g. augmented audio)
-- and the module is trained on those scores; (3) fine-tuning on the human scores, model
selection on dev.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pronscore.atomic import replace_dir
from pronscore.constants import UTTERANCE_ASPECTS, WORD_ASPECTS
from pronscore.errors import ModelError
from pronscore.evaluation.metrics import pearson
from pronscore.features.extract import SplitFeatures
from pronscore.heads.hier_head import assessments, fill_missing, predict_items
from pronscore.heads.hier_inputs import (
    InputSpec,
    UttArrays,
    collate,
    fill_nan,
    gop_columns,
    prepare_items,
    utt_columns,
)
from pronscore.heads.hierarchical import HierarchicalScorer, HierConfig, build_scorer
from pronscore.schema import Assessment
from pronscore.training.hier_teacher import synthetic_splits

# --- losses and the loop -------------------------------------------------------------------


def fit_input_norm(items: Sequence[UttArrays]) -> tuple[np.ndarray, np.ndarray]:
    """Per-dim mean/std over all real phones (and layers); NaN inputs are later set to the mean."""
    rows = np.concatenate(
        [it.x[it.phone_ids > 0].reshape(-1, it.x.shape[-1]) for it in items], axis=0
    )
    mean = np.nanmean(rows, axis=0)
    std = np.nanstd(rows, axis=0)
    mean = np.where(np.isfinite(mean), mean, 0.0)
    std = np.where(np.isfinite(std) & (std > 1e-6), std, 1.0)
    return mean.astype(np.float32), std.astype(np.float32)


def fit_utt_norm(items: Sequence[UttArrays]) -> tuple[np.ndarray, np.ndarray]:
    rows = np.stack([it.u for it in items])
    with np.errstate(all="ignore"):
        mean, std = np.nanmean(rows, axis=0), np.nanstd(rows, axis=0)
    mean = np.where(np.isfinite(mean), mean, 0.0)
    std = np.where(np.isfinite(std) & (std > 1e-6), std, 1.0)
    return mean.astype(np.float32), std.astype(np.float32)


def _mse(pred: torch.Tensor | None, y: torch.Tensor) -> torch.Tensor:
    if pred is None:
        return torch.zeros(())
    m = torch.isfinite(y)
    if not m.any():
        return torch.zeros(())
    return ((pred[m] - y[m]) ** 2).mean()


def _pcc_loss(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """1 - Pearson correlation of each column of (N, K) predictions and labels, averaged over
    the columns with 3+ known labels that vary: the batch-level correlation term of
    ConPCO-style losses, which MSE alone does not reward."""
    terms = []
    for j in range(y.shape[1]):
        m = torch.isfinite(y[:, j])
        if m.sum() < 3 or y[m, j].std() < 1e-6:
            continue
        a, b = pred[m, j] - pred[m, j].mean(), y[m, j] - y[m, j].mean()
        terms.append(1 - (a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-8))
    return torch.stack(terms).mean() if terms else torch.zeros(())


def batch_loss(
    model: HierarchicalScorer, batch: dict[str, torch.Tensor], pcc_weight: float = 0.0
) -> torch.Tensor:
    """Masked MSE summed over levels, each head scored on the aspects it predicts; with
    ``pcc_weight`` > 0 plus that weight times each level's :func:`_pcc_loss`."""
    c = model.config
    out = model(batch["x"], batch["ids"], batch["u"])
    u_cols = [UTTERANCE_ASPECTS.index(a) for a in c.utterance_outputs]
    w_cols = [WORD_ASPECTS.index(a) for a in c.word_outputs]
    pairs = [(out.utterance, batch["yu"][:, u_cols])]  # (N, K) each
    if out.word is not None:
        k = len(w_cols)
        pairs.append((out.word.reshape(-1, k), batch["yw"][..., w_cols].reshape(-1, k)))
    if out.phone is not None:
        pairs.append((out.phone.reshape(-1, 1), batch["yp"].reshape(-1, 1)))
    loss = sum((_mse(p, y) for p, y in pairs), torch.zeros(()))
    if pcc_weight > 0:
        loss = loss + pcc_weight * sum((_pcc_loss(p, y) for p, y in pairs), torch.zeros(()))
    return loss


def _finite_pcc(ref: np.ndarray, hyp: np.ndarray) -> float:
    m = np.isfinite(ref) & np.isfinite(hyp)
    return pearson(ref[m], hyp[m]) or 0.0


def dev_pcc(model: HierarchicalScorer, items: Sequence[UttArrays]) -> dict[str, float]:
    """Quick dev PCCs for model selection: the utterance aspects the model predicts, and
    ``word_accuracy`` / ``phone`` when it predicts them; ``levels`` is the mean of the total,
    word accuracy and phone PCCs (what a learner reads at each level)."""
    preds = predict_items(model, items)
    c = model.config
    out = {}
    for j, a in enumerate(c.utterance_outputs):
        ref = np.array([it.y_utt[UTTERANCE_ASPECTS.index(a)] for it in items])
        out[a] = _finite_pcc(ref, np.array([preds[it.id]["utterance"][j] for it in items]))
    if "accuracy" in c.word_outputs:
        j, a = c.word_outputs.index("accuracy"), WORD_ASPECTS.index("accuracy")
        ref = np.concatenate([it.y_word[:, a] for it in items])
        out["word_accuracy"] = _finite_pcc(
            ref, np.concatenate([preds[it.id]["word"][:, j] for it in items])
        )
    if c.phone_output:
        mask = [it.phone_ids > 0 for it in items]
        ref = np.concatenate([it.y_phone[m] for it, m in zip(items, mask, strict=True)])
        hyp = [preds[it.id]["phone"][m] for it, m in zip(items, mask, strict=True)]
        out["phone"] = _finite_pcc(ref, np.concatenate(hyp))
    parts = [out[k] for k in ("total", "word_accuracy", "phone") if k in out]
    if parts:
        out["levels"] = float(np.mean(parts))
    return out


@dataclass(frozen=True)
class FitOptions:
    epochs: int = 40
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 1
    patience: int = 10
    select_on: str = "total"  # a key of dev_pcc: an utterance aspect, word_accuracy, phone, levels
    pcc_weight: float = 0.0  # > 0: + this times the batch's 1 - PCC per level (batch_loss)
    stop_after: int | None = None  # stop after this many epochs of the ``epochs`` schedule


def _freeze(model: HierarchicalScorer, trainable: str) -> None:
    """``all`` or ``top`` (fine-tune only the word attention and the output heads)."""
    for name, p in model.named_parameters():
        p.requires_grad = trainable == "all" or name.startswith(
            ("word_attn", "sent_norm", "utt_head", "word_head", "phone_head")
        )


def fit(
    model: HierarchicalScorer,
    train: Sequence[UttArrays],
    dev: Sequence[UttArrays] | None,
    opts: FitOptions,
    *,
    trainable: str = "all",
    log: Callable[[str], None] = print,
) -> tuple[HierarchicalScorer, dict]:
    """Adam on masked MSE; keeps the state with the best dev PCC (last state without dev)."""
    torch.manual_seed(opts.seed)
    rng = np.random.default_rng(opts.seed)
    _freeze(model, trainable)
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=opts.lr, weight_decay=opts.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(optim, T_max=max(opts.epochs, 1))
    best, best_state, best_epoch, stale = -np.inf, None, -1, 0
    # the learning-rate schedule spans ``epochs`` even when a refit stops earlier, so that the
    # epochs a cross-validation chose are the same epochs in a refit
    for epoch in range(min(opts.stop_after or opts.epochs, opts.epochs)):
        model.train()
        order = rng.permutation(len(train))
        total = 0.0
        for s in range(0, len(order), opts.batch_size):
            batch = collate([train[i] for i in order[s : s + opts.batch_size]])
            loss = batch_loss(model, batch, opts.pcc_weight)
            optim.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optim.step()
            total += loss.item() * len(batch["yu"])
        sched.step()
        if dev is None:
            continue
        pcc = dev_pcc(model, dev)
        score = pcc.get(opts.select_on, float(np.mean(list(pcc.values()))))
        log(f"epoch {epoch + 1:3d} loss {total / len(train):.4f} dev PCC {score:.3f}")
        if score > best:
            best, best_epoch, stale = score, epoch + 1, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
            if stale >= opts.patience:
                break
    for p in model.parameters():
        p.requires_grad = True
    if best_state is not None:
        model.load_state_dict(best_state)
    return model.eval(), {"best_dev_pcc": best, "best_epoch": best_epoch}


# --- the whole recipe -----------------------------------------------------------------------


@dataclass(frozen=True)
class HierTrainOptions:
    inputs: str = "gop"
    arch: str = "hier"  # "hier" (Lin & Wang) | "gopt" (flat transformer, pronscore.heads.gopt)
    pcc_weight: float = 0.0  # FitOptions.pcc_weight of both stages
    select_on: str = "total"  # FitOptions.select_on of both stages
    pretrain: str = "none"  # "none" | "synthetic"
    finetune: bool = True
    finetune_trainable: str = "all"  # "all" | "top"
    attention: bool = True
    multi: bool = True
    seed: int = 1
    epochs: int = 40
    pretrain_epochs: int = 20
    stop_after: int | None = None  # refits: epochs to train (of the ``epochs`` schedule), no dev
    deep_cache: str | None = None  # CACHE_DIR of pronscore.features.deep; whisper inputs only
    vector_layers: tuple[int, ...] | None = None  # layers of the features' encoder vectors
    unlabelled: tuple[str, ...] = ()  # extra FEATURES_DIR splits "DIR:split" for stage 2
    threads: int = 1


def _fit_options(opts: HierTrainOptions, epochs: int) -> FitOptions:
    return FitOptions(
        epochs=epochs,
        seed=opts.seed,
        select_on=opts.select_on,
        pcc_weight=opts.pcc_weight,
        stop_after=opts.stop_after,
    )


@dataclass
class TrainedHier:
    model: HierarchicalScorer
    info: dict


def train_hier(
    train: SplitFeatures,
    dev: SplitFeatures | None,
    opts: HierTrainOptions,
    *,
    synthetic: Sequence[SplitFeatures] | None = None,
    log: Callable[[str], None] = print,
) -> TrainedHier:
    """Stages 2 (optional) and 3 for one seed; returns the dev-selected model and timings.
    Without ``dev`` (a refit), each stage trains ``stop_after`` epochs and keeps the last state.

    ``synthetic``: teacher-scored splits for stage 2 (computed here when not given)."""
    if dev is None and opts.pretrain != "none":
        raise ModelError("stage 2 needs a dev split (its teacher)", field="pretrain")
    torch.set_num_threads(max(1, opts.threads))
    t0 = time.process_time()
    spec = InputSpec.parse(opts.inputs)
    gop_cols = gop_columns(train.phones) if spec.gop else []
    u_cols = utt_columns(train.utterances) if spec.utt else []
    layers = opts.vector_layers
    tr = prepare_items(train, spec, opts.deep_cache, gop_cols, u_cols, layers)
    mean, std = fit_input_norm(tr)
    u_mean, u_std = fit_utt_norm(tr)
    tr = fill_nan(tr, mean, u_mean)
    dv = None
    if dev is not None:
        dv = fill_nan(
            prepare_items(dev, spec, opts.deep_cache, gop_cols, u_cols, layers), mean, u_mean
        )
    in_dim = tr[0].x.shape[-1]
    n_layers = len(spec.whisper_layers) if len(spec.whisper_layers) > 1 else 1
    extra = {"inputs": opts.inputs, "gop_columns": gop_cols, "utt_columns": u_cols}
    kw = {
        "n_input_layers": n_layers,
        "attention": opts.attention,
        "utt_dim": len(u_cols),
        "extra": extra,
    }
    if opts.arch == "gopt":
        config = HierConfig.gopt(in_dim, **kw)
    elif opts.multi:
        config = HierConfig.multi(in_dim, **kw)
    else:
        config = HierConfig(in_dim=in_dim, **kw)
    torch.manual_seed(opts.seed)
    model = build_scorer(config)
    model.in_mean.copy_(torch.from_numpy(mean))
    model.in_std.copy_(torch.from_numpy(std))
    if u_cols:
        model.utt_mean.copy_(torch.from_numpy(u_mean))
        model.utt_std.copy_(torch.from_numpy(u_std))
    info: dict[str, Any] = {"options": opts.__dict__, "n_parameters": model.n_parameters()}
    if opts.pretrain == "synthetic":
        synth = (
            synthetic
            if synthetic is not None
            else synthetic_splits(train, dev, opts.unlabelled, threads=opts.threads, log=log)
        )
        syn_items = [
            it
            for s in synth
            for it in fill_missing(
                model, prepare_items(s, spec, opts.deep_cache, gop_cols, u_cols, layers)
            )
        ]
        log(f"stage 2: pre-training on {len(syn_items)} synthetically scored utterances")
        model, info["pretrain"] = fit(
            model, syn_items, dv, _fit_options(opts, opts.pretrain_epochs), log=log
        )
    elif opts.pretrain != "none":
        raise ModelError(f"unknown pretrain {opts.pretrain!r}", field="pretrain")
    if opts.finetune:
        log("stage 3: fine-tuning on human scores")
        model, info["finetune"] = fit(
            model,
            tr,
            dv,
            _fit_options(opts, opts.epochs),
            trainable=opts.finetune_trainable,
            log=log,
        )
    info["cpu_seconds"] = time.process_time() - t0
    return TrainedHier(model, info)


# --- seeds, evaluation, saving ---------------------------------------------------------------


def dev_predictions(
    model: HierarchicalScorer, dev: SplitFeatures, opts: HierTrainOptions
) -> dict[str, Assessment]:
    """``model``'s Assessments of every utterance of a labelled split."""
    spec = InputSpec.parse(opts.inputs)
    extra = model.config.extra
    items = prepare_items(
        dev,
        spec,
        opts.deep_cache,
        extra.get("gop_columns", []),
        extra.get("utt_columns", []),
        opts.vector_layers,
    )
    return assessments(model, dev, fill_missing(model, items))


@dataclass
class SeedRuns:
    """One run per seed: the best on dev, every seed's ``{"seed", "metrics", "info"}``, and
    ``mean`` (:func:`~pronscore.evaluation.metrics.evaluate_seeds`: mean PCC over seeds with a
    bootstrap CI of that mean)."""

    best: TrainedHier
    runs: list[dict]
    mean: dict


def train_seeds(
    train: SplitFeatures,
    dev: SplitFeatures,
    opts: HierTrainOptions,
    seeds: Sequence[int],
    *,
    n_boot: int = 1000,
    log: Callable[[str], None] = print,
) -> SeedRuns:
    """One run per seed, each scored on ``dev``; see :class:`SeedRuns`."""
    from pronscore.evaluation.metrics import evaluate_assessments, evaluate_seeds
    from pronscore.training.gop_baselines import labels_from_features, speaker_meta

    refs, meta = labels_from_features(dev), speaker_meta(dev)
    runs, hyps_by_seed, best, best_pcc = [], [], None, -np.inf
    synth = None
    if opts.pretrain == "synthetic":  # one teacher for all seeds (its CPU time is reported)
        t0 = time.process_time()
        synth = synthetic_splits(train, dev, opts.unlabelled, threads=opts.threads, log=log)
        teacher_cpu = time.process_time() - t0
    for seed in seeds:
        o = replace(opts, seed=seed)
        trained = train_hier(train, dev, o, synthetic=synth, log=log)
        if synth is not None:
            trained.info["teacher_cpu_seconds"] = teacher_cpu
            trained.info["cpu_seconds"] += teacher_cpu
        hyps = dev_predictions(trained.model, dev, o)
        metrics = evaluate_assessments(refs, hyps, meta, n_boot=n_boot)
        runs.append({"seed": seed, "metrics": metrics, "info": trained.info})
        hyps_by_seed.append(hyps)
        pcc = (metrics.get("utterance", {}).get("total", {}) or {}).get("pcc") or -1.0
        log(f"seed {seed}: dev utterance total PCC {pcc:.3f}")
        if pcc > best_pcc:
            best, best_pcc = trained, pcc
    assert best is not None
    return SeedRuns(best, runs, evaluate_seeds(refs, hyps_by_seed, n_boot=n_boot))


def save_run(out_dir: str | Path, result: SeedRuns, extra: dict) -> None:
    """RUN_DIR: model.safetensors + config.json (kind "hier") + metrics.json, via a temp dir."""
    with replace_dir(out_dir) as tmp:
        result.best.model.save_pretrained(tmp, extra={**extra, "train_info": result.best.info})
        summary = {"seeds": result.runs, "mean": result.mean}
        (tmp / "metrics.json").write_text(json.dumps(summary, indent=1, default=str))


def refit_epochs(cv: dict) -> int:
    """The epochs a refit trains: the median over a ``cv hier`` run's folds of the epoch its
    validation speakers chose (stage 3)."""
    chosen = [(f.get("selection") or {}).get("finetune", {}).get("best_epoch") for f in cv["folds"]]
    if not chosen or None in chosen:
        raise ModelError(
            "the CV run records no chosen epochs (rerun `pronscore cv hier`)", field="selection"
        )
    return max(1, round(float(np.median(chosen))))


def save_refit(out_dir: str | Path, trained: Sequence[TrainedHier], extra: dict) -> None:
    """One seed: a ``hier`` RUN_DIR; several: an ``ensemble`` of them (members ``seed-N``),
    served as the mean of their scores."""
    from pronscore.heads.ensemble import EnsembleHead
    from pronscore.heads.hier_head import HierHead

    heads = [
        HierHead(t.model, Path(out_dir), {"kind": "hier", **extra, "train_info": t.info})
        for t in trained
    ]
    with replace_dir(out_dir) as tmp:
        if len(heads) == 1:
            heads[0].save_pretrained(tmp)
            return
        names = tuple(f"seed-{t.info['options']['seed']}" for t in trained)
        EnsembleHead(tuple(heads), names, {"refit": True, **extra}).save_pretrained(tmp)
