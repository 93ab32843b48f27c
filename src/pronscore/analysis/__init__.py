"""Analyses of learned representations (PCA of SSL hidden states)."""
