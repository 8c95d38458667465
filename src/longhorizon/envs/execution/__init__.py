"""Execution: keep a running sum of dictionary values over many turns (Sinha et al.)."""
