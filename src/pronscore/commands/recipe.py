"""``--frame-vectors`` / ``--phone-scorer`` / ``--round-floor`` / ``--stacked``
(:class:`pronscore.training.recipe.Recipe`), shared by ``cv`` (off by default: the GOP features
alone) and ``train default`` (the shipped recipe by default)."""

from __future__ import annotations

import argparse
from dataclasses import fields

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
}


def add_arguments(p: argparse.ArgumentParser, *, defaults: Recipe) -> None:
    for f in fields(Recipe):
        shipped = " (the shipped default's recipe)" if getattr(SHIPPED, f.name) else ""
        p.add_argument(flag(f.name), action=argparse.BooleanOptionalAction,
                       default=getattr(defaults, f.name), help=HELP[f.name] + shipped)  # fmt: skip


def from_args(args: argparse.Namespace) -> Recipe:
    return Recipe(**{f.name: getattr(args, f.name) for f in fields(Recipe)})
