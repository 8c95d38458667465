"""`task_mix`: knobs that vary from task to task (e.g. mixed horizons in every batch)."""

from __future__ import annotations

import pytest

from longhorizon.errors import ConfigError, UserError
from longhorizon.train import load_config
from longhorizon.train.exploration import CreditState, next_tasks
from longhorizon.train.loop import task_specs
from longhorizon.train.session import check_setup


def test_task_k_takes_the_kth_value_of_each_mixed_knob():
    cfg = load_config(None, ["env_kwargs={horizon: 3, dict_size: 5}", "task_mix={horizon: [2, 8, 32]}",
                             "tasks_per_step=4", "algorithm.group_size=2"])
    specs, position = next_tasks(cfg, 5, CreditState.from_config(cfg))
    assert position == 9
    # tasks 5, 6, 7, 8 -> horizons [2, 8, 32][k % 3] = 32, 2, 8, 32; dict_size stays; both episodes of a task agree
    assert [(s.group_id, s.env_kwargs["horizon"], s.env_kwargs["dict_size"]) for s in specs] == [
        (5, 32, 5), (5, 32, 5), (6, 2, 5), (6, 2, 5), (7, 8, 5), (7, 8, 5), (8, 32, 5), (8, 32, 5)]
    assert [s.env_kwargs for s in task_specs(cfg, 5)] == [s.env_kwargs for s in specs]
    plain = load_config(None, ["env_kwargs={horizon: 3}", "tasks_per_step=2", "algorithm.group_size=1"])
    assert [s.env_kwargs for s in next_tasks(plain, 0, CreditState.from_config(plain))[0]] == [{"horizon": 3}] * 2


def test_bad_mixes_are_one_line_errors_before_any_model_loads():
    with pytest.raises(ConfigError, match="horizon has no values"):
        load_config(None, ["task_mix={horizon: []}"])
    with pytest.raises(UserError, match="task_mix horizon=0"):
        check_setup(load_config(None, ["task_mix={horizon: [2, 0]}"]))
    with pytest.raises(UserError, match="task_mix colour"):
        check_setup(load_config(None, ["task_mix={colour: [1]}"]))
