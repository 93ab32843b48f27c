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


def __getattr__(name: str):
    # Scorer pulls in pocketsphinx, LightGBM and pandas: import it only when asked for.
    if name == "Scorer":
        from pronscore.scorer import Scorer

        return Scorer
    raise AttributeError(f"module 'pronscore' has no attribute {name!r}")


__all__ = [
    "AlignmentFailed",
    "Assessment",
    "AudioError",
    "CorpusError",
    "ModelError",
    "PhoneAssessment",
    "PronscoreError",
    "Scorer",
    "TextError",
    "UtteranceScores",
    "WordAssessment",
    "__version__",
]
