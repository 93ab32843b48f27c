"""Rates and scales named once, used everywhere."""

SAMPLE_RATE = 16_000
"""Every model in pronscore sees 16 kHz mono float32 audio."""

MAX_DURATION_S = 60.0
"""Default upper bound on one recording; longer inputs are rejected with a clear error."""

UTTERANCE_ASPECTS = ("accuracy", "completeness", "fluency", "prosodic", "total")
WORD_ASPECTS = ("accuracy", "stress", "total")
PHONE_ASPECTS = ("accuracy",)

UTTERANCE_SCALE = 10.0
WORD_SCALE = 10.0
PHONE_SCALE = 2.0

CHILD_MAX_AGE = 12
"""Speechocean762 speakers aged <= 12 are counted as children in subgroup metrics."""
