"""Trainable end-to-end models (an encoder and its head in one torch module)."""
