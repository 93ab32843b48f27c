"""Speaker-grouped K-fold cross-validation of a feature head over every labelled utterance.

The 240-utterance dev split is too small to rank models; here every speaker of the pooled
splits (train + dev) is scored once by a model that never saw them:

- speakers go to K folds, children (age <= 12) and adults dealt out separately so each fold
  has its share of both (deterministic for ``fold_seed``);
- for fold k the head is trained on the other folds; its own early stopping / model selection
  uses validation speakers cut from those training folds (never fold k);
- the out-of-fold predictions of all folds are pooled and scored with
  :func:`~pronscore.evaluation.metrics.evaluate_assessments`, per fold and pooled;
- with ``ensemble``, the seeds' predictions are averaged as a served seed ensemble averages them
  (:func:`~pronscore.heads.ensemble.average_assessments`), and that is what is scored.

Labels are the feature tables' ``y_*`` columns through
:func:`~pronscore.training.gop_baselines.labels_from_features` (the one table -> Assessment
conversion); failed alignments are kept and scored as the head's ``predict_features`` does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pronscore.constants import CHILD_MAX_AGE
from pronscore.errors import CorpusError
from pronscore.evaluation.metrics import evaluate_assessments
from pronscore.features.extract import SplitFeatures
from pronscore.schema import Assessment
from pronscore.training.recipe import GOP_ONLY, Recipe

KINDS = ("gop-gbt", "gop-blstm", "hier")


@dataclass(frozen=True)
class CvOptions:
    """What ``pronscore cv`` exposes; kind options are ignored by the other kinds."""

    folds: int = 5
    fold_seed: int = 1  # speaker -> fold and validation speakers
    seeds: tuple[int, ...] = (1,)  # model seeds; each one is a full cross-validation
    val_fraction: float = 0.1  # of the training folds' speakers, per age group
    threads: int = 2
    bootstrap: int = 1000
    feature_set: str = "all"  # gop-gbt
    num_leaves: tuple[int, ...] | None = None  # gop-gbt selection grid (None: GbtConfig's)
    max_rounds: int | None = None  # gop-gbt boosting rounds cap (None: GbtConfig's)
    recipe: Recipe = GOP_ONLY  # gop-gbt: what the trees read and how they are fitted
    epochs: int | None = None  # gop-blstm / hier (None: the kind's default)
    inputs: str = "gop"  # hier
    arch: str = "hier"  # hier: its architecture (hier | gopt)
    pcc_weight: float = 0.0  # hier: PCC term of the loss
    select_on: str = "total"  # hier: the validation PCC that picks the epoch
    ensemble: bool = False  # score the seeds' averaged predictions (a seed ensemble)

    def to_dict(self) -> dict[str, Any]:
        """cv.json ``options``: the recipe's flags beside the others (one flat record)."""
        d = asdict(self)
        return {**{k: v for k, v in d.items() if k != "recipe"}, **d["recipe"]}


@dataclass(frozen=True)
class FoldPlan:
    """One fold: the speakers it scores and the speakers its model trains / selects on."""

    fold: int
    test: tuple[str, ...]
    train: tuple[str, ...]
    val: tuple[str, ...]


def speaker_groups(utts: pd.DataFrame) -> dict[str, str]:
    """speaker -> "child" / "adult" / "unknown" (age missing); a speaker's first age counts."""
    if "speaker" not in utts:
        raise CorpusError("no speaker column in utterances.parquet", field="speaker")
    first = utts.drop_duplicates("speaker")
    ages = first["age"] if "age" in first else pd.Series([np.nan] * len(first))
    out = {}
    for spk, age in zip(first["speaker"].astype(str), ages, strict=True):
        out[spk] = "unknown" if pd.isna(age) else "child" if age <= CHILD_MAX_AGE else "adult"
    return out


def _shuffled_groups(groups: Mapping[str, str], rng: np.random.Generator) -> list[list[str]]:
    by: dict[str, list[str]] = {}
    for spk in sorted(groups):
        by.setdefault(groups[spk], []).append(spk)
    return [rng.permutation(by[g]).tolist() for g in sorted(by)]


def deal_units(units: Iterable[str], k: int, seed: int) -> dict[str, int]:
    """unit -> fold in ``range(k)``: the distinct units, sorted, shuffled with ``seed`` and dealt
    out in turn (the inner folds of cross-fitting and of the checks' thresholds, which need no
    age balance)."""
    order = np.random.default_rng(seed).permutation(np.array(sorted(set(units))))
    return {u: i % k for i, u in enumerate(order)}


def inner_groups(utts: pd.DataFrame, k: int, seed: int) -> dict[str, int]:
    """utterance id -> one of ``k`` inner groups for cross-fitting a training split: its
    speakers dealt out (:func:`deal_units`), or its utterances when there are fewer speakers
    than groups (a smoke run)."""
    ids = utts["id"].astype(str)
    units = utts["speaker"].astype(str) if "speaker" in utts else ids
    if units.nunique() < k:
        units = ids
    if units.nunique() < 2:
        raise ValueError("cross-fitting needs two or more utterances")
    group = deal_units(units, k, seed)
    return dict(zip(ids, units.map(group), strict=True))


def assign_folds(groups: Mapping[str, str], k: int, seed: int) -> dict[str, int]:
    """speaker -> fold in ``range(k)``: each age group shuffled and dealt out in turn, the deal
    continuing across groups so that fold sizes differ by at most one speaker."""
    if k < 2:
        raise ValueError(f"need at least 2 folds, got {k}")
    if len(groups) < k:
        raise CorpusError(f"{len(groups)} speakers cannot fill {k} folds", field="speaker")
    out, i = {}, 0
    for speakers in _shuffled_groups(groups, np.random.default_rng(seed)):
        for spk in speakers:
            out[spk] = i % k
            i += 1
    return out


def validation_speakers(groups: Mapping[str, str], fraction: float, seed: int) -> set[str]:
    """``round(fraction * n)`` speakers of each age group (at least one of a group of two or
    more), drawn with ``seed``."""
    if not 0 < fraction < 1:
        raise ValueError(f"validation fraction must be in (0, 1), got {fraction}")
    picked: set[str] = set()
    for speakers in _shuffled_groups(groups, np.random.default_rng(seed)):
        n = round(fraction * len(speakers))
        picked.update(speakers[: max(n, 1) if len(speakers) >= 2 else n])
    return picked


def plan_folds(utts: pd.DataFrame, opts: CvOptions) -> list[FoldPlan]:
    """The speakers of every fold, its training speakers and their validation subset."""
    groups = speaker_groups(utts)
    fold_of = assign_folds(groups, opts.folds, opts.fold_seed)
    plans = []
    for k in range(opts.folds):
        rest = {s: g for s, g in groups.items() if fold_of[s] != k}
        val = validation_speakers(rest, opts.val_fraction, opts.fold_seed * 1000 + k)
        plans.append(
            FoldPlan(
                fold=k,
                test=tuple(sorted(s for s in groups if fold_of[s] == k)),
                train=tuple(sorted(set(rest) - val)),
                val=tuple(sorted(val)),
            )
        )
    return plans


def _ids_of(utts: pd.DataFrame, speakers: Sequence[str]) -> list[str]:
    return utts.loc[utts["speaker"].astype(str).isin(set(speakers)), "id"].astype(str).tolist()


@dataclass
class FoldFit:
    """A fold's test predictions and what its model selection chose (gop-gbt: per target
    ``num_leaves`` and ``rounds``, the sizes a refit on all data reuses)."""

    predictions: dict[str, Assessment]
    selection: dict[str, Any] = field(default_factory=dict)


FitPredict = Callable[
    [SplitFeatures, SplitFeatures, SplitFeatures, int], "FoldFit | dict[str, Assessment]"
]


def fit_predict(kind: str, opts: CvOptions, log: Callable[[str], None]) -> FitPredict:
    """``(train, val, test, seed) -> test predictions`` for ``kind``, through its own trainer."""
    if kind == "gop-gbt":
        from pronscore.heads.gbt import GbtConfig
        from pronscore.training.gbt import fit_gbt

        grid = {} if opts.num_leaves is None else {"num_leaves": tuple(opts.num_leaves)}
        if opts.max_rounds is not None:
            grid["max_rounds"] = opts.max_rounds

        def gbt(train, val, test, seed):
            config = GbtConfig(
                feature_set=opts.feature_set,
                seed=seed,
                threads=opts.threads,
                **opts.recipe.gbt_options(),
                **grid,
            )
            head = fit_gbt(train, val, config, log=log)[0]
            return FoldFit(head.predict_features(test), head.extra["selection"])

        return gbt
    if kind == "gop-blstm":
        from pronscore.training.gop_baselines import TrainOptions, fit_head

        def blstm(train, val, test, seed):
            extra = {} if opts.epochs is None else {"epochs": opts.epochs}
            to = TrainOptions(seed=seed, threads=opts.threads, **extra)
            return fit_head(kind, train, val, to, log=log)[0].predict_features(test)

        return blstm
    if kind == "hier":
        from pathlib import Path

        from pronscore.heads.hier_head import HierHead
        from pronscore.training.hier import HierTrainOptions, train_hier

        def hier(train, val, test, seed):
            extra = {} if opts.epochs is None else {"epochs": opts.epochs}
            ho = HierTrainOptions(
                inputs=opts.inputs,
                arch=opts.arch,
                pcc_weight=opts.pcc_weight,
                select_on=opts.select_on,
                seed=seed,
                threads=opts.threads,
                **extra,
            )
            trained = train_hier(train, val, ho, log=log)
            head = HierHead(trained.model, Path("."), {"deep_cache": ho.deep_cache})
            # the epoch the validation speakers chose, per stage (what a refit would reuse)
            chosen = {
                stage: {k: trained.info[stage][k] for k in ("best_epoch", "best_dev_pcc")}
                for stage in ("pretrain", "finetune")
                if stage in trained.info
            }
            return FoldFit(head.predict_features(test), chosen)

        return hier
    raise ValueError(f"unknown kind {kind!r} for cross-validation (known: {', '.join(KINDS)})")


@dataclass
class CvResult:
    """``metrics``: the cv.json dict; ``predictions``: (seed, fold, id, Assessment) rows (seed
    ``"ensemble"``: the seeds' average)."""

    metrics: dict[str, Any]
    predictions: list[tuple[int | str, int, str, Assessment]]
    copies: dict[str, Assessment] = field(default_factory=dict)  # channel copies, first seed


def cross_validate(
    kind: str,
    data: SplitFeatures,
    opts: CvOptions = CvOptions(),
    *,
    log: Callable[[str], None] = print,
    fitter: FitPredict | None = None,
    copies: SplitFeatures | None = None,
) -> CvResult:
    """K-fold CV of ``kind`` on ``data`` for every model seed; see the module docstring.

    ``fitter`` replaces the kind's trainer (same signature as :func:`fit_predict`'s result).
    ``copies``: channel copies of ``data``'s recordings (``pronscore negatives --kinds
    band-8k,noise``). Each fold scores the copies of its own recordings beside them (cv.json
    ``channels``: per kind, :func:`~pronscore.evaluation.metrics.channel_stability` against
    the clean out-of-fold predictions), and with ``recipe.channel_copies`` the copies of the
    training speakers' recordings join the training rows (never the validation speakers').
    """
    from pronscore.training.gop_baselines import labels_from_features, speaker_meta

    utts = data.utterances
    refs, meta = labels_from_features(data), speaker_meta(data)
    plans = plan_folds(utts, opts)
    fit = fitter or fit_predict(kind, opts, log=lambda *_: None)
    folds, repeats, rows, oofs = [], [], [], []
    copy_oof: dict[str, Assessment] = {}
    cpu0 = time.process_time()
    for seed in opts.seeds:
        oof: dict[str, Assessment] = {}
        for p in plans:
            test_ids, train_ids = _ids_of(utts, p.test), _ids_of(utts, p.train)
            train, val = data.subset(train_ids), data.subset(_ids_of(utts, p.val))
            test = data.subset(test_ids)
            if copies is not None:
                test = _with_copies(test, copies, test_ids)
                if opts.recipe.channel_levels():
                    train = _with_copies(train, copies, train_ids)
            t0 = time.process_time()
            fitted = fit(train, val, test, seed)
            if not isinstance(fitted, FoldFit):
                fitted = FoldFit(fitted)
            hyps = fitted.predictions
            missing = set(test_ids) - set(hyps)
            if missing:
                raise RuntimeError(f"fold {p.fold}: no prediction for {sorted(missing)[:3]}")
            cpu = time.process_time() - t0
            oof.update({i: hyps[i] for i in test_ids})
            if copies is not None and seed == opts.seeds[0]:
                scored = set(test_ids)
                copy_oof.update({i: a for i, a in hyps.items() if i not in scored})
            rows.extend((seed, p.fold, i, hyps[i]) for i in test_ids)
            m = evaluate_assessments(
                {i: refs[i] for i in test_ids}, hyps, meta, n_boot=opts.bootstrap
            )
            folds.append({"seed": seed, "fold": p.fold, **_fold_info(p, utts), "cpu_seconds": cpu,
                          "selection": fitted.selection, **m})  # fmt: skip
            total = m["utterance"]["total"]["pcc"]
            shown = "n/a" if total is None else f"{total:.3f}"
            log(f"seed {seed} fold {p.fold}: utterance total PCC {shown} ({cpu:.0f} s CPU)")
        oofs.append(oof)
        pooled = evaluate_assessments(refs, oof, meta, n_boot=opts.bootstrap)
        repeats.append({"seed": seed, "metrics": pooled})
    metrics: dict[str, Any] = {
        "kind": kind,
        "n_folds": opts.folds,
        "fold_seed": opts.fold_seed,
        "seeds": list(opts.seeds),
        "options": opts.to_dict(),
        "n_utterances": len(utts),
        "n_speakers": sum(len(p.test) for p in plans),
        "cpu_seconds": time.process_time() - cpu0,
        "folds": folds,
        "pooled": repeats[0]["metrics"],
    }
    if len(repeats) > 1:
        from pronscore.evaluation.metrics import evaluate_seeds

        metrics["pooled_by_seed"] = repeats
        metrics["pooled_mean"] = evaluate_seeds(refs, oofs, n_boot=opts.bootstrap)
    if opts.ensemble:
        metrics.update(_ensemble(refs, meta, oofs, plans, utts, opts, rows))
    if copies is not None:
        metrics["channels"] = _channels(copies, copy_oof, oofs[0], refs)
    return CvResult(metrics, rows, copy_oof)


def _with_copies(split: SplitFeatures, copies: SplitFeatures, ids: Sequence[str]) -> SplitFeatures:
    """``split`` followed by the copies of its recordings ``ids``."""
    from pronscore.features.extract import concat_features
    from pronscore.training.negatives import source_ids

    cu = copies.utterances
    mine = cu["id"][source_ids(cu["id"]).isin(set(ids)).to_numpy()]
    return concat_features([split, copies.subset(mine.astype(str))])


def _channels(
    copies: SplitFeatures,
    predicted: Mapping[str, Assessment],
    clean: Mapping[str, Assessment],
    refs: Mapping[str, Assessment],
) -> dict[str, Any]:
    """cv.json ``channels``: per kind of copy, its out-of-fold predictions against the clean
    out-of-fold predictions of the same recordings (the first seed's) and the experts."""
    from pronscore.evaluation.metrics import channel_stability
    from pronscore.training.negatives import source_ids

    cu = copies.utterances
    ids, kinds = cu["id"].astype(str), cu["synthetic"].astype(str)
    out = {}
    for kind in sorted(set(kinds)):
        pairs = [(i, s) for i, s, k in zip(ids, source_ids(ids), kinds, strict=True)
                 if k == kind and i in predicted and s in clean]  # fmt: skip
        out[kind] = channel_stability(
            [clean[s] for _, s in pairs],
            [predicted[i] for i, _ in pairs],
            [refs[s].utterance.total for _, s in pairs],
        )
    return out


def _ensemble(refs, meta, oofs, plans, utts, opts: CvOptions, rows: list) -> dict[str, Any]:
    """``pooled`` and ``ensemble_folds`` of the seeds' averaged predictions (rows appended)."""
    from pronscore.heads.ensemble import average_assessments

    mean = {i: average_assessments([o[i] for o in oofs]) for i in oofs[0]}
    folds = []
    for p in plans:
        test_ids = _ids_of(utts, p.test)
        rows.extend(("ensemble", p.fold, i, mean[i]) for i in test_ids)
        m = evaluate_assessments({i: refs[i] for i in test_ids}, mean, meta, n_boot=opts.bootstrap)
        folds.append({"seed": "ensemble", "fold": p.fold, **m})
    return {"pooled": evaluate_assessments(refs, mean, meta, n_boot=opts.bootstrap),
            "ensemble_folds": folds}  # fmt: skip


def _fold_info(p: FoldPlan, utts: pd.DataFrame) -> dict[str, Any]:
    return {
        "speakers": list(p.test),
        "n_train_speakers": len(p.train),
        "n_val_speakers": len(p.val),
        "n_train_utterances": len(_ids_of(utts, p.train)),
        "n_val_utterances": len(_ids_of(utts, p.val)),
    }
