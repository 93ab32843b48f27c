"""Train a scoring model: ``pronscore train KIND ...``.

Each kind lives in its own module with ``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util

KINDS: dict[str, tuple[str, str]] = {
    # kind: (module, help)
    "gop-gbt": ("pronscore.commands.train_gop", "GOP features + gradient-boosted trees"),
    "gop-blstm": ("pronscore.commands.train_gop", "GOP features + 2-layer BLSTM + MLP"),
    "default": (
        "pronscore.commands.train_default",
        "a shipped scorer: default (pocketsphinx features) or whisper (+ --encoder features)",
    ),
    "hier": ("pronscore.commands.train_hier", "hierarchical attention scorer (Lin & Wang 2021)"),
    "ctc": ("pronscore.commands.train_ctc", "CTC phone recogniser over a frozen encoder"),
    "ssl": ("pronscore.commands.train_ssl", "SSL encoder + head, fine-tuned (seed 000)"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="kind", metavar="KIND", required=True)
    for kind, (module, help_) in KINDS.items():
        if importlib.util.find_spec(module) is None:
            continue
        p = sub.add_parser(kind, help=help_, description=help_)
        importlib.import_module(module).add_arguments(p)
        p.set_defaults(_train_module=module)


def run(args: argparse.Namespace) -> int:
    return int(importlib.import_module(args._train_module).run(args) or 0)
