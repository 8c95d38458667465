"""Early Experience (Zhang et al., arXiv 2510.08558): branches off expert states, as world-model or reflection data.

    demos = oracle_demonstrations("longhorizon/Execution-v0", 64, knobs)          # the expert trajectories
    transitions, _ = branch_transitions(demos, policy, k=4)  # K alternatives per expert state, executed
    write_conversations("iwm.jsonl", world_model_rows(transitions))               # implicit world modelling
    rows, _ = reflection_rows(demos, transitions, ModelRationales("smollm2-135m"))  # or None: the template
    write_conversations("sr.jsonl", rows + [d.to_dict() for d in demos])           # self-reflection + D_expert

    longhorizon early-experience ENV --episodes N --k K --model M --out FILE [--objective iwm | reflection]
        [--rationale-model R] [--set KNOB=V]

What the paper's code does (methods-2.md §17, OSU-NLP-Group/EarlyExperience @ 3810f05, skill/METHOD.md and
skill/method_recap.md): for each expert state s_i, K alternative actions a_i^j != a_i are executed from s_i (a
re-cloned env) and the next states s_i^j recorded; the expert action is executed too (s_{i+1}).
- Implicit world modelling (IWM) trains -log p(s_i^j | s_i, a_i^j) as SFT examples user = s_i + a_i^j,
  assistant = s_i^j, for about one epoch, then imitation (-log pi(a_i | s_i) on the expert data). Invalid-action
  error messages stay as targets.
- Self-reflection (SR): a reflection LLM gets (s_i, a_i, s_{i+1}, a_i^j, s_i^j) and writes a monologue c_i^j
  (one per alternative) that compares the options and justifies a_i from the observed outcomes; the SFT example
  is user = s_i, assistant = c_i^j then a_i (L_SR = -log p(c_i^j, a_i | s_i)), mixed with the expert data
  D_expert in one next-token-prediction run. The paper drops reflections whose concluded action is not the
  expert's; the repo warns that the monologue must not say "expert", must not name options by labels
  ("Action 1"), and must reason about every action anticipatorily, never narrate its outcome as seen. K for SR:
  3 in ALFWorld and WebShop, 8 in TravelPlanner.

How it maps here:
- Expert states come from the env's oracle (`longhorizon demos`). A state is re-created by replaying the
  episode from its seed (the envs are seeded and deterministic), which the replay checks: every observation up
  to s_i must equal the recorded one. A model policy sees the expert turns before s_i as the tokens it would have
  written them in (`rollout.demos.TeacherPolicy`), so its prompt at s_i is the one it sees in an episode.
- The K alternatives are sampled from the current policy (`policy.act` on K copies of the state: a model at
  temperature 1, as the paper proposes them with the policy LM); those equal to the expert action or to
  each other (after stripping whitespace) are dropped, so a state gives at most K alternatives.
- After the branch the episode is finished by the oracle without a model (cheap env steps), and s_i^j is
  the observation after the branch action (the env's final message if it ended the episode).
- IWM: each example is one user message (the task's transcript up to s_i, the action, and the question) and
  one assistant message (the next observation), so the SFT mask covers the prediction only. The expert's
  own transition is included too (`expert: true` in the metadata), as the paper executes it. Two-stage
  training is two `longhorizon train` runs: `algorithm: sft` on this file, then `algorithm: sft` on the
  demonstrations with `model:` the first run's `RUN_DIR/model` (and GRPO from there, if wanted).
- SR: one example per (expert state, kept alternative): system prompt (the env's, if any), user = s_i, assistant
  = rationale + "\\n" + the expert action, so the mask covers the rationale and the action only. The CLI
  writes the expert episodes after them (D_expert; `--no-expert` leaves them out), which `algorithm: sft`
  replays with the context strategy, so one SFT run trains on both as the paper does. The policy writes the
  rationale itself before the action, so train and evaluate with `prefill: false`: with an env whose answers
  are `<answer>...</answer>`, the model then writes the tags too (conversation rows are learned as written,
  whatever `prefill` says; the D_expert rows honour it), and the sampler stops at the env's stop string.
  Two-stage schedule: `recipes/early-experience-reflection.yaml` (SFT), then
  `recipes/early-experience-reflection-grpo.yaml` (GRPO from its `RUN_DIR/model`).

Choices where the paper and its code say nothing (or nothing that fits a text env):
1. The reflection prompt is the paper's (METHOD.md §4.3, verbatim where it fits) with the repo's own fixes
   for label leaks: the slot "Expert Action (a_i)" is "The action taken here", the alternative is unlabelled,
   and the guidelines forbid "expert", option labels and narrating outcomes as seen. One alternative per
   prompt (the paper writes one c_i^j per alternative). The outcomes are the env's replies and, since many
   text envs answer a right and a wrong move alike (Execution without `stop_on_error`), the step rewards.
2. Without a rationale model a rule-based template writes it, env-generic and from the observations:
   'One option is to reply "Y", but I expect the environment to answer "s_i^j", where "X" should lead to
   "s_{i+1}". So I reply "X".' When the two replies look the same, the rewards stand in ('I expect it to score
   0 where "X" should score 1'). Anticipatory, as the repo asks, though a template can only restate outcomes.
   Actions are quoted without the env's answer markers (response prefix and stop strings: "<answer>5</answer>"
   is "5"), since a marker inside the rationale would end the model's turn (a stop string) or give the env a
   second answer; observations are quoted without them too, whitespace collapsed, clipped to 120 characters.
   An expert action longer than 80 characters (a plan, a tool call) is not restated: "the reply below",
   "So I reply as follows.".
3. A pair whose outcomes, as quoted, do not favour the expert (same reply, reward not higher) has nothing to
   reflect on and is skipped before any rationale is written (`no_contrast`).
4. Filters (the count of each is reported): `unfinished` (a model rationale that hit its token cap), `empty`,
   `leak` ("expert", "Action 1", "a_i", "s_i": METHOD.md's grep list), `marker` (an answer marker in the
   rationale), `no_action` (the paper's concluded-action filter, read as: of the two actions, the last one the
   rationale names is the expert's; exempt for expert actions over 80 characters), `outcome` (executed: the
   env must answer rationale + action at s_i exactly as it answers the action alone, next observation and
   reward, so the rationale cannot change what the env parses). No filter for narrated outcomes (the template
   is anticipatory; a model's wording is not checked) nor for doubled paragraphs.
5. The state s_i of a turn after the first is the transcript of the expert turns in one user message (as for
   IWM), not the chat the `full` context shows: a conversation row learns every assistant message it has, and
   only the last one (rationale + action) should be learned. First turns match the policy's prompt exactly.
6. A rationale model is greedy with at most `--rationale-tokens` new tokens (default 256); each observation it
   is shown is clipped to 2000 characters.
Not built: the summarisation of long states; K = 0 ("grounded reflection" without alternatives).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

from longhorizon.context.base import chat_ids
from longhorizon.envs.core.base import AgentSpec, clip_text
from longhorizon.errors import UserError
from longhorizon.models import SamplingParams, TransformersSampler, load_model
from longhorizon.rollout.demos import TeacherPolicy
from longhorizon.rollout.policies import ModelPolicy, oracle_action
from longhorizon.rollout.runner import Action, EpisodeSpec, LiveEpisode, run_episodes
from longhorizon.types import Trajectory


@dataclass(frozen=True)
class Transition:
    """An action taken in an expert state and the observation it led to."""

    env_id: str
    seed: int
    turn: int
    history: tuple[tuple[str, str], ...]  # (observation, action) of the expert turns before this one
    observation: str  # s_i
    action: str  # a_i (expert) or a_i^j
    next_observation: str  # s_{i+1} or s_i^j
    expert: bool
    reward: float = 0.0  # the env's step reward for `action`
    agent: AgentSpec | None = None  # what the env tells the agent at s_i: system prompt, tools, answer markers
    demo: int = -1  # index of the expert episode in the demonstrations branched


@dataclass(frozen=True)
class _Branch:
    demo: int
    turn: int


class BranchPolicy:
    """The expert before and the oracle after each episode's branch turn; `policy` at the branch turn (one
    batched call). A model policy's expert turns carry the tokens it would have written (`TeacherPolicy`)."""

    def __init__(self, policy: Any, demos: list[Trajectory], branches: list[_Branch]):
        self.policy, self.demos, self.branches = policy, demos, branches
        self.agents: dict[tuple[int, int], AgentSpec] = {}  # (demo, turn) -> what the env told the agent there
        self.teacher = (TeacherPolicy([demos[b.demo] for b in branches], policy.strategy, policy.sampler.tokenizer,
                                      policy.prefill) if isinstance(policy, ModelPolicy) else None)

    def act(self, episodes: list[LiveEpisode]) -> list[Action]:
        out: list[Action | None] = [None] * len(episodes)
        at_branch = []
        for i, episode in enumerate(episodes):
            branch, t = self.branches[episode.spec.group_id], len(episode.trajectory.turns)
            self._check(episode, branch, t)
            if t == branch.turn:
                at_branch.append(i)
                self.agents[(branch.demo, t)] = episode.agent_spec
            elif t < branch.turn and self.teacher is not None:
                out[i] = self.teacher.act([episode])[0]
            else:
                out[i] = Action(text=oracle_action(episode.env))
        if at_branch:
            for i, action in zip(at_branch, self.policy.act([episodes[i] for i in at_branch])):
                out[i] = action
        return out  # type: ignore[return-value]

    def _check(self, episode: LiveEpisode, branch: _Branch, t: int) -> None:
        demo = self.demos[branch.demo]
        if t <= branch.turn and demo.turns[t].observation != episode.observation:
            raise UserError(f"expert episode {branch.demo} ({demo.env_id}, seed {demo.seed}) does not replay: "
                            f"turn {t}'s observation differs (other knobs, wrappers or env version?)")

    def end_episode(self, trajectory: Trajectory) -> None:
        if hasattr(self.policy, "end_episode"):
            self.policy.end_episode(trajectory)

    def end_rollout(self) -> None:
        if hasattr(self.policy, "end_rollout"):
            self.policy.end_rollout()


def _next_observation(trajectory: Trajectory, turn: int) -> str:
    turns = trajectory.turns
    return turns[turn + 1].observation if turn + 1 < len(turns) else str(trajectory.metadata.get("final_observation", ""))


def _run_branches(demos: list[Trajectory], branches: list[_Branch], policy: Any, wrappers: list[dict[str, Any]]
                  | None = None) -> tuple[list[Trajectory], dict[tuple[int, int], AgentSpec]]:
    """Each branch's episode (expert up to the branch turn, `policy` there, the oracle after), and the env's
    AgentSpec at every branched state."""
    specs = [EpisodeSpec(demos[b.demo].env_id, seed=demos[b.demo].seed,
                         env_kwargs=dict(demos[b.demo].metadata.get("env_kwargs", {})), group_id=g,
                         wrappers=list(wrappers if wrappers is not None else demos[b.demo].metadata.get("wrappers", [])))
             for g, b in enumerate(branches)]
    branch_policy = BranchPolicy(policy, demos, branches)
    return (run_episodes(specs, branch_policy) if specs else []), branch_policy.agents


def branch_transitions(demos: list[Trajectory], policy: Any, k: int,
                       wrappers: list[dict[str, Any]] | None = None) -> tuple[list[Transition], dict[str, int]]:
    """The expert transition and up to `k` distinct non-expert alternatives (from `policy`) at every expert state
    of every demonstration; and counts (states, alternatives kept, dropped as duplicates)."""
    if k < 1:
        raise UserError("early experience needs k >= 1 alternatives per expert state")
    branches = [_Branch(d, t) for d, demo in enumerate(demos) for t in range(len(demo.turns)) for _ in range(k)]
    runs, agents = _run_branches(demos, branches, policy, wrappers)
    transitions, seen, counts = [], set(), {"states": 0, "kept": 0, "dropped": 0}
    for d, demo in enumerate(demos):
        for t, turn in enumerate(demo.turns):
            history = tuple((x.observation, x.action) for x in demo.turns[:t])
            transitions.append(Transition(demo.env_id, demo.seed, t, history, turn.observation, turn.action,
                                          _next_observation(demo, t), True, turn.reward, agents.get((d, t)), d))
            counts["states"] += 1
    for branch, run in zip(branches, runs):
        demo, turn = demos[branch.demo], run.turns[branch.turn]
        key = (branch.demo, branch.turn, turn.action.strip())
        if turn.action.strip() == demo.turns[branch.turn].action.strip() or key in seen:
            counts["dropped"] += 1
            continue
        seen.add(key)
        history = tuple((x.observation, x.action) for x in demo.turns[: branch.turn])
        transitions.append(Transition(demo.env_id, demo.seed, branch.turn, history,
                                      demo.turns[branch.turn].observation, turn.action,
                                      _next_observation(run, branch.turn), False, turn.reward,
                                      agents.get((branch.demo, branch.turn)), branch.demo))
        counts["kept"] += 1
    return transitions, counts


# ------------------------------------------------------------------ implicit world modelling


def _transcript(transition: Transition) -> list[str]:
    """The expert turns before s_i, then s_i, as `[environment]` / `[agent]` blocks."""
    lines = []
    for observation, action in transition.history:
        lines += [f"[environment]\n{observation}", f"[agent]\n{action}"]
    return lines + [f"[environment]\n{transition.observation}"]


def world_model_prompt(transition: Transition) -> str:
    """s_i and the action, as one user message: the transcript so far, then the question."""
    return "\n".join(["Predict the environment's next message.", "", "The conversation so far:",
                      *_transcript(transition), f"[agent]\n{transition.action}", "",
                      "What does the environment answer?"])


def world_model_rows(transitions: list[Transition]) -> list[dict[str, Any]]:
    """IWM examples as TRL `messages` rows: user = s_i + a, assistant = the next observation."""
    return [{"messages": [{"role": "user", "content": world_model_prompt(t)},
                          {"role": "assistant", "content": t.next_observation}],
             "metadata": {"env_id": t.env_id, "seed": t.seed, "turn": t.turn, "expert": t.expert}}
            for t in transitions if t.next_observation]


# ------------------------------------------------------------------ self-reflection

SHORT_ACTION = 80  # longer expert actions (plans, tool calls) are not restated in a rationale (choice 2)
QUOTE_CHARS = 120  # an observation quoted in a template rationale
PROMPT_CHARS = 2000  # an observation shown to a rationale model
DROP_REASONS = ("no_contrast", "unfinished", "empty", "leak", "marker", "no_action", "outcome")
LEAK_RE = re.compile(r"\bexpert|\b(?:action|option|alternative)\s*#?\s*\d|\ba_i\b|\bs_\{?i", re.IGNORECASE)

# The paper's reflection prompt (METHOD.md §4.3), with the repo's fixes for label and outcome leaks (choice 1).
REFLECTION_PROMPT = """\
You will be presented with a situation where you need to choose between multiple possible actions. Your task \
is to analyze the situation and provide reasoning about why we decide to take the action taken here.

- Situation Description: {situation}
- The action taken here: {action}
- What follows it: {outcome}
- Another possible action: {other}
- What follows it: {other_outcome}

Provide a detailed self-reflection as an internal monologue that demonstrates your reasoning process for the \
current situation. Your monologue should:
1. Analyze the situation and the goal.
2. Compare the possible actions, explaining why each may be less optimal.
3. Justify why the action taken here is most suitable, grounded in the expected outcome.
4. Highlight any relevant clues, constraints, or consequences from the situation.

Guidelines:
- Stay strictly within the provided information.
- Avoid meta-commentary about being an AI.
- Use natural, step-by-step reasoning.
- Focus on logical decision-making.
- What follows each action is for your judgment only: nothing has been done yet, so reason about every action \
anticipatorily ("this should ...", "I expect ..."), never as already seen.
- Do not call any action "expert" or "Action 1"; write "I could ...", "Another option is ...".
- {ending}

Output: Directly write the self-reflection monologue, no extra headings, disclaimers, or external notes."""


class RationaleWriter(Protocol):
    """Writes one rationale per reflection prompt; None for one it could not finish."""

    def __call__(self, prompts: list[str]) -> list[str | None]: ...


class ModelRationales:
    """A model from the model interface (a registered name or a HF model directory) as a rationale writer:
    each prompt as one user message, greedy, at most `max_new_tokens`; None where it hit that cap."""

    def __init__(self, spec: str, max_new_tokens: int = 256, dtype: str = "float32", batch_size: int = 16):
        try:
            loaded = load_model(spec, dtype=dtype)
        except UserError as err:
            raise UserError(f"rationale model: {err}") from None
        params = SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens)
        self.name = spec
        self.sampler = TransformersSampler(loaded.model, loaded.tokenizer, params, batch_size, kv_cache_bytes=0)

    def __call__(self, prompts: list[str]) -> list[str | None]:
        tok = self.sampler.tokenizer
        gens = self.sampler.generate([chat_ids(tok, [{"role": "user", "content": p}], None) for p in prompts])
        return [None if g.finish_reason == "length" else g.text.strip() for g in gens]


@dataclass(frozen=True)
class Reflection:
    """A rationale contrasting the expert transition with an alternative one at the same state."""

    expert: Transition
    alternative: Transition
    rationale: str
    source: str  # "template", or the rationale model's name

    @property
    def target(self) -> str:
        """The assistant turn learned: c_i^j then a_i (METHOD.md §4)."""
        return f"{self.rationale}\n{self.expert.action}"


def markers(agent: AgentSpec | None) -> tuple[str, ...]:
    """The env's answer markers: its response prefix and stop strings."""
    return tuple(m for m in ((agent.response_prefix, *agent.stop) if agent else ()) if m)


def action_core(transition: Transition) -> str:
    """The action without the env's answer markers around it, whitespace collapsed ("<answer>5</answer>" -> "5")."""
    text, agent = transition.action.strip(), transition.agent
    if agent and agent.response_prefix and text.startswith(agent.response_prefix):
        text = text[len(agent.response_prefix):]
    for stop in agent.stop if agent else ():
        if stop and text.endswith(stop):
            text = text[: -len(stop)]
    return " ".join(text.split())


def _quote(text: str, agent: AgentSpec | None, limit: int = QUOTE_CHARS) -> str:
    for marker in markers(agent):
        text = text.replace(marker, "")
    return '"' + clip_text(" ".join(text.split()), limit) + '"'


def _named(transition: Transition) -> str:
    """How a rationale names the expert action: quoted, or "the reply below" when it is long."""
    core = action_core(transition)
    return f'"{core}"' if len(core) <= SHORT_ACTION else "the reply below"


def _contrast(expert: Transition, alternative: Transition) -> bool:
    """Whether the outcomes, as a rationale can quote them, favour the expert (choice 3)."""
    agent = expert.agent
    differ = _quote(expert.next_observation, agent) != _quote(alternative.next_observation, agent)
    return differ or expert.reward > alternative.reward


def template_rationale(expert: Transition, alternative: Transition) -> str | None:
    """The rule-based rationale (choice 2); None when the outcomes do not favour the expert."""
    agent, x = expert.agent, _named(expert)
    y = _quote(action_core(alternative), agent, SHORT_ACTION)
    ox, oy = _quote(expert.next_observation, agent), _quote(alternative.next_observation, agent)
    if ox != oy:
        because = f"I expect the environment to answer {oy}, where {x} should lead to {ox}"
    elif expert.reward > alternative.reward:
        because = f"I expect it to score {alternative.reward:g} where {x} should score {expert.reward:g}"
    else:
        return None
    conclusion = f"So I reply {x}." if x.startswith('"') else "So I reply as follows."
    return f"One option is to reply {y}, but {because}. {conclusion}"


def state_text(transition: Transition) -> str:
    """s_i as the user message of a reflection row (choice 5): the observation, or the transcript so far."""
    if not transition.history:
        return transition.observation
    return "\n".join(["The conversation so far:", *_transcript(transition)])


def _outcome(transition: Transition) -> str:
    return (f"the environment replies {_quote(transition.next_observation, None, PROMPT_CHARS)} "
            f"(step reward {transition.reward:g})")


def reflection_prompt(expert: Transition, alternative: Transition) -> str:
    """The prompt a rationale model gets for one (expert, alternative) pair (choice 1)."""
    named = _named(expert)
    ending = f"End with the sentence: So I reply {named}." if named.startswith('"') else \
        'End with the sentence "So I reply as follows." (the reply itself is added after your monologue).'
    found = markers(expert.agent)
    if found:
        ending = f"Never write {' or '.join(found)}. {ending}"
    return REFLECTION_PROMPT.format(situation=clip_text(state_text(expert), 4 * PROMPT_CHARS),
                                    action=expert.action, outcome=_outcome(expert), other=alternative.action,
                                    other_outcome=_outcome(alternative), ending=ending)


def _mentions(text: str, phrase: str) -> list[tuple[int, int]]:
    if not phrase:
        return []
    return [m.span() for m in re.finditer(rf"(?<!\w){re.escape(phrase)}(?!\w)", text)]


def concludes_with_expert(rationale: str, expert: Transition, alternative: Transition) -> bool:
    """The paper's concluded-action filter (choice 4): of the two actions, the rationale names the expert's last.
    Mentions of the alternative inside a mention of the expert's action do not count."""
    x, y, text = action_core(expert), action_core(alternative), " ".join(rationale.split())
    if len(x) > SHORT_ACTION:
        return True
    xs = _mentions(text, x)
    ys = [s for s in _mentions(text, y) if not any(a <= s[0] and s[1] <= b for a, b in xs)]
    return bool(xs) and (not ys or ys[-1][0] < xs[-1][0])


def rationale_problem(rationale: str | None, expert: Transition, alternative: Transition) -> str | None:
    """Why a rationale is dropped (choice 4, all but `outcome`), or None to keep it."""
    if rationale is None:
        return "unfinished"
    if not rationale.strip():
        return "empty"
    if LEAK_RE.search(rationale):
        return "leak"
    if any(m in rationale for m in markers(expert.agent)):
        return "marker"
    return None if concludes_with_expert(rationale, expert, alternative) else "no_action"


class _Texts:
    """Answers the episode of branch g with texts[g]."""

    def __init__(self, texts: list[str]):
        self.texts = texts

    def act(self, episodes: list[LiveEpisode]) -> list[Action]:
        return [Action(text=self.texts[e.spec.group_id]) for e in episodes]


def same_outcome(demos: list[Trajectory], reflections: list[Reflection]) -> list[bool]:
    """Whether the env answers each reflection's target at its state exactly as it answers the expert action
    alone: same next observation and step reward (choice 4, `outcome`). Executed, as the branches are."""
    branches = [_Branch(r.expert.demo, r.expert.turn) for r in reflections]
    runs, _ = _run_branches(demos, branches, _Texts([r.target for r in reflections]))
    return [(_next_observation(run, r.expert.turn), run.turns[r.expert.turn].reward)
            == (r.expert.next_observation, r.expert.reward) for r, run in zip(reflections, runs)]


def reflection_pairs(transitions: list[Transition]) -> list[tuple[Transition, Transition]]:
    """(expert, alternative) for every kept alternative, in order."""
    experts = {(t.demo, t.turn): t for t in transitions if t.expert}
    return [(experts[(t.demo, t.turn)], t) for t in transitions if not t.expert]


def _rationales(pairs: list[tuple[Transition, Transition]], writer: RationaleWriter | None) -> list[str | None]:
    if writer is None:
        return [template_rationale(e, a) for e, a in pairs]
    return list(writer([reflection_prompt(e, a) for e, a in pairs])) if pairs else []


def reflection_row(reflection: Reflection) -> dict[str, Any]:
    """A TRL `messages` row: [system,] user = s_i, assistant = rationale + expert action (the only loss)."""
    e, agent = reflection.expert, reflection.expert.agent
    system = [{"role": "system", "content": agent.system_prompt}] if agent and agent.system_prompt else []
    row: dict[str, Any] = {"messages": [*system, {"role": "user", "content": state_text(e)},
                                        {"role": "assistant", "content": reflection.target}]}
    if agent and agent.tools:
        row["tools"] = agent.tools
    row["metadata"] = {"env_id": e.env_id, "seed": e.seed, "turn": e.turn, "objective": "reflection",
                       "alternative": reflection.alternative.action, "rationale": reflection.source}
    return row


def reflection_rows(demos: list[Trajectory], transitions: list[Transition],
                    writer: RationaleWriter | None = None) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """SR examples for every (expert state, alternative) pair of `branch_transitions(demos, ...)`, rationales from
    `writer` (None: the template), filtered; and counts: pairs, kept and each reason a pair was dropped."""
    pairs = reflection_pairs(transitions)
    counts = {"pairs": len(pairs), "kept": 0, **dict.fromkeys(DROP_REASONS, 0)}
    contrasted = [p for p in pairs if _contrast(*p)]
    counts["no_contrast"] = len(pairs) - len(contrasted)
    source = "template" if writer is None else str(getattr(writer, "name", "model"))
    candidates = []
    for (e, a), rationale in zip(contrasted, _rationales(contrasted, writer)):
        problem = rationale_problem(rationale, e, a)
        if problem:
            counts[problem] += 1
        else:
            candidates.append(Reflection(e, a, str(rationale), source))
    kept = [r for r, ok in zip(candidates, same_outcome(demos, candidates) if candidates else []) if ok]
    counts["outcome"], counts["kept"] = len(candidates) - len(kept), len(kept)
    return [reflection_row(r) for r in kept], counts


def drop_summary(counts: dict[str, int]) -> str:
    """"no_contrast 2, no_action 1" (the reasons that dropped any pair), or "none"."""
    return ", ".join(f"{k} {counts[k]}" for k in DROP_REASONS if counts.get(k)) or "none"
