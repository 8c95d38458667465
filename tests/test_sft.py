"""Supervised fine-tuning (`algorithm: sft`): the rows of demonstrations under every context strategy (exact ids and
masks), the token-mean NLL against hand values, the oracle replay against the model policy's own prompts, the
`messages` dataset path, 2 steps on tiny-random moving every trainable tensor, exact resume, and bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from longhorizon.algorithms.supervised import sft_loss
from longhorizon.cli import app
from longhorizon.context import make_strategy
from longhorizon.envs import list_envs
from longhorizon.errors import UserError
from longhorizon.models import load_model
from longhorizon.models.sampler import Generation, SamplingParams
from longhorizon.rollout import ModelPolicy, run_episodes
from longhorizon.rollout.demos import oracle_demonstrations, replay_tokens
from longhorizon.rollout.runner import EpisodeSpec
from longhorizon.train import load_config, train
from longhorizon.train.checkpoint import latest_checkpoint, load_weights
from longhorizon.train.demonstrations import conversation_sample, demonstration_samples, read_demonstrations
from longhorizon.train.metrics import read_records
from longhorizon.train.model import build_models
from longhorizon.train.sft import pad_samples
from longhorizon.types import Trajectory, Turn, save_trajectories
from tests.test_train import assert_same_weights, crash_then_resume

ENV = "longhorizon/Execution-v0"
KNOBS = {"horizon": 3, "dict_size": 4, "value_range": 9}
STRATEGIES = {"full": {}, "window": {"k": 1}, "markovian": {}, "workspace": {},
              "markovian_chunked": {"mode": "chunked", "chunk": 4, "carryover": 2, "head": 1}}
runner = CliRunner()


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def strategy(name: str):
    return make_strategy(name.split("_")[0], **STRATEGIES[name])


@pytest.fixture(scope="module")
def demos_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("demos") / "demos.jsonl"
    save_trajectories(path, oracle_demonstrations(ENV, 6, KNOBS))
    return path


# ------------------------------------------------------------------ rows and masks


def hand_trajectory(tok) -> Trajectory:
    """3 turns whose prompts extend each other (as `full` records them); actions decode to their text."""
    a0, a1, a2 = [tok.encode("7")[0], 13], [tok.encode("9")[0]], [tok.encode("8")[0], 21]
    turns = [Turn("o0", "", prompt_ids=[1, 2], action_ids=a0, action_logprobs=[-0.1, -0.2]),
             Turn("o1", "", prompt_ids=[1, 2] + a0 + [5], action_ids=a1, action_logprobs=[-0.3]),
             Turn("o2", "", prompt_ids=[1, 2] + a0 + [5] + a1 + [6, 7], action_ids=a2, action_logprobs=[-0.4, -0.5])]
    for turn in turns:
        turn.action = tok.decode(turn.action_ids, skip_special_tokens=True)
    return Trajectory(ENV, seed=0, turns=turns)


@pytest.mark.parametrize("name", ["full", "window", "markovian", "workspace"])
def test_rows_of_a_recorded_trajectory_under_each_strategy(tiny, name):
    traj = hand_trajectory(tiny.tokenizer)
    a0, a1, a2 = (t.action_ids for t in traj.turns)
    (rows,) = demonstration_samples([traj], strategy(name), tiny.tokenizer, "hand")
    if name == "full":  # one packed row; the mask is 1 on each turn's sampled ids only
        expected = [([1, 2, *a0, 5, *a1, 6, 7, *a2], [0, 0, 1, 1, 0, 1, 0, 0, 1, 1])]
    else:  # one row per turn: its exact prompt ids (mask 0), then its sampled ids (mask 1)
        expected = [([1, 2, *a0], [0, 0, 1, 1]), ([1, 2, *a0, 5, *a1], [0, 0, 0, 0, 0, 1]),
                    ([1, 2, *a0, 5, *a1, 6, 7, *a2], [0, 0, 0, 0, 0, 0, 0, 0, 1, 1])]
    assert [(r.input_ids, r.loss_mask) for r in rows] == expected
    side = pad_samples(rows, pad_id=0)
    width = max(len(ids) for ids, _ in expected)
    assert side.loss_mask.tolist() == [m + [0] * (width - len(m)) for _, m in expected]
    assert side.attention_mask.sum(1).tolist() == [len(ids) for ids, _ in expected]


def completion(text: str) -> str:
    return text.removeprefix("<answer>")


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_oracle_rows_learn_exactly_the_answers(tiny, demos_file, name):
    tok = tiny.tokenizer
    demos = read_demonstrations(str(demos_file))[:2]
    rows = demonstration_samples(demos, strategy(name), tok, str(demos_file))
    for demo, demo_rows in zip(demos, rows):
        learned = [tok.decode([i for i, m in zip(r.input_ids, r.loss_mask) if m]) for r in demo_rows]
        answers = [completion(t.action) for t in demo.turns]
        if name == "workspace":  # an empty report, then the action (rollout/demos.py, choice 2)
            answers = [f"(empty)</report>\n{t.action}" for t in demo.turns]
        assert "".join(learned) == "".join(answers)  # `full`: one row; others: one per turn (or chunk)
        ids = [tok.encode(a, add_special_tokens=False) for a in answers]
        chunks = [1 + max(0, -(-(len(a) - 4) // 2)) for a in ids]  # chunked: C = 4 ids, then C - m = 2 each
        expected = {"full": 1, "markovian_chunked": sum(chunks)}.get(name, len(demo.turns))
        assert len(demo_rows) == expected
        prefix = "<report>" if name == "workspace" else "<answer>"
        for r in demo_rows:
            if r.metadata.get("chunk", 0) == 0:  # a later chunk's prompt ends with the answer so far
                assert tok.decode(r.input_ids[:r.loss_mask.index(1)]).endswith("<|im_start|>assistant\n" + prefix)


class ScriptedSampler:
    """A sampler that 'samples' given ids: the model policy then records the prompts it builds for them."""

    def __init__(self, tokenizer, actions: list[list[int]]):
        self.tokenizer, self.actions = tokenizer, list(actions)
        self.params, self.max_length = SamplingParams(temperature=0.0, max_new_tokens=64), 4096

    def generate(self, prompts, params=None):
        ids = self.actions.pop(0)
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        return [Generation(token_ids=ids, logprobs=[0.0] * len(ids), text=text, finish_reason="stop", prompt_ids=p)
                for p in prompts]


@pytest.mark.parametrize("name", ["full", "window", "markovian", "workspace"])
def test_replayed_tokens_equal_what_the_model_policy_conditions_on(tiny, demos_file, name):
    """The training prompts of a demonstration are the prompts the policy builds when it takes those actions."""
    (demo,) = read_demonstrations(str(demos_file))[:1]
    (replayed,) = replay_tokens([demo], strategy(name), tiny.tokenizer)
    sampler = ScriptedSampler(tiny.tokenizer, [t.action_ids for t in replayed.turns])
    spec = EpisodeSpec(ENV, seed=demo.seed, env_kwargs=demo.metadata["env_kwargs"])
    (sampled,) = run_episodes([spec], ModelPolicy(sampler, strategy(name)))
    assert [t.prompt_ids for t in sampled.turns] == [t.prompt_ids for t in replayed.turns]
    assert [t.action for t in sampled.turns] == [t.action for t in replayed.turns]
    assert sampled.success and [t.reward for t in sampled.turns] == [t.reward for t in demo.turns]


def test_tool_env_demonstrations_use_the_env_call_format(tiny, tmp_path):
    env = "longhorizon/Vending-v0"
    demos = oracle_demonstrations(env, 1, {})
    assert all(t.action.startswith("<tool_call>") for t in demos[0].turns)
    (rows,) = demonstration_samples(demos, strategy("window"), tiny.tokenizer, "vending")
    learned = tiny.tokenizer.decode([i for r in rows for i, m in zip(r.input_ids, r.loss_mask) if m])
    assert learned.startswith("<tool_call>") and '"name"' in learned


@pytest.mark.parametrize("env", list_envs())
def test_every_env_oracle_demonstration_replays_into_full_rows(tiny, env):
    (demo,) = oracle_demonstrations(env, 1, {})
    (rows,) = demonstration_samples([demo], strategy("full"), tiny.tokenizer, env)
    (row,) = rows
    learned = [tiny.tokenizer.decode([i for i, m, t in zip(row.input_ids, row.loss_mask, row.token_turns) if m and t == k],
                                     skip_special_tokens=True) for k in range(len(demo.turns))]
    assert demo.success and all(turn.action.endswith(text) and text for turn, text in zip(demo.turns, learned))


# ------------------------------------------------------------------ conversations


def test_conversation_mask_covers_assistant_text_and_end_of_turn(tiny):
    tok = tiny.tokenizer
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
                {"role": "assistant", "content": "4"}, {"role": "user", "content": "and 3+3?"},
                {"role": "assistant", "content": "6"}]
    row = conversation_sample(tok, messages)
    whole = tok.apply_chat_template(messages, tokenize=False)
    assert tok.decode(row.input_ids) == whole
    learned = [i for i, m in zip(row.input_ids, row.loss_mask) if m]
    assert learned == tok.encode("4<|im_end|>", add_special_tokens=False) + tok.encode("6<|im_end|>", add_special_tokens=False)
    first = row.loss_mask.index(1)
    assert tok.decode(row.input_ids[:first]) == tok.apply_chat_template(messages[:2], tokenize=False, add_generation_prompt=True)
    assert sorted({t for t in row.token_turns if t >= 0}) == [2, 4]


def test_messages_dataset_directory_and_jsonl(tiny, tmp_path):
    import datasets

    rows = [{"messages": [{"role": "user", "content": f"say {k}"}, {"role": "assistant", "content": str(k)}]}
            for k in range(3)]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "ds"))
    (tmp_path / "c.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for path in (tmp_path / "ds", tmp_path / "c.jsonl"):
        demos = read_demonstrations(str(path))
        samples = demonstration_samples(demos, strategy("window"), tiny.tokenizer, str(path))
        learned = [tiny.tokenizer.decode([i for i, m in zip(s.input_ids, s.loss_mask) if m]) for (s,) in samples]
        assert learned == [f"{k}<|im_end|>" for k in range(3)]


def test_training_on_a_messages_file(tmp_path):
    rows = [{"messages": [{"role": "user", "content": f"say {k}"}, {"role": "assistant", "content": str(k)}]}
            for k in range(4)]
    (tmp_path / "c.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = train(sft_cfg(tmp_path, tmp_path / "c.jsonl", "steps=1", "tasks_per_step=4"))
    (step,) = [r for r in read_records(result.run_dir) if "losses/sft_loss" in r]
    assert step["charts/rows_trained"] == 4 and step["losses/tokens"] == 8  # "k<|im_end|>" each
    assert math.isfinite(step["losses/sft_loss"]) and step["losses/sft_loss"] > 0


# ------------------------------------------------------------------ the loss


def test_sft_loss_hand_values():
    logps = torch.tensor([[0.0, -1.0, -2.0, -9.0], [0.0, -0.5, 0.0, 0.0]], requires_grad=True)  # (B, T)
    mask = torch.tensor([[0.0, 1.0, 1.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    loss, metrics = sft_loss(logps, mask, num_tokens=3)
    assert loss.item() == pytest.approx(3.5 / 3, abs=1e-6) and metrics["tokens"] == 3.0
    loss.backward()
    torch.testing.assert_close(logps.grad, -mask / 3, atol=1e-6, rtol=0)
    halves = [sft_loss(logps[i:i + 1], mask[i:i + 1], num_tokens=3)[0].item() for i in range(2)]
    assert sum(halves) == pytest.approx(loss.item(), abs=1e-6)  # micro-batches add up to the minibatch mean


def sft_cfg(tmp_path: Path, demos: Path, *sets: str):
    base = ["model=tiny-random", f"env_id={ENV}", "env_kwargs={horizon: 3, dict_size: 4, value_range: 9}",
            "max_new_tokens=4", "algorithm.name=sft", f"demonstrations={demos}", "steps=2", "tasks_per_step=2",
            "micro_batch_size=2", "eval.episodes=0", "torch_threads=1", f"run_dir={tmp_path / 'run'}",
            "save_final_model=false", "checkpoint_every=1", "optim.lr=0.01", "context=window",
            "context_options={k: 1}"]
    return load_config(None, base + list(sets))


def test_first_loss_is_the_hand_computed_nll(tmp_path, demos_file):
    """Step 1's loss (one minibatch, before any update) equals the NLL of the masked tokens from the logits."""
    cfg = sft_cfg(tmp_path, demos_file, "steps=1", "micro_batch_size=1")
    result = train(cfg)
    (first,) = [r for r in read_records(result.run_dir) if "losses/sft_loss" in r]
    models = build_models(cfg, needs_ref=False, value_head=False)
    from longhorizon.train.offline import data_rows

    demos = read_demonstrations(str(demos_file))
    picked = data_rows(len(demos), 0, cfg.tasks_per_step, cfg.seed)
    samples = demonstration_samples([demos[i] for i in picked], strategy("window"), models.tokenizer, "d")
    nll, count = 0.0, 0
    with torch.no_grad():
        for s in (s for rows in samples for s in rows):
            logits = models.model(input_ids=torch.tensor([s.input_ids])).logits[0].double()
            logp = torch.log_softmax(logits, -1)
            for t in range(1, len(s.input_ids)):
                if s.loss_mask[t]:
                    nll, count = nll - logp[t - 1, s.input_ids[t]].item(), count + 1
    assert first["losses/tokens"] == count
    assert first["losses/sft_loss"] == pytest.approx(nll / count, abs=1e-6)


# ------------------------------------------------------------------ training


@pytest.mark.parametrize("case", ["full", "lora"])
def test_two_steps_move_every_trainable_tensor(tmp_path, demos_file, case):
    lora = ["lora.enabled=true", "lora.r=4"] if case == "lora" else []
    cfg = sft_cfg(tmp_path, demos_file, "eval.episodes=2", "save_final_model=true", *lora)
    result = train(cfg)
    records = read_records(result.run_dir)
    assert all(math.isfinite(v) for r in records for v in r.values()), records
    steps = [r for r in records if "losses/sft_loss" in r]
    assert [r["step"] for r in steps] == [1, 2] and steps[0]["charts/rows_trained"] == 6  # 2 episodes x 3 turns
    assert result.eval_before is not None and result.eval_after is not None
    start = dict(build_models(cfg, needs_ref=False, value_head=False).model.named_parameters())
    weights = load_weights(latest_checkpoint(result.run_dir))["policy"]
    moved = {name: (w - start[name].detach()).abs().max().item() for name, w in weights.items()}
    assert moved and all(m > 0 for m in moved.values()), moved
    assert all("lora_" in n for n in weights) == (case == "lora")
    load_model(str(result.run_dir / "model"))


@pytest.mark.parametrize("case", ["full", "lora"])
def test_two_steps_resume_two_more_equals_four_straight(tmp_path, demos_file, case):
    sets = ["steps=4", "checkpoint_every=2", "epochs=2", "num_minibatches=2", "tasks_per_step=2"]
    sets += ["lora.enabled=true", "lora.r=4"] if case == "lora" else []
    straight = train(sft_cfg(tmp_path / "straight", demos_file, *sets))
    broken_cfg = sft_cfg(tmp_path / "broken", demos_file, *sets)

    resumed = crash_then_resume(broken_cfg)
    assert_same_weights(straight, resumed)
    losses = [[r["losses/sft_loss"] for r in read_records(run.run_dir)] for run in (straight, resumed)]
    assert losses[0] == pytest.approx(losses[1], abs=1e-6) and len(losses[1]) == 4


# ------------------------------------------------------------------ bad input


def test_config_refuses_sft_without_demonstrations_and_rl_options(tmp_path, demos_file):
    with pytest.raises(Exception, match="demonstrations"):
        sft_cfg(tmp_path, demos_file, "demonstrations=null")
    for bad in ("algorithm.kl_coef=0.1", "rollout.workers=2", "algorithm.replay.enabled=true"):
        with pytest.raises(Exception, match="sft does not use"):
            sft_cfg(tmp_path, demos_file, bad)


def test_demonstrations_of_held_out_seeds_are_refused(tmp_path, demos_file):
    with pytest.raises(UserError, match="held-out eval seeds"):
        train(sft_cfg(tmp_path, demos_file, "eval.episodes=4", "eval.seed=4"))


def test_tokens_of_another_tokenizer_are_refused(tiny, tmp_path):
    traj = hand_trajectory(tiny.tokenizer)
    traj.turns[1].action_ids = [len(tiny.tokenizer) + 5]  # not in this vocabulary
    save_trajectories(tmp_path / "bad.jsonl", [traj])
    with pytest.raises(UserError, match="demonstration tokens do not match the tokenizer"):
        demonstration_samples(read_demonstrations(str(tmp_path / "bad.jsonl")), strategy("window"), tiny.tokenizer,
                              str(tmp_path / "bad.jsonl"))


def test_a_demonstration_that_does_not_replay_is_refused(tiny, demos_file):
    demo = read_demonstrations(str(demos_file))[0]
    demo.metadata["env_kwargs"] = {**KNOBS, "dict_size": 5}
    with pytest.raises(UserError, match="does not replay"):
        replay_tokens([demo], strategy("full"), tiny.tokenizer)


def _cli_train(tmp_path: Path, demos: Path) -> object:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"model: tiny-random\nalgorithm: {{name: sft}}\ndemonstrations: {demos}\nenv_kwargs: {{horizon: 3, dict_size: 4, value_range: 9}}\n"
                   "eval: {episodes: 0}\nsteps: 1\n")
    return runner.invoke(app, ["train", str(cfg), "--out", str(tmp_path / "run")])


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    ("not json\n", "is not JSON"),
    ('{"messages": [{"role": "user", "content": "hi"}]}\n', "no assistant message"),
    ('{"text": "hi"}\n', "neither a trajectory"),
    ("TOKENS", "demonstration tokens do not match the tokenizer"),
])
def test_cli_bad_demonstrations_exit_2(tmp_path, tiny, content, message):
    path = tmp_path / "d.jsonl"
    if content == "TOKENS":
        traj = hand_trajectory(tiny.tokenizer)
        traj.turns[0].action = "something else"
        save_trajectories(path, [traj])
    elif content is not None:
        path.write_text(content)
    result = _cli_train(tmp_path, path)
    assert result.exit_code == 2 and message in result.output, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(path) in errors[0]  # one line (after the progress bar, if the model loaded)


def test_cli_demos_writes_oracle_trajectories(tmp_path):
    out = tmp_path / "d.jsonl"
    result = runner.invoke(app, ["demos", ENV, "--episodes", "3", "--out", str(out), "--set", "horizon=2",
                                 "--set", "dict_size=10", "--set", "value_range=9"])
    assert result.exit_code == 0, result.output
    demos = read_demonstrations(str(out))
    assert [d.seed for d in demos] == [0, 1, 2] and all(d.success and len(d.turns) == 2 for d in demos)
    assert demos[0].metadata["env_kwargs"] == {"horizon": 2, "dict_size": 10, "value_range": 9}
    bad = runner.invoke(app, ["demos", ENV, "--episodes", "1", "--out", str(out), "--set", "dict_size=0"])
    assert bad.exit_code == 2 and len(bad.output.strip().splitlines()) == 1
