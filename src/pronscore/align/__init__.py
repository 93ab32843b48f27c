"""Aligners place canonical phones on audio frames: pocketsphinx (embedded) and CTC Viterbi."""

from pronscore.align.base import Alignment, PhoneSegment, WordSegment

__all__ = ["Alignment", "PhoneSegment", "WordSegment"]
