"""pronscore: automatic pronunciation assessment of non-native English speech."""

from pronscore.errors import (
    AlignmentFailed,
    AudioError,
    CorpusError,
    ModelError,
    PronscoreError,
    TextError,
)
from pronscore.schema import Assessment, PhoneAssessment, UtteranceScores, WordAssessment

__version__ = "0.1.0"

__all__ = [
    "AlignmentFailed",
    "Assessment",
    "AudioError",
    "CorpusError",
    "ModelError",
    "PhoneAssessment",
    "PronscoreError",
    "TextError",
    "UtteranceScores",
    "WordAssessment",
    "__version__",
]
