"""LongWrite: long-form writing requests with a required length and checkable constraints (LongWriter, ACE-RL)."""
