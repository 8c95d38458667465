"""Span-level segment rewards (issue 16, Fine-Grained RLHF's segments inside a turn), by hand.

A toy vocabulary stands in for the tokenizer: token 3 is "Hi.", 4 is " Hi.", 6 is "Hi.", 7 is " ok", 8 is "\\n".
The episode of `test_train_credit.episode` samples [3, 4] in turn 0 and [6] in turn 1, packed by the full
context as the row [1, 2, 3, 4, 5, 6]: turn 0's tokens sit at positions 2 and 3, turn 1's at 5.
"""

from __future__ import annotations

import pytest
import torch

from longhorizon.errors import ConfigError
from longhorizon.train import ALGORITHMS, exploration
from longhorizon.train.config import AlgorithmConfig
from longhorizon.train.credit import token_rewards
from longhorizon.train.segment_rewards import SPAN_REWARDS, char_to_token, line_spans, sentence_spans
from test_train import tiny_cfg
from test_train_credit import batch_of, close, episode

VOCAB = {3: "Hi.", 4: " Hi.", 5: "<t>", 6: "Hi.", 7: " ok", 8: "\n"}


def decode(ids: list[int]) -> str:
    return "".join(VOCAB[i] for i in ids)


def rewards_cfg(components, gates=None, **algorithm) -> AlgorithmConfig:
    return AlgorithmConfig.model_validate({**algorithm, "rewards": {"components": components, "gates": gates}})


def test_sentences_and_lines_are_found_by_rule():
    assert sentence_spans("Hello there. Hello there!  And  more") == [(0, 12), (13, 25), (27, 36)]
    assert sentence_spans("") == [] and sentence_spans("...") == []
    assert line_spans("a\n\n b \nc") == [(0, 1), (3, 6), (7, 8)]
    assert line_spans("\n \n") == []


def test_repeated_spans_score_minus_one_once_seen_in_the_episode():
    # case and spacing are folded; the repeat may be in the same turn or an earlier one
    assert SPAN_REWARDS["repeated_sentence"](["Hi. hi.", "HI.  Bye"]) == [[(3, 0.0), (7, -1.0)], [(3, -1.0), (8, 0.0)]]
    assert SPAN_REWARDS["repeated_line"](["a\nb", "b\nc\na"]) == [[(1, 0.0), (3, 0.0)], [(1, -1.0), (3, 0.0), (5, -1.0)]]
    assert SPAN_REWARDS["repeated_line"]([]) == [] and SPAN_REWARDS["repeated_line"]([""]) == [[]]


def test_a_span_end_maps_to_the_token_that_reaches_it():
    ids = [3, 4, 7]  # "Hi." " Hi." " ok": ends at 3, 7, 10
    assert [char_to_token(ids, end, decode) for end in (1, 3, 4, 7, 8, 10)] == [0, 0, 1, 1, 2, 2]
    assert char_to_token(ids, 99, decode) == 2  # past the text: the last token
    assert char_to_token([3], 3, decode) == 0  # a single token


def test_span_scores_sit_on_their_last_tokens_and_count_in_their_turns():
    traj = episode([1.0, 0.0])  # turn 0 "Hi. Hi." (the second sentence repeats), turn 1 "Hi." (repeats)
    batch = batch_of(traj)
    cfg = rewards_cfg([{"name": "env"}, {"name": "repeated_sentence", "weight": 0.5}])
    rewards, spans, metrics = exploration.shaped_turn_rewards([traj], batch, cfg.rewards, decode)
    close(spans, [[0, 0, 0, -0.5, 0, -0.5]])
    close(rewards, [[1.0 - 0.5, 0.0 - 0.5]])  # env + 0.5 * (turn's summed span scores)
    assert metrics["rewards/return_repeated_sentence"] == pytest.approx(-1.0)
    assert metrics["rewards/return_env"] == pytest.approx(1.0)


def test_a_closed_gra_gate_drops_span_rewards_too():
    traj = episode([1.0, 0.0])  # success is None: the success component's total is 0 < gate 1
    batch = batch_of(traj)
    cfg = rewards_cfg([{"name": "success"}, {"name": "repeated_sentence"}], gates=[1.0])
    rewards, spans, metrics = exploration.shaped_turn_rewards([traj], batch, cfg.rewards, decode)
    close(spans, [[0, 0, 0, 0, 0, 0]])
    close(rewards, [[0, 0]])
    assert metrics["rewards/gated_frac"] == 1.0
    traj.success = True  # gate open: success 1 on the last turn, spans -1 on positions 3 and 5
    rewards, spans, _ = exploration.shaped_turn_rewards([traj], batch_of(traj), cfg.rewards, decode)
    close(spans, [[0, 0, 0, -1, 0, -1]])
    close(rewards, [[-1, 0]])


@pytest.mark.parametrize("credit, expected", [
    # outcome: R = 1 (env rewards without the spans) on the episode's last token, spans on theirs
    ("outcome", [[0, 0, 0, -0.5, 0, 1 - 0.5]]),
    # per_turn, gamma 0.5: G = [1, 0]; increments 1 at turn 0's end (position 3), 0 at turn 1's end
    ("per_turn", [[0, 0, 0, 1 - 0.5, 0, -0.5]]),
])
def test_token_level_methods_get_span_rewards_on_their_tokens(credit, expected):
    traj = episode([1.0, 0.0])
    batch = batch_of(traj)
    cfg = rewards_cfg([{"name": "env"}, {"name": "repeated_sentence", "weight": 0.5}], name="ppo", credit=credit,
                      turn_gamma=0.5)
    batch.turn_rewards, batch.span_rewards, _ = exploration.shaped_turn_rewards([traj], batch, cfg.rewards, decode)
    close(token_rewards(batch, cfg), expected)


def test_group_methods_compare_turn_rewards_that_include_the_spans():
    clean, repeating = episode([1.0, 0.0], group=0), episode([1.0, 0.0], group=0)
    clean.turns[0].action_ids, clean.turns[1].action_ids = [3, 7], [7]  # "Hi. ok", " ok": "ok" repeats once
    clean.turns[1].prompt_ids = [1, 2, 3, 7, 5]
    batch = batch_of(clean, repeating)
    cfg = rewards_cfg([{"name": "env"}, {"name": "repeated_sentence"}], name="grpo", scale_by_std=False)
    batch.turn_rewards, batch.span_rewards, _ = exploration.shaped_turn_rewards([clean, repeating], batch,
                                                                                cfg.rewards, decode)
    close(batch.turn_rewards, [[1, -1], [0, -1]])  # clean: turn 1 repeats "ok"; repeating: 2 repeats
    credit = ALGORITHMS["grpo"].credit(batch, cfg)  # returns 0 and -1: Dr. GRPO advantages +0.5 and -0.5
    close(credit.advantages[:, 2:], [[0.5, 0.5, 0, 0.5], [-0.5, -0.5, 0, -0.5]])


def test_span_rewards_refuse_reward_normalisation_and_unknown_names(tmp_path):
    with pytest.raises(ConfigError, match="span rewards"):
        tiny_cfg(tmp_path, "algorithm.rewards.components=[{name: repeated_line}]", "algorithm.reward_norm=scale")
    with pytest.raises(ConfigError, match="repeated_sentence"):  # the error lists the span functions too
        tiny_cfg(tmp_path, "algorithm.rewards.components=[{name: repeats}]")
    tiny_cfg(tmp_path, "algorithm.rewards.components=[{name: env}]", "algorithm.reward_norm=scale")  # turn-only: fine


def test_loop_credit_composes_with_empg():
    """LOOP's advantages, modulated per turn by EMPG: constant entropy and no bonus leave them (and LOOP's
    filtered rows) as they are; a varying entropy changes the kept rows only."""
    batch = batch_of(episode([1.0, 0.0], group=0), episode([0.0, 0.0], group=0), episode([0.0, 0.0], group=1),
                     episode([0.0, 0.0], group=1))  # group 1 has equal returns: LOOP filters it out
    cfg = AlgorithmConfig.model_validate({"name": "loop", "entropy": {"method": "empg", "empg_zeta": 0.0}})
    credit = ALGORITHMS["loop"].credit(batch, cfg)
    close(credit.loss_mask.sum(1), [3, 3, 0, 0])
    constant = exploration.modulate_credit(credit, batch, torch.full_like(batch.old_logprobs, 0.3), cfg.entropy)
    torch.testing.assert_close(constant.advantages, credit.advantages, atol=1e-7, rtol=0)
    entropy = torch.tensor([0.0, 0.0, 0.2, 0.2, 0.0, 1.5]).expand_as(batch.old_logprobs).contiguous()
    varied = exploration.modulate_credit(credit, batch, entropy, cfg.entropy)
    assert not torch.allclose(varied.advantages[:2], credit.advantages[:2])
    torch.testing.assert_close(varied.loss_mask, credit.loss_mask)
