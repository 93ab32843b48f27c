"""``pronscore`` command line: a thin layer over library functions.

Each command lives in ``pronscore.commands.<name>`` with ``add_arguments(parser)`` and
``run(args) -> int``; its module docstring's first line is its help. Modules are imported only
when their command runs, so ``pronscore --help`` stays fast.

Exit status: 0 done, 2 a clear error (one line on stderr), 130 interrupted, 141 (128 + SIGPIPE,
like other Unix tools) when the reader of stdout went away, e.g. ``pronscore score ... | head -1``:
the command stops quietly, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys

from pronscore.errors import PronscoreError

COMMANDS: dict[str, tuple[str, str]] = {
    "prepare": ("pronscore.commands.prepare", "read a corpus into a datasets.DatasetDict"),
    "features": ("pronscore.commands.features", "align and extract GOP/prosody features"),
    "negatives": ("pronscore.commands.negatives", "train audio against the wrong text, as rows"),
    "train": ("pronscore.commands.train", "train a scoring model (gop-gbt, gop-blstm, ...)"),
    "evaluate": ("pronscore.commands.evaluate", "score a split and write the metrics JSON"),
    "cv": ("pronscore.commands.cv", "speaker-grouped K-fold cross-validation of a head"),
    "blend": ("pronscore.commands.blend", "score the average of CV runs on the same folds"),
    "ensemble": ("pronscore.commands.ensemble", "join trained runs into one averaging model"),
    "score": ("pronscore.commands.score", "score your own recording against its text"),
    "serve": ("pronscore.commands.serve", "REST API and browser page for scoring"),
    "extract": ("pronscore.commands.extract", "save encoder hidden states to disk"),
    "analyze": ("pronscore.commands.analyze", "analyses of extracted representations"),
    "report": ("pronscore.commands.report", "results tables as Markdown"),
}


def _available() -> dict[str, tuple[str, str]]:
    """Commands whose module is part of this installation."""
    return {
        name: spec
        for name, spec in COMMANDS.items()
        if importlib.util.find_spec(spec[0]) is not None
    }


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pronscore",
        description="Automatic pronunciation assessment of non-native English speech.",
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    commands = _available()
    chosen = next((a for a in argv if a in commands), None)
    for name, (module, help_) in commands.items():
        p = sub.add_parser(name, help=help_, description=help_)
        if name == chosen:  # only the command that runs pays for its imports
            importlib.import_module(module).add_arguments(p)
            p.set_defaults(_module=module)
    return parser


def _version() -> str:
    from pronscore import __version__

    return f"pronscore {__version__}"


EXIT_BROKEN_PIPE = 141


def _silence_stdout() -> None:
    """Point stdout at devnull so Python's flush at exit cannot raise BrokenPipeError again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout without a file descriptor (captured, closed)
        pass
    finally:
        os.close(devnull)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = "?"
    try:
        args = build_parser(argv).parse_args(argv)
        command = args.command
        code = int(importlib.import_module(args._module).run(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return code
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except PronscoreError as err:
        print(f"pronscore {command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
