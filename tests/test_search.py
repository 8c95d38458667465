"""Search-v0: SQuAD EM/F1 by hand, the corpus and question are what they claim, seeded, and bad calls are data.

(The registry-wide test runs its oracle on 100 seeds at every level, check_env and garbage actions.)
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from longhorizon.envs.core.tools import format_tool_call
from longhorizon.envs.search.corpus import CITY_PREFIXES, COMPANY_SUFFIXES, new_world
from longhorizon.envs.search.env import TOP_K, SearchEnv, tokenize
from longhorizon.envs.search.verifier import exact_match, f1_score, normalize_answer


# ------------------------------------------------------------------ the verifier


@pytest.mark.parametrize("text,normal", [
    ("The Eiffel Tower!", "eiffel tower"),
    ("  an   Apple, a day ", "apple day"),
    ("Eiffel-Tower", "eiffeltower"),  # SQuAD deletes punctuation, it does not split on it
    ("Theatre", "theatre"),  # articles only as whole words
    ("THE", ""),
])
def test_normalize_answer_is_squads(text, normal):
    assert normalize_answer(text) == normal


@pytest.mark.parametrize("pred,gold,em,f1", [
    ("1987", "1987", 1.0, 1.0),
    ("the Qorvex Labs.", "Qorvex labs", 1.0, 1.0),
    ("the cat sat", "a cat sat down", 0.0, 0.8),  # P = 2/2, R = 2/3: 2PR/(P+R) = 0.8
    ("born 1987", "1987", 0.0, 2 / 3),  # P = 1/2, R = 1
    ("x x y", "x y y", 0.0, 2 / 3),  # shared multiset {x, y}: P = R = 2/3
    ("paris", "london", 0.0, 0.0),
    ("", "", 1.0, 1.0),  # SQuAD v2: both empty agree
    ("the", "london", 0.0, 0.0),  # nothing left after normalisation
])
def test_exact_match_and_f1_by_hand(pred, gold, em, f1):
    assert exact_match(pred, gold) == em
    assert f1_score(pred, gold) == pytest.approx(f1, abs=1e-6)


# ------------------------------------------------------------------ the world


def call(env: gym.Env, name: str, **arguments) -> tuple[str, float, bool, bool, dict]:
    return env.step(format_tool_call(name, arguments))


@pytest.mark.parametrize("level", list(SearchEnv.LEVELS))
def test_question_needs_every_document_of_its_chain(level):
    knobs = SearchEnv.LEVELS[level]
    for seed in range(20):
        world = new_world(np.random.default_rng(seed), knobs["corpus_size"], knobs["hops"], knobs["difficulty"])
        chain = [world.entities[i] for i in world.question.chain]
        assert len(world.documents) == knobs["corpus_size"]
        assert len({e.name for e in chain}) == knobs["hops"] + 1
        assert chain[0].name in world.question.text
        assert all(e.name not in world.question.text for e in chain[1:])  # only found by reading
        for here, there in zip(chain, chain[1:]):
            assert there.name in world.doc(here.doc_id).text
        assert world.question.answer in world.doc(chain[-1].doc_id).text


def name_words(world) -> list[str]:
    """The invented words of the entities' names (company suffixes and city prefixes are shared by design)."""
    return [w for e in world.entities for w in e.name.split() if w not in COMPANY_SUFFIXES + CITY_PREFIXES]


def test_difficulty_adds_look_alikes_and_news():
    easy = new_world(np.random.default_rng(0), 200, 2, 1)
    words = name_words(easy)
    assert len(words) == len(set(words)) and not any(d.title.startswith("News") for d in easy.documents)
    hard = new_world(np.random.default_rng(0), 200, 2, 3)
    words = name_words(hard)
    assert len(words) > len(set(words))  # shared first names, company and city stems
    assert sum(d.title.startswith("News") for d in hard.documents) == 100
    for i in hard.question.chain:
        assert sum(hard.entities[i].name in d.text for d in hard.documents if d.title.startswith("News")) >= 2


@pytest.mark.parametrize("level", list(SearchEnv.LEVELS))
def test_searching_a_name_finds_its_document(level):
    """The oracle's queries are fair: the chain document is among the top 5 hits of its name."""
    env = gym.make("longhorizon/Search-v0", **SearchEnv.LEVELS[level])
    for seed in range(20):
        env.reset(seed=seed)
        for i in env.unwrapped.world.question.chain:
            entity = env.unwrapped.world.entities[i]
            obs, *_ = call(env, "search", query=entity.name)
            hits = [line.split(" | ")[0] for line in obs.removeprefix("[search] ").splitlines()]
            assert entity.doc_id in hits and len(hits) <= TOP_K


def test_oracle_turns_reward_and_metrics():
    env = gym.make("longhorizon/Search-v0", hops=3, difficulty=2)
    env.reset(seed=4)
    rewards, turns = [], 0
    while True:
        _, reward, terminated, truncated, info = env.step(env.unwrapped.oracle_action())
        rewards.append(reward)
        turns += 1
        if terminated or truncated:
            break
    assert turns == 2 * (3 + 1) + 1 and terminated and not truncated
    assert rewards[:-1] == [0.0] * (turns - 1) and rewards[-1] == 1.0
    assert info["metrics"] == {"exact_match": 1.0, "f1": 1.0, "searches": 4.0, "opens": 4.0, "gold_docs_opened": 1.0}


def test_partial_answer_gets_f1_not_success():
    env = gym.make("longhorizon/Search-v0", hops=1)
    env.reset(seed=0)
    gold = env.unwrapped.world.question.answer
    _, reward, terminated, _, info = call(env, "answer", answer=f"maybe {gold}")
    assert terminated and reward == pytest.approx(2 / 3) and info["success"] is False
    assert info["metrics"]["gold_docs_opened"] == 0.0


def test_seeded_determinism_and_variety():
    a, b = gym.make("longhorizon/Search-v0", difficulty=3), gym.make("longhorizon/Search-v0", difficulty=3)
    assert a.reset(seed=11)[0] == b.reset(seed=11)[0]
    assert [d.text for d in a.unwrapped.world.documents] == [d.text for d in b.unwrapped.world.documents]
    assert call(a, "search", query="capital city")[0] == call(b, "search", query="capital city")[0]
    questions = {a.reset(seed=s)[0] for s in range(20)}
    assert len(questions) == 20


def test_ties_are_broken_by_corpus_order():
    env = gym.make("longhorizon/Search-v0", difficulty=1)
    env.reset(seed=0)
    obs, *_ = call(env, "search", query="country")  # every country document scores alike
    hits = [line.split(" | ")[0] for line in obs.removeprefix("[search] ").splitlines()]
    order = [d.doc_id for d in env.unwrapped.world.documents]
    scores = env.unwrapped.retriever.get_scores(tokenize("country"))
    ranked = sorted(range(len(order)), key=lambda i: (-scores[i], i))[:TOP_K]
    assert hits == [order[i] for i in ranked]


@pytest.mark.parametrize("action,expected", [
    (format_tool_call("open", {"doc_id": "Dnope00"}), "no document has id 'Dnope00'"),
    (format_tool_call("search", {"query": "the of a"}), "no searchable words"),
    (format_tool_call("search", {"query": 42}), "arguments.query must be a string"),
    (format_tool_call("search", {}), "missing required argument(s) 'query'"),
    (format_tool_call("browse", {"url": "x"}), "unknown tool 'browse'"),
    ("just the answer: 1987", "no tool call found"),
])
def test_bad_calls_are_observations(action, expected):
    env = gym.make("longhorizon/Search-v0")
    env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(action)
    assert expected in info["error"] and info["error"] in obs
    assert reward == 0.0 and not terminated and not truncated
    assert env.unwrapped.oracle_call().name == "search"  # nothing was spent: the oracle starts over


def test_turn_limit_truncates_with_zero_reward():
    env = gym.make("longhorizon/Search-v0", max_turns=3)
    env.reset(seed=0)
    for turn in range(3):
        _, reward, terminated, truncated, info = call(env, "search", query="river")
    assert truncated and not terminated and reward == 0.0
    assert info["success"] is False and info["metrics"]["f1"] == 0.0 and info["metrics"]["searches"] == 3.0


def test_long_horizon_turn_limit_is_allowed():
    env = gym.make("longhorizon/Search-v0", hops=8, max_turns=256)
    env.reset(seed=0)
    assert env.unwrapped.max_steps == 256 and env.unwrapped.horizon == 8


def test_tool_schemas():
    names = [t["function"]["name"] for t in SearchEnv.tools]
    assert names == ["search", "open", "answer"]
    assert all(t["function"]["parameters"]["required"] for t in SearchEnv.tools)
