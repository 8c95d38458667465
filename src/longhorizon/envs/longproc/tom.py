"""`longhorizon/TomTracking-v0`: trace where an agent believes an object is, step by step.

LongProc's tom_tracking task (Ye et al., arXiv 2501.05414). A story of numbered
steps has agents moving between rooms (or leaving and entering them) and
moving objects between containers ("the sauna's table"), possibly carrying an
object into another room. The question asks where one agent believes one
object is. An agent sees an object when both are in the same room; then its
belief becomes the object's true location, otherwise the belief stays as it
was (None until the agent first sees the object). The required output, in the
paper's `prompts.yaml` format, is one line per step:

    - Step 3: (Ann location changed; key location unchanged) {Ann location: patio;
      key location: patio's shelf; Ann sees key: True; Ann's belief on key: patio's shelf}

(one line in the output), then `Final Answer: the patio's shelf`. The
paper's two worked examples are in the prompt.

Generation: 3 agents, 3 rooms with 2-3 containers each, 3 objects; each step
picks an actor (the questioned agent half the time) and a legal action
(move, leave, enter, move an object within the room, or move to another room
carrying an object); object actions favour the questioned object. Steps are
added while the reference trace stays within the level's token target (see
`longproc`); stories whose final belief is None are redrawn.

Metrics (paper `evaluate_tom_trace`): trace lines are the lines starting with
"- Step k:" after the last "- Step 0:", each normalised as the paper does
(lower-case, punctuation and filler words such as "the", "is", "location",
"belief" removed). `partial_accuracy` = index of the first differing line /
number of reference lines (or the shorter length over the reference length
when one trace is a prefix of the other); `answer_accuracy` = the last
"Final Answer:" line matches after the same normalisation;
`strict_accuracy` = the whole trace matches AND the answer is right. Success
iff strict. Reward = strict accuracy.

Departures from the paper:
- the paper's strict accuracy compares only the trace; here the final answer
  must match too (the trace's last belief already fixes it);
- names are drawn from small built-in lists; the "leaves" sentence says "the
  room they were in" (the paper writes "he");
- only first-order beliefs are asked (as in the paper's prompt examples);
- trace lines may be indented (the paper requires them to start the line).
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from longhorizon.envs.longproc.common import CHARS_PER_TOKEN, LongProcEnv, pick

AGENTS = "Alice Bruno Chloe Daniel Elena Felix Grace Hugo Iris Jonah Kira Liam Maya Nadia Oscar Priya".split()
ROOMS = ("patio", "sauna", "storage room", "kitchen", "attic", "garage", "study", "cellar", "hallway", "laundry room")
CONTAINERS = ("table", "nightstand", "ledge", "coffee table", "shelf", "drawer", "cabinet", "bench", "desk", "basket")
OBJECTS = (
    "pencil sharpener", "thread spool", "fuse", "rubber band", "stapler", "candle", "wallet", "teaspoon",
    "flashlight", "key ring", "paintbrush", "tape measure", "compass", "harmonica",
)
N_AGENTS, N_ROOMS, N_OBJECTS = 3, 3, 3
MAX_REDRAWS = 200
STEP_RE = re.compile(r"- Step \d+:")
FILLER_RE = re.compile(r"\b(a|an|the|on|in|at|step|thinks|think|believes|believe|is|are|of|location|know|knows|belief)\b")

PROMPT = """[TASK]
You'll see a story about object placement. Each story involves four components: Agents, Objects, Rooms, and Containers. Given a question about an (agent, object) pair, your task is to track the locations and beliefs in stories about object placement asked in the question.

[APPROACH]
You will solve the problem by tracking the location of the agent, location of the object, and the agent's belief of the object.
1. Initial Setup: set up agent's starting location, object's starting location, agent's initial belief on the object's location. Note that if an agent does not see an object at the start, their belief on the object is None.
2. Then, track step-by-step:
* If a step involves that the agent moves to another room, leaves a room, or enters a room, you should update the agent's location. Note that if the agent leaves the current room but hasn't entered another room, the agent's location is None.
* If a step involves the object of interest moving, you should update the object's location.
* To keep track of the agent's belief on the object: If the agent and the object are in the same room, the agent can see the object, so the agent's belief will reflect the true location of the object. If the agent cannot see the object (the agent is in a different room or not in any rooms), the agent's belief will remain unchanged until the agent sees the object again.
3. Format your output exactly as shown in example answers below.

[EXAMPLE STORY1]
Step 0: Catherine is in the patio; Kristin is in the patio; the pencil sharpener is on the sauna's table; the thread spool is on the sauna's table.
Step 1: Catherine moves to the sauna.
Step 2: Catherine moves to the patio.
Step 3: Catherine moves to the sauna.
Step 4: Catherine moves the pencil sharpener to the sauna's nightstand.
Step 5: Catherine moves to the patio.
Step 6: Kristin moves to the sauna.
Step 7: Catherine moves to the sauna.
Step 8: Kristin leaves the room they were in.
Step 9: Catherine moves the thread spool to the sauna's nightstand.
Step 10: Kristin enters the patio.

[EXAMPLE QUESTION1]
Where does Catherine believe the thread spool is?

[EXAMPLE ANSWER1]
Catherine's belief on the thread spool:
- Step 0: (initial state) {Catherine location: patio; thread spool location: sauna's table; Catherine sees thread spool: False; Catherine's belief on thread spool: None}
- Step 1: (Catherine location changed; thread spool location unchanged) {Catherine location: sauna; thread spool location: sauna's table; Catherine sees thread spool: True; Catherine's belief on thread spool: sauna's table}
- Step 2: (Catherine location changed; thread spool location unchanged) {Catherine location: patio; thread spool location: sauna's table; Catherine sees thread spool: False; Catherine's belief on thread spool: sauna's table}
- Step 3: (Catherine location changed; thread spool location unchanged) {Catherine location: sauna; thread spool location: sauna's table; Catherine sees thread spool: True; Catherine's belief on thread spool: sauna's table}
- Step 4: (Catherine location unchanged; thread spool location unchanged) {Catherine location: sauna; thread spool location: sauna's table; Catherine sees thread spool: True; Catherine's belief on thread spool: sauna's table}
- Step 5: (Catherine location changed; thread spool location unchanged) {Catherine location: patio; thread spool location: sauna's table; Catherine sees thread spool: False; Catherine's belief on thread spool: sauna's table}
- Step 6: (Catherine location unchanged; thread spool location unchanged) {Catherine location: patio; thread spool location: sauna's table; Catherine sees thread spool: False; Catherine's belief on thread spool: sauna's table}
- Step 7: (Catherine location changed; thread spool location unchanged) {Catherine location: sauna; thread spool location: sauna's table; Catherine sees thread spool: True; Catherine's belief on thread spool: sauna's table}
- Step 8: (Catherine location unchanged; thread spool location unchanged) {Catherine location: sauna; thread spool location: sauna's table; Catherine sees thread spool: True; Catherine's belief on thread spool: sauna's table}
- Step 9: (Catherine location unchanged; thread spool location changed) {Catherine location: sauna; thread spool location: sauna's nightstand; Catherine sees thread spool: True; Catherine's belief on thread spool: sauna's nightstand}
- Step 10: (Catherine location unchanged; thread spool location unchanged) {Catherine location: sauna; thread spool location: sauna's nightstand; Catherine sees thread spool: True; Catherine's belief on thread spool: sauna's nightstand}
Final Answer: the sauna's nightstand


[EXAMPLE STORY2]
Step 0: Kathryn is in the storage room; Mitchell is in the storage room; the rubber band is on the patio's coffee table; the fuse is on the patio's coffee table.
Step 1: Kathryn moves to the patio.
Step 2: Kathryn moves to the storage room, and moves the fuse to the storage room's ledge.
Step 3: Kathryn moves the fuse to the storage room's coffee table.
Step 4: Mitchell leaves the room they were in.
Step 5: Kathryn moves the fuse to the storage room's ledge.
Step 6: Mitchell enters the storage room.
Step 7: Kathryn moves to the patio, and moves the fuse to the patio's ledge.
Step 8: Kathryn moves the rubber band to the patio's ledge.
Step 9: Kathryn moves to the storage room, and moves the rubber band to the storage room's ledge.
Step 10: Mitchell moves the rubber band to the storage room's coffee table.

[EXAMPLE QUESTION2]
Where does Kathryn believe the fuse is?

[EXAMPLE ANSWER2]
Kathryn's belief on the fuse:
- Step 0: (initial state) {Kathryn location: storage room; fuse location: patio's coffee table; Kathryn sees fuse: False; Kathryn's belief on fuse: None}
- Step 1: (Kathryn location changed; fuse location unchanged) {Kathryn location: patio; fuse location: patio's coffee table; Kathryn sees fuse: True; Kathryn's belief on fuse: patio's coffee table}
- Step 2: (Kathryn location changed; fuse location changed) {Kathryn location: storage room; fuse location: storage room's ledge; Kathryn sees fuse: True; Kathryn's belief on fuse: storage room's ledge}
- Step 3: (Kathryn location unchanged; fuse location changed) {Kathryn location: storage room; fuse location: storage room's coffee table; Kathryn sees fuse: True; Kathryn's belief on fuse: storage room's coffee table}
- Step 4: (Kathryn location unchanged; fuse location unchanged) {Kathryn location: storage room; fuse location: storage room's coffee table; Kathryn sees fuse: True; Kathryn's belief on fuse: storage room's coffee table}
- Step 5: (Kathryn location unchanged; fuse location changed) {Kathryn location: storage room; fuse location: storage room's ledge; Kathryn sees fuse: True; Kathryn's belief on fuse: storage room's ledge}
- Step 6: (Kathryn location unchanged; fuse location unchanged) {Kathryn location: storage room; fuse location: storage room's ledge; Kathryn sees fuse: True; Kathryn's belief on fuse: storage room's ledge}
- Step 7: (Kathryn location changed; fuse location changed) {Kathryn location: patio; fuse location: patio's ledge; Kathryn sees fuse: True; Kathryn's belief on fuse: patio's ledge}
- Step 8: (Kathryn location unchanged; fuse location unchanged) {Kathryn location: patio; fuse location: patio's ledge; Kathryn sees fuse: True; Kathryn's belief on fuse: patio's ledge}
- Step 9: (Kathryn location changed; fuse location unchanged) {Kathryn location: storage room; fuse location: patio's ledge; Kathryn sees fuse: False; Kathryn's belief on fuse: patio's ledge}
- Step 10: (Kathryn location unchanged; fuse location unchanged) {Kathryn location: storage room; fuse location: patio's ledge; Kathryn sees fuse: False; Kathryn's belief on fuse: patio's ledge}
Final Answer: the patio's ledge

[PROBLEM]
Read the following story and answer the question. Please carefully follow the approach and examples provided above when solving the problem. Remember that the output format should follow the examples.

[STORY]
{story}

[QUESTION]
Where does {agent} believe the {obj} is?

[YOUR ANSWER]"""


@dataclass
class World:
    """Where every agent (a room or None) and every object (room, container) is."""

    agents: dict[str, str | None]
    objects: dict[str, tuple[str, str]]
    containers: dict[str, list[str]]  # room -> its containers

    def copy(self) -> World:
        return World(dict(self.agents), dict(self.objects), self.containers)


def place(location: tuple[str, str]) -> str:
    return f"{location[0]}'s {location[1]}"


def trace_line(step: int, agent: str, obj: str, world: World, before: World | None, belief: str | None) -> str:
    """One line of the reference trace, in the paper's format."""
    where, seen = world.agents[agent], world.agents[agent] == world.objects[obj][0]
    if before is None:
        change = "initial state"
    else:
        moved = {True: "changed", False: "unchanged"}
        change = (
            f"{agent} location {moved[where != before.agents[agent]]}; "
            f"{obj} location {moved[world.objects[obj] != before.objects[obj]]}"
        )
    state = (
        f"{agent} location: {where}; {obj} location: {place(world.objects[obj])}; "
        f"{agent} sees {obj}: {seen}; {agent}'s belief on {obj}: {belief}"
    )
    return f"- Step {step}: ({change}) {{{state}}}"


def update_belief(world: World, agent: str, obj: str, belief: str | None) -> str | None:
    """The agent's belief after a step: the object's place if they share a room, else unchanged."""
    return place(world.objects[obj]) if world.agents[agent] == world.objects[obj][0] else belief


def format_answer(agent: str, obj: str, lines: list[str], answer: str) -> str:
    return f"{agent}'s belief on the {obj}:\n" + "\n".join(lines) + f"\nFinal Answer: the {answer}"


# -- story generation --------------------------------------------------------------------
def initial_world(rng: np.random.Generator) -> World:
    rooms = [str(r) for r in rng.choice(ROOMS, size=N_ROOMS, replace=False)]
    containers = {r: [str(c) for c in rng.choice(CONTAINERS, size=int(rng.integers(2, 4)), replace=False)]
                  for r in rooms}
    agents = {str(a): pick(rng, rooms) for a in rng.choice(AGENTS, size=N_AGENTS, replace=False)}
    objects = {}
    for obj in rng.choice(OBJECTS, size=N_OBJECTS, replace=False):
        room = pick(rng, rooms)
        objects[str(obj)] = (room, pick(rng, containers[room]))
    return World(agents, objects, containers)


def opening(world: World) -> str:
    people = [f"{a} is in the {r}" for a, r in world.agents.items()]
    things = [f"the {o} is on the {place(loc)}" for o, loc in world.objects.items()]
    return "; ".join(people + things) + "."


def random_action(rng: np.random.Generator, world: World, actor: str, focus: str) -> tuple[str, World]:
    """A legal action of `actor` (its sentence and the world after it); object actions favour `focus`."""
    here, after = world.agents[actor], world.copy()
    rooms = list(world.containers)
    if here is None:
        after.agents[actor] = pick(rng, rooms)
        return f"{actor} enters the {after.agents[actor]}.", after
    nearby = [o for o, loc in world.objects.items() if loc[0] == here]
    kind = int(rng.integers(4)) if nearby else int(rng.integers(2))
    if kind == 0:
        after.agents[actor] = pick(rng, [r for r in rooms if r != here])
        return f"{actor} moves to the {after.agents[actor]}.", after
    if kind == 1:
        after.agents[actor] = None
        return f"{actor} leaves the room they were in.", after
    obj = focus if focus in nearby and rng.random() < 0.6 else pick(rng, nearby)
    if kind == 2:
        spots = [c for c in world.containers[here] if c != world.objects[obj][1]]
        after.objects[obj] = (here, pick(rng, spots))
        return f"{actor} moves the {obj} to the {place(after.objects[obj])}.", after
    room = pick(rng, [r for r in rooms if r != here])
    after.agents[actor], after.objects[obj] = room, (room, pick(rng, world.containers[room]))
    return f"{actor} moves to the {room}, and moves the {obj} to the {place(after.objects[obj])}.", after


class TomTrackingEnv(LongProcEnv):
    """LongProc theory-of-mind tracking: trace an agent's belief about an object step by step (arXiv 2501.05414).

    Knob `level` (0.5k/2k/8k output tokens); metric: strict accuracy (trace and answer), trace-prefix partial score.
    """

    REWARD: ClassVar[str] = "1 if the trace and the final answer both match (strict accuracy), else 0"

    SUCCESS_METRIC: ClassVar[str] = "strict_accuracy"
    REWARD_METRIC: ClassVar[str] = "strict_accuracy"

    def _generate(self) -> None:
        target = self._target_tokens()
        for _ in range(MAX_REDRAWS):
            if self._draw_story(target):
                return
        raise RuntimeError("could not draw a story whose final belief is known")  # pragma: no cover

    def _draw_story(self, target: float) -> bool:
        """Draw a story whose reference fits in `target` tokens; False if the final belief is None."""
        rng = self.np_random
        world = initial_world(rng)
        agent, obj = pick(rng, list(world.agents)), pick(rng, list(world.objects))
        belief = update_belief(world, agent, obj, None)
        self.sentences, self.trace = [opening(world)], [trace_line(0, agent, obj, world, None, belief)]
        chars = len(format_answer(agent, obj, self.trace, "x" * 40))  # the answer line's length is bounded
        while True:
            actor = agent if rng.random() < 0.5 else pick(rng, list(world.agents))
            sentence, after = random_action(rng, world, actor, obj)
            new_belief = update_belief(after, agent, obj, belief)
            line = trace_line(len(self.trace), agent, obj, after, world, new_belief)
            chars += len(line) + 1
            if chars / CHARS_PER_TOKEN > target and len(self.trace) > 2:
                break
            self.sentences.append(sentence)
            self.trace.append(line)
            world, belief = after, new_belief
        self.agent, self.obj, self.answer = agent, obj, belief
        self.reference = format_answer(agent, obj, self.trace, str(belief))
        return belief is not None

    def _prompt(self) -> str:
        story = "\n".join(f"Step {k}: {s}" for k, s in enumerate(self.sentences))
        return PROMPT.replace("{story}", story).replace("{agent}", self.agent).replace("{obj}", self.obj)

    def _score(self, text: str) -> tuple[dict[str, float], str | None]:
        lines, answer = parse_trace(text)
        if not lines and answer is None:
            return {"strict_accuracy": 0.0, "partial_accuracy": 0.0, "answer_accuracy": 0.0}, (
                "no '- Step k:' trace lines and no 'Final Answer:' line found"
            )
        metrics = score_trace(lines, answer, self.trace, f"the {self.answer}")
        return metrics, None if answer is not None else "no 'Final Answer:' line found"

    def wrong_action(self, rng: np.random.Generator) -> str:
        """The oracle's output with a wrong final answer."""
        wrong = "None" if self.answer is None else f"{self.answer}x"
        return self.reference.rsplit("Final Answer:", 1)[0] + f"Final Answer: the {wrong}"


# -- verification (LongProc `tom_tracking_evaluator.py`) ---------------------------------
def normalize_tom(text: str) -> str:
    """The paper's `_normalize_tom`: lower-case, drop punctuation and filler words, collapse spaces."""
    text = "".join(ch for ch in text.lower() if ch not in string.punctuation and ch != "’")
    return " ".join(FILLER_RE.sub(" ", text).split())


def parse_trace(text: str) -> tuple[list[str], str | None]:
    """Normalised trace lines after the last '- Step 0:', and the normalised last 'Final Answer:'."""
    start = text.rfind("- Step 0:")
    lines = [line.strip() for line in (text[start:] if start != -1 else text).splitlines()]
    trace = [normalize_tom(line.split("-", 1)[1]) for line in lines if STEP_RE.match(line)]
    answers = re.findall(r"Final Answer:(.*)", text)
    return trace, normalize_tom(answers[-1]) if answers else None


def score_trace(lines: list[str], answer: str | None, reference: list[str], reference_answer: str) -> dict[str, float]:
    """Strict, trace-prefix partial and answer accuracy.

    `lines` and `answer` come normalised from `parse_trace`; `reference` and `reference_answer` are raw text.
    """
    ref = [normalize_tom(line.split("-", 1)[1]) for line in reference]
    answer_ok = answer == normalize_tom(reference_answer)
    first_diff = next((k for k, (a, b) in enumerate(zip(lines, ref)) if a != b), None)
    if first_diff is not None:
        partial = first_diff / len(ref)
    else:
        partial = min(len(lines), len(ref)) / len(ref)
    strict = lines == ref and answer_ok
    return {"strict_accuracy": float(strict), "partial_accuracy": partial, "answer_accuracy": float(answer_ok)}
