"""`full` keeps every token the model saw; the packed sample masks exactly the sampled ones."""

import pytest

from longhorizon.context import EpisodeView, make_strategy
from longhorizon.context.base import encode
from longhorizon.types import Trajectory, Turn
from longhorizon.errors import UserError


def test_prompts_extend_token_by_token_and_mask_covers_only_samples(tiny):
    tok, full = tiny.tokenizer, make_strategy("full")
    view = EpisodeView(turns=[], observation="What is 2+2?", system_prompt="Be brief.")
    p0 = full.build_prompt(view, tok)
    assert p0 == encode(tok, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
                             "<|im_start|>assistant\n")
    a0 = encode(tok, "<answer>4</answer>") + [tok.eos_token_id]  # the model sampled its own end-of-turn token
    t0 = Turn(observation="What is 2+2?", action="<answer>4</answer>", prompt_ids=p0, action_ids=a0,
              action_logprobs=[-0.5] * len(a0))
    view = EpisodeView(turns=[t0], observation="And 3+3?", system_prompt="Be brief.")
    p1 = full.build_prompt(view, tok)
    assert p1 == p0 + a0 + encode(tok, "\n<|im_start|>user\nAnd 3+3?<|im_end|>\n<|im_start|>assistant\n")
    a1 = encode(tok, "<answer>6</answer>")  # stopped on a stop string: no EOS sampled; the template adds it
    t1 = Turn(observation="And 3+3?", action="<answer>6</answer>", prompt_ids=p1, action_ids=a1,
              action_logprobs=[-0.25] * len(a1))
    view2 = EpisodeView(turns=[t0, t1], observation="Done.", system_prompt="Be brief.")
    p2 = full.build_prompt(view2, tok)
    assert p2 == p1 + a1 + encode(tok, "<|im_end|>\n<|im_start|>user\nDone.<|im_end|>\n<|im_start|>assistant\n")

    traj = Trajectory(env_id="e", seed=0, turns=[t0, t1])
    (sample,) = full.to_samples(traj)
    assert sample.input_ids == p1 + a1
    expected_mask = [0] * len(p0) + [1] * len(a0) + [0] * (len(p1) - len(p0) - len(a0)) + [1] * len(a1)
    assert sample.loss_mask == expected_mask
    masked = [i for i, m in enumerate(sample.loss_mask) if m]
    assert [sample.input_ids[i] for i in masked] == a0 + a1
    assert [sample.token_turns[i] for i in masked] == [0] * len(a0) + [1] * len(a1)
    assert [sample.old_logprobs[i] for i in masked] == [-0.5] * len(a0) + [-0.25] * len(a1)
    assert all(sample.token_turns[i] == -1 and sample.old_logprobs[i] == 0 for i in range(len(expected_mask))
               if not expected_mask[i])


def test_to_samples_rejects_turns_that_are_not_prefixes(tiny):
    full = make_strategy("full")
    t0 = Turn(observation="a", action="x", prompt_ids=[1, 2], action_ids=[3], action_logprobs=[0.0])
    t1 = Turn(observation="b", action="y", prompt_ids=[9, 9, 9, 9], action_ids=[4], action_logprobs=[0.0])
    with pytest.raises(ValueError, match="prefix"):
        full.to_samples(Trajectory(env_id="e", seed=0, turns=[t0, t1]))


def test_unknown_strategy_is_a_user_error():
    with pytest.raises(UserError, match="unknown context strategy"):
        make_strategy("nope")
