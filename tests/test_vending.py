"""Vending-v0: the demand model and the money on a hand-worked day, orders and their delay, bankruptcy, tool errors."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from longhorizon.envs.core.tools import format_tool_call
from longhorizon.envs.vending.env import VendingEnv
from longhorizon.envs.vending.world import (
    MONTH,
    WEATHER,
    WEEKDAY,
    Product,
    demand_rate,
    optimal_price,
    variety_multiplier,
)

COLA = Product("cola", "small", ref_price=150, cost=55, elasticity=2.0, base_sales=5.0)


class FixedDemand:
    """Stands in for `np_random` at night: every product draws `units` customers; records the rates asked for."""

    def __init__(self, units: int):
        self.units, self.rates = units, []

    def poisson(self, lam: float) -> int:
        self.rates.append(lam)
        return self.units


def call(env: VendingEnv, name: str, **arguments) -> tuple[str, float, bool, dict]:
    obs, reward, terminated, _, info = env.step(format_tool_call(name, arguments))
    return obs, reward, terminated, info


def cola_world(days: int = 5) -> VendingEnv:
    """A clean hand-made state: $100 cash, 20 colas in storage bought at $0.50, Friday 4 July, sunny."""
    env = VendingEnv(days=days)
    env.reset(seed=0)
    env.storage, env.cost_basis, env.cash, env.orders = {"cola": 20}, {"cola": 50.0}, 10_000, []
    env.products["cola"] = COLA
    env.start_date, env.weather[0] = date(2025, 7, 4), "sunny"
    env._net_worth_seen = env.net_worth()
    return env


# -- the demand model --------------------------------------------------------------------------


def test_demand_rate_by_hand():
    # 5 units/day * (2.00 / 1.50)^-2 * Friday 1.1 * July 1.15 * sunny 1.1 * V(5) = 1.0
    expected = 5.0 * (200 / 150) ** -2.0 * 1.1 * 1.15 * 1.1 * 1.0
    rate = demand_rate(COLA, 200, weekday=4, month=7, weather="sunny", n_products=5)
    assert rate == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(3.9135937500, abs=1e-9)
    assert demand_rate(COLA, 150, 0, 1, "stormy", 4) == pytest.approx(5.0 * 0.9 * 0.85 * 0.7, abs=1e-12)


def test_demand_tables_and_variety():
    assert len(WEEKDAY) == 7 and len(MONTH) == 12 and set(WEATHER) == {"sunny", "cloudy", "rainy", "stormy"}
    values = [variety_multiplier(n) for n in (1, 2, 3, 4, 8, 9, 12)]
    assert values == pytest.approx([0.7, 0.8, 0.9, 1.0, 1.0, 0.95, 0.8])


def test_optimal_price_maximises_profit():
    assert optimal_price(60, 2.0) == 120 and optimal_price(100, 1.5) == 300
    prices = np.arange(61, 400)
    profit = (prices - 60) * prices ** -2.0
    assert prices[np.argmax(profit)] == 120


# -- money on a hand-worked day ------------------------------------------------------------------


def test_hand_worked_day():
    env = cola_world()
    start_worth = env.net_worth()
    assert start_worth == 10_000 + 20 * 50
    _, reward, _, _ = call(env, "restock_machine", product="cola", quantity=10)
    assert (env.storage["cola"], env.machine_units("cola"), reward) == (10, 10, 0.0)
    call(env, "set_price", product="Cola", price=2.0)
    env._np_random = demand = FixedDemand(4)
    obs, reward, terminated, _ = call(env, "wait_for_next_day")
    # lambda = 5 * (2/1.5)^-2 * Fri 1.1 * Jul 1.15 * sunny 1.1 * V(1) 0.7; 4 sold at $2.00, then the $2 fee
    assert demand.rates == [pytest.approx(2.739515625, abs=1e-9)]
    assert "sold 4 x cola ($8.00)" in obs and "Daily fee $2.00 paid" in obs and not terminated
    assert (env.cash, env.machine_cash, env.machine_units("cola"), env.units_sold) == (9_800, 800, 6, 4)
    assert env.net_worth() == 9_800 + 800 + 16 * 50
    assert reward == pytest.approx(4 * (2.00 - 0.50) - 2.00, abs=1e-9)  # the change in net worth
    _, reward, _, _ = call(env, "collect_cash")
    assert (env.cash, env.machine_cash, reward) == (10_600, 0, 0.0)


def test_sales_are_capped_by_machine_stock():
    env = cola_world()
    call(env, "restock_machine", product="cola", quantity=3)
    env._np_random = FixedDemand(50)
    obs, *_ = call(env, "wait_for_next_day")
    assert "sold 3 x cola" in obs and env.machine_units("cola") == 0 and env.storage["cola"] == 17
    assert all(slot.product is None for slot in env.slots), "an emptied slot is free again"


def test_rewards_sum_to_profit_and_oracle_profits():
    env = VendingEnv(days=14)
    env.reset(seed=5)
    total, terminated = 0.0, False
    while not terminated:
        _, reward, terminated, _, info = env.step(env.oracle_action())
        total += reward
    assert total == pytest.approx(info["metrics"]["profit"], abs=0.005)  # the metric is rounded to cents
    assert info["metrics"]["net_worth"] == pytest.approx(500 + info["metrics"]["profit"], abs=1e-9)
    assert info["success"] is True and info["metrics"]["bankrupt"] == 0.0 and info["metrics"]["days_run"] == 14


def test_one_day_no_op_fails_but_stocking_succeeds():
    env = VendingEnv(days=1)
    env.reset(seed=0)
    _, _, terminated, info = call(env, "wait_for_next_day")
    assert terminated and info["metrics"]["net_worth"] == pytest.approx(498.0) and info["success"] is False
    env.reset(seed=0)
    while True:
        _, _, terminated, _, info = env.step(env.oracle_action())
        if terminated:
            break
    assert info["success"] is True and info["metrics"]["net_worth"] > 500


# -- orders and their delay ----------------------------------------------------------------------


def test_order_is_charged_then_delivered_after_the_delay():
    env = cola_world(days=10)
    supplier = env.suppliers[0]
    product = next(p for p in supplier.prices if p != "cola")
    unit, worth = supplier.prices[product], env.net_worth()
    obs, reward, _, _ = call(env, "send_email", to=supplier.email.upper(), subject="Order",
                             body=f"Hello,\n5 x {product}\n- 2 x {product.title()}\nThanks")
    assert "replied" in obs and env.cash == 10_000 - 7 * unit - supplier.fee
    assert reward == pytest.approx(-supplier.fee / 100)
    assert env.net_worth() == worth - supplier.fee  # the goods in transit count at cost
    reply = call(env, "read_emails")[0]
    assert f"7 x {product}" in reply and f"arrives on day {1 + supplier.delay}" in reply
    for _ in range(supplier.delay - 1):
        call(env, "wait_for_next_day")
        assert env.storage.get(product, 0) == 0
    obs, *_ = call(env, "wait_for_next_day")
    assert env.day == 1 + supplier.delay and env.storage[product] == 7 and env.orders == []
    assert "1 delivery arrived" in obs and "is in your storage room" in call(env, "read_emails")[0]
    assert env.cost_basis[product] == unit


def test_delivery_updates_average_cost():
    env = cola_world()
    env._receive("cola", 30, 60)
    assert env.cost_basis["cola"] == pytest.approx((20 * 50 + 30 * 60) / 50) and env.storage["cola"] == 50


@pytest.mark.parametrize("body,reply", [
    ("3 x caviar", "We do not sell 'caviar'"),
    ("Hi, please send some snacks.", "no order lines"),
    ("0 x {product}", "Quantities must be between 1 and 1000"),
])
def test_bad_orders_get_a_reply_and_cost_nothing(body, reply):
    env = cola_world()
    supplier = env.suppliers[0]
    call(env, "send_email", to=supplier.email, subject="Order", body=body.format(product=next(iter(supplier.prices))))
    assert env.cash == 10_000 and env.orders == [] and reply in call(env, "read_emails")[0]


def test_order_declined_without_cash():
    env = cola_world()
    env.cash = 100
    supplier = env.suppliers[0]
    call(env, "send_email", to=supplier.email, subject="Order", body=f"50 x {next(iter(supplier.prices))}")
    assert env.cash == 100 and env.orders == [] and "declined" in call(env, "read_emails")[0].lower()


# -- bankruptcy ----------------------------------------------------------------------------------


def test_bankrupt_after_ten_unpaid_days():
    env = VendingEnv(days=30)
    env.reset(seed=0)
    env.cash = 0
    for day in range(1, 10):
        obs, _, terminated, _ = call(env, "wait_for_next_day")
        assert not terminated and env.unpaid_days == day and "NOT paid" in obs
    obs, _, terminated, info = call(env, "wait_for_next_day")
    assert terminated and env.bankrupt and "bankrupt" in obs
    assert info["success"] is False and info["metrics"]["bankrupt"] == 1.0 and info["metrics"]["days_run"] == 10


def test_paying_the_fee_resets_the_unpaid_count():
    env = VendingEnv(days=30)
    env.reset(seed=0)
    env.cash = 0
    for _ in range(9):
        call(env, "wait_for_next_day")
    env.cash = 500
    _, _, terminated, _ = call(env, "wait_for_next_day")
    assert not terminated and env.unpaid_days == 0 and env.cash == 300


# -- tools that are not allowed now, notes, the daily cap -------------------------------------------


@pytest.mark.parametrize("name,arguments,message", [
    ("restock_machine", {"product": "sandwich", "quantity": 1}, "you have no sandwich"),
    ("restock_machine", {"product": "cola", "quantity": 25}, "storage holds 20 units of cola, not 25"),
    ("restock_machine", {"product": "caviar", "quantity": 1}, "unknown product 'caviar'"),
    ("set_price", {"product": "sandwich", "price": 3.0}, "you have no sandwich"),
    ("send_email", {"to": "boss@nowhere.com", "subject": "hi", "body": "1 x cola"}, "no mailbox at 'boss@nowhere.com'"),
    ("read_notes", {"key": "plan"}, "no note under 'plan'"),
    ("set_price", {"product": "cola", "price": 0}, "arguments.price must be >= 0.01"),
])
def test_disallowed_calls_are_tool_errors(name, arguments, message):
    env = cola_world()
    obs, reward, terminated, info = call(env, name, **arguments)
    assert message in info["error"] and f"[{name}] Error: {info['error']}" in obs
    assert not terminated and reward == 0.0 and env.cash == 10_000


def test_no_room_in_the_machine():
    env = cola_world()
    env.storage["cola"] = 60
    env.storage["cookies"], env.cost_basis["cookies"] = 5, 50.0
    call(env, "restock_machine", product="cola", quantity=60)
    assert all(s.product == "cola" for s in env.slots if s.size == "small")
    _, _, _, info = call(env, "restock_machine", product="cookies", quantity=5)
    assert "no room for cookies" in info["error"] and env.storage["cookies"] == 5


def test_notes_memory():
    env = cola_world()
    call(env, "write_note", key="plan", text="order cola on day 3")
    assert call(env, "read_notes", key="plan")[0] == "[read_notes] order cola on day 3"
    assert "'plan'" in call(env, "read_notes")[0]


def test_daily_action_cap_ends_the_day():
    env = VendingEnv(days=3, max_actions_per_day=3)
    env.reset(seed=0)
    call(env, "get_balance")
    call(env, "check_storage")
    obs, _, _, _ = call(env, "check_machine")
    assert env.day == 2 and "used all 3 actions" in obs and "Day 2 of 3" in obs
    call(env, "wait_for_next_day")  # a day ended by wait does not count against the next one
    call(env, "get_balance")
    call(env, "get_balance")
    assert env.day == 3


def test_horizon_knob_sets_oracle_episode_length():
    lengths = []
    for days in (1, 7, 30):
        env = VendingEnv(days=days)
        env.reset(seed=3)
        steps, terminated = 0, False
        while not terminated:
            terminated = env.step(env.oracle_action())[2]
            steps += 1
        lengths.append(steps)
        assert env.day == days
    assert lengths[0] < lengths[1] < lengths[2]


@pytest.mark.parametrize("kwargs,knob", [({"days": 0}, "days"), ({"days": 366}, "days"), ({"days": 2.5}, "days"),
                                         ({"max_actions_per_day": 0}, "max_actions_per_day"),
                                         ({"n_suppliers": 9}, "n_suppliers")])
def test_knobs_are_validated(kwargs, knob):
    with pytest.raises(ValueError, match=knob):
        VendingEnv(**kwargs)


DOCUMENTED_MEAN_NET_WORTH = {"1day": 517.17, "week": 661.42, "month": 1252.93, "quarter": 2900.53}


@pytest.mark.slow
def test_oracle_scores_documented():
    """The mean net worth over 50 seeds per level, as written in the module docstring."""
    for level, kwargs in VendingEnv.LEVELS.items():
        env, worths = VendingEnv(**kwargs), []
        for seed in range(50):
            env.reset(seed=seed)
            while not (step := env.step(env.oracle_action()))[2]:
                pass
            worths.append(step[4]["metrics"]["net_worth"])
        assert np.mean(worths) == pytest.approx(DOCUMENTED_MEAN_NET_WORTH[level], abs=0.01), level


def test_generated_tool_schemas_validate_as_the_hand_written_ones_did():
    def bare(params):  # what validation reads: types, bounds, required (descriptions are prompt text only)
        props = {k: {f: v for f, v in p.items() if f != "description"} for k, p in params["properties"].items()}
        return {"properties": props, "required": params["required"]}

    product = {"type": "string", "maxLength": 100}
    expected = {
        "read_emails": {}, "get_balance": {}, "check_storage": {}, "check_machine": {}, "collect_cash": {},
        "wait_for_next_day": {},
        "send_email": {"to": {"type": "string", "maxLength": 200}, "subject": {"type": "string", "maxLength": 200},
                       "body": {"type": "string", "maxLength": 5000}},
        "search_suppliers": {"query": {"type": "string", "maxLength": 200}},
        "restock_machine": {"product": product, "quantity": {"type": "integer", "minimum": 1, "maximum": 1000}},
        "set_price": {"product": product, "price": {"type": "number", "minimum": 0.01, "maximum": 100}},
        "write_note": {"key": {"type": "string", "maxLength": 100}, "text": {"type": "string", "maxLength": 2000}},
        "read_notes": {"key": {"type": "string", "maxLength": 100}},
    }
    tools = VendingEnv().tools
    assert [t["function"]["name"] for t in tools] == list(dict.fromkeys([
        "read_emails", "send_email", "search_suppliers", "get_balance", "check_storage", "check_machine",
        "restock_machine", "set_price", "collect_cash", "wait_for_next_day", "write_note", "read_notes"]))
    for t in tools:
        name, params = t["function"]["name"], t["function"]["parameters"]
        required = [] if name == "read_notes" else list(expected[name])
        assert bare(params) == {"properties": expected[name], "required": required}, name
        assert t["function"]["description"]
