"""Keys and values kept between sampler calls, so a prompt that extends an earlier sequence is not prefilled again.

Multi-turn rollouts are prefill-bound: with the `full` context, turn t's
prompt is turn t-1's prompt, its sampled ids, and a few template and
observation tokens (token-in, token-out guarantees the extension); the G
samples of a group share their first prompt; bounded strategies (window,
markovian, workspace) rebuild a prompt that still starts with the system
prompt and the task. `PrefixCache` holds, for each sequence a call produced
(prompt + sampled ids), the per-layer keys and values of its tokens; the next
call reuses the longest common prefix of a new prompt with any held sequence
and computes only the rest (like vLLM's automatic prefix caching, without
paged blocks: each entry owns its tensors).

Entries are dropped when they are superseded (a later call used one as the
base of a new entry), released (the policy's episode ended), over the byte
budget (least recently used first), or stale: every entry records the
weights' version (the sum of the parameters' in-place version counters,
which an optimizer step or `load_state_dict` bumps), and a call with other
weights clears the cache, so keys and values from old weights are never served.

Shapes: `Entry.keys[l]` and `Entry.values[l]` are (H_kv, n, D) for layer l,
where n <= len(Entry.ids) tokens have keys and values (the last sampled id of
a call was never fed to the model).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


@dataclass(eq=False)
class Entry:
    """One cached sequence: its token ids and the keys/values of its first `length` tokens."""

    ids: list[int]
    keys: list[Tensor]  # per layer (H_kv, length, D)
    values: list[Tensor]
    last_used: int = 0

    @property
    def length(self) -> int:
        return self.keys[0].shape[1] if self.keys else 0

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.keys, *self.values))


def common_prefix(a: list[int], b: list[int]) -> int:
    """Length of the longest common prefix of two id lists."""
    n = min(len(a), len(b))
    if n == 0:
        return 0
    diff = (torch.tensor(a[:n]) != torch.tensor(b[:n])).nonzero()
    return int(diff[0, 0]) if len(diff) else n


def _cache_kwarg() -> str:
    """The name transformers gives a model's cache argument and output: `cache` in 5.2x, `past_key_values` before."""
    try:
        from transformers.generation.utils import ALL_CACHE_NAMES
    except ImportError:
        return "past_key_values"
    return ALL_CACHE_NAMES[0]


CACHE_KW = _cache_kwarg()


KV = tuple[list[Tensor], list[Tensor]]  # per layer: keys (H_kv, n, D), values (H_kv, n, D)


def weights_version(model: Any) -> int:
    """Changes whenever any parameter is modified in place (optimizer step, load_state_dict, copy_)."""
    return sum(p._version for p in model.parameters())


class PrefixCache:
    """Keys and values of recently produced sequences, matched to new prompts by longest common prefix."""

    def __init__(self, max_bytes: int = 1 << 30):
        self.max_bytes = max_bytes
        self.entries: list[Entry] = []
        self.version: int | None = None
        self.clock = 0
        self.stats = {"prompt_tokens": 0, "computed_tokens": 0}  # prompt ids asked for / actually run

    def check_version(self, version: int) -> None:
        """Drop everything if the weights changed since the entries were computed."""
        if version != self.version:
            self.clear()
            self.version = version

    def match(self, prompt: list[int]) -> tuple[Entry | None, int]:
        """The entry sharing the longest prefix with `prompt`, and that length (< len(prompt), <= its keys)."""
        best, best_k = None, 0
        for entry in self.entries:
            k = min(common_prefix(entry.ids[: entry.length], prompt), len(prompt) - 1)
            if k > best_k:
                best, best_k = entry, k
        return best, best_k

    def add(self, entry: Entry) -> None:
        self.clock += 1
        entry.last_used = self.clock
        self.entries.append(entry)

    def drop(self, entries: list[Entry]) -> None:
        gone = {id(e) for e in entries}
        self.entries = [e for e in self.entries if id(e) not in gone]

    def release(self, ids: list[int]) -> None:
        """Forget the entry of exactly this sequence (an episode ended with it)."""
        self.entries = [e for e in self.entries if e.ids != ids]

    def evict(self) -> None:
        """Least recently used entries go first until the rest fit in `max_bytes`."""
        self.entries.sort(key=lambda e: e.last_used, reverse=True)
        total = 0
        for n, entry in enumerate(self.entries):
            total += entry.nbytes
            if total > self.max_bytes:
                self.entries = self.entries[:n]
                return

    def clear(self) -> None:
        self.entries = []

    @property
    def nbytes(self) -> int:
        return sum(e.nbytes for e in self.entries)


# ------------------------------------------------------------------ building transformers caches


def new_cache() -> Any:
    from transformers import DynamicCache

    return DynamicCache()


def supports_kv_reuse(model: Any) -> bool:
    """Reuse needs plain full-attention layers (no sliding windows, no linear-attention states)."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    try:
        layers = DynamicCache(config=model.config).layers
    except Exception:  # an architecture whose cache this sampler cannot build: no reuse, nothing breaks
        return False
    return bool(layers) and all(type(layer) is DynamicLayer for layer in layers)


def head(entry: Entry | None, k: int) -> KV:
    """The first k tokens' keys and values of an entry (views; empty lists without an entry)."""
    if entry is None or k == 0:
        return [], []
    return [t[:, :k] for t in entry.keys], [t[:, :k] for t in entry.values]


def to_cache(rows: list[KV], width: int) -> Any:
    """A DynamicCache of (B, H_kv, width, D) per layer, each row's keys and values right-aligned (left padding)."""
    cache = new_cache()
    if width == 0:
        return cache
    like = next(r for r in rows if r[0])[0]  # a row with keys: its tensors give shapes and dtype
    for layer, sample in enumerate(like):
        h, _, d = sample.shape
        keys = sample.new_zeros(len(rows), h, width, d)
        values = sample.new_zeros(len(rows), h, width, d)
        for i, (k, v) in enumerate(rows):
            if k:
                n = k[layer].shape[1]
                keys[i, :, width - n :], values[i, :, width - n :] = k[layer], v[layer]
        cache.update(keys, values, layer)
    return cache
