"""Reward models and pairwise preference models: a scalar head on a causal LM, their inputs, and scoring.

    rm = load_reward_model("runs/rm-quickstart/model")
    rm.score_episodes(trajectories, systems)        # [r(episode)], no grad, batched
    rm.score_turns(trajectories, systems)           # [[r(prefix through turn k's action)] per episode]
    pm = load_preference_model("runs/pm-quickstart/model")
    pm.prob(context, a, b)                          # P(a > b | context) = 1 - pm.prob(context, b, a)

Both are Hugging Face `AutoModelForSequenceClassification` models with `num_labels=1`
(for llama-family models `LlamaForSequenceClassification`: the LM's trunk and a bias-free
linear `score` head), the ecosystem's reward-model form (TRL's RewardTrainer trains the
same), so a saved directory loads with `from_pretrained` anywhere. `config.json` carries
`longhorizon_scorer: reward_model | preference_model`; a directory without that key but
with one output (a TRL reward model) loads as a reward model.

Inputs. A reward model scores r(x, y): the context and one continuation tokenised exactly
as offline DPO tokenises a side of a pair (`feedback.tokens.continuation_tokens`: the chat
template message by message for messages, the two texts' tokens for plain text). An
episode is x = [system, first observation] and y = its turns as messages, as `longhorizon
prefs build` writes the pairs; turn k's score is that of the prefix through turn k's
action. A preference model scores f(x, A, B): one user message that frames the context
and both continuations between markers (as Think-RM's judge prompt does, methods-2.md §1),
rendered with the chat template and its generation prompt.

Pooling. The head reads the hidden state of each row's last attended token (with
`share_prefix`, a context that rows share runs once and the rows' ends run on its cache). Rows are
right-padded and the position comes from the attention mask, not from the pad token: the
bundled tokenizer's pad token is its end-of-turn token `<|im_end|>`, so transformers' own
pooling (the last token that is not the pad id) would skip a sequence's own final
`<|im_end|>`. Our sequences end with the template's "\\n" or with text, where the two
agree: a saved model gives the same scores through its plain forward (tested).

The preference model (methods.md §9: the Nash methods need P(y > y' | x), which a
reward model can express only as sigmoid(r(y) - r(y')), a transitive special case).
Design: the LM reads "context, A, B" and outputs a logit f(x, A, B) that A wins; the
probability is P(A > B | x) = sigmoid((f(x, A, B) - f(x, B, A)) / 2).
Why: (1) reading both continuations together, the model can compare them directly and
can represent intransitive or context-dependent preferences, which the Nash game is
about; (2) an LM judge has a position bias, so one order alone would give
P(A > B) + P(B > A) != 1; averaging the two orders' logits makes the
probability antisymmetric by construction, P(A > B) = 1 - P(B > A) and P(A > A) = 1/2,
for any weights (up to float rounding between forward passes, ~1e-9), at twice the
forward passes of one order; (3) it trains with binary cross-entropy on that averaged logit (equivalently on both orders at once:
`algorithms.reward_losses.pairwise_preference_loss`), so one label teaches both orders.
Averaging logits rather than probabilities keeps the loss a plain log-sigmoid and the
probability a sigmoid of a difference, exactly as the Bradley-Terry model's.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor

from longhorizon.algorithms.reward_losses import PAIR_LOG_ODDS
from longhorizon.context.base import encode, render
from longhorizon.errors import UserError
from longhorizon.feedback.preferences import Message, PreferencePair, Text
from longhorizon.feedback.tokens import continuation_tokens
from longhorizon.types import Trajectory

SCORER_KINDS = ("reward_model", "preference_model")
CONFIG_KEY = "longhorizon_scorer"  # in config.json: which kind a saved model is
TextLike = str | Sequence[Message | dict[str, Any]]


# ------------------------------------------------------------------ inputs as token ids


def as_text(text: TextLike) -> Text:
    """A string, or a list of `Message` (dicts are converted)."""
    return text if isinstance(text, str) else [m if isinstance(m, Message) else Message(**m) for m in text]


def reward_tokens(tokenizer: Any, context: TextLike, continuation: TextLike) -> list[int]:
    """Token ids of context + continuation, as offline DPO tokenises one side of a pair."""
    return continuation_tokens(tokenizer, as_text(context), as_text(continuation))[0]


def _flat(text: Text) -> str:
    return text if isinstance(text, str) else "\n".join(f"{m.role}: {m.content}" for m in text)


def comparison_text(context: TextLike, first: TextLike, second: TextLike) -> str:
    """The preference model's question: the context and both continuations between markers."""
    parts = ["Which continuation of the context is better, A or B?", "[Context]", _flat(as_text(context)),
             "[Continuation A]", _flat(as_text(first)), "[Continuation B]", _flat(as_text(second)), "[End]"]
    return "\n".join(parts)


def comparison_tokens(tokenizer: Any, context: TextLike, first: TextLike, second: TextLike) -> list[int]:
    """Token ids of the comparison as one user message with the generation prompt (plain text without a template)."""
    text = comparison_text(context, first, second)
    if getattr(tokenizer, "chat_template", None) is None:
        return encode(tokenizer, text)
    return encode(tokenizer, render(tokenizer, [{"role": "user", "content": text}], None, True))


def reward_pair_tokens(tokenizer: Any, pair: PreferencePair) -> tuple[list[int], list[int]]:
    """(x + chosen, x + rejected)."""
    return reward_tokens(tokenizer, pair.context, pair.chosen), reward_tokens(tokenizer, pair.context, pair.rejected)


def preference_pair_tokens(tokenizer: Any, pair: PreferencePair) -> tuple[list[int], list[int]]:
    """((x, chosen, rejected), (x, rejected, chosen)): both orders."""
    return (comparison_tokens(tokenizer, pair.context, pair.chosen, pair.rejected),
            comparison_tokens(tokenizer, pair.context, pair.rejected, pair.chosen))


PAIR_TOKENS = {"reward_model": reward_pair_tokens, "preference_model": preference_pair_tokens}


# ------------------------------------------------------------------ the model and its forward pass


def attach_score_head(causal_lm: Any, tokenizer: Any, kind: str) -> Any:
    """An `AutoModelForSequenceClassification` (num_labels 1) with `causal_lm`'s trunk and a new head drawn from the
    global torch RNG (transformers' init: normal, std initializer_range), on the same device and dtype."""
    from transformers import AutoModelForSequenceClassification

    config = copy.deepcopy(causal_lm.config)
    config.num_labels, config.pad_token_id = 1, tokenizer.pad_token_id
    setattr(config, CONFIG_KEY, kind)
    model = AutoModelForSequenceClassification.from_config(config, dtype=causal_lm.dtype)
    trunk = getattr(causal_lm, causal_lm.base_model_prefix)
    getattr(model, model.base_model_prefix).load_state_dict(trunk.state_dict())
    return model.to(causal_lm.device)


def pad_right(rows: list[list[int]], pad_id: int) -> tuple[Tensor, Tensor]:
    """input_ids and attention_mask, each (N, T), right-padded."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attn = torch.zeros(len(rows), width, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, :len(row)] = torch.tensor(row)
        attn[i, :len(row)] = 1
    return ids, attn


def pooled_scores(model: Any, input_ids: Tensor, attention_mask: Tensor, share_prefix: bool = False) -> Tensor:
    """(B, T) → (B,) float32: the head on each row's last attended token (module docstring: Pooling).

    With `share_prefix`, a token prefix that rows share (a pair's context) runs once (`train/prefix.py`'s plan);
    the scores equal the plain forward's up to float rounding."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # peft: LoRA layers stay active
    trunk = getattr(base, base.base_model_prefix)
    positions = torch.arange(input_ids.shape[1], device=input_ids.device)
    last = (positions * attention_mask).argmax(-1)  # (B,) rightmost attended position
    plan = _plan(input_ids, attention_mask, last) if share_prefix else None
    hidden = _last_hidden(trunk, input_ids, attention_mask, last) if plan is None else _shared_last_hidden(trunk, plan)
    return base.score(hidden)[:, 0].float()


def _last_hidden(trunk: Any, input_ids: Tensor, attention_mask: Tensor, last: Tensor) -> Tensor:
    hidden = trunk(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state  # (B, T, H)
    return hidden[torch.arange(len(input_ids), device=hidden.device), last]  # (B, H)


def _plan(input_ids: Tensor, attention_mask: Tensor, last: Tensor) -> Any:
    """A shared-prefix plan whose suffixes hold each row's last position (the only one the head reads)."""
    from longhorizon.train.prefix import plan_prefixes

    wanted = torch.zeros_like(attention_mask)
    wanted[torch.arange(len(last)), last] = 1  # as a loss mask: the prefix ends before position last - 1
    return plan_prefixes(input_ids, attention_mask, wanted)


def _shared_last_hidden(trunk: Any, plan: Any) -> Tensor:
    """(B, H): the U prefixes run once with a cache, copied to their rows (backward sums them), suffixes on top."""
    from longhorizon.models.kv_cache import CACHE_KW

    prefix_positions = (plan.prefix_mask.cumsum(1) - 1).clamp(min=0)  # (U, P); right padding repeats the last
    out = trunk(input_ids=plan.prefix_ids, attention_mask=plan.prefix_mask, position_ids=prefix_positions,
                use_cache=True)
    cache = getattr(out, CACHE_KW)
    cache.batch_select_indices(plan.source)
    mask = torch.cat([plan.prefix_mask[plan.source], plan.suffix_mask], dim=1)  # (B, P + S)
    positions = (mask.cumsum(1) - 1).clamp(min=0)[:, plan.prefix_ids.shape[1]:]  # (B, S)
    hidden = trunk(input_ids=plan.suffix_ids, attention_mask=mask, position_ids=positions, use_cache=True,
                   **{CACHE_KW: cache}).last_hidden_state  # (B, S, H)
    return hidden[torch.arange(len(hidden), device=hidden.device), plan.suffix_mask.sum(1) - 1]


@torch.no_grad()
def score_rows(model: Any, rows: list[list[int]], pad_id: int, batch_size: int, share_prefix: bool = True) -> Tensor:
    """(N,) scores of token-id rows, `batch_size` rows per forward pass, in eval mode, on CPU."""
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(rows), batch_size):
        ids, attn = pad_right(rows[start:start + batch_size], pad_id)
        out.append(pooled_scores(model, ids.to(device), attn.to(device), share_prefix).cpu())
    return torch.cat(out) if out else torch.zeros(0)


# ------------------------------------------------------------------ loading


def load_scorer(path: str | Path, kind: str, dtype: str = "float32", device: str = "cpu") -> tuple[Any, Any]:
    """(model, tokenizer) of a saved reward / preference model; a one-line UserError if `path` is not one."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    from longhorizon.models import DTYPES

    config = _scorer_config(Path(path), AutoConfig)
    found = getattr(config, CONFIG_KEY, "reward_model")
    if found != kind:
        raise UserError(f"{path} is a {found.replace('_', ' ')}, not a {kind.replace('_', ' ')}: "
                        f"load it with load_{found}")
    model = AutoModelForSequenceClassification.from_pretrained(path, dtype=DTYPES[dtype]).to(device).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def _scorer_config(path: Path, auto_config: Any) -> Any:
    if not (path / "config.json").is_file():
        raise UserError(f"{path} is not a model directory (no config.json): give the `model` directory of a "
                        "reward_model or preference_model training run")
    try:
        config = auto_config.from_pretrained(path)
    except (ValueError, OSError, json.JSONDecodeError) as err:
        raise UserError(f"{path} is not a Hugging Face model directory: {str(err).splitlines()[0]}") from None
    architectures = getattr(config, "architectures", None) or []
    if not any(a.endswith("ForSequenceClassification") for a in architectures) or config.num_labels != 1:
        raise UserError(f"{path} is not a reward model (architectures {', '.join(architectures) or 'none'}, "
                        f"{config.num_labels} outputs): train one with algorithm.name: reward_model")
    return config


# ------------------------------------------------------------------ episodes as texts


def episode_texts(trajectory: Trajectory, system: str | None) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(context, continuation) of a whole episode, as `longhorizon prefs build` pairs episodes."""
    from longhorizon.feedback.build import context_messages, continuation_messages

    if not trajectory.turns:
        raise UserError(f"episode of {trajectory.env_id} seed {trajectory.seed} has no turns to score")
    return context_messages(trajectory, 0, system), continuation_messages(trajectory, 0)


def system_prompts(trajectories: Sequence[Trajectory], env_kwargs: dict[str, Any] | None = None,
                   wrappers: list[dict[str, Any]] | None = None) -> list[str | None]:
    """Each episode's system prompt, from its env (with these knobs and wrappers) reset at its seed."""
    from longhorizon.feedback.build import PrefsBuildConfig, system_prompt

    cache: dict[tuple[str, int], str | None] = {}
    for t in trajectories:
        if (t.env_id, t.seed) not in cache:
            cfg = PrefsBuildConfig(env_id=t.env_id, env_kwargs=env_kwargs or {}, wrappers=wrappers or [])
            cache[(t.env_id, t.seed)] = system_prompt(cfg, t.seed)
    return [cache[(t.env_id, t.seed)] for t in trajectories]


def _systems(trajectories: Sequence[Trajectory], systems: str | Sequence[str | None] | None) -> list[str | None]:
    if systems is None or isinstance(systems, str):
        return [systems] * len(trajectories)
    if len(systems) != len(trajectories):
        raise UserError(f"got {len(systems)} system prompts for {len(trajectories)} episodes")
    return list(systems)


# ------------------------------------------------------------------ the scorer API


class RewardModel:
    """A Bradley-Terry reward model r(x, y): scores of contexts + continuations, episodes and turns."""

    kind = "reward_model"

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 16):
        self.model, self.tokenizer, self.batch_size = model.eval(), tokenizer, batch_size

    @classmethod
    def load(cls, path: str | Path, dtype: str = "float32", device: str = "cpu", batch_size: int = 16) -> "RewardModel":
        return cls(*load_scorer(path, cls.kind, dtype, device), batch_size=batch_size)

    def _scores(self, rows: list[list[int]]) -> list[float]:
        return score_rows(self.model, rows, self.tokenizer.pad_token_id, self.batch_size).tolist()

    def score(self, items: Sequence[tuple[TextLike, TextLike]]) -> list[float]:
        """r(x, y) of each (context, continuation)."""
        return self._scores([reward_tokens(self.tokenizer, x, y) for x, y in items])

    def pair_log_odds(self, pairs: Sequence[PreferencePair]) -> Tensor:
        """(N,) r(x, chosen) - r(x, rejected) of each pair: the log-odds that its labelled winner wins."""
        scores = torch.tensor(self.score([(p.context, side) for p in pairs for side in (p.chosen, p.rejected)]))
        return PAIR_LOG_ODDS[self.kind](scores[0::2], scores[1::2])

    def prob(self, context: TextLike, a: TextLike, b: TextLike) -> float:
        """P(a > b | context) = sigmoid(r(x, a) - r(x, b)) (Bradley-Terry)."""
        r_a, r_b = self.score([(context, a), (context, b)])
        return torch.sigmoid(torch.tensor(r_a - r_b, dtype=torch.float64)).item()

    def score_episodes(self, trajectories: Sequence[Trajectory],
                       systems: str | Sequence[str | None] | None = None) -> list[float]:
        """One score per episode: r(first prompt, every turn). `systems`: the system prompt (one for all, one per
        episode, or None: none), as the pairs the model was trained on had it (`system_prompts` gives the env's)."""
        texts = [episode_texts(t, s) for t, s in zip(trajectories, _systems(trajectories, systems))]
        return self.score(texts)

    def score_turns(self, trajectories: Sequence[Trajectory],
                    systems: str | Sequence[str | None] | None = None) -> list[list[float]]:
        """Per episode, score k of the episode's prefix up to and including turn k's action."""
        items, counts = [], []
        for t, s in zip(trajectories, _systems(trajectories, systems)):
            context, continuation = episode_texts(t, s)
            items += [(context, continuation[:2 * k + 1]) for k in range(len(t.turns))]
            counts.append(len(t.turns))
        flat = iter(self.score(items))
        return [[next(flat) for _ in range(n)] for n in counts]


class PreferenceModel:
    """A pairwise preference model P(a > b | x) = sigmoid((f(x, a, b) - f(x, b, a)) / 2)."""

    kind = "preference_model"

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 16):
        self.model, self.tokenizer, self.batch_size = model.eval(), tokenizer, batch_size

    @classmethod
    def load(cls, path: str | Path, dtype: str = "float32", device: str = "cpu",
             batch_size: int = 16) -> "PreferenceModel":
        return cls(*load_scorer(path, cls.kind, dtype, device), batch_size=batch_size)

    def log_odds(self, items: Sequence[tuple[TextLike, TextLike, TextLike]]) -> list[float]:
        """log P(a > b) / P(b > a) of each (context, a, b): both orders in one batch."""
        rows = [comparison_tokens(self.tokenizer, x, a, b) for x, a, b in items]
        rows += [comparison_tokens(self.tokenizer, x, b, a) for x, a, b in items]
        scores = score_rows(self.model, rows, self.tokenizer.pad_token_id, self.batch_size)
        return PAIR_LOG_ODDS[self.kind](scores[:len(items)], scores[len(items):]).tolist()

    def pair_log_odds(self, pairs: Sequence[PreferencePair]) -> Tensor:
        """(N,) the log-odds that each pair's labelled winner wins."""
        return torch.tensor(self.log_odds([(p.context, p.chosen, p.rejected) for p in pairs]))

    def probs(self, items: Sequence[tuple[TextLike, TextLike, TextLike]]) -> list[float]:
        """P(a > b | context) of each (context, a, b)."""
        return torch.sigmoid(torch.tensor(self.log_odds(items), dtype=torch.float64)).tolist()

    def prob(self, context: TextLike, a: TextLike, b: TextLike) -> float:
        return self.probs([(context, a, b)])[0]


def load_reward_model(path: str | Path, **kwargs: Any) -> RewardModel:
    """A saved reward model (ours, or any one-output sequence-classification model); UserError if `path` is not one."""
    return RewardModel.load(path, **kwargs)


def load_preference_model(path: str | Path, **kwargs: Any) -> PreferenceModel:
    """A saved preference model (`algorithm.name: preference_model`); UserError if `path` is not one."""
    return PreferenceModel.load(path, **kwargs)


def load_pair_model(path: str | Path, **kwargs: Any) -> RewardModel | PreferenceModel:
    """A saved reward or preference model, whichever `path` holds; UserError if it holds neither."""
    from transformers import AutoConfig

    kind = getattr(_scorer_config(Path(path), AutoConfig), CONFIG_KEY, "reward_model")
    return {"reward_model": RewardModel, "preference_model": PreferenceModel}[kind].load(path, **kwargs)
