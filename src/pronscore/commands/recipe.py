"""``--frame-vectors`` / ``--phone-scorer`` / ``--round-floor`` / ``--stacked`` /
``--channel-copies`` / ``--channel-copies-words`` / ``--channel-gate``
(:class:`pronscore.training.recipe.Recipe`), shared by ``cv`` (off by default: the GOP features
alone) and ``train default`` (the shipped recipe by default)."""

from __future__ import annotations

import argparse
from dataclasses import fields

from pronscore.errors import PronscoreError
from pronscore.training.recipe import MIN_ROUNDS, SHIPPED, Recipe, flag

HELP = {
    "frame_vectors": "gop-gbt: a phone classifier over the pocketsphinx frame posteriors pooled "
    "per phone",
    "phone_scorer": "gop-gbt, with per-phone vectors: a network from each phone's vector and "
    "canonical phone to its score feeds the trees",
    "round_floor": f"gop-gbt: every tree model keeps at least {MIN_ROUNDS} boosting rounds "
    "(early stopping on the validation speakers alone can stop after ~35)",
    "stacked": "gop-gbt: the utterance trees read the word and phone trees' predictions "
    "(cross-fitted over the training speakers)",
    "channel_copies": "gop-gbt: channel copies among the training rows (8 kHz, noise: `pronscore "
    "negatives --kinds band-8k,noise`; `cv --copies`, `train --negatives`) train the "
    "utterance trees with their recording's labels",
    "channel_copies_words": "gop-gbt, with --channel-copies: the copies train the word and "
    "phone trees too",
    "channel_gate": "gop-gbt, with --channel-copies: keep the utterance trees of the clean "
    "readings too, and a channel gate (copies against readings) that weighs the two sets per "
    "recording",
}


def add_arguments(p: argparse.ArgumentParser, *, defaults: Recipe) -> None:
    for f in fields(Recipe):
        shipped = " (the shipped default's recipe)" if getattr(SHIPPED, f.name) else ""
        p.add_argument(flag(f.name), action=argparse.BooleanOptionalAction,
                       default=getattr(defaults, f.name), help=HELP[f.name] + shipped)  # fmt: skip


def from_args(args: argparse.Namespace) -> Recipe:
    try:
        return Recipe(**{f.name: getattr(args, f.name) for f in fields(Recipe)})
    except ValueError as exc:  # flags that do not go together
        raise PronscoreError(str(exc)) from None
