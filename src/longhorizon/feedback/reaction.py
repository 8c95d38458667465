"""RLUF, RL from User Feedback (Han et al., Meta; arXiv 2505.14946; methods-2.md §7b): a user-reaction model
P[positive reaction | context, response], trained on binary reaction labels, used as one reward among several.

    reactions = read_reactions("reactions.jsonl")               # prompt, completion, label rows
    longhorizon train recipes/prefs/reaction-model.yaml         # algorithm.name: reaction_model -> RUN_DIR/model
    rm = load_reaction_model("runs/reaction-model/model")
    rm.probs([(context, response)])                             # P[positive] of each
    rm.score_turns(trajectories)                                # P[positive] of each agent turn
    algorithm.rewards.components: [{name: env}, {name: reaction, model: runs/reaction-model/model, weight: 0.5}]

What the paper says (summaries only; no code): the signal is the binary "Love" reaction to a chat response;
P[Love] is a reward model trained as a binary classifier on logged conversations (offline AUROC 0.85); the
policy is optimised on it together with helpfulness and safety reward models; pushing P[Love]'s weight up leads
to reward hacking, responses that fish for the reaction. Mixing weights, architecture and size: [NOT FOUND].

Our choices:
1. The model is the reward model's form (`feedback/reward_model.py`): `AutoModelForSequenceClassification` with
   one output on the configured LM's trunk; its logit z is log-odds, P[positive] = sigmoid(z); config.json says
   `longhorizon_scorer: reaction_model`. It reads (context, response) tokenised as a reward model reads them
   (`reward_tokens`), never a system prompt (the web app's export has none, so training and scoring match).
2. Loss: binary cross-entropy on the label, mean over the rows (`reaction_loss`).
3. Labels: rows in TRL's unpaired-preference format, `prompt`, `completion`, `label` (bool; 0 / 1 accepted),
   as a JSONL file or a `datasets` directory; any other column goes to the row's metadata; a row whose label is
   null (a critique) is skipped. Sources:
   - the web app: `longhorizon feedback export RUNS --out X` writes X/critiques, whose `label` is our mapping
     of the stored ratings: turn and stage ratings `good` → positive, `bad` and `first_mistake` → negative;
     critiques carry no reaction (null). A turn rating's prompt is the episode up to that turn, its completion
     the turn's action (a stage rating's: the stage's turns);
   - a simulated user (`simulated_reactions`, `longhorizon feedback simulate-reactions`), rule-based on the env's
     verifier: per episode, positive iff the episode succeeded (when the env gives no verdict: iff its return
     is > 0), prompt = the first observation, completion = the rest of the episode; per turn, the shadow
     user's turn-rating rules (`ui/shadow.py`: every turn of a success is good; in a failure the turns at the
     episode's top reward are good, the others bad; an episode whose turns all pay the same is not rated) with
     the web app's mapping. Each label is then flipped with probability `noise` (one draw per row from
     `random.Random(seed)`, in order), the way real reactions are noisy and sometimes adversarial; the row
     keeps `true_label` and `flipped` in its metadata.
4. Held-out metrics (`reaction_metrics`): AUROC (the Mann-Whitney statistic with average ranks for ties; NaN
   when the held-out labels hold one class only), accuracy of z > 0 (z == 0 counts one half, as the pair
   metrics do), expected calibration error over 10 equal-width bins of P[positive], log-loss, the positive
   rate and the mean predicted probability.
5. As a reward (`reaction` component): `per: turn` puts each turn's own P[positive | history, action] on it
   (RLUF's reaction is to one response); `per: episode` puts P[positive | first observation, the whole
   episode] on the last turn. Mixed by weight with the other components ([INFERRED]: no z-scoring and no
   safety gate; G-RA gates are available). Hacking probe ([INFERRED], methods-2.md §7b): the share of the
   scored actions whose last 120 characters hold a reaction-seeking phrase (`REACTION_SEEKING`), logged
   as `rewards/reaction_seeking_frac` next to `rewards/reaction_prob_mean`.
"""

from __future__ import annotations

import json
import math
import random
import re
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import Tensor

from longhorizon.errors import UserError
from longhorizon.feedback.preferences import Text, _first_error
from longhorizon.feedback.reward_model import CONFIG_KEY, TextLike, load_scorer, reward_tokens, score_rows
from longhorizon.io import atomic_write
from longhorizon.types import Trajectory

KIND = "reaction_model"
COLUMNS = ("prompt", "completion", "label")
WEB_APP_REACTIONS = {"good": True, "bad": False, "first_mistake": False}  # stored rating -> reaction (docstring, 3)
REACTION_SEEKING = re.compile(
    r"hope (?:this|that|it) helps|let me know|glad (?:to|I could) help|happy to help|"
    r"(?:please|pls|do) (?:like|rate|upvote|react|love)|thumbs[ -]?up|(?:did|do) you (?:like|love|enjoy)|"
    r"leave a (?:like|heart|love|reaction)|❤|♥", re.IGNORECASE)
Metrics = dict[str, float]


class Reaction(BaseModel):
    """One reaction label: a context, the response reacted to, and whether the reaction was positive."""

    model_config = ConfigDict(extra="forbid")

    prompt: Text = Field(description="the context: plain text or chat messages (the episode up to the response)")
    completion: Text = Field(description="the response reacted to: text or messages (one action, or several turns)")
    label: bool = Field(description="true: a positive reaction (thumbs up, love, a `good` rating)")
    metadata: dict[str, Any] = Field(default_factory=dict, description="anything else (env id, seed, source)")


# ------------------------------------------------------------------ reading and writing labels


def _reaction(row: Any, where: str) -> Reaction | None:
    if not isinstance(row, dict):
        raise UserError(f"{where}: a reaction row is a JSON object with {', '.join(COLUMNS)}")
    if missing := [c for c in COLUMNS if c not in row]:
        raise UserError(f"{where}: a reaction row needs {', '.join(COLUMNS)}; missing {', '.join(missing)}")
    if row["label"] is None:
        return None  # an unrated row (a critique)
    extra = {k: v for k, v in row.items() if k not in (*COLUMNS, "metadata")}
    try:
        return Reaction(**{c: row[c] for c in COLUMNS}, metadata={**(row.get("metadata") or {}), **extra})
    except ValidationError as err:
        raise UserError(f"{where}: bad reaction row: {_first_error(err)}") from None


def _jsonl_rows(path: Path) -> list[tuple[Any, str]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read reaction labels {path}: {err}") from None
    rows = []
    for i, line in enumerate(lines):
        if line.strip():
            try:
                rows.append((json.loads(line), f"{path}:{i + 1}"))
            except json.JSONDecodeError as err:
                raise UserError(f"{path}:{i + 1}: not JSON: {err.msg}") from None
    return rows


def _dataset_rows(path: Path) -> list[tuple[Any, str]]:
    from datasets import load_from_disk

    dataset = load_from_disk(str(path))
    if missing := [c for c in COLUMNS if c not in dataset.column_names]:
        raise UserError(f"{path}: the dataset lacks the {', '.join(map(repr, missing))} column(s) of reaction labels "
                        f"(prompt/completion/label); it has {', '.join(dataset.column_names) or 'no columns'}")
    return [(row, f"{path} row {i}") for i, row in enumerate(dataset)]


def read_reactions(path: str | Path) -> list[Reaction]:
    """The labelled rows of a JSONL file or a `datasets` directory (module docstring, 3); UserError if none."""
    path = Path(path)
    if path.is_dir() and (path / "dataset_info.json").exists():
        rows = _dataset_rows(path)
    elif path.is_file():
        rows = _jsonl_rows(path)
    else:
        raise UserError(f"no reaction labels at {path}: give a JSONL file of prompt/completion/label rows, or a "
                        "datasets directory (e.g. OUT/critiques of `longhorizon feedback export`)")
    reactions = [r for row, where in rows if (r := _reaction(row, where)) is not None]
    if not reactions:
        raise UserError(f"reactions: {path} holds no labelled row (label true or false)")
    return reactions


def write_reactions(path: str | Path, reactions: Sequence[Reaction]) -> Path:
    """One flat row per line (prompt, completion, label, then the metadata as columns), atomically."""
    lines = [json.dumps({**r.model_dump(mode="json", exclude={"metadata"}), **r.metadata}, ensure_ascii=False)
             for r in reactions]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(Path(path), "".join(line + "\n" for line in lines))


def reaction_group(reaction: Reaction) -> str:
    """Rows of one task (env id and seed in the metadata) or else of one prompt: held out together."""
    meta = reaction.metadata
    return repr((meta.get("env_id"), meta["seed"])) if "seed" in meta else repr(reaction.model_dump()["prompt"])


# ------------------------------------------------------------------ episodes as (context, response)


def turn_items(traj: Trajectory) -> list[tuple[list[dict[str, str]], list[dict[str, str]]]]:
    """(what the agent had seen, its action) of each turn, as the web app's export writes a turn rating."""
    from longhorizon.store.feedback_export import messages, prefix

    return [(prefix(traj, t), messages(traj, [t])) for t in range(len(traj.turns))]


def episode_item(traj: Trajectory) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(the first observation, the rest of the episode), as the export writes a whole-episode row."""
    from longhorizon.store.feedback_export import messages, prefix

    return prefix(traj, 0), messages(traj)


# ------------------------------------------------------------------ the simulated user


def _true_reactions(traj: Trajectory, per: str) -> list[tuple[int, Any, Any, bool]]:
    """(turn, prompt, completion, label) by the rules of the module docstring (3); turn -1 for a whole episode."""
    if not traj.turns:
        return []
    if per == "episode":
        good = traj.success if traj.success is not None else traj.total_reward > 0
        return [(-1, *episode_item(traj), bool(good))]
    from longhorizon.ui.shadow import turn_ratings

    ratings = turn_ratings([t.reward for t in traj.turns], traj.success)
    return [(t, *item, WEB_APP_REACTIONS[r]) for t, (item, r) in enumerate(zip(turn_items(traj), ratings)) if r]


def simulated_reactions(trajectories: Sequence[Trajectory], noise: float = 0.0, seed: int = 0,
                        per: str = "episode") -> list[Reaction]:
    """A rule-based simulated user's reactions to episodes (or turns), each flipped with probability `noise`."""
    if not 0 <= noise <= 1:
        raise UserError(f"noise must be in [0, 1], got {noise}")
    if per not in ("episode", "turn"):
        raise UserError(f"per must be episode or turn, got {per!r}")
    rng = random.Random(seed)
    out = []
    for index, traj in enumerate(trajectories):
        for turn, prompt, completion, label in _true_reactions(traj, per):
            flipped = rng.random() < noise
            meta = {"env_id": traj.env_id, "seed": traj.seed, "episode": index, "turn": turn, "true_label": label,
                    "flipped": flipped, "source": "simulated_user"}
            out.append(Reaction(prompt=prompt, completion=completion, label=label != flipped, metadata=meta))
    return out


# ------------------------------------------------------------------ loss and held-out metrics


def reaction_loss(logits: Tensor, labels: Tensor) -> tuple[Tensor, Metrics]:
    """Binary cross-entropy of P[positive] = sigmoid(z) against labels y in {0, 1}, mean over rows; inputs (B,)."""
    # RLUF (Han et al. 2025): P[Love] is a binary classifier of the reaction; BCE = -y log p - (1 - y) log(1 - p)
    loss = F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
    return loss, {"reaction_accuracy": accuracy(logits.detach(), labels),
                  "reaction_prob": torch.sigmoid(logits.detach()).mean().item(), "positive_rate": labels.float().mean().item()}


def accuracy(logits: Tensor, labels: Tensor) -> float:
    """Fraction of rows with (z > 0) == y, z == 0 counting one half."""
    right = ((logits > 0) == labels.bool()).double()
    return torch.where(logits == 0, torch.full_like(right, 0.5), right).mean().item()


def auroc(logits: Tensor, labels: Tensor) -> float:
    """P(z of a positive > z of a negative), ties one half: (rank sum of positives - P(P+1)/2) / (P N); NaN if a
    class is missing."""
    y = labels.bool()
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if not n_pos or not n_neg:
        return math.nan
    _, inverse, counts = torch.unique(logits.double(), return_inverse=True, return_counts=True)
    average_rank = counts.cumsum(0).double() - (counts.double() - 1) / 2  # 1-based, ties share their mean rank
    ranks = average_rank[inverse]  # (N,)
    return ((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)).item()  # Mann & Whitney (1947)


def binary_ece(probs: Tensor, labels: Tensor, bins: int = 10) -> float:
    """Expected calibration error: sum over equal-width bins of (n_b / N) |mean label - mean p| (Naeini et al. 2015)."""
    probs, labels = probs.double(), labels.double()
    index = (probs * bins).floor().clamp(max=bins - 1).long()  # bin b holds [b/bins, (b+1)/bins); p = 1 in the last
    ece = 0.0
    for b in index.unique().tolist():
        members = index == b
        ece += members.double().mean().item() * abs(labels[members].mean().item() - probs[members].mean().item())
    return ece


def reaction_metrics(logits: Tensor, labels: Tensor, bins: int = 10) -> Metrics:
    """Held-out AUROC, accuracy, ECE, log-loss, positive rate, mean P[positive] and count of N rows' logits."""
    z, y = logits.double(), labels.double()
    return {"reaction_auroc": auroc(z, y), "reaction_accuracy": accuracy(z, y),
            "reaction_ece": binary_ece(torch.sigmoid(z), y, bins),
            "reaction_log_loss": F.binary_cross_entropy_with_logits(z, y).item(),
            "reaction_positive_rate": y.mean().item(), "reaction_prob_mean": torch.sigmoid(z).mean().item(),
            "reactions": float(len(z))}


# ------------------------------------------------------------------ the model


def check_reaction_dir(path: str | Path) -> None:
    """A one-line UserError unless `path` is a saved reaction model (`algorithm.name: reaction_model`)."""
    config = Path(path) / "config.json"
    if not config.is_file():
        raise UserError(f"{path} is not a model directory (no config.json): give the `model` directory of a "
                        "reaction_model training run")
    try:
        kind = json.loads(config.read_text(encoding="utf-8")).get(CONFIG_KEY)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as err:
        raise UserError(f"{config} is not a model config: {str(err).splitlines()[0]}") from None
    if kind != KIND:
        raise UserError(f"{path} is not a reaction model ({CONFIG_KEY}: {kind}): train one with "
                        "`longhorizon train` and algorithm.name: reaction_model")


class ReactionModel:
    """P[positive reaction | context, response]: a scalar head on a causal LM (module docstring, 1)."""

    kind = KIND

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 16):
        self.model, self.tokenizer, self.batch_size = model.eval(), tokenizer, batch_size

    @classmethod
    def load(cls, path: str | Path, dtype: str = "float32", device: str = "cpu", batch_size: int = 16) -> "ReactionModel":
        check_reaction_dir(path)
        return cls(*load_scorer(path, KIND, dtype, device), batch_size=batch_size)

    def logits(self, items: Sequence[tuple[TextLike, TextLike]]) -> Tensor:
        """(N,) log-odds of a positive reaction to each (context, response), no grad, batched."""
        rows = [reward_tokens(self.tokenizer, x, y) for x, y in items]
        return score_rows(self.model, rows, self.tokenizer.pad_token_id, self.batch_size)

    def probs(self, items: Sequence[tuple[TextLike, TextLike]]) -> list[float]:
        """P[positive] of each (context, response)."""
        return torch.sigmoid(self.logits(items).double()).tolist()

    def score_episodes(self, trajectories: Sequence[Trajectory]) -> list[float]:
        """P[positive | first observation, the whole episode] of each episode (each must have a turn)."""
        return self.probs([episode_item(t) for t in trajectories])

    def score_turns(self, trajectories: Sequence[Trajectory]) -> list[list[float]]:
        """Per episode, P[positive | history, action] of each of its turns."""
        flat = iter(self.probs([item for t in trajectories for item in turn_items(t)]))
        return [[next(flat) for _ in t.turns] for t in trajectories]


def load_reaction_model(path: str | Path, **kwargs: Any) -> ReactionModel:
    """A saved reaction model; a one-line UserError if `path` is not one."""
    return ReactionModel.load(path, **kwargs)


# ------------------------------------------------------------------ as a reward


def reaction_seeking(text: str) -> bool:
    """Whether a response ends (its last 120 characters) with a reaction-seeking phrase: the hacking probe."""
    return bool(REACTION_SEEKING.search(text[-120:]))


def reaction_scores(model: Any, per: str, trajectories: list[Trajectory]) -> tuple[list[list[float]], Metrics]:
    """Per-turn P[positive] (`per: turn`), or the episode's on its last turn (`per: episode`), and the probes."""
    scored = [t for t in trajectories if t.turns]
    if per == "episode":
        probs = iter(model.score_episodes(scored))
        scores = [[0.0] * (len(t.turns) - 1) + [next(probs)] if t.turns else [] for t in trajectories]
        values = [s[-1] for s in scores if s]
    else:
        per_turn = iter(model.score_turns(scored))
        scores = [next(per_turn) if t.turns else [] for t in trajectories]
        values = [p for s in scores for p in s]
    actions = [turn.action for t in scored for turn in t.turns]
    probes = {"reaction_prob_mean": sum(values) / len(values) if values else 0.0,
              "reaction_seeking_frac": sum(map(reaction_seeking, actions)) / len(actions) if actions else 0.0}
    return scores, probes
