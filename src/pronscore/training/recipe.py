"""What a GBT reads beyond the feature tables: the options ``pronscore cv gop-gbt`` and
``pronscore train default`` share (recorded in cv.json ``options`` and in ``GbtConfig``), so
that a refit can check it repeats the recipe its cross-validation measured."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class Recipe:
    frame_vectors: bool = True  # phone classifier over the frame posteriors pooled per phone
    phone_scorer: bool = True  # a network from each phone's vector to its score

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Recipe:
        """The recipe a cv.json ``options`` (or a GbtConfig dict) records; absent: off."""
        return cls(**{f.name: bool(options.get(f.name, False)) for f in fields(cls)})

    def cv_flags(self) -> str:
        """`` --frame-vectors ...``: the flags ``pronscore cv gop-gbt`` needs for it."""
        return "".join(f" {flag(k)}" for k, v in asdict(self).items() if v)

    def train_flags(self) -> str:
        """`` --no-... ``: the flags ``pronscore train default`` needs for it."""
        return "".join(f" --no-{flag(k)[2:]}" for k, v in asdict(self).items() if not v)


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


SHIPPED = Recipe()  # the shipped default's recipe
GOP_ONLY = Recipe(frame_vectors=False, phone_scorer=False)  # the feature tables alone
