"""LongProc: long procedural generation tasks (HTML to TSV, path traversal, ToM tracking, Countdown)."""
