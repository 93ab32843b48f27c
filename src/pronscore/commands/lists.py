"""Comma-separated command-line lists (``--splits train,dev``, ``--seeds 1,2,3``), parsed once."""

from __future__ import annotations

import argparse


def names(text: str | None) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``; ``None`` or blank -> ``[]``."""
    return [s.strip() for s in (text or "").split(",") if s.strip()]


def ints(text: str) -> tuple[int, ...]:
    """``"1,2,3"`` -> ``(1, 2, 3)``; an argparse ``type=`` (a clear error otherwise)."""
    try:
        return tuple(int(s) for s in names(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of integers: {text!r}"
        ) from None
