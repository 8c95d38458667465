"""ACE-RL checklist rewards (Chen et al., "ACE-RL: Adaptive Constraint-Enhanced Reward for Long-form
Generation RL", arXiv 2509.04903; methods-2.md §5).

ACE-RL turns a request into a checklist of fine-grained constraints, verifies each against the response and
combines the constraint-satisfaction score with a length reward, optimised with GRPO. Here:

1. **Checklist** = the request's constraints. For our generated tasks they are rule-based and exact:
   LongWrite-v0's constraints (`envs/longwrite/constraints.py`) are the checklist, one item each. (The paper
   extracts them from free-form requests with an LLM; a model extractor is not built here.)
2. **Verification**: each item's rule verifier gives v_k in {0, 1}. The paper's verifier is an LLM; its answer
   scale is [NOT FOUND]. `SCALE` maps a model verifier's word (yes / partially / no) to {1, 0.5, 0}, the
   reference implementation's scale, for when one is added; `normalise` accepts any v_k in [0, 1].
3. **Normalisation** [INFERRED, the paper's is not verified]: r_con = (1/m) Σ_k v_k, the mean over the m
   items, so that requests with more constraints are not worth more. A request with no constraint (m = 0)
   gets r_con = 1 (nothing was asked that the response fails).
4. **Combination with the length reward** [INFERRED]: r_len = S_l / 100 (LongBench-Write's length score,
   `envs/longwrite/text.length_score`), and r = r_con · r_len (`product`, the default) or (r_con + r_len) / 2
   (`mean`), picked by name from `COMBINE`. The product is the default because with it an answer of the
   wrong length earns nothing from constraints it meets by saying little ("never use X").
   GRPO's group normalisation of r is the trainer's business, not this module's.

Pure functions; `checklist_reward(info)` is the hook a reward source calls on a LongWrite episode's last
`info` (it re-verifies the document against the items stored there).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from longhorizon.envs.longwrite.constraints import Constraint, Verdict, from_dict
from longhorizon.envs.longwrite.text import count_words, length_score

SCALE: dict[str, float] = {"yes": 1.0, "partially": 0.5, "no": 0.0}


def normalise(scores: Sequence[float]) -> float:
    """r_con = (1/m) Σ_k v_k over the m items (ACE-RL's constraint score, normalised to [0, 1]); 1 when m = 0."""
    bad = [v for v in scores if not 0.0 <= v <= 1.0]
    if bad:
        raise ValueError(f"checklist scores must lie in [0, 1], got {bad[0]!r}")
    return sum(scores) / len(scores) if scores else 1.0


def combine_product(r_con: float, r_len: float) -> float:
    """r = r_con · r_len (methods-2.md §5 reference implementation)."""
    return r_con * r_len


def combine_mean(r_con: float, r_len: float) -> float:
    """r = (r_con + r_len) / 2 (the reference implementation's alternative)."""
    return (r_con + r_len) / 2


COMBINE: dict[str, Callable[[float, float], float]] = {"product": combine_product, "mean": combine_mean}


def verify(constraints: Sequence[Constraint], text: str) -> list[Verdict]:
    """Each constraint's verdict on `text`, in order."""
    return [c.verify(text) for c in constraints]


def ace_reward(scores: Sequence[float], required_words: int, output_words: int,
               combine: str = "product") -> tuple[float, dict[str, float]]:
    """ACE-RL's reward from the item scores v_k and the lengths: (r, {r_con, r_len, r})."""
    r_con = normalise(scores)
    r_len = length_score(required_words, output_words) / 100  # LongBench-Write S_l, scaled to [0, 1]
    r = COMBINE[combine](r_con, r_len)
    return r, {"checklist/r_con": r_con, "checklist/r_len": r_len, "checklist/reward": r}


def checklist_items(verdicts: Sequence[Verdict], constraints: Sequence[Constraint]) -> list[dict[str, Any]]:
    """The checklist as JSON-able rows (the item, its description, score and reason): a reward's metadata."""
    return [{"constraint": c.to_dict(), "item": c.describe(), "score": v.score, "reason": v.reason}
            for c, v in zip(constraints, verdicts)]


def checklist_reward(info: dict[str, Any], combine: str = "product") -> tuple[float, dict[str, Any]]:
    """ACE-RL's reward for a finished LongWrite episode, from its last step's `info` (`checklist`,
    `document`, `metrics.required_words`): (r, metadata with the metrics and the verified items)."""
    constraints = [from_dict(row["constraint"]) for row in info["checklist"]]
    verdicts = verify(constraints, info["document"])
    r, metrics = ace_reward([v.score for v in verdicts], int(info["metrics"]["required_words"]),
                            count_words(info["document"]), combine)
    return r, {"metrics": metrics, "items": checklist_items(verdicts, constraints)}
