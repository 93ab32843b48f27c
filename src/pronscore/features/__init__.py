"""Per-phone, per-word and per-utterance features: GOP family, durations, prosody.

The on-disk layout (``FEATURES_DIR``) is documented in :mod:`pronscore.features.extract`.
"""
