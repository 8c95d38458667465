"""`longhorizon/LongWrite-v0`: long-form writing to a required length under checkable constraints.

After LongWriter (Bai et al., arXiv 2408.07055; code github.com/THUDM/LongWriter) and ACE-RL (Chen et al.,
arXiv 2509.04903); methods-2.md §4-§5. Each episode is a generated request (`generator.py`): a genre, topic,
audience and tone, a required length l in LongBench-Write's unit (English words + Chinese characters), from
hundreds to tens of thousands of words (`horizon` x `paragraph_words`), and constraints, each a rule verifier
(`constraints.py`): exactly P paragraphs, plus `n_constraints` of: words to include, words to avoid, section
headings, a per-paragraph word limit, a closing sentence.

Modes (knob `mode`):
- `agentwrite` (AgentWrite, LongWriter §3): turn 0 the agent writes a plan, one line per paragraph,
  `Paragraph k - Main Point: ... - Word Count: N words` (`plan.py`); turns 1..P it writes paragraph k. The
  env keeps the document (the paragraphs joined by blank lines, as AgentWrite's `write.py` joins them) and
  each turn's observation restates what is needed now (the plan line, the words so far, the text's last
  characters), so the bounded contexts (`workspace`, `markovian`), which show only the request and the latest
  observation, have what they need. A plan that cannot be used is replaced by an even split of l (the
  observation shows it) and the episode goes on: it always has P + 1 turns. The horizon is P. The plan
  turn's `response_prefix` is "Paragraph 1 - Main Point:" (a model policy with `prefill` starts the plan with
  it; small models otherwise skip the plan and start writing); the paragraph turns have none.
- `single`: one turn, the whole text.

Reward (weights are knobs; W = their sum; an episode's reward is in [0, 1] and the oracle's is 1):
- format/progress f_t per turn, paid w_f · f_t / (W · T) on turn t of T:
  plan turn: S_l(l, Σ planned words) / 100 if the plan is valid, else 0;
  paragraph k: S_l(planned_k, words written) / 100, 0 if it is empty, repeats an earlier paragraph word for
  word (LongWriter-Zero's format RM also penalises repeated content) or copies a plan line ("Paragraph k -
  Main Point: ..."; the bundled model, untrained, copied its prompt's plan line and was paid for its words);
  single mode: the fraction of distinct paragraphs (0 for an empty text);
- on the last step, (w_l · S_l(l, words of the document) / 100 + w_c · r_con) / W, where S_l is
  LongBench-Write's length score (`text.length_score`) and r_con the ACE-RL checklist score: the mean of the
  constraints' verdicts (`feedback/checklist.normalise`).
A quality score (LongBench-Write's S_q) needs a judge and is not part of this env's reward: the reward
interface (feedback/, issue 15) adds it as one more weighted source, reading the last step's
`info["document"]` and the request (the first observation).

Step `info`: `format` (f_t), `correct` (f_t >= 0.9; single mode: success), `words` and `planned_words`
(paragraph turns), `error` (what was wrong, also in the observation). Last step: `success` (every constraint
met and S_l >= 90, i.e. 0.83 l <= words <= 1.3 l), `reward_components` {length, checklist, format} (each in
[0, 1], before weights), `checklist` (each item, its score and reason), `document`, and `metrics`:
length_score (S_l, 0..100), checklist, format, words, required_words, constraints_met, constraints.

Departures from the papers: requests are generated, not WildChat / LongBench-Write prompts; constraints are
rule-checked, not extracted and verified by an LLM (ACE-RL); the paper's 200..1000 words per plan line is not
enforced.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from longhorizon.envs.core.base import TextEnv, clip_text
from longhorizon.envs.core.knobs import Int, Knobs, Real, set_knobs
from longhorizon.envs.longwrite.generator import MAX_CONSTRAINTS, Request, generate_request
from longhorizon.envs.longwrite.oracle import oracle_paragraph
from longhorizon.envs.longwrite.plan import FORMAT, PLAN_LINE_RE, PlanStep, even_plan, format_plan, parse_plan
from longhorizon.envs.longwrite.text import count_words, length_score, normalise, paragraphs
from longhorizon.feedback.checklist import checklist_items, normalise as checklist_score, verify

SUCCESS_LENGTH_SCORE = 90.0  # S_l at or above this counts as the right length (0.83 l .. 1.3 l)
CORRECT_FORMAT = 0.9  # a turn is `correct` when its format/progress term reaches this
TAIL_CHARS = 200  # characters of the text so far that each writing prompt quotes
PLAN_PREFIX = "Paragraph 1 - Main Point:"  # the plan turn's response prefix (a model policy may pre-fill it)


class LongWriteKnobs(Knobs):
    """LongWrite's knobs."""

    horizon: Int = Field(4, ge=1, le=128, description="P, paragraphs of the text; in agentwrite mode the writing "
                         "turns after the plan (the horizon knob)")
    paragraph_words: Int = Field(200, ge=40, le=5000, description="mean words per paragraph: the required length "
                                 "is P x paragraph_words x U(0.8, 1.2), rounded to 10")
    n_constraints: Int = Field(4, ge=0, le=MAX_CONSTRAINTS, description="constraints besides the paragraph count "
                               "(include / exclude words, headings, a paragraph word limit, a closing sentence)")
    mode: Literal["agentwrite", "single"] = Field("agentwrite", description="agentwrite: a plan, then one "
                                                  "paragraph per turn; single: the whole text in one turn")
    length_weight: Real = Field(0.4, ge=0, description="w_l, weight of S_l/100 (LongBench-Write's length score)")
    checklist_weight: Real = Field(0.4, ge=0, description="w_c, weight of the ACE-RL checklist score")
    format_weight: Real = Field(0.2, ge=0, description="w_f, weight of the mean per-turn format/progress term")

    @model_validator(mode="after")
    def _some_weight(self) -> LongWriteKnobs:
        if self.length_weight + self.checklist_weight + self.format_weight <= 0:
            raise ValueError("length_weight + checklist_weight + format_weight must be positive")
        return self


class LongWriteEnv(TextEnv):
    """Write a long text to a required length under checkable constraints, plan first (AgentWrite)."""

    REWARD: ClassVar[str] = ("0 to 1 per episode: w_f x mean per-turn format/progress, plus w_l x S_l/100 and "
                             "w_c x checklist on the last step (weights 0.2/0.4/0.4, normalised)")
    system_prompt = "You are an excellent writing assistant."
    Knobs = LongWriteKnobs
    LEVELS: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {"horizon": 1, "paragraph_words": 40, "n_constraints": MAX_CONSTRAINTS},
        "short": {"horizon": 2, "paragraph_words": 60},
        "default": {},
        "single": {"mode": "single", "horizon": 3, "n_constraints": 6},
        "long": {"horizon": 16, "paragraph_words": 1250, "n_constraints": 8},  # about 20,000 words
    }

    def __init__(self, render_mode: str | None = None, **knobs: Any):
        super().__init__(render_mode)
        self.knobs = set_knobs(self, LongWriteKnobs, knobs)
        self.done = True

    # -- episode ------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.request: Request = generate_request(self.np_random, self.horizon, self.paragraph_words,
                                                 self.n_constraints)
        self._oracle_seed = int(self.np_random.integers(2**31))
        self.plan: list[PlanStep] | None = None
        self.parts: list[str] = []
        self._seen: set[str] = set()  # the paragraphs written, normalised (to spot repeats)
        self.words_so_far = 0
        self.format_scores: list[float] = []
        self.turn, self.done = 0, False
        self.task_statement = self.request.describe()
        self.response_prefix = PLAN_PREFIX if self.mode == "agentwrite" else None
        self._last_obs = f"{self.task_statement}\n\n{self._protocol()}"
        return self._last_obs, {"turn": 0, "horizon": self.horizon, "required_words": self.request.words}

    @property
    def turns(self) -> int:
        """T: turns in an episode (the plan and P paragraphs, or one)."""
        return self.horizon + 1 if self.mode == "agentwrite" else 1

    @property
    def document(self) -> str:
        """The text written so far: the non-empty paragraphs joined by blank lines."""
        return "\n\n".join(self.parts)

    def _protocol(self) -> str:
        if self.mode == "single":
            return (f"Reply with the whole text: {self.horizon} paragraph(s) separated by blank lines (a heading "
                    "line such as '## Title' may go above a paragraph).")
        return (f"Work in two stages. First reply with a plan only: exactly {self.horizon} line(s), one per "
                f"paragraph, in this format:\n{FORMAT}\nThe word counts should add up to {self.request.words}. "
                "Then I will ask for the paragraphs, one per turn: write only the paragraph asked for (a heading "
                "line such as '## Title' may go above it), without repeating earlier text. The paragraphs, "
                "joined by blank lines, are the text.")

    def step(self, action: str):
        if self.done:
            raise RuntimeError("step() called on a finished episode; call reset() first")
        text = str(action)
        if self.mode == "single":
            score, info, note = self._single(text)
        elif self.turn == 0:
            score, info, note = self._plan_turn(text)
        else:
            score, info, note = self._paragraph_turn(text)
        self.format_scores.append(score)
        self.turn += 1
        weights = self.length_weight + self.checklist_weight + self.format_weight
        reward = self.format_weight * score / (weights * self.turns)
        info |= {"turn": self.turn, "format": score, "correct": score >= CORRECT_FORMAT}
        if self.turn >= self.turns:
            self.done = True
            reward += self._finish(info)
            note += "\n" + self._summary(info)
        else:
            note += "\n\n" + self._write_prompt()
        self._last_obs = (f"Error: {info['error']}\n" if "error" in info else "") + note.strip()
        return self._last_obs, float(reward), self.done, False, info

    # -- turns --------------------------------------------------------------------
    def _plan_turn(self, text: str) -> tuple[float, dict[str, Any], str]:
        self.response_prefix = None  # paragraphs start however the agent likes
        steps, error = parse_plan(text, self.horizon)
        if steps is None:
            self.plan = even_plan(self.request.words, self.horizon)
            return 0.0, {"error": f"the plan could not be used: {error}"}, (
                f"Write to this plan instead:\n{format_plan(self.plan)}")
        self.plan = steps
        planned = sum(s.words for s in steps)
        return length_score(self.request.words, planned) / 100, {"planned_words": planned}, (
            f"Plan accepted: {self.horizon} paragraph(s), {planned} words planned, {self.request.words} required.")

    def _paragraph_turn(self, text: str) -> tuple[float, dict[str, Any], str]:
        step = self.plan[self.turn - 1]
        body, words = text.strip(), count_words(text)
        key = normalise(body)
        info: dict[str, Any] = {"words": words, "planned_words": step.words}
        if words == 0:
            info["error"] = f"paragraph {step.index} is empty (no word)"
        elif key in self._seen:
            info["error"] = f"paragraph {step.index} repeats an earlier paragraph word for word"
        elif PLAN_LINE_RE.search(body):
            info["error"] = f"paragraph {step.index} copies a plan line; write the paragraph itself"
        if body:
            self.parts.append(body)
            self._seen.add(key)
            self.words_so_far += words
        score = 0.0 if "error" in info else length_score(step.words, words) / 100
        return score, info, f"Paragraph {step.index}: {words} words ({step.words} planned)."

    def _single(self, text: str) -> tuple[float, dict[str, Any], str]:
        if text.strip():
            self.parts.append(text.strip())
        found = paragraphs(self.document)
        score = len({normalise(p) for p in found}) / len(found) if found else 0.0
        info = {} if found else {"error": "the text is empty (no word)"}
        return score, info, f"Your text has {count_words(self.document)} words in {len(found)} paragraph(s)."

    def _write_prompt(self) -> str:
        step = self.plan[self.turn - 1]
        so_far = f"The text so far has {self.words_so_far} of the {self.request.words} words required"
        tail = f"; it ends: ...{self.document[-TAIL_CHARS:]}" if self.parts else "."
        return (f"Write paragraph {step.index} of {self.horizon} now, and nothing else. Its main point: "
                f"{step.point} ({step.words} words).\n{so_far}{tail}")

    # -- the end ------------------------------------------------------------------
    def _finish(self, info: dict[str, Any]) -> float:
        """Score the document; fill the last step's info; return the last step's extra reward."""
        document, constraints = self.document, self.request.constraints
        verdicts = verify(constraints, document)
        words = count_words(document)
        s_l = length_score(self.request.words, words)
        r_con = checklist_score([v.score for v in verdicts])
        fmt = float(np.mean(self.format_scores))
        met = sum(v.score == 1.0 for v in verdicts)
        info["success"] = met == len(constraints) and s_l >= SUCCESS_LENGTH_SCORE
        if self.mode == "single":
            info["correct"] = info["success"]
        info["reward_components"] = {"length": s_l / 100, "checklist": r_con, "format": fmt}
        info["checklist"] = checklist_items(verdicts, constraints)
        info["document"] = document
        info["metrics"] = {"length_score": s_l, "checklist": r_con, "format": fmt, "words": float(words),
                           "required_words": float(self.request.words), "constraints_met": float(met),
                           "constraints": float(len(constraints))}
        weights = self.length_weight + self.checklist_weight + self.format_weight
        return (self.length_weight * s_l / 100 + self.checklist_weight * r_con) / weights

    def _summary(self, info: dict[str, Any]) -> str:
        m = info["metrics"]
        failed = [f"- {row['item']} ({row['reason']})" for row in info["checklist"] if row["score"] < 1]
        lines = [f"The text is finished: {int(m['words'])} words of {int(m['required_words'])} required "
                 f"(length score {m['length_score']:.1f} of 100); constraints met: {int(m['constraints_met'])} "
                 f"of {int(m['constraints'])}."] + [clip_text(line, 300) for line in failed]
        return "\n".join(lines)

    # -- oracle -------------------------------------------------------------------
    def _oracle_plan(self) -> list[PlanStep]:
        points = [f"{self.request.topic}, part {k}" for k in range(1, self.horizon + 1)]
        return even_plan(self.request.words, self.horizon, points)

    def _oracle_text(self, k: int, target: int, text_so_far: str) -> str:
        rng = np.random.default_rng([self._oracle_seed, k])
        return oracle_paragraph(rng, self.request.constraints, k, self.horizon, target, text_so_far)

    def oracle_action(self) -> str:
        """The plan (an even split of l), then each paragraph at its planned length; the last one makes up the
        rest of l. In single mode, the whole text at once."""
        if self.mode == "single":
            plan, text = self._oracle_plan(), ""
            for k, step in enumerate(plan):
                text = "\n\n".join(filter(None, [text, self._oracle_text(k, step.words, text)]))
            return text
        if self.turn == 0:
            return format_plan(self._oracle_plan())
        k = self.turn - 1
        target = self.plan[k].words
        if k == self.horizon - 1 and self.request.words > self.words_so_far:
            target = self.request.words - self.words_so_far
        return self._oracle_text(k, target, self.document)

    def wrong_action(self, rng: np.random.Generator) -> str:
        """A plan without word counts, or a two-word paragraph / text."""
        if self.mode == "agentwrite" and self.turn == 0:
            return "\n".join(f"Paragraph {k} - Main Point: everything" for k in range(1, self.horizon + 1))
        return "Too short."
