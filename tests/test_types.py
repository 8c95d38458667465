import pytest

from longhorizon.types import Sample, Trajectory, Turn, load_trajectories, save_trajectories


def test_trajectory_roundtrip_is_lossless(tmp_path):
    turns = [Turn(observation="obs é", action="<answer>3</answer>", reward=1.0, prompt_ids=[1, 2, 3],
                  action_ids=[4, 5], action_logprobs=[-0.25, -1.5], info={"correct": True, "nested": {"a": [1, 2]}})]
    traj = Trajectory(env_id="longhorizon/Execution-v0", seed=7, turns=turns, group_id=2, horizon=1,
                      terminated=True, success=True, metadata={"env_kwargs": {"horizon": 1}})
    save_trajectories(tmp_path / "t.jsonl", [traj, Trajectory(env_id="x", seed=0)])
    loaded = load_trajectories(tmp_path / "t.jsonl")
    assert loaded[0] == traj
    assert loaded[1] == Trajectory(env_id="x", seed=0)
    assert loaded[0].total_reward == 1.0


def test_sample_rejects_ragged_fields():
    with pytest.raises(ValueError, match="length 3"):
        Sample(input_ids=[1, 2, 3], loss_mask=[0, 1], old_logprobs=[0.0] * 3, token_turns=[-1] * 3)
