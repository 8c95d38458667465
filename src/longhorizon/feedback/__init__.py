"""Feedback: preference pairs (records, files, Hugging Face datasets in TRL's format) and building them.

- `PreferencePair`: a context, two continuations `a` / `b`, `preferred` ("a", "b" or "tie"), an optional
  Think-RM strength (-3..3), the `source` of the label and `metadata`.
- `append_pairs` / `write_pairs` / `load_pairs`: JSONL files (a run keeps them at `PREFERENCES_FILE`).
- `from_dataset` / `to_dataset`: `datasets.Dataset` in TRL's `prompt` / `chosen` / `rejected` format;
  `read_preferences(path)`: any of these from disk.
- `feedback.build`: `longhorizon prefs build`; `feedback.tokens`: pairs as token ids and loss masks.
- `feedback.reward_model`: Bradley-Terry reward models and pairwise preference models (a scalar head on a causal
  LM), `load_reward_model(path).score_episodes(...)` / `.score_turns(...)`, `load_preference_model(path).prob(x, a, b)`;
  `feedback.pair_metrics`: held-out pair accuracy, calibration (ECE) and log-loss.
"""

from longhorizon.feedback.preferences import (PREFERENCES_FILE, Message, PreferencePair, append_pairs,
                                              extract_prompt, from_dataset, load_pairs, make_pair, read_preferences,
                                              to_dataset, to_rows, write_pairs)

__all__ = ["Message", "PREFERENCES_FILE", "PreferencePair", "append_pairs", "extract_prompt", "from_dataset",
           "load_pairs", "make_pair", "read_preferences", "to_dataset", "to_rows", "write_pairs"]
