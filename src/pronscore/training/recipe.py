"""What a GBT reads beyond the feature tables, and how its trees are sized: the options
``pronscore cv gop-gbt`` and ``pronscore train default`` share (recorded in cv.json
``options``), so that a refit can check it repeats the recipe its cross-validation measured."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

# Boosting rounds kept at least, with the round floor: 100 rounds at the learning rate of 0.03
# take predictions ~95% of the way from the mean (1 - 0.97^100).
MIN_ROUNDS = 100
# With the channel gate, the copies' trees weigh at least this much in the utterance scores
# (``GbtConfig.channel_floor``). Out of fold over the default's CV (docs/results_channels.md):
# floor 0 / 0.5 / 1, clean total 0.7995 / 0.8012 / 0.7945, 8 kHz copies' PCC with clean 0.938 /
# 0.950 / 0.953 -- two sets of trees averaged score clean readings better than either.
CHANNEL_FLOOR = 0.5


@dataclass(frozen=True)
class Recipe:
    frame_vectors: bool = True  # phone classifier over the frame posteriors pooled per phone
    phone_scorer: bool = True  # a network from each phone's vector to its score
    round_floor: bool = True  # every tree model keeps at least MIN_ROUNDS boosting rounds
    # the utterance trees read the word and phone trees' predictions (measured, not shipped:
    # 5-fold speaker CV of the default, utterance total 0.801 -> 0.799, accuracy 0.775 ->
    # 0.779, total down in 3 of 5 folds; docs/results_cv_stacked.md)
    stacked: bool = False
    # the channel copies among the training rows (``pronscore negatives --kinds band-8k,noise``)
    # train the utterance trees too, with their recording's human labels -- and with
    # channel_copies_words the word and phone trees (5-fold CV of the default: 8 kHz copies'
    # total PCC with clean 0.881 -> 0.950, noise 0.878 -> 0.936, but clean utterance total
    # 0.801 -> 0.792, word 0.641 -> 0.608, phone 0.611 -> 0.584; docs/results_channels.md)
    channel_copies: bool = True
    channel_copies_words: bool = False
    # with channel_copies: the utterance trees trained on the clean readings are kept beside
    # those trained with the copies, and a channel gate (a binary LightGBM, copies against
    # readings) weighs the two per recording -- what keeps the clean scores (5-fold CV of the
    # default, with CHANNEL_FLOOR: clean total 0.801 -> 0.801, 8 kHz copies' PCC with clean
    # 0.881 -> 0.947, noise 0.879 -> 0.930)
    channel_gate: bool = True

    def __post_init__(self) -> None:
        if self.channel_copies_words and not self.channel_copies:
            raise ValueError(f"{flag('channel_copies_words')} needs {flag('channel_copies')}")
        if self.stacked and self.channel_copies:  # the cross-fitted context reads human rows
            raise ValueError(f"{flag('stacked')} and {flag('channel_copies')} do not go together")
        if self.channel_gate and (not self.channel_copies or self.channel_copies_words):
            raise ValueError(
                f"{flag('channel_gate')} needs {flag('channel_copies')} (utterance trees only, "
                f"not {flag('channel_copies_words')})"
            )

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Recipe:
        """The recipe a cv.json ``options`` records; absent: off."""
        return cls(**{f.name: bool(options.get(f.name, False)) for f in fields(cls)})

    def gbt_options(self) -> dict[str, Any]:
        """The :class:`pronscore.heads.gbt.GbtConfig` fields it sets."""
        return {
            "frame_vectors": self.frame_vectors,
            "phone_scorer": self.phone_scorer,
            "min_rounds": MIN_ROUNDS if self.round_floor else 0,
            "stacked": self.stacked,
            "channel_levels": self.channel_levels(),
            "channel_gate": self.channel_gate,
            "channel_floor": CHANNEL_FLOOR if self.channel_gate else 0.0,
        }

    def channel_levels(self) -> tuple[str, ...]:
        """The tree levels the channel copies train."""
        if not self.channel_copies:
            return ()
        return ("utterance", "word", "phone") if self.channel_copies_words else ("utterance",)

    def cv_flags(self) -> str:
        """`` --frame-vectors ...``: the flags ``pronscore cv gop-gbt`` needs for it."""
        return "".join(f" {flag(k)}" for k, v in asdict(self).items() if v)

    def train_flags(self) -> str:
        """`` --no-... `` / `` --stacked``: the flags ``pronscore train default`` needs for it
        (where it differs from the shipped recipe, :data:`SHIPPED`)."""
        return "".join(
            f" {flag(k) if v else '--no-' + flag(k)[2:]}"
            for k, v in asdict(self).items()
            if v != getattr(SHIPPED, k)
        )


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


SHIPPED = Recipe()  # the shipped default's recipe
# the feature tables alone, trees early-stopped only
GOP_ONLY = Recipe(False, False, False, False, False, False, False)
