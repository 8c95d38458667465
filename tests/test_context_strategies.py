"""Context strategies on hand-built episodes: exact prompt tokens, and masks on sampled tokens only.

Every expected prompt is written out as the ChatML text the bundled template
renders, so a change in what a strategy shows the model fails here.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from longhorizon.cli import app
from longhorizon.context import EpisodeView, make_strategy
from longhorizon.context.base import encode
from longhorizon.context import ChunkPlan
from longhorizon.rollout.chunked import as_answer, generate_answers, generate_chunked
from longhorizon.context.memory import LessonStore, rule_lessons
from longhorizon.context.workspace import INSTRUCTIONS
from longhorizon.errors import UserError
from longhorizon.eval.sweep import turn_prompt_tokens
from longhorizon.models.sampler import Generation, SamplingParams
from longhorizon.rollout import EpisodeSpec, ModelPolicy, run_episodes
from longhorizon.types import Sample, Trajectory, Turn

DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
EXEC = "longhorizon/Execution-v0"


def chatml(*messages: tuple[str, str]) -> str:
    """The bundled template's rendering of (role, content) messages plus the generation prompt."""
    if messages[0][0] != "system":
        messages = (("system", DEFAULT_SYSTEM),) + messages
    return "".join(f"<|im_start|>{r}\n{c}<|im_end|>\n" for r, c in messages) + "<|im_start|>assistant\n"


def make_turn(tok, observation: str, action: str, prompt_ids: list[int], lp: float, **info) -> Turn:
    ids = encode(tok, action)
    return Turn(observation=observation, action=action, prompt_ids=prompt_ids, action_ids=ids,
                action_logprobs=[lp] * len(ids), info=info)


def play(strategy, tok, observations: list[str], actions: list[str], **view) -> list[Turn]:
    """Build each turn's prompt with the strategy, as the rollout does, then 'sample' the given action."""
    turns: list[Turn] = []
    for t, (obs, act) in enumerate(zip(observations, actions)):
        prompt = strategy.build_prompt(EpisodeView(turns=list(turns), observation=obs, **view), tok)
        turns.append(make_turn(tok, obs, act, prompt, lp=-0.1 * (t + 1)))
    return turns


def check_rows(rows: list[Sample], turns: list[Turn]) -> None:
    """Each row: its turn's exact prompt (mask 0), then its sampled ids (mask 1, logprobs, turn index)."""
    assert [r.metadata["turn"] for r in rows] == list(range(len(turns)))
    for a, (row, turn) in enumerate(zip(rows, turns)):
        n, k = len(turn.prompt_ids), len(turn.action_ids)
        assert row.input_ids == turn.prompt_ids + turn.action_ids
        assert row.loss_mask == [0] * n + [1] * k
        assert row.old_logprobs == [0.0] * n + turn.action_logprobs
        assert row.token_turns == [-1] * n + [a] * k


OBS = ["Task: add the numbers. First: 3", "Next: 4", "Next: 5", "Next: 6", "Next: 7"]
ACTS = ["<answer>3</answer>", "<answer>7</answer>", "<answer>12</answer>", "<answer>18</answer>", "<answer>25</answer>"]


# ------------------------------------------------------------------ window
def test_window_keeps_the_task_turn_and_the_last_k_turns(tiny):
    tok, window = tiny.tokenizer, make_strategy("window", k=2)
    turns = play(window, tok, OBS[:4], ACTS[:4], system_prompt="Be brief.")
    view = EpisodeView(turns=turns, observation=OBS[4], system_prompt="Be brief.")
    expected = chatml(("system", "Be brief."), ("user", OBS[0]), ("assistant", ACTS[0]), ("user", OBS[2]),
                      ("assistant", ACTS[2]), ("user", OBS[3]), ("assistant", ACTS[3]), ("user", OBS[4]))
    assert window.build_prompt(view, tok) == encode(tok, expected)  # turn 1 has left the window
    # up to k + 1 turns the window is the whole history
    assert turns[3].prompt_ids == encode(tok, chatml(("system", "Be brief."), *[
        (r, c) for o, a in zip(OBS[:3], ACTS[:3]) for r, c in (("user", o), ("assistant", a))], ("user", OBS[3])))
    rows = window.to_samples(Trajectory(env_id="e", seed=0, turns=turns))
    check_rows(rows, turns)


def test_window_zero_keeps_only_the_task_turn(tiny):
    tok = tiny.tokenizer
    turns = play(make_strategy("window", k=0), tok, OBS[:3], ACTS[:3])
    assert turns[2].prompt_ids == encode(tok, chatml(("user", OBS[0]), ("assistant", ACTS[0]), ("user", OBS[2])))


# ------------------------------------------------------------------ markovian, across turns
def test_markovian_turns_state_is_task_plus_carryover(tiny):
    tok, markov = tiny.tokenizer, make_strategy("markovian", mode="turns", carryover=3)
    actions = ["I think 3.<carryover>total=3</carryover><answer>3</answer>", "<answer>7</answer>", ACTS[2]]
    turns = play(markov, tok, OBS[:3], actions)
    assert turns[0].prompt_ids == encode(tok, chatml(("user", OBS[0])))
    # a <carryover> tag is carried as written
    assert turns[1].prompt_ids == encode(tok, chatml(("user", OBS[0]), ("assistant", "total=3"), ("user", OBS[1])))
    # no tag: the last m = 3 tokens of the action
    tail = tok.decode(encode(tok, actions[1])[-3:])
    assert tail and tail != actions[1]
    assert turns[2].prompt_ids == encode(tok, chatml(("user", OBS[0]), ("assistant", tail), ("user", OBS[2])))
    rows = markov.to_samples(Trajectory(env_id="e", seed=0, turns=turns))
    check_rows(rows, turns)


# ------------------------------------------------------------------ markovian, chunked
class QueueSampler:
    """A model stand-in for one episode: emits scripted answers piece by piece, honouring max_new_tokens.

    Each call continues the current answer; when it is used up the call ends with "eos" and the next
    call starts the next answer. Records every prompt it was given.
    """

    def __init__(self, tokenizer, answers: list[list[int]], params: SamplingParams | None = None):
        self.tokenizer, self.answers, self.done = tokenizer, list(answers), 0
        self.params, self.max_length = params or SamplingParams(max_new_tokens=64), 1 << 20
        self.prompts: list[list[int]] = []

    def generate(self, prompts, params=None):
        return [self._one(p, (params or self.params).max_new_tokens) for p in prompts]

    def _one(self, prompt, cap):
        self.prompts.append(list(prompt))
        ids = self.answers[0][self.done : self.done + cap]
        self.done += len(ids)
        finished = self.done == len(self.answers[0])
        if finished:
            self.answers.pop(0)
            self.done = 0
        return Generation(token_ids=ids, logprobs=[-0.01 * (j + 1) for j in range(len(ids))],
                          text=self.tokenizer.decode(ids, skip_special_tokens=True),
                          finish_reason="eos" if finished else "length", prompt_ids=list(prompt))


class Digits:
    """A tokenizer stand-in for id-level tests."""

    @staticmethod
    def decode(ids, **kwargs):
        return " ".join(map(str, ids))


def test_chunk_prompts_follow_delethink():
    # C = 6, m = 4, h = 1: chunk 0 makes <= 6 ids; chunk k >= 1 sees q + the first id + the last 3, makes <= 2
    query = [100, 101]
    sampler = QueueSampler(Digits(), [list(range(1, 12))])  # an 11-id answer: chunks of 6, 2, 2, 1
    (chunks,) = generate_chunked(sampler, [query], SamplingParams(), ChunkPlan(chunk=6, carryover=4, head=1, max_chunks=9))
    assert [c.token_ids for c in chunks] == [[1, 2, 3, 4, 5, 6], [7, 8], [9, 10], [11]]
    assert [c.prompt_ids for c in chunks] == [
        [100, 101], [100, 101, 1, 4, 5, 6], [100, 101, 1, 6, 7, 8], [100, 101, 1, 8, 9, 10]]
    assert [c.finish_reason for c in chunks] == ["length", "length", "length", "eos"]
    assert sampler.prompts == [c.prompt_ids for c in chunks]
    # the chunk cap ends the answer even mid-way
    (capped,) = generate_chunked(QueueSampler(Digits(), [list(range(1, 12))]), [query], SamplingParams(),
                                 ChunkPlan(chunk=6, carryover=4, head=1, max_chunks=2))
    assert [c.token_ids for c in capped] == [[1, 2, 3, 4, 5, 6], [7, 8]]
    answer = as_answer(chunks, Digits())
    assert answer.token_ids == list(range(1, 12)) and answer.text == " ".join(map(str, range(1, 12)))
    assert answer.info == {"chunk_tokens": [6, 2, 2, 1], "chunk_prompt_tokens": [2, 6, 6, 6]}


def test_chunked_rows_rebuild_every_chunk_prompt_and_mask_each_sampled_id_once(tiny):
    tok = tiny.tokenizer
    markov = make_strategy("markovian", mode="chunked", chunk=8, carryover=5, head=2, max_chunks=4)
    body = encode(tok, " one two three four five six seven eight nine ten eleven twelve thirteen fourteen")
    body += [tok.eos_token_id]  # 15 ids: chunks of 8, 3, 3 and 1
    sampler = QueueSampler(tok, [body])
    query = markov.build_prompt(EpisodeView(turns=[], observation=OBS[0]), tok)
    assert query == encode(tok, chatml(("user", OBS[0])))
    (answer,) = generate_answers(sampler, [query], SamplingParams(max_new_tokens=99), markov.chunk_plan())
    n_chunks = len(answer.info["chunk_tokens"])
    assert answer.token_ids == body and n_chunks >= 3 and answer.info["chunk_tokens"][0] == 8
    expected_prompts = [len(query)] + [len(query) + 5] * (n_chunks - 1)  # q, then q + m
    assert answer.info["chunk_prompt_tokens"] == [len(p) for p in sampler.prompts] == expected_prompts
    turn = Turn(observation=OBS[0], action=answer.text, prompt_ids=query, action_ids=answer.token_ids,
                action_logprobs=answer.logprobs, info={"policy": answer.info})
    rows = markov.to_samples(Trajectory(env_id="e", seed=0, turns=[turn]))
    assert [r.metadata for r in rows] == [{"turn": 0, "chunk": c} for c in range(n_chunks)]
    sampled = []
    for row, prompt, n in zip(rows, sampler.prompts, answer.info["chunk_tokens"], strict=True):
        assert row.input_ids[: len(prompt)] == prompt and row.loss_mask == [0] * len(prompt) + [1] * n
        assert row.token_turns == [-1] * len(prompt) + [0] * n
        sampled += [i for i, m in zip(row.input_ids, row.loss_mask) if m]
    assert sampled == answer.token_ids  # across chunk boundaries, each sampled id is in exactly one mask
    assert [x for r in rows for x, m in zip(r.old_logprobs, r.loss_mask) if m] == answer.logprobs
    assert turn_prompt_tokens(turn) == len(query) + 5
    other = make_strategy("markovian", mode="chunked", chunk=8, carryover=6, head=2)
    with pytest.raises(ValueError, match="chunk settings"):
        other.to_samples(Trajectory(env_id="e", seed=0, turns=[turn]))


def test_chunked_answer_is_one_env_action_through_the_rollout(tiny):
    import gymnasium as gym

    tok = tiny.tokenizer
    env = gym.make(EXEC, horizon=3, dict_size=5).unwrapped
    env.reset(seed=3)
    answers = [encode(tok, f"{total}</answer> is the running total so far") for total in env.totals]
    markov = make_strategy("markovian", mode="chunked", chunk=6, carryover=4, head=1, max_chunks=5)
    sampler = QueueSampler(tok, answers, SamplingParams(max_new_tokens=2))
    (traj,) = run_episodes([EpisodeSpec(EXEC, seed=3, env_kwargs={"horizon": 3, "dict_size": 5})],
                           ModelPolicy(sampler, markov))
    assert traj.success and all(len(t.info["policy"]["chunk_tokens"]) >= 2 for t in traj.turns)
    assert [t.action for t in traj.turns] == [f"<answer>{x}</answer> is the running total so far" for x in env.totals]
    rows = markov.to_samples(traj)
    assert [r.input_ids[: r.loss_mask.index(1)] for r in rows] == sampler.prompts  # each row's prompt is what its call saw
    for t, turn in enumerate(traj.turns):
        mine = [r for r in rows if r.metadata["turn"] == t]
        assert len(mine) == len(turn.info["policy"]["chunk_tokens"])
        assert [i for r in mine for i, m in zip(r.input_ids, r.loss_mask) if m] == turn.action_ids
        assert {a for r in mine for a, m in zip(r.token_turns, r.loss_mask) if m} == {t}


# ------------------------------------------------------------------ workspace
def test_workspace_prompt_is_question_report_last_action_last_observation(tiny):
    tok, ws = tiny.tokenizer, make_strategy("workspace")
    actions = ["<report>seen 3</report><answer>3</answer>", "<report>seen 3, 4: total 7</report><answer>7</answer>",
               "<report>never closed <answer>12</answer>", "<report>total 18</report><answer>18</answer>"]
    turns = play(ws, tok, OBS[:4], actions, system_prompt="Be brief.")
    system = ("system", f"Be brief.\n\n{INSTRUCTIONS}")
    assert turns[0].prompt_ids == encode(tok, chatml(system, ("user", OBS[0])))
    assert turns[2].prompt_ids == encode(tok, chatml(system, ("user", (
        f"Question:\n{OBS[0]}\n\nReport:\nseen 3, 4: total 7\n\nLast action:\n<answer>7</answer>\n\n"
        f"Last observation:\n{OBS[2]}"))))
    # an unclosed report: the last good report stays, and the round had no action
    assert turns[3].prompt_ids == encode(tok, chatml(system, ("user", (
        f"Question:\n{OBS[0]}\n\nReport:\nseen 3, 4: total 7\n\nLast action:\n(empty)\n\n"
        f"Last observation:\n{OBS[3]}"))))
    assert [ws.env_action(a) for a in actions] == ["<answer>3</answer>", "<answer>7</answer>", "", "<answer>18</answer>"]
    assert ws.env_action("<answer>5</answer>") == "<answer>5</answer>" and ws.response_prefix("<answer>") == "<report>"
    rows = ws.to_samples(Trajectory(env_id="e", seed=0, turns=turns))
    check_rows(rows, turns)  # report tokens are sampled, so they are in the mask


def test_workspace_env_sees_only_the_action_in_a_rollout(tiny):
    import gymnasium as gym

    tok = tiny.tokenizer
    env = gym.make(EXEC, horizon=2, dict_size=5).unwrapped
    env.reset(seed=1)
    answers = [encode(tok, f"total {x}</report><answer>{x}</answer>") for x in env.totals]
    sampler = QueueSampler(tok, answers)
    (traj,) = run_episodes([EpisodeSpec(EXEC, seed=1, env_kwargs={"horizon": 2, "dict_size": 5})],
                           ModelPolicy(sampler, make_strategy("workspace")))
    assert traj.success
    assert traj.turns[1].action == f"<report>total {env.totals[1]}</report><answer>{env.totals[1]}</answer>"
    assert encode(tok, "<report>") == traj.turns[0].prompt_ids[-len(encode(tok, "<report>")):]  # pre-filled prompt


# ------------------------------------------------------------------ memory
def test_memory_store_ranks_by_overlap_evicts_lru_and_persists(tmp_path):
    store = LessonStore(tmp_path / "m.jsonl", capacity=3)
    store.add(["lesson about apples"], "A", task="apple orchard pears")
    store.add(["lesson about boats"], "A", task="river boats sails")
    store.add(["other env lesson"], "B", task="river boats sails")
    found = store.retrieve("A", "sails on the river", k=1)
    assert [x.text for x in found] == ["lesson about boats"] and found[0].uses == 1
    store.add(["lesson about apples"], "A", task="apple")  # a repeat refreshes, never duplicates
    assert len(store.lessons) == 3
    store.add(["new lesson"], "A", task="new")  # over capacity: the least recently used goes
    assert sorted(x.text for x in store.lessons) == ["lesson about apples", "lesson about boats", "new lesson"]
    store.save()
    again = LessonStore(tmp_path / "m.jsonl", capacity=3)
    assert [x.text for x in again.lessons] == [x.text for x in store.lessons] and again.clock == store.clock
    assert again.retrieve("C", "river", k=5) == []  # lessons of other envs never show


def test_rule_lessons_summarise_outcome_and_errors():
    turns = [Turn(observation="o", action="a", reward=1.0, info={"correct": True}),
             Turn(observation="o", action="b", info={"correct": False, "error": "the answer 'x7' is not an integer"}),
             Turn(observation="o", action="c", info={"correct": False, "error": "the answer 'zz' is not an integer"}),
             Turn(observation="o", action="d", info={"correct": False, "error": "found 2 <answer> tags"})]
    assert rule_lessons(Trajectory(env_id="e", seed=0, turns=turns, success=False)) == [
        "An earlier episode failed after 4 turns (reward 1); the first wrong answer was at turn 2.",
        "Rejected 2 times: the answer '...' is not an integer. Avoid it.",
        "Rejected 1 time: found N <answer> tags. Avoid it."]


def test_memory_puts_pinned_lessons_in_the_system_prompt_and_writes_new_ones(tiny, tmp_path):
    tok = tiny.tokenizer
    memory = make_strategy("memory", top_k=2)
    memory.attach(tmp_path)
    memory.store.add(["Keep a running total."], EXEC, task="add the numbers")
    memory.store.add(["Unrelated lesson."], "other-env", task="add the numbers")
    metadata: dict = {}
    view = dict(env_id=EXEC, metadata=metadata, system_prompt="Be brief.")
    turns = play(memory, tok, OBS[:2], ACTS[:2], **view)
    system = ("system", "Be brief.\n\nLessons from earlier episodes:\n- Keep a running total.")
    assert turns[0].prompt_ids == encode(tok, chatml(system, ("user", OBS[0])))
    # the base is `full`: the next prompt extends the first token by token, with the same lessons
    assert turns[1].prompt_ids == turns[0].prompt_ids + turns[0].action_ids + encode(
        tok, f"<|im_end|>\n<|im_start|>user\n{OBS[1]}<|im_end|>\n<|im_start|>assistant\n")
    assert metadata["memory_lessons"] == ["Keep a running total."]
    traj = Trajectory(env_id=EXEC, seed=0, turns=turns, success=True, metadata=metadata)
    (row,) = memory.to_samples(traj)
    assert [i for i, m in zip(row.input_ids, row.loss_mask) if m] == turns[0].action_ids + turns[1].action_ids
    memory.end_episode(traj)
    saved = [json.loads(line)["text"] for line in (tmp_path / "memory.jsonl").read_text().splitlines()]
    assert "An earlier episode succeeded in 2 turns (reward 0); the same approach works." in saved
    # a new episode gets the best two lessons of its env
    assert make_strategy("memory").lessons_for(EpisodeView(turns=[], observation=OBS[0], env_id=EXEC)) == []
    assert len(memory.lessons_for(EpisodeView(turns=[], observation=OBS[0], env_id=EXEC))) == 2


def test_text_generator_writes_a_lesson_with_the_model(tiny, tmp_path):
    from longhorizon.models import TransformersSampler
    from longhorizon.rollout import text_generator

    generate = text_generator(TransformersSampler(tiny.model, tiny.tokenizer, SamplingParams()), max_new_tokens=5)
    text = generate("Write one lesson.")
    assert isinstance(text, str) and text == generate("Write one lesson.")  # greedy: the same text twice
    memory = make_strategy("memory", generate=generate, writer=lambda t: [], path=str(tmp_path / "m.jsonl"))
    memory.end_episode(Trajectory(env_id=EXEC, seed=0, turns=[Turn(observation="task", action="a")]))
    expected = [line.strip() for line in generate(
        "You just finished an episode of " + EXEC + ".\nTask (start): task\nWhat happened: An earlier episode failed "
        "after 1 turns (reward 0).\nWrite one short lesson (one sentence) for your next attempt.").splitlines() if line.strip()]
    assert [x.text for x in memory.store.lessons] == expected[:1]


def test_memory_wraps_another_base_and_can_use_model_written_lessons(tiny, tmp_path):
    tok = tiny.tokenizer
    prompts: list[str] = []
    memory = make_strategy("memory", base="window", base_options={"k": 0}, path=str(tmp_path / "m.jsonl"),
                           generate=lambda p: prompts.append(p) or "\n Check each key twice.\nmore", writer=lambda t: [])
    turns = play(memory, tok, OBS[:3], ACTS[:3], env_id=EXEC)
    assert turns[2].prompt_ids == encode(tok, chatml(("user", OBS[0]), ("assistant", ACTS[0]), ("user", OBS[2])))
    memory.end_episode(Trajectory(env_id=EXEC, seed=0, turns=turns))
    assert "Task (start): " + OBS[0] in prompts[0]
    assert [x.text for x in LessonStore(tmp_path / "m.jsonl").lessons] == ["Check each key twice."]
    view = EpisodeView(turns=[], observation=OBS[0], env_id=EXEC)
    assert memory.build_prompt(view, tok) == encode(tok, chatml(
        ("system", "Lessons from earlier episodes:\n- Check each key twice."), ("user", OBS[0])))


def test_memory_state_round_trips_and_frozen_reads_without_writing(tiny, tmp_path):
    tok = tiny.tokenizer
    memory = make_strategy("memory", top_k=1, reminder_every=3)  # through the Reminder wrapper too
    memory.attach(tmp_path)
    memory.inner.store.add(["Keep a running total."], EXEC, task="add")
    saved = json.loads(json.dumps(memory.state_dict()))  # JSON-able
    assert [x["text"] for x in saved["lessons"]] == ["Keep a running total."] and saved["clock"] == 1

    with memory.frozen():
        metadata: dict = {}
        turns = play(memory, tok, OBS[:2], ACTS[:2], env_id=EXEC, metadata=metadata)
        memory.end_episode(Trajectory(env_id=EXEC, seed=0, turns=turns, success=True, metadata=metadata))
    assert metadata["memory_lessons"] == ["Keep a running total."]  # read...
    assert memory.state_dict() == saved  # ...but nothing written, no use counted, clock unchanged

    memory.end_episode(Trajectory(env_id=EXEC, seed=0, turns=turns, success=True))  # learning again
    assert len(memory.state_dict()["lessons"]) == 2
    memory.load_state_dict(saved)
    assert memory.state_dict() == saved
    assert [json.loads(x)["text"] for x in (tmp_path / "memory.jsonl").read_text().splitlines()] == [
        "Keep a running total."]  # the file follows the restored store
    with pytest.raises(ValueError, match="keeps no state"):
        make_strategy("window").load_state_dict(saved)


# ------------------------------------------------------------------ reminders, with every strategy
REMIND = "\n\nReminder of your task:\n"


@pytest.mark.parametrize("name,options", [("full", {}), ("window", {"k": 1}), ("markovian", {}),
                                          ("markovian", {"mode": "chunked", "chunk": 8, "carryover": 4, "head": 1}),
                                          ("workspace", {}), ("memory", {"base": "window"})])
def test_reminder_reinjects_the_task_every_k_turns(tiny, name, options):
    tok = tiny.tokenizer
    plain, reminded = make_strategy(name, **options), make_strategy(name, reminder_every=2, **options)
    turns = play(plain, tok, OBS[:4], ACTS[:4])
    for t in range(5):
        obs = OBS[t] + (REMIND + OBS[0] if t in (2, 4) else "")
        base = plain.build_prompt(EpisodeView(turns=turns[:t], observation=obs), tok)
        assert reminded.build_prompt(EpisodeView(turns=turns[:t], observation=OBS[t]), tok) == base
    # the env's own task statement is preferred to the first observation
    view = EpisodeView(turns=turns[:2], observation=OBS[2], task_statement="Sum them all.")
    assert reminded.build_prompt(view, tok) == plain.build_prompt(
        EpisodeView(turns=turns[:2], observation=OBS[2] + REMIND + "Sum them all."), tok)


def test_reminder_keeps_full_history_token_exact(tiny):
    tok, full = tiny.tokenizer, make_strategy("full", reminder_every=2)
    turns = play(full, tok, OBS[:4], ACTS[:4])
    assert turns[2].prompt_ids == turns[1].prompt_ids + turns[1].action_ids + encode(
        tok, f"<|im_end|>\n<|im_start|>user\n{OBS[2]}{REMIND}{OBS[0]}<|im_end|>\n<|im_start|>assistant\n")
    assert turns[3].prompt_ids[: len(turns[2].prompt_ids) + len(turns[2].action_ids)] == (
        turns[2].prompt_ids + turns[2].action_ids)  # the reminder stays in the history it was shown in
    (row,) = full.to_samples(Trajectory(env_id="e", seed=0, turns=turns))
    assert [i for i, m in zip(row.input_ids, row.loss_mask) if m] == [i for t in turns for i in t.action_ids]


# ------------------------------------------------------------------ registry, rollout, CLI
@pytest.mark.parametrize("name,options,message", [
    ("window", {"kk": 1}, "unknown option 'kk'"),
    ("window", {"k": -1}, "option k"),
    ("full", {"k": 2}, "unknown option 'k'"),
    ("markovian", {"mode": "dreaming"}, "option mode"),
    ("markovian", {"chunk": 64}, "option chunk applies only to mode='chunked'"),
    ("markovian", {"mode": "chunked", "head": 200}, "head < carryover < chunk"),
    ("memory", {"capacity": 0}, "option capacity"),
    ("memory", {"base": "memory"}, "option base"),
    ("memory", {"base": "window", "base_options": {"q": 1}}, "unknown option 'q'"),
    ("workspace", {"reminder_every": 0}, "option reminder_every"),
])
def test_bad_options_are_user_errors_naming_the_option(name, options, message):
    with pytest.raises(UserError, match=message):
        make_strategy(name, **options)


@pytest.mark.parametrize("name,options", [("window", {"k": 1}), ("markovian", {"carryover": 8}), ("workspace", {}),
                                          ("memory", {"base": "window", "base_options": {"k": 1}}),
                                          ("window", {"k": 1, "reminder_every": 2})])
def test_rollout_records_the_prompts_the_strategy_built(tiny, name, options, tmp_path):
    from longhorizon.models import TransformersSampler

    strategy = make_strategy(name, **options)
    strategy.attach(tmp_path)
    sampler = TransformersSampler(tiny.model, tiny.tokenizer, SamplingParams(max_new_tokens=3))
    specs = [EpisodeSpec(EXEC, seed=i, env_kwargs={"horizon": 3, "dict_size": 5}) for i in range(2)]
    trajectories = run_episodes(specs, ModelPolicy(sampler, strategy))  # two episodes: batched, left-padded
    for traj in trajectories:
        prefix = encode(tiny.tokenizer, strategy.response_prefix("<answer>"))
        for t, turn in enumerate(traj.turns):
            view = EpisodeView(turns=traj.turns[:t], observation=turn.observation, env_id=EXEC, metadata=traj.metadata)
            assert turn.prompt_ids == strategy.build_prompt(view, tiny.tokenizer) + prefix
        check_rows(strategy.to_samples(traj), traj.turns)
    if name == "memory":
        assert len((tmp_path / "memory.jsonl").read_text().splitlines()) >= 1


def test_eval_cli_takes_context_options(tmp_path):
    runner = CliRunner()
    out = tmp_path / "run"
    result = runner.invoke(app, ["eval", "--model", "tiny-random", "--horizons", "1,3", "--episodes", "1",
                                 "--knob", "dict_size=5", "--max-new-tokens", "3", "--context", "memory",
                                 "--context-opt", "base=window", "--context-opt", "base_options={k: 1}",
                                 "--context-opt", "reminder_every=2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["prompt_tokens_by_turn"]) == 3 and all(n > 0 for n in metrics["prompt_tokens_by_turn"])
    assert (out / "memory.jsonl").exists()
    assert "base_options" in (out / "config.yaml").read_text()
    bad = runner.invoke(app, ["eval", "--model", "oracle", "--context", "window", "--context-opt", "kk=3",
                              "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "kk" in bad.output and len(bad.output.strip().splitlines()) == 1
