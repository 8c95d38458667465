"""Tabletop: long-horizon tabletop manipulation in text (LoHoRavens)."""
