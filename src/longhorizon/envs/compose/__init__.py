"""Compose: chained word problems, each answer feeding the next (R-HORIZON)."""
