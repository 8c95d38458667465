"""Early Experience (rollout/early_experience.py): branches off expert states, executed, as world-model data
and as self-reflection data."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from longhorizon.cli import app
from longhorizon.context import make_strategy
from longhorizon.envs.core.base import AgentSpec
from longhorizon.errors import UserError
from longhorizon.models import SamplingParams, load_model
from longhorizon.rollout.demos import oracle_demonstrations
from longhorizon.rollout.early_experience import (DROP_REASONS, ModelRationales, Transition, branch_transitions,
                                                  concludes_with_expert, rationale_problem, reflection_pairs,
                                                  reflection_prompt, reflection_rows, template_rationale,
                                                  world_model_prompt, world_model_rows)
from longhorizon.rollout.policies import OraclePolicy, model_policy
from longhorizon.rollout.runner import Action, EpisodeSpec, LiveEpisode
from longhorizon.train import load_config, train
from longhorizon.train.checkpoint import latest_checkpoint, load_weights
from longhorizon.train.demonstrations import conversation_sample
from longhorizon.train.metrics import read_records

ENV = "longhorizon/Execution-v0"
KNOBS = {"horizon": 2, "dict_size": 3, "value_range": 5, "stop_on_error": True}


class Fixed:
    """A branch policy that always answers `text`, counting the episodes it was asked about."""

    def __init__(self, text: str):
        self.text, self.asked = text, 0

    def act(self, episodes):
        self.asked += len(episodes)
        return [Action(text=self.text) for _ in episodes]


def test_transitions_by_hand():
    demos = oracle_demonstrations(ENV, 2, KNOBS, seed=5)
    policy = Fixed("<answer>999</answer>")
    transitions, counts = branch_transitions(demos, policy, k=3)
    assert policy.asked == 2 * 2 * 3  # every expert state, K times
    assert counts == {"states": 4, "kept": 4, "dropped": 8}  # the K copies agree: one kept per state
    expert = [t for t in transitions if t.expert]
    demo = demos[0]
    assert [(t.seed, t.turn, t.action) for t in expert[:2]] == [(5, 0, demo.turns[0].action), (5, 1, demo.turns[1].action)]
    assert expert[0].next_observation == demo.turns[1].observation  # "Turn 2 of 2. Keys: ..."
    assert expert[1].next_observation == "The task is over."
    assert expert[1].history == ((demo.turns[0].observation, demo.turns[0].action),)
    branched = [t for t in transitions if not t.expert]
    # a wrong total ends the episode (stop_on_error): the env's answer to it is the final message
    assert [(t.seed, t.turn, t.action, t.next_observation) for t in branched] == [
        (5, 0, "<answer>999</answer>", "The task is over."), (5, 1, "<answer>999</answer>", "The task is over."),
        (6, 0, "<answer>999</answer>", "The task is over."), (6, 1, "<answer>999</answer>", "The task is over.")]
    unreadable, _ = branch_transitions(demos[:1], Fixed("no idea"), k=1)
    assert unreadable[-1].next_observation.startswith("Your answer could not be read")  # error messages stay targets


def test_alternatives_equal_to_the_expert_are_dropped_and_replays_are_checked():
    demos = oracle_demonstrations(ENV, 2, KNOBS)
    transitions, counts = branch_transitions(demos, OraclePolicy(), k=2)
    assert counts == {"states": 4, "kept": 0, "dropped": 8} and all(t.expert for t in transitions)
    broken = dataclasses.replace(demos[0], turns=[dataclasses.replace(demos[0].turns[0], observation="edited"),
                                                  *demos[0].turns[1:]])
    with pytest.raises(UserError, match="does not replay"):
        branch_transitions([broken], Fixed("<answer>1</answer>"), k=1)
    with pytest.raises(UserError, match="k >= 1"):
        branch_transitions(demos, OraclePolicy(), k=0)


def test_rows_put_the_loss_on_the_next_observation_only():
    demos = oracle_demonstrations(ENV, 1, KNOBS)
    transitions, _ = branch_transitions(demos, Fixed("<answer>999</answer>"), k=1)
    rows = world_model_rows(transitions)
    assert len(rows) == 4 and [r["metadata"]["expert"] for r in rows] == [True, True, False, False]
    prompt = world_model_prompt(transitions[1])
    assert prompt.startswith("Predict the environment's next message.")
    assert f"[agent]\n{demos[0].turns[0].action}" in prompt and prompt.endswith("What does the environment answer?")
    tok = load_model("tiny-random").tokenizer
    sample = conversation_sample(tok, rows[2]["messages"])
    learned = tok.decode([i for i, m in zip(sample.input_ids, sample.loss_mask) if m])
    assert learned == "The task is over.<|im_end|>"


def test_cli_then_sft(tmp_path: Path):
    out = tmp_path / "iwm.jsonl"
    result = CliRunner().invoke(app, ["early-experience", ENV, "--episodes", "2", "--k", "2", "--model", "tiny-random",
                                      "--max-new-tokens", "4", "--out", str(out), "--set", "horizon=2",
                                      "--set", "dict_size=3", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert "4 expert states of longhorizon/Execution-v0" in result.output
    lines = out.read_text().splitlines()
    assert 4 < len(lines) <= 4 + 4 * 2  # the 4 expert transitions and up to 2 alternatives per state
    bad = CliRunner().invoke(app, ["early-experience", "nope/Env-v0", "--episodes", "1", "--out", str(out)])
    assert bad.exit_code == 2
    cfg = load_config(None, ["model=tiny-random", f"env_id={ENV}", "algorithm.name=sft", f"demonstrations={out}",
                             "steps=1", "tasks_per_step=4", "micro_batch_size=2", "eval.episodes=0",
                             "torch_threads=1", f"run_dir={tmp_path / 'run'}", "save_final_model=false",
                             "checkpoint_every=0", "optim.lr=0.01"])
    (step,) = [r for r in read_records(train(cfg).run_dir) if "losses/sft_loss" in r]
    assert step["charts/rows_trained"] == 4 and math.isfinite(step["losses/sft_loss"]) and step["losses/sft_loss"] > 0


# ------------------------------------------------------------------ self-reflection

ANSWER = AgentSpec(response_prefix="<answer>", stop=("</answer>",))
STATE = ("You are given a dictionary that maps words to integers.\nDictionary:\npearl: 4\ntrail: -7\n\n"
         "Turn 1 of 2. Keys: trail")


def _pair(alt_action: str, alt_next: str, alt_reward: float = 0.0, expert_next: str = "Turn 2 of 2. Keys: pearl",
          expert_action: str = "<answer>-7</answer>") -> tuple[Transition, Transition]:
    expert = Transition(ENV, 5, 0, (), STATE, expert_action, expert_next, True, 1.0, ANSWER, 0)
    return expert, Transition(ENV, 5, 0, (), STATE, alt_action, alt_next, False, alt_reward, ANSWER, 0)


def test_template_rationale_by_hand():
    expert, wrong = _pair("<answer>7</answer>", "The task is over.")  # stop_on_error: a wrong total ends it
    assert template_rationale(expert, wrong) == (
        'One option is to reply "7", but I expect the environment to answer "The task is over.", where "-7" '
        'should lead to "Turn 2 of 2. Keys: pearl". So I reply "-7".')
    # the env's answer markers are quoted out of actions and observations (they would end the turn or re-answer)
    expert, unread = _pair("seven", "Your answer could not be read: no <answer>...</answer> tag found.\nThe task is over.")
    assert template_rationale(expert, unread) == (
        'One option is to reply "seven", but I expect the environment to answer "Your answer could not be read: '
        'no ... tag found. The task is over.", where "-7" should lead to "Turn 2 of 2. Keys: pearl". So I reply "-7".')
    # the same reply (no stop_on_error, or the last turn): the step rewards tell them apart
    expert, same = _pair("<answer>7</answer>", "Turn 2 of 2. Keys: pearl")
    assert template_rationale(expert, same) == ('One option is to reply "7", but I expect it to score 0 where "-7" '
                                                'should score 1. So I reply "-7".')
    expert, tie = _pair("<answer>-7 </answer>", "Turn 2 of 2. Keys: pearl", alt_reward=1.0)
    assert template_rationale(expert, tie) is None  # nothing observed favours the expert
    plan = "<answer>" + "day 1: museum; " * 8 + "</answer>"  # a long expert action is not restated
    expert, wrong = _pair("<answer>7</answer>", "The task is over.", expert_action=plan)
    assert template_rationale(expert, wrong).endswith('where the reply below should lead to "Turn 2 of 2. Keys: '
                                                      'pearl". So I reply as follows.')


def test_rationale_filters_by_hand():
    expert, alt = _pair("<answer>7</answer>", "The task is over.")
    cases = {None: "unfinished", "  \n": "empty", "The expert would say -7.": "leak", "Action 1 fails. So -7.": "leak",
             "a_i is best, -7": "leak", "So I reply <answer>-7</answer>": "marker", "So I reply 7.": "no_action",
             "I reply -7, not 7.": "no_action", "Not 7, since it ends the task; so -7.": None,
             "-7 it is": None, "Trying 17 or 7 would end it. -7 then.": None, "Maybe -77.": "no_action"}
    assert {c: rationale_problem(c, expert, alt) for c in cases} == cases
    # a mention of the alternative inside a mention of the expert's action does not count ("1" in "-1")
    expert, alt = _pair("<answer>1</answer>", "The task is over.", expert_action="<answer>-1</answer>")
    assert rationale_problem("So I reply -1.", expert, alt) is None
    assert concludes_with_expert("anything", *_pair("x", "y", expert_action="<answer>" + "z" * 81 + "</answer>"))


def test_reflection_rows_and_their_loss_mask():
    demos = oracle_demonstrations(ENV, 1, KNOBS, seed=5)
    demo, (a0, a1) = demos[0], [t.action for t in demos[0].turns]
    x0, x1 = a0[len("<answer>"):-len("</answer>")], a1[len("<answer>"):-len("</answer>")]
    transitions, _ = branch_transitions(demos, Fixed("<answer>999</answer>"), k=2)
    rows, counts = reflection_rows(demos, transitions)
    assert counts == {"pairs": 2, "kept": 2, **dict.fromkeys(DROP_REASONS, 0)}
    obs0, obs1 = demo.turns[0].observation, demo.turns[1].observation
    assert rows[0]["messages"] == [
        {"role": "user", "content": obs0},
        {"role": "assistant", "content": f'One option is to reply "999", but I expect the environment to answer "The '
                                         f'task is over.", where "{x0}" should lead to "{obs1}". So I reply "{x0}".\n{a0}'}]
    assert rows[1]["messages"] == [
        {"role": "user", "content": f"The conversation so far:\n[environment]\n{obs0}\n[agent]\n{a0}\n[environment]\n{obs1}"},
        {"role": "assistant", "content": f'One option is to reply "999", but I expect it to score 0 where "{x1}" '
                                         f'should score 1. So I reply "{x1}".\n{a1}'}]
    assert rows[0]["metadata"] == {"env_id": ENV, "seed": 5, "turn": 0, "objective": "reflection",
                                   "alternative": "<answer>999</answer>", "rationale": "template"}
    tok = load_model("tiny-random").tokenizer
    sample = conversation_sample(tok, rows[0]["messages"])
    learned = [i for i, m in zip(sample.input_ids, sample.loss_mask) if m]
    assert tok.decode(learned) == rows[0]["messages"][1]["content"] + "<|im_end|>"  # rationale + action only
    first, n = sample.loss_mask.index(1), len(learned)  # one block of ones; the template's closing "\n" after it
    assert sample.loss_mask == [0] * first + [1] * n + [0] * (len(sample.input_ids) - first - n)
    # the unlearned prefix is exactly the prompt the policy sees at turn 0 without prefill (`full` context)
    episode = LiveEpisode(EpisodeSpec(ENV, seed=5, env_kwargs=KNOBS))
    assert sample.input_ids[:first] == make_strategy("full").build_prompt(episode.view(), tok)


class Writer:
    """A rationale writer that answers every prompt with `text` (formatted with the expert's core as {x})."""

    name = "stub"

    def __init__(self, text: str):
        self.text, self.prompts = text, []

    def __call__(self, prompts):
        self.prompts += prompts
        return [self.text.format(x=p.split("So I reply ")[-1].split(".")[0].strip('"')) for p in prompts]


def test_the_reflection_prompt_and_the_executed_outcome_filter():
    demos = oracle_demonstrations(ENV, 1, KNOBS, seed=5)
    a0 = demos[0].turns[0].action
    transitions, _ = branch_transitions(demos, Fixed("<answer>999</answer>"), k=1)
    writer = Writer("Adding the key's value to my total should keep me going, while 999 should end it. So I reply {x}.")
    rows, counts = reflection_rows(demos, transitions, writer)
    assert counts == {"pairs": 2, "kept": 2, **dict.fromkeys(DROP_REASONS, 0)} and len(writer.prompts) == 2
    prompt = writer.prompts[0]
    assert prompt == reflection_prompt(*reflection_pairs(transitions)[0])
    assert prompt.startswith("You will be presented with a situation where you need to choose between multiple")
    assert f"- Situation Description: {demos[0].turns[0].observation}\n- The action taken here: {a0}\n" in prompt
    assert '- What follows it: the environment replies "The task is over." (step reward 0)' in prompt
    assert "- Another possible action: <answer>999</answer>\n" in prompt and "Expert" not in prompt
    assert f'Never write <answer> or </answer>. End with the sentence: So I reply "{a0[8:-9]}".' in prompt
    assert rows[0]["messages"][1]["content"] == (f"Adding the key's value to my total should keep me going, while 999 "
                                                 f"should end it. So I reply {a0[8:-9]}.\n{a0}")
    assert rows[0]["metadata"]["rationale"] == "stub"
    # without its markers known, a rationale holding an answer passes the text filters; executing it catches it
    blind = [dataclasses.replace(t, agent=AgentSpec()) for t in transitions]
    rows, counts = reflection_rows(demos, blind, Writer("Not <answer>999</answer>; so I reply {x}."))
    assert rows == [] and counts["outcome"] == 2  # "found 2 <answer> tags" is not the expert's outcome


def test_model_rationales_on_tiny_random():
    demos = oracle_demonstrations(ENV, 1, KNOBS, seed=5)
    transitions, _ = branch_transitions(demos, Fixed("<answer>999</answer>"), k=1)
    writer = ModelRationales("tiny-random", max_new_tokens=6)
    seen = []
    generate = writer.sampler.generate
    writer.sampler.generate = lambda prompts: seen.extend(generate(prompts)) or seen[-len(prompts):]
    rows, counts = reflection_rows(demos, transitions, writer)
    assert len(seen) == 2 and all(len(g.token_ids) <= 6 for g in seen)  # bounded, greedy
    assert writer.sampler.params.temperature == 0.0
    # a random model never ends its monologue within 6 tokens: every rationale is dropped as unfinished
    assert rows == [] and counts == {"pairs": 2, "kept": 0, **dict.fromkeys(DROP_REASONS, 0), "unfinished": 2}
    assert [g.finish_reason for g in seen] == ["length", "length"]
    with pytest.raises(UserError, match="rationale model: unknown model 'nope'"):
        ModelRationales("nope")


def test_model_prompts_see_the_expert_turns_before_the_branch():
    """At a state after the first, the model's prompt is the one it sees in an episode: the dictionary, the
    expert's earlier answers as its own tokens, then the new keys (not the new keys alone)."""
    demos = oracle_demonstrations(ENV, 1, KNOBS, seed=5)
    policy = model_policy("tiny-random", make_strategy("full"), SamplingParams(max_new_tokens=3))
    prompts = []
    generate = policy.sampler.generate
    policy.sampler.generate = lambda ps, params=None: prompts.extend(ps) or generate(ps, params)
    branch_transitions(demos, policy, k=1)
    first, second = prompts
    assert second[:len(first)] == first and "Dictionary:" in policy.sampler.tokenizer.decode(second)
    assert policy.sampler.tokenizer.decode(second[len(first):]).startswith(demos[0].turns[0].action[len("<answer>"):])


def test_reflection_cli_then_sft_moves_the_weights(tmp_path: Path):
    out = tmp_path / "sr.jsonl"
    args = ["early-experience", ENV, "--objective", "reflection", "--episodes", "2", "--k", "2", "--model",
            "tiny-random", "--max-new-tokens", "4", "--out", str(out), "--set", "horizon=2", "--set", "dict_size=3",
            "--set", "stop_on_error=true", "--seed", "3"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "4 expert states of longhorizon/Execution-v0" in result.output and "2 expert episodes" in result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    reflections, experts = rows[:-2], rows[-2:]
    assert 0 < len(reflections) <= 4 * 2 and [e["seed"] for e in experts] == [3, 4]
    for row in reflections:
        assert [m["role"] for m in row["messages"]] == ["user", "assistant"]
        assert row["messages"][1]["content"].startswith("One option is to reply ")
        target = row["messages"][1]["content"]
        assert target.endswith("</answer>") and target.count("<answer>") == 1  # the rationale holds no marker
    bad = CliRunner().invoke(app, args[:-2] + ["--rationale-model", str(tmp_path)])  # a directory, not a model
    assert bad.exit_code == 2 and len(bad.output.strip().splitlines()) == 1
    assert "rationale model: unknown model" in bad.output
    assert CliRunner().invoke(app, args + ["--objective", "critique"]).exit_code == 2
    cfg = load_config(None, ["model=tiny-random", f"env_id={ENV}", "env_kwargs={horizon: 2, dict_size: 3, stop_on_error: true}",
                             "algorithm.name=sft", f"demonstrations={out}", "prefill=false", "steps=2",
                             "tasks_per_step=3", "micro_batch_size=3", "eval.episodes=0", "torch_threads=1",
                             f"run_dir={tmp_path / 'run'}", "save_final_model=false", "checkpoint_every=2",
                             "optim.lr=0.01"])
    run = train(cfg).run_dir
    steps = [r for r in read_records(run) if "losses/sft_loss" in r]
    assert [r["step"] for r in steps] == [1, 2] and all(math.isfinite(r["losses/sft_loss"]) for r in steps)
    weights, start = load_weights(latest_checkpoint(run))["policy"], load_model("tiny-random").model.state_dict()
    assert all(not torch.equal(w, start[k]) for k, w in weights.items())  # every tensor moved


def test_the_two_stage_recipes_load():
    sft = load_config("recipes/early-experience-reflection.yaml")
    grpo = load_config("recipes/early-experience-reflection-grpo.yaml")
    assert (sft.algorithm.name, sft.prefill, sft.eval.prefill) == ("sft", False, False)
    assert (grpo.algorithm.name, grpo.prefill, grpo.model) == ("grpo", False, f"{sft.run_dir}/model")
    assert sft.env_kwargs == grpo.env_kwargs
