"""Preference records: validation, JSONL files, and Hugging Face datasets in TRL's preference format."""

from __future__ import annotations

import json
import multiprocessing as mp

import pytest

datasets = pytest.importorskip("datasets")

from longhorizon.errors import UserError  # noqa: E402
from longhorizon.feedback import (PreferencePair, append_pairs, extract_prompt, from_dataset, load_pairs,  # noqa: E402
                                  make_pair, to_dataset, write_pairs)

USER = {"role": "user", "content": "What color is the sky?"}
BLUE = {"role": "assistant", "content": "It is blue."}
GREEN = {"role": "assistant", "content": "It is green."}

# The example rows of TRL's "Dataset formats and types" guide (preference type), and the
# conversational implicit-prompt example of `trl.data_utils.extract_prompt`'s docstring.
TRL_STANDARD = {"prompt": "The sky is", "chosen": " blue.", "rejected": " green."}
TRL_STANDARD_IMPLICIT = {"chosen": "The sky is blue.", "rejected": "The sky is green."}
TRL_CONVERSATIONAL = {"prompt": [USER], "chosen": [BLUE], "rejected": [GREEN]}
TRL_CONVERSATIONAL_IMPLICIT = {"chosen": [USER, BLUE], "rejected": [USER, GREEN]}


def pair(**kw) -> PreferencePair:
    fields = dict(context=[USER], a=[BLUE], b=[GREEN], preferred="a", source="verifier")
    return PreferencePair(**{**fields, **kw})


# ------------------------------------------------------------------ records


def test_chosen_and_rejected_follow_preferred():
    assert pair(preferred="b").chosen[0].content == "It is green."
    assert pair(preferred="b").rejected[0].content == "It is blue."
    assert pair(preferred="a").chosen[0].content == "It is blue."


@pytest.mark.parametrize("bad, message", [
    (dict(b=[BLUE]), "identical"),
    (dict(b="It is green."), "plain text"),
    (dict(context="The sky is", a="x", b="y"), None),  # fine: all plain text
    (dict(strength=2), "contradicts"),  # positive strength means b is better
    (dict(strength=4, preferred="b"), "less than or equal to 3"),
    (dict(preferred="tie", strength=0), None),
])
def test_make_pair_validates_in_one_line(bad, message):
    fields = dict(context=[USER], a=[BLUE], b=[GREEN], preferred="a", source="verifier") | bad
    if message is None:
        make_pair(**fields)
        return
    with pytest.raises(UserError, match=message) as err:
        make_pair(**fields)
    assert "\n" not in str(err.value)


def test_trajectory_continuations_are_message_lists():
    context = [{"role": "system", "content": "sum"}, {"role": "user", "content": "add 3"}]
    a = [{"role": "assistant", "content": "<answer>3</answer>"}, {"role": "user", "content": "add 2"},
         {"role": "assistant", "content": "<answer>5</answer>"}]
    b = a[:2] + [{"role": "assistant", "content": "<answer>6</answer>"}]
    p = PreferencePair(context=context, a=a, b=b, preferred="a", source="verifier", metadata={"turn": 0})
    assert len(p.chosen) == 3 and p.conversational


# ------------------------------------------------------------------ files


def test_jsonl_append_and_load_round_trip(tmp_path):
    path = tmp_path / "feedback" / "preferences.jsonl"
    pairs = [pair(), pair(preferred="b", strength=3, metadata={"seed": 1}), pair(preferred="tie", source="judge")]
    append_pairs(path, pairs[:2])
    append_pairs(path, pairs[2:])
    assert load_pairs(path) == pairs
    write_pairs(path, pairs[:1])
    assert load_pairs(path) == pairs[:1]


def test_torn_last_line_is_skipped_but_a_bad_line_is_an_error(tmp_path):
    path = append_pairs(tmp_path / "p.jsonl", [pair()])
    with open(path, "a") as f:
        f.write('{"context": [')  # a crash in the middle of an append
    assert load_pairs(path) == [pair()]
    with open(path, "a") as f:
        f.write("\n")
    with pytest.raises(UserError, match=r"p.jsonl:2"):
        load_pairs(path)


def _append_many(path, worker):
    for i in range(20):
        append_pairs(path, [pair(metadata={"worker": worker, "i": i, "pad": "x" * 5000})])


def test_concurrent_appends_never_interleave(tmp_path):
    path = tmp_path / "p.jsonl"
    procs = [mp.get_context("fork").Process(target=_append_many, args=(path, w)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    loaded = load_pairs(path)
    assert sorted((p.metadata["worker"], p.metadata["i"]) for p in loaded) == [(w, i) for w in range(2) for i in range(20)]


# ------------------------------------------------------------------ datasets (TRL format)


@pytest.mark.parametrize("row", [TRL_STANDARD, TRL_CONVERSATIONAL])
def test_trl_documented_explicit_rows_load(row):
    (p,) = from_dataset(datasets.Dataset.from_list([row]))
    assert p.preferred == "a" and p.source == "human"
    assert PreferencePair.model_validate(p.model_dump()).chosen == p.chosen
    as_json = p.model_dump(mode="json")
    assert (as_json["context"], as_json["a"], as_json["b"]) == (row["prompt"], row["chosen"], row["rejected"])


def test_trl_documented_implicit_rows_load():
    (plain,) = from_dataset(datasets.Dataset.from_list([TRL_STANDARD_IMPLICIT]))
    assert (plain.context, plain.a, plain.b) == ("The sky is", " blue.", " green.")  # as TRL's extract_prompt
    (conv,) = from_dataset(datasets.Dataset.from_list([TRL_CONVERSATIONAL_IMPLICIT]))
    dump = conv.model_dump(mode="json")
    assert (dump["context"], dump["a"], dump["b"]) == ([USER], [BLUE], [GREEN])


def test_extract_prompt_edge_cases():
    assert extract_prompt("abc", "abd") == {"prompt": "ab", "chosen": "c", "rejected": "d"}
    assert extract_prompt("x", "y") == {"prompt": "", "chosen": "x", "rejected": "y"}
    assert extract_prompt("ab", "abc") == {"prompt": "ab", "chosen": "", "rejected": "c"}


@pytest.mark.parametrize("rows, implicit", [
    ([TRL_STANDARD, {"prompt": "Grass is", "chosen": " green.", "rejected": " red."}], False),
    ([TRL_CONVERSATIONAL, {"prompt": [USER, BLUE, USER], "chosen": [BLUE], "rejected": [GREEN]}], False),
    ([TRL_STANDARD_IMPLICIT, {"chosen": "Grass is green.", "rejected": "Grass is red."}], True),
    ([TRL_CONVERSATIONAL_IMPLICIT], True),
    ([dict(TRL_STANDARD, score_chosen=8.0, score_rejected=2.5, source="evol")], False),  # extra columns
])
def test_dataset_to_records_to_dataset_is_lossless(rows, implicit):
    ds = datasets.Dataset.from_list(rows)
    back = to_dataset(from_dataset(ds), implicit_prompt=implicit)
    assert back.column_names == ds.column_names
    assert back.to_list() == ds.to_list()


def test_records_to_dataset_to_records_with_extras_is_lossless():
    pairs = [pair(), pair(preferred="b", strength=2), pair(preferred="tie", strength=0, source="judge"),
             pair(preferred="a", strength=-3, source="model")]
    ds = to_dataset(pairs, extras=True, ties="keep")
    assert from_dataset(ds) == pairs
    assert len(to_dataset(pairs)) == 3  # plain TRL export drops the tie
    assert to_dataset(pairs)[1]["chosen"] == [GREEN]  # preferred b is written as chosen


def test_dataset_without_needed_columns_is_a_one_line_error():
    ds = datasets.Dataset.from_list([{"prompt": "a", "completion": "b"}])
    with pytest.raises(UserError, match="lacks the 'chosen' and 'rejected'") as err:
        from_dataset(ds)
    assert "\n" not in str(err.value)


def test_dataset_pair_with_identical_sides_is_a_one_line_error():
    ds = datasets.Dataset.from_list([TRL_STANDARD, {"prompt": "x", "chosen": " same", "rejected": " same"}])
    with pytest.raises(UserError, match="row 1: the two sides of the pair are identical") as err:
        from_dataset(ds)
    assert "\n" not in str(err.value)


def test_records_dump_as_plain_json():
    line = json.loads(pair(metadata={"returns": [1.0, 0.0]}).model_dump_json())
    assert line["context"] == [USER] and line["metadata"] == {"returns": [1.0, 0.0]}


def test_a_rows_own_source_column_names_its_labeller():
    rows = [{"prompt": "p", "chosen": "a", "rejected": "b", "source": "verifier"},
            {"prompt": "p", "chosen": "a", "rejected": "c", "source": None}]
    first, second = from_dataset(datasets.Dataset.from_list(rows), source="judge")
    assert first.source == "verifier" and second.source == "judge"  # a missing value takes the default
    assert "source" not in first.metadata
    (origin,) = from_dataset(datasets.Dataset.from_list([{**rows[0], "source": "evol"}]))  # a dataset's origin
    assert origin.source == "human" and origin.metadata["source"] == "evol"
