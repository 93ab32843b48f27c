"""Scoring heads (downstream): they see feature arrays, never audio."""
