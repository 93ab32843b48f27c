"""Corpus readers: one module per corpus, each returning typed utterance manifests."""

from pronscore.corpora.base import CorpusManifest, Utterance

__all__ = ["CorpusManifest", "Utterance"]
