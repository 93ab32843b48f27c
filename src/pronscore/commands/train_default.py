"""Reproduce the shipped default scorer: ``pronscore train default --data DATASET_DIR --out DIR``.

Steps: pocketsphinx features for the train and dev splits (``--features`` reuses a FEATURES_DIR
made by ``pronscore features``; otherwise they are extracted, resumably, into ``DIR-features``),
a LightGBM head on all features trained on train (:data:`HEAD_KIND`), its dev metrics, then the
scorer folder: the head's RUN_DIR files, ``scorer.json`` (the extractor settings the head was
trained with), the corpus lexicon, ``metrics_dev.json`` and the model card ``README.md``. The
folder is built beside ``DIR`` and renamed into place. Copy it to
``src/pronscore/pretrained/default/`` to ship it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

from pronscore.atomic import atomic_write_text, replace_dir
from pronscore.commands import encoder as encoder_option
from pronscore.commands import recipe as recipe_option
from pronscore.errors import CorpusError
from pronscore.features.deep import DEFAULT_WHISPER
from pronscore.training.recipe import GOP_ONLY, MIN_ROUNDS, SHIPPED, Recipe

HEAD_KIND = "gop-gbt"
"""The head of the default model (fast, robust to odd inputs, a few MB of text trees)."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="DATASET_DIR written by `pronscore prepare`")
    p.add_argument("--features", help="FEATURES_DIR from `pronscore features` (else extracted)")
    p.add_argument("--out", required=True, help="the scorer folder to write")
    p.add_argument("--jobs", type=int, default=1, help="processes for feature extraction")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--ensemble",
        type=int,
        default=1,
        metavar="N",
        help="train N heads with seeds SEED..SEED+N-1 and average their scores (a seed "
        "ensemble; `pronscore cv --seeds ... --ensemble` measures it)",
    )
    p.add_argument(
        "--negatives",
        metavar="FEATURES_DIR:SPLIT",
        action="append",
        help="synthetic rows (`pronscore negatives`: other-text, truncated) that train the "
        "reading check, never the scores or dev; repeat for several splits",
    )
    p.add_argument(
        "--cv",
        metavar="CV_DIR",
        help="`pronscore cv` output of the same recipe, reported in the model card",
    )
    p.add_argument(
        "--refit",
        action="store_true",
        help="train on train + dev with the trees' sizes that --cv chose (per target: the "
        "most chosen num_leaves, the median rounds); the dev metrics are then in-sample",
    )
    p.add_argument(
        "--encoder-name",
        default=DEFAULT_WHISPER,
        help="with FEATURES_DIR made by `features --encoder`: the encoder name the model "
        "records (resolved when scoring from --encoder / $PRONSCORE_WHISPER, else from the "
        f"Hugging Face cache or hub; default {DEFAULT_WHISPER})",
    )
    recipe_option.add_arguments(p, defaults=SHIPPED)
    encoder_option.add_argument(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    encoder_option.apply(args)  # where the dev scoring finds the encoder
    metrics = train_default(
        args.data,
        args.out,
        features_dir=args.features,
        jobs=args.jobs,
        seed=args.seed,
        members=args.ensemble,
        negatives=tuple(args.negatives or ()),
        cv_dir=args.cv,
        progress=not args.quiet,
        encoder_name=args.encoder_name,
        refit=args.refit,
        recipe=recipe_option.from_args(args),
    )
    from pronscore.evaluation.metrics import format_table

    print(format_table(metrics))
    print(f"default scorer written to {args.out}")
    return 0


def _train_head(
    features_dir: Path,
    out: Path,
    seed: int,
    negatives: tuple[str, ...] = (),
    encoder_name: str = DEFAULT_WHISPER,
    sizes: dict[str, dict[str, int]] | None = None,
    recipe: Recipe = SHIPPED,
    members: int = 1,
) -> dict[str, Any]:
    """The GBT head (all features) on train (+ negatives), model-selected on dev (human labels
    only) -- or, given the ``sizes`` cross-validation chose, fitted on train + dev with those;
    saved as a RUN_DIR. ``members`` > 1: a seed ensemble of such heads (seeds ``seed``,
    ``seed + 1``, ...); the negatives train only the first one's checks, which speak for it."""
    from pronscore.features.ctc_store import recogniser_of
    from pronscore.features.encoder import read_spec
    from pronscore.features.extract import concat_features, load_features
    from pronscore.heads.ensemble import EnsembleHead
    from pronscore.heads.gbt import CHECKS, GbtConfig
    from pronscore.levels import fit_words_to_sentence
    from pronscore.training.gbt import fit_gbt
    from pronscore.training.gop_baselines import labels_from_features
    from pronscore.training.negatives import with_negatives

    train = load_features(features_dir, "train")
    dev = load_features(features_dir, "dev")
    if sizes is not None:
        train, dev = concat_features([train, dev]), None
    n_human = len(train.utterances)
    with_neg = with_negatives(train, negatives, features_dir) if negatives else train
    spec = read_spec(features_dir)
    spec = replace(spec, model=encoder_name) if spec else None  # a name, not this machine's path
    recogniser = recogniser_of(features_dir)
    if recogniser is not None:  # a name, not this machine's path, as for the encoder
        recogniser = replace(recogniser, encoder=encoder_name)
    heads, dev_pccs = [], []
    for k in range(members):
        config = GbtConfig(feature_set="all", seed=seed + k, **recipe.gbt_options())
        head, dev_pcc = fit_gbt(with_neg if k == 0 else train, dev, config, encoder=spec,
                                sizes=sizes, recogniser=recogniser)  # fmt: skip
        # Scoring one recording is a handful of rows: one thread is faster than a team.
        head.config = replace(head.config, threads=1)
        heads.append(head)
        dev_pccs.append(dev_pcc)
    extra = {
        "dev_pcc": dev_pccs[0],
        "n_train_utterances": n_human,
        "n_train_negatives": len(with_neg.utterances) - n_human,
        "negatives": list(negatives),
        "refit": sizes is not None,
    }
    checks = {k: heads[0].extra[k] for k in CHECKS if k in heads[0].extra}
    if members == 1:
        heads[0].extra.update(extra)
        heads[0].save_pretrained(out)
    else:
        names = tuple(f"seed-{seed + k}" for k in range(members))
        extra.update(members_dev_pcc=dev_pccs, seeds=[seed + k for k in range(members)])
        EnsembleHead(tuple(heads), names, extra).save_pretrained(out)
    # the experts' sentence accuracy from their word accuracies, over the same readings
    line = fit_words_to_sentence(labels_from_features(train).values())
    return {**extra, **checks, "encoder": spec, "recogniser": recogniser is not None,
            "words_to_sentence": line}  # fmt: skip


def train_default(
    dataset_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    features_dir: str | os.PathLike | None = None,
    jobs: int = 1,
    seed: int = 1,
    negatives: tuple[str, ...] = (),
    cv_dir: str | os.PathLike | None = None,
    progress: bool = True,
    encoder_name: str = DEFAULT_WHISPER,
    refit: bool = False,
    recipe: Recipe = SHIPPED,
    members: int = 1,
) -> dict[str, Any]:
    """Train, evaluate on dev and write the scorer folder; returns the dev metrics JSON.

    ``refit``: train on train + dev with the sizes of the ``cv_dir`` run (which must be a
    gop-gbt cross-validation of the same recipe that recorded them)."""
    from pronscore.dataset import load_split, split_references
    from pronscore.evaluation.cv_report import read_cv
    from pronscore.evaluation.metrics import evaluate_assessments
    from pronscore.evaluation.scoring import score_split
    from pronscore.features.extract import RECOMMENDED, extract_dataset, extractor_config_of
    from pronscore.heads.gbt import CHECKS
    from pronscore.scorer import LEXICON_FILE, SCORER_FILE, ScorerConfig, packaged_lexicon

    if members < 1:  # before any feature extraction
        raise CorpusError(f"--ensemble {members}: at least one head", field="ensemble")
    out = Path(out_dir)
    feats = Path(features_dir) if features_dir else out.with_name(out.name + "-features")
    if features_dir is None or not (feats / "dev" / "utterances.parquet").is_file():
        extract_dataset(
            dataset_dir,
            feats,
            splits=["train", "dev"],
            jobs=jobs,
            progress=progress,
            config=RECOMMENDED,
        )
    config = ScorerConfig(extractor=extractor_config_of(feats))  # a head sees what it was fit on
    cv = read_cv(cv_dir) if cv_dir else None
    sizes = _refit_sizes(cv, cv_dir, recipe, members) if refit else None

    with replace_dir(out) as model:
        extra = _train_head(feats, model, seed, negatives, encoder_name, sizes, recipe, members)
        config = replace(config, words_to_sentence=extra["words_to_sentence"])
        atomic_write_text(model / SCORER_FILE, json.dumps(config.to_dict(), indent=2) + "\n")
        shutil.copyfile(packaged_lexicon(), model / LEXICON_FILE)

        # dev metrics through the Scorer: the numbers `pronscore evaluate default` reproduces
        hyps = score_split(str(model), dataset_dir, "dev", jobs=jobs, progress=progress)
        refs, utt_meta = split_references(load_split(dataset_dir, "dev"))
        metrics = evaluate_assessments(refs, hyps, utt_meta)
        metrics["split"] = "dev"
        atomic_write_text(model / "metrics_dev.json", json.dumps(metrics, indent=2) + "\n")
        card = model_card(
            metrics,
            extra["n_train_utterances"],
            extra["n_train_negatives"],
            cv,
            extra["encoder"],
            refit=refit,
            recipe=recipe,
            checks={k: extra[k] for k in CHECKS if k in extra},
            members=members,
            recogniser=extra["recogniser"],
            warp=config.extractor.model.warp,
        )
        atomic_write_text(model / "README.md", card)
    return metrics


def _checks_text(checks: dict[str, dict[str, float]]) -> str:
    """The checks' out-of-fold rates on the training rows, for the model card."""
    parts = []
    if r := checks.get("reading_check"):
        parts.append(
            f" Reading check (a recording of another text is a `mismatch`; out of fold on the "
            f"training rows): {_pct(r, 'other_caught')} of other texts caught, "
            f"{_pct(r, 'human_flagged')} of the readings and {_pct(r, 'truncated_flagged')} of "
            "readings cut short flagged"
            + (f", {_pct(r, 'channel_flagged')} of their 8 kHz and noisy copies."
               if "channel_flagged" in r else ".")
        )  # fmt: skip
    if w := checks.get("word_check"):
        parts.append(
            f" Word check: {_pct(w, 'replaced_caught')} of replaced words flagged, "
            f"{_pct(w, 'good_flagged')} of words experts rated >= 8."
        )
    if g := checks.get("channel_check"):
        parts.append(
            f" Channel gate (weighs the utterance trees of clean readings against those trained "
            f"with 8 kHz and noisy copies): {_pct(g, 'human_flagged')} of the readings, "
            f"{_pct(g, 'band-8k_caught')} of their 8 kHz and {_pct(g, 'noise_caught')} of their "
            "noisy copies at P >= 0.5."
        )
    return "".join(parts)


def _pct(d: dict[str, float], key: str) -> str:
    return "n/a" if d.get(key) is None else f"{100 * d[key]:.1f}%"


def _row(m: dict[str, Any]) -> str:
    if not m or not m.get("n") or m.get("pcc") is None:
        return "n/a | n/a | 0"
    ci = m.get("ci95") or [float("nan"), float("nan")]
    return f"{m['pcc']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}] | {m['mse']:.3f} | {m['n']}"


def _refit_sizes(
    cv: dict[str, Any] | None, cv_dir: Any, recipe: Recipe, members: int = 1
) -> dict[str, dict[str, int]]:
    from pronscore.training.gbt import sizes_from_cv

    if cv is None:
        raise CorpusError("--refit needs --cv CV_DIR (the sizes to refit with)", field="cv")
    if cv.get("kind") != HEAD_KIND:
        raise CorpusError(
            f"--refit needs a {HEAD_KIND} cross-validation", path=cv_dir, field="kind"
        )
    measured = Recipe.from_options(cv.get("options") or {})
    if measured != recipe:
        raise CorpusError(
            f"this cross-validation measured another recipe: refit with{measured.train_flags()}"
            " (and no other such flag), or cross-validate this one",
            path=cv_dir,
            field="options",
        )
    options = cv.get("options") or {}
    measured_members = len(options.get("seeds") or [1]) if options.get("ensemble") else 1
    if measured_members != members:
        raise CorpusError(
            f"this cross-validation measured {measured_members} head(s) averaged: refit with "
            f"--ensemble {measured_members}, or cross-validate this one",
            path=cv_dir,
            field="options.ensemble",
        )
    sizes = sizes_from_cv(cv.get("folds", []))
    if not sizes:
        raise CorpusError(
            "no trees' sizes in this cross-validation (rerun `pronscore cv gop-gbt`)",
            path=cv_dir,
            field="folds.selection",
        )
    return sizes


def _cv_section(cv: dict[str, Any] | None) -> str:
    """Pooled out-of-fold numbers of `pronscore cv` for the same recipe (train + dev)."""
    from pronscore.evaluation.cv_report import scored_folds

    if not cv:
        return ""
    pooled = cv["pooled"]
    rows = [
        f"| {level} | {aspect} | {_row(pooled.get(level, {}).get(aspect, {}))} |"
        for level, aspects in (
            ("utterance", ("accuracy", "completeness", "fluency", "prosodic", "total")),
            ("word", ("accuracy", "total")),
            ("phone", ("accuracy",)),
        )
        for aspect in aspects
    ]
    groups = "; ".join(
        f"{g} utterance total {_row(pooled['subgroups'][g]['utterance']['total']).split(' | ')[0]}"
        for g in ("child", "adult")
        if g in pooled.get("subgroups", {})
    )
    folds = ", ".join(f"{f['utterance']['total']['pcc']:.3f}" for f in scored_folds(cv))
    table = "\n".join(rows)
    return f"""
## Speaker-grouped cross-validation

{cv["n_folds"]}-fold cross-validation over train + dev ({cv["n_utterances"]} utterances,
{cv["n_speakers"]} speakers; children and adults balanced over folds; early stopping on speakers
held out of the training folds), pooled out-of-fold predictions of the same recipe on the same
features (the head on the feature tables, without the Scorer's omitted-word policy): a better
guide to unseen speakers than the 240 dev utterances.

| level | aspect | PCC [95% CI] | MSE | n |
|---|---|---|---|---|
{table}

Subgroups: {groups}. Utterance total per fold: {folds}.
"""


def model_card(
    metrics: dict[str, Any],
    n_train: int,
    n_negatives: int = 0,
    cv: dict[str, Any] | None = None,
    encoder: Any = None,
    *,
    refit: bool = False,
    recipe: Recipe = GOP_ONLY,
    checks: dict[str, dict[str, float]] | None = None,
    members: int = 1,
    recogniser: bool = False,
    warp: float | None = None,
) -> str:
    """The model card (README.md) of a shipped scorer (``default``; ``whisper`` when its
    features had encoder vectors), with its dev (and CV) metrics; ``warp``: the front end's
    frequency warp (``ModelConfig.warp``), if any."""
    from pronscore.features.extract import warp_flag

    name = "whisper" if encoder is not None else "default"
    rows = [
        f"| {level} | {aspect} | {_row(metrics.get(level, {}).get(aspect, {}))} |"
        for level, aspects in (
            ("utterance", ("accuracy", "completeness", "fluency", "prosodic", "total")),
            ("word", ("accuracy", "stress", "total")),
            ("phone", ("accuracy",)),
        )
        for aspect in aspects
    ]
    groups = []
    for g in ("child", "adult"):
        m = metrics.get("subgroups", {}).get(g, {}).get("utterance", {}).get("total", {})
        if m:
            groups.append(f"{g} utterance total PCC {_row(m).split(' | ')[0]}")
    table = "\n".join(rows)
    sub = "; ".join(groups) or "n/a"
    gated = (
        ", and whose 8 kHz and noisy copies (the recordings' own labels) also train the channel"
        " gate and its utterance trees."
        if (checks or {}).get("channel_check")
        else "."
    )
    neg = (
        f" Plus {n_negatives} synthetic rows made from the train split's recordings (`pronscore"
        " negatives`: the audio against another utterance's text, with words replaced, cut"
        " short, at 8 kHz and in noise) that train only the reading and word checks"
        + gated
        + _checks_text(checks or {})
        if n_negatives
        else ""
    )
    enc_model = (
        f"""- Encoder stage: hidden state(s) {", ".join(map(str, encoder.layers))} (0 = embeddings)
  of the Whisper-base encoder (`{encoder.model}`, MIT licence; not in the package: `--encoder
  PATH` or `$PRONSCORE_WHISPER` names a local copy, else the Hugging Face cache/hub), run on
  the recording's own length and averaged over each aligned phone. A phone classifier trained here
  (`phone_classifier.safetensors`, on the phones experts scored 2) turns each vector into a
  GOP over the encoder (`p_enc_*`: canonical log posterior, margin over the best rival).
"""
        if encoder is not None
        else ""
    )
    if recogniser:
        enc_model += (
            "- Phone recogniser: a small CTC head trained here (`phone_ctc/`, `pronscore train\n"
            "  ctc`: a mix of hidden states 3-6 of the same encoder forward, a 5-frame\n"
            "  convolution, blank + 39 phones, trained on the canonical phones of the training\n"
            "  readings) gives every phone an alignment-free GOP (`p_ctc_sf`: the canonical\n"
            "  phone's share among every phone and none at its position, summed over all CTC\n"
            "  paths), its deletion and best rival's shares, span posteriors and the reading's\n"
            "  phone error rate (`p_ctc_*`, `u_ctc_*`). Its best rival, when it beats the\n"
            "  canonical phone, is `heard`; the reading and word checks are bars on `p_ctc_sf`\n"
            "  (another text: `mismatch`; a word far below its training words: flagged). A\n"
            "  reading that stopped early passes the reading bar when a prefix of its text\n"
            "  explains the audio about as well as the recogniser's best path does (within\n"
            "  the margin 99% of the training readings' texts keep) and clears the bar alone.\n"
        )
    frame_vectors = recipe.frame_vectors
    frame_model = (
        """- Phone classifier over the acoustic model's frames: each phone's log phone posteriors,
  averaged over its span, its halves and the 50 ms around it, go through a small classifier
  trained here on the phones experts scored 2 (`phone_classifier.safetensors`), which learns
  what these learners' phones look like to the GMM: its GOP (`p_enc_*`) joins the phone
  features, its most likely phone is `heard`, and it checks that the speech says the text.
"""
        if frame_vectors and encoder is None
        else "- The phone classifier also reads the pocketsphinx frame posteriors per phone.\n"
        if frame_vectors
        else ""
    )
    if recipe.phone_scorer and (frame_vectors or encoder is not None):
        frame_model += (
            "- A second small network (`phone_scorer.safetensors`) maps the same per-phone vector\n"
            "  and the canonical phone to the phone's score, trained on every labelled phone\n"
            "  (`p_enc_score`, a phone feature).\n"
        )
    wrong_text = (
        "Another sentence read in place of the text is mostly caught by the reading check\n"
        '  (`status: "mismatch"`, every word flagged, scores kept); about 1 in 50 weak readings\n'
        "  of the right text is flagged the same way (rates: benchmarks/README.md)."
        if checks and checks.get("reading_check")
        else "Another sentence read in place of the text is mostly caught by the encoder check\n"
        '  (`status: "mismatch"`, scores kept, every far-off word flagged); a very weak reading\n'
        "  of the right text can be flagged the same way (rates: benchmarks/README.md)."
        if encoder is not None or frame_vectors
        else "Another sentence read in place of the\n  text is mostly *not* caught: this "
        "acoustic model tells a wrong word from a right one poorly."
    )
    feats_cmd = (
        f"pronscore features data/so762 --out data/feats-enc --jobs 2 --encoder "
        f"../shared/models/whisper-base-encoder --layers {','.join(map(str, encoder.layers))}"
        if encoder is not None
        else "pronscore features data/so762 --out data/feats --jobs 2"
    ) + warp_flag(warp)
    warped = (
        f"\n  The front end divides frequencies by {warp:g} (`--warp`, a fixed vocal-tract\n"
        "  length warp chosen by cross-validation: docs/results_vtln.md)."
        if warp is not None
        else ""
    )
    data_text = (
        f"train + dev: all {n_train} labelled utterances of the corpus train part made by\n"
        "`pronscore prepare`, refit with the trees' sizes that the cross-validation below chose"
        "\n(per target: the most chosen `num_leaves`, the median number of rounds)."
        + (
            f"\nIn each fold every tree model kept at least {MIN_ROUNDS} rounds (`--round-floor`)."
            if recipe.round_floor
            else ""
        )
        if refit
        else f"train split only: {n_train} utterances of the\nspeaker-disjoint `train` part made "
        "by `pronscore prepare` (10% of the corpus train speakers\nare held out as `dev`)."
    )
    dev_text = (
        "In-sample: the model was refit on train + dev, so these numbers only show that\n"
        f"`pronscore evaluate {name} --data data/so762 --split dev` (through the Scorer)\n"
        "reproduces the model; the cross-validation below is the guide to unseen speakers."
        if refit
        else "Measured through the Scorer, as "
        f"`pronscore evaluate {name} --data data/so762 --split dev`\ndoes. Dev also chose the "
        "trees' size and number (early stopping), so these are slightly\noptimistic; 240 "
        "utterances of 12 speakers rank models unreliably (`pronscore cv` gives\n"
        "speaker-grouped cross-validation over train + dev)."
    )
    fdir, enc_flag = (
        ("data/feats-enc", " \\\n        --encoder ../shared/models/whisper-base-encoder")
        if encoder is not None
        else ("data/feats", "")
    )
    heard = (
        "the phone classifier's most likely phone"
        if frame_vectors or encoder is not None
        else "the phone\n  the free loop chose for most of its frames"
    )
    fv_flag, no_fv = recipe.cv_flags(), recipe.train_flags()
    if members > 1:
        fv_flag += f" --seeds {','.join(str(k + 1) for k in range(members))} --ensemble"
        no_fv += f" --ensemble {members}"
    ensemble = (
        f"\n- A seed ensemble: {members} such heads trained with consecutive seeds "
        "(`members/seed-*`), their\n  scores averaged; the first one's checks decide the "
        "status and the flags."
        if members > 1
        else ""
    )
    gate = (
        "\n- Channel gate: the utterance scores mix two sets of trees, those trained on the\n"
        "  readings and those trained with their 8 kHz and noisy copies (`channel__*.txt`), by\n"
        "  P(degraded channel) from a binary LightGBM (`channel_check.txt`), so that a phone\n"
        "  line or a noisy room moves the sentence scores less (docs/results_channels.md)."
        if checks and checks.get("channel_check")
        else ""
    )
    more = ["", " --kinds truncated --name train_cut", " --kinds band-8k,noise --name train_ch"]
    names = ["train_neg", "train_cut", "train_ch"]
    copies = recipe.channel_copies and n_negatives
    if copies:  # the cross-validation scores and trains on the copies of every speaker
        more.append(" --kinds band-8k,noise --split dev --name dev_ch")
        fv_flag += " --copies train_ch,dev_ch"
        names += ["dev_ch"] if refit else []  # dev is a training split only in the refit
    neg_cmds = "".join(
        f"\n    pronscore negatives data/so762 --out {fdir}{m}" for m in more
    ) if n_negatives else ""  # fmt: skip
    neg_flags = (
        " \\\n        " + " ".join(f"--negatives {fdir}:{n}" for n in names) if n_negatives else ""
    )
    return f"""# pronscore {name} scorer

Scores English read speech against its text offline: utterance accuracy, completeness,
fluency, prosodic and total (0-10), word accuracy, stress and total (0-10) with a
mispronounced flag, and phone scores (0-2) with times, on the scales of Speechocean762.

## Model

- Acoustic model and aligner: the en-us PTM GMM-HMM shipped inside the `pocketsphinx` wheel
  (BSD licence; nothing is downloaded): one decoder pass gives every frame's senone scores and
  a free phone loop; a numpy Viterbi forced-aligns the canonical phones of the text over the
  model's triphone HMMs, with optional silences, skippable words and a garbage path for extra
  speech (words get `status` read / omitted; extra speech is reported as `inserted`).
- Before alignment the audio is scaled to a speech level of -20 dBFS and leading/trailing
  silence (35 dB below the speech level) is cut; reported times stay those of the recording.{warped}
- Features: goodness of pronunciation per phone (forced score, free phone loop, LPP/LPR
  posteriors), durations, and word/utterance prosody (pauses, rate, F0 and energy statistics).
  Settings in `scorer.json` (`extractor`). A phone scored below 1 also gets `heard`, {heard},
  when that is another phone.
{enc_model}{frame_model}- Head: LightGBM gradient-boosted trees on all features (kind
  `{HEAD_KIND}`, text model files + JSON config, no pickles).{gate}{ensemble}
- Pronunciations: the Speechocean762 lexicon (`lexicon.txt`, CC BY 4.0), then CMUdict, then
  a rule-based letter-to-sound fallback (flagged in the result's `reason`).

## Training data

Speechocean762 (Zhang et al., 2021), {data_text}{neg} Licence CC BY 4.0.

> Junbo Zhang, Zhiwen Zhang, Yongqing Wang, Zhiyong Yan, Qiong Song, Yukai Huang, Ke Li,
> Daniel Povey, Yujun Wang. "speechocean762: An Open-Source Non-native English Speech Corpus
> For Pronunciation Assessment." Interspeech 2021. arXiv:2104.01378.

## Dev metrics

{metrics.get("n_utterances", "?")} dev utterances (12 speakers); Pearson correlation with the
experts' scores, bootstrap 95% CI over utterances, MSE, n. {dev_text}

| level | aspect | PCC [95% CI] | MSE | n |
|---|---|---|---|---|
{table}

Subgroups: {sub}.

Full numbers: `metrics_dev.json`. Anchors, on the Speechocean762 *test* split (so not
comparable one to one): utterance-total PCC 0.65 for GOP + GBT and 0.67 for GOP + BLSTM (Lin &
Wang 2021, Table 2); 0.742 for GOPT (Kaldi GOP + transformer).
{_cv_section(cv)}
## Limitations

- Trained only on Mandarin-L1 speakers (children and adults) reading short English sentences;
  other first languages, spontaneous speech and long passages are out of domain.
- Scores are on Speechocean762's scales and mimic its annotators; they are not a CEFR level.
- Regression to the mean: very good and very poor readings are pulled towards the middle;
  word stress is nearly constant in the corpus and is predicted poorly.
- Audio that cannot be aligned (silence, audio too short for the text) gets
  `status: "failed"`, noise or speech in which no word of the text is found gets
  `status: "mismatch"`, with the reason and zero scores. {wrong_text}
- Children's scores follow the experts much less than adults' (see the cross-validation
  subgroups: the dev split's 12 speakers hide most of the gap).
- Pronunciations guessed for words in no lexicon are approximate.

## Reproduce

    pronscore prepare ../shared/data/speechocean762 --out data/so762
    {feats_cmd}{neg_cmds}
    pronscore cv gop-gbt --features {fdir} --folds 5 --out runs/cv-{name}{fv_flag}
    pronscore train default --data data/so762 --features {fdir} --out runs/{name} --jobs 2 \\
        --cv runs/cv-{name}{" --refit" if refit else ""}{no_fv}{enc_flag}{neg_flags}

Made {date.today().isoformat()}.
"""
