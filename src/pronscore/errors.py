"""Typed errors that carry where (file, line, field) and why.

The CLI turns any ``PronscoreError`` into one clear line and a non-zero exit.
"""

from __future__ import annotations

from pathlib import Path


class PronscoreError(Exception):
    """Base class: ``str(err)`` names the source, the field and the reason."""

    def __init__(
        self,
        reason: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.reason = reason
        self.path = None if path is None else str(path)
        self.line = line
        self.field = field
        super().__init__(self._format())

    def _format(self) -> str:
        where = self.path or ""
        if self.line is not None:
            where += f":{self.line}"
        if self.field:
            where += f" [{self.field}]" if where else f"[{self.field}]"
        return f"{where}: {self.reason}" if where else self.reason


class AudioError(PronscoreError):
    """Audio that cannot be read, is empty, too long or otherwise unusable."""


class TextError(PronscoreError):
    """Text that is empty, not English letters, or not pronounceable."""


class CorpusError(PronscoreError):
    """A corpus file that is missing, malformed or inconsistent."""


class AlignmentFailed(PronscoreError):
    """Forced alignment could not place the text on the audio."""


class ModelError(PronscoreError):
    """A checkpoint that cannot be found, parsed or does not fit the code."""


class NotServable(ModelError):
    """A head the Scorer cannot run on single recordings (neither ``predict_features`` nor
    ``predict_utterance``)."""
