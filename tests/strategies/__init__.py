"""Hypothesis strategies shared by property tests (never test modules themselves)."""
