"""``--encoder ID_OR_PATH``, shared by ``score``, ``evaluate`` and ``serve``.

Models with a Whisper stage load their encoder from ``$PRONSCORE_WHISPER`` (else the hub id
``openai/whisper-base``, see :func:`pronscore.features.deep.whisper_model`); this option sets it
for the command and its worker processes. Models without an encoder (the embedded ``default``)
ignore it, so the same command line works for every model.
"""

from __future__ import annotations

import argparse
import os

from pronscore.features.deep import WHISPER_ENV


def add_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--encoder",
        metavar="ID_OR_PATH",
        help="speech encoder for models that have one (hub id or local folder; default "
        f"${WHISPER_ENV} or openai/whisper-base); ignored by the embedded default",
    )


def apply(args: argparse.Namespace) -> None:
    """Make ``--encoder`` the process's (and its children's) encoder location."""
    if getattr(args, "encoder", None):
        os.environ[WHISPER_ENV] = args.encoder
