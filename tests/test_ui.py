"""The viewer without a browser: feedback store, API (FastAPI TestClient), security, shadow user, export, CLI."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from longhorizon.cli import app as cli_app
from longhorizon.store.feedback import FEEDBACK_DB, FeedbackStore, Label, LabelConflict, episode_stages, latest
from longhorizon.store.feedback_export import export_feedback, messages, prefix
from longhorizon.ui.app import make_app
from longhorizon.ui.auth import TOKEN_COOKIE, TOKEN_HEADER
from longhorizon.ui.demo import HOSTILE, execution_episode, search_episode, write_demo_runs
from longhorizon.ui.shadow import run_shadow_user, turn_ratings

TOKEN = "unit-test-token-0123456789"
EVAL = {"run": "eval-demo", "source": "trajectories.jsonl"}


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    return write_demo_runs(tmp_path / "runs")


@pytest.fixture
def client(runs: Path) -> TestClient:
    c = TestClient(make_app(runs, TOKEN), base_url="http://127.0.0.1")
    c.cookies.set(TOKEN_COOKIE, TOKEN)
    return c


def label(kind: str = "turn_rating", **fields) -> dict:
    base = {"label_id": uuid.uuid4().hex, "kind": kind, "annotator": "ana", **EVAL, "episode": 1}
    base.update({"turn_rating": {"turn": 1, "value": "first_mistake"}, "critique": {"text": "slipped"},
                 "preference": {"other_run": "eval-demo", "other_source": "trajectories.jsonl", "other_episode": 0,
                                "value": "b"}}.get(kind, {}))
    return {**base, **fields}


def post(client: TestClient, data: dict, token: str | None = TOKEN):
    return client.post("/api/labels", json=data, headers={TOKEN_HEADER: token} if token else {})


# ------------------------------------------------------------------ store
def test_store_is_wal_and_idempotent(tmp_path):
    store = FeedbackStore(tmp_path / FEEDBACK_DB)
    one = Label(**label())
    assert store.add(one) is True
    assert store.add(one) is False  # a retry
    with pytest.raises(LabelConflict):
        store.add(Label(**{**one.model_dump(exclude={"created_at"}), "value": "good"}))
    [stored] = store.labels()
    assert stored.content() == one.content() and stored.created_at.endswith("+00:00")
    with sqlite3.connect(tmp_path / FEEDBACK_DB) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_store_filters_either_side_of_a_pair(tmp_path):
    store = FeedbackStore(tmp_path / FEEDBACK_DB)
    store.add(Label(**label("preference")))  # episode 1 vs 0
    store.add(Label(**label(episode=3)))
    assert len(store.labels(run="eval-demo", source="trajectories.jsonl", episode=0)) == 1  # as side B
    assert len(store.labels(episode=3)) == 1 and store.count() == 2


@pytest.mark.parametrize("bad", [{"value": "great"}, {"turn": None}, {"label_id": "x"}, {"annotator": ""},
                                 {"kind": "critique", "text": None}, {"kind": "preference", "value": "a"},
                                 {"kind": "stage_rating", "stage": "query", "value": "good"}, {"nonsense": 1}])
def test_label_validation(bad):
    with pytest.raises(ValueError):
        Label(**{**label(), **bad})


def test_latest_keeps_the_last_rating_per_target_and_every_critique():
    first, second = Label(**label(value="good")), Label(**label(value="bad"))
    other_turn = Label(**label(turn=0, value="good"))
    crit1, crit2 = Label(**label("critique")), Label(**label("critique", text="again"))
    pref_ab = Label(**label("preference", value="a"))
    pref_ba = Label(**{**label("preference"), "run": "eval-demo", "episode": 0, "other_episode": 1, "value": "a"})
    kept = latest([first, other_turn, second, crit1, crit2, pref_ab, pref_ba])
    assert [k.label_id for k in kept] == [second.label_id, other_turn.label_id, crit1.label_id, crit2.label_id,
                                          pref_ba.label_id]


def test_stages_map_tool_calls_to_query_and_retrieval_and_the_rest_to_answer():
    assert episode_stages(search_episode(0)) == {"query": [0, 1], "retrieval": [0, 1], "answer": [2]}
    assert episode_stages(execution_episode(0, False)) == {}  # no tool call: not multi-stage


# ------------------------------------------------------------------ API writes and security
def test_write_needs_the_token(client, runs):
    assert post(client, label(), token=None).status_code == 401
    assert post(client, label(), token=TOKEN[:-1] + "x").status_code == 401
    data = label()
    assert client.post("/api/labels", json=data).status_code == 401  # the cookie alone does not authorise a write
    assert FeedbackStore(runs / FEEDBACK_DB).count() == 0
    assert post(client, data).status_code == 201
    assert post(client, data).status_code == 200  # retry: stored once
    assert post(client, {**data, "value": "good"}).status_code == 409
    assert FeedbackStore(runs / FEEDBACK_DB).count() == 1


@pytest.mark.parametrize("change, status", [
    ({"episode": 99}, 404), ({"turn": 3}, 404), ({"run": "../.."}, 404), ({"source": "config.yaml"}, 404),
    ({"kind": "preference", "other_run": "eval-demo", "other_source": "trajectories.jsonl", "other_episode": 2,
      "value": "a", "turn": None}, 422),  # episode 2 is another task
    ({"kind": "stage_rating", "episode": 5, "stage": "query", "turns": [2], "value": "good", "turn": None}, 422),
    ({"kind": "stage_rating", "episode": 0, "stage": "query", "turns": [0], "value": "good", "turn": None}, 422),
    ({"value": "great"}, 422),
])
def test_write_checks_every_id(client, change, status):
    assert post(client, {**label(), **change}).status_code == status


def test_stage_rating_is_stored_with_its_turns(client):
    data = {**label(), "kind": "stage_rating", "episode": 5, "stage": "retrieval", "turns": [0, 1], "value": "bad",
            "turn": None}
    assert post(client, data).status_code == 201
    [stored] = client.get("/api/labels", params={"run": "eval-demo", "src": "trajectories.jsonl", "i": 5}).json()
    assert (stored["stage"], stored["turns"], stored["annotator"]) == ("retrieval", [0, 1], "ana")


def test_reads_need_the_token_unless_open(runs):
    closed = TestClient(make_app(runs, TOKEN), base_url="http://127.0.0.1")
    assert closed.get("/api/runs").status_code == 401
    assert closed.head("/api/episodes", params={"run": "eval-demo"}).status_code == 401
    assert closed.get("/run", params={"run": "eval-demo"}, follow_redirects=False).headers["location"].startswith("/login")
    assert closed.get("/api/runs", headers={TOKEN_HEADER: TOKEN}).status_code == 200
    opened = TestClient(make_app(runs, TOKEN, open_reads=True), base_url="http://127.0.0.1")
    page = opened.get("/episode", params={"run": "eval-demo", "src": "trajectories.jsonl", "i": 1})
    assert page.status_code == 200 and TOKEN not in page.text and "log in with the token" in page.text
    assert post(opened, label(), token=None).status_code == 401  # open reads, closed writes


def test_token_in_the_url_becomes_a_cookie(runs):
    c = TestClient(make_app(runs, TOKEN), base_url="http://127.0.0.1")
    r = c.get("/run", params={"run": "eval-demo", "token": TOKEN}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/run?run=eval-demo"
    assert "HttpOnly" in r.headers["set-cookie"] and "SameSite=strict" in r.headers["set-cookie"]
    assert c.get("/run", params={"run": "eval-demo"}).status_code == 200


def test_foreign_host_header_is_refused(client):
    assert client.get("/", headers={"host": "rebind.example"}).status_code == 400
    assert client.get("/", params={"token": TOKEN}, headers={"host": "rebind.example"}).status_code == 400


def test_untrusted_text_is_escaped_and_no_script_may_run(client):
    r = client.get("/episode", params={"run": "eval-demo", "src": "trajectories.jsonl", "i": 4})
    assert r.status_code == 200
    assert "<script" not in r.text and "<img" not in r.text and "onerror=\"alert" not in r.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text
    assert "default-src 'none'" in r.headers["content-security-policy"] and "script-src" not in r.headers["content-security-policy"]


def test_viewer_finds_the_bundled_tokenizer_where_models_puts_it():
    from longhorizon.models import bundled
    from longhorizon.ui.catalog import bundled_tokenizer_dir

    assert bundled_tokenizer_dir() == bundled.cache_dir() / bundled.TOKENIZER_DIR


# ------------------------------------------------------------------ pages and forms
def test_pages_render_and_filter(client):
    assert "eval-demo" in client.get("/").text and "train-demo" in client.get("/").text
    failed = client.get("/run", params={"run": "eval-demo", "success": "no"}).text
    assert "trajectories.jsonl#1" in failed and "trajectories.jsonl#0" not in failed
    rich = client.get("/run", params={"run": "eval-demo", "min_reward": "2"}).text
    assert "trajectories.jsonl#0" in rich and "trajectories.jsonl#1" not in rich
    step = client.get("/run", params={"run": "train-demo", "step": "2", "split": "train"}).text
    assert "trajectories/step_000002.jsonl#0" in step and "step_000001" not in step.split("<tbody>")[1]
    decoded = client.get("/episode", params={"run": "eval-demo", "src": "trajectories.jsonl", "i": 1}).text
    assert "decoded with the run's tokenizer" in decoded
    assert ('<pre class="prompt">Step 1: add 3 (seed 0). What is the running total?\n&lt;answer&gt;3&lt;/answer&gt;\n'
            'Step 2: add 5') in decoded  # turn 1's prompt ids: the whole history, decoded
    assert '<span class="tok lp0" title="log-prob -2.6000">9</span>' in decoded  # the slip, in red
    assert "tokenizer is not available" in client.get("/episode", params={"run": "train-demo", "src": "eval/step_000002.jsonl", "i": 0}).text
    assert client.get("/episode", params={"run": "eval-demo", "src": "../../etc/passwd", "i": 0}).status_code == 404


def test_form_posts_need_the_token_field_and_redirect_locally(client, runs):
    form = {"label_id": uuid.uuid4().hex, "kind": "critique", "annotator": "ana", **EVAL, "episode": "1", "turn": "2",
            "text": "why 11?", "next": "//evil.example/"}
    assert client.post("/labels/form", data=form).status_code == 401  # cookie but no token field
    r = client.post("/labels/form", data={**form, "token": TOKEN}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"
    [stored] = FeedbackStore(runs / FEEDBACK_DB).labels()
    assert (stored.kind, stored.turn, stored.text) == ("critique", 2, "why 11?")
    stage = {**form, "token": TOKEN, "label_id": uuid.uuid4().hex, "kind": "stage_rating", "episode": "5", "turn": "",
             "stage": "answer", "value": "good", "text": ""}
    assert client.post("/labels/form", data=stage, follow_redirects=False).status_code == 303
    assert FeedbackStore(runs / FEEDBACK_DB).labels(episode=5)[0].turns == [2]


# ------------------------------------------------------------------ shadow user
def test_turn_rating_rules():
    assert turn_ratings([1.0, 0.0, 1.0, 0.0], False) == ["good", "first_mistake", "good", "bad"]
    assert turn_ratings([0.0, 0.0, 1.0], True) == ["good", "good", "good"]  # a sparse reward is no mistake
    assert turn_ratings([0.0, 0.0], False) == [None, None]
    assert turn_ratings([0.5, 1.0, 0.2], None) == ["first_mistake", "good", "bad"]


def test_shadow_user_writes_through_the_api_once(client, runs):
    first = run_shadow_user(client, TOKEN)
    assert first["created"] > 0 and first["already_stored"] == 0
    assert run_shadow_user(client, TOKEN) == {"created": 0, "already_stored": first["created"]}
    labels = FeedbackStore(runs / FEEDBACK_DB).labels(run="eval-demo")
    prefs = {(lab.episode, lab.other_episode): lab.value for lab in labels if lab.kind == "preference"}
    assert prefs == {(0, 1): "a", (2, 3): "b"}  # higher return wins
    mistakes = [(lab.episode, lab.turn) for lab in labels if lab.value == "first_mistake"]
    assert mistakes == [(1, 1), (2, 1)]
    stages = {lab.stage: lab.value for lab in labels if lab.kind == "stage_rating"}
    assert stages == {"query": "good", "retrieval": "good", "answer": "good"}
    assert {lab.source_kind for lab in labels} == {"verifier"}
    with pytest.raises(RuntimeError):
        run_shadow_user(client, "wrong-token-0123456789")


# ------------------------------------------------------------------ export
def test_messages_and_prefix_hand_built():
    traj = execution_episode(0, True)
    assert messages(traj) == [
        {"role": "assistant", "content": "<answer>3</answer>"},
        {"role": "user", "content": "Step 2: add 5 (seed 0). What is the running total?"},
        {"role": "assistant", "content": "<answer>9</answer>"},
        {"role": "user", "content": "Step 3: add 2 (seed 0). What is the running total?"},
        {"role": "assistant", "content": "<answer>11</answer>"}]
    assert prefix(traj, 1) == [{"role": "user", "content": "Step 1: add 3 (seed 0). What is the running total?"},
                               {"role": "assistant", "content": "<answer>3</answer>"},
                               {"role": "user", "content": "Step 2: add 5 (seed 0). What is the running total?"}]
    assert messages(search_episode(0), [1])[0]["content"].startswith("<tool_call>")
    assert messages(search_episode(0))[1]["role"] == "tool"


def test_export_loads_with_datasets(client, runs, tmp_path):
    from datasets import load_from_disk

    run_shadow_user(client, TOKEN)
    tie = label("preference", value="tie", annotator="bo")
    assert post(client, tie).status_code == 201
    counts = export_feedback(runs, tmp_path / "out")
    prefs = load_from_disk(str(tmp_path / "out" / "preferences"))
    crits = load_from_disk(str(tmp_path / "out" / "critiques"))
    assert counts == {"preferences": prefs.num_rows, "critiques": crits.num_rows} and prefs.num_rows == 4  # 2 tasks x 2 runs; the tie is left out
    row = prefs[0]
    assert row["prompt"] == [{"role": "user", "content": "Step 1: add 3 (seed 0). What is the running total?"}]
    assert row["chosen"][-1]["content"] == "<answer>10</answer>" and row["rejected"][-1]["content"] == "<answer>11</answer>"
    assert (row["source"], row["annotator"], row["chosen_episode"], row["rejected_episode"]) == \
        ("verifier", "shadow-user", "trajectories.jsonl#0", "trajectories.jsonl#1")
    assert (row["chosen_return"], row["rejected_return"]) == (3.0, 1.0)
    stage = [r for r in crits if r["kind"] == "stage_rating" and r["stage"] == "answer"][0]
    assert (stage["turns"], stage["rating"], stage["label"], stage["reward"]) == ([2], "good", True, 1.0)
    assert stage["completion"] == [{"role": "assistant", "content": "<answer>R. Okafor</answer>"}]
    hostile = [r for r in crits if r["episode"] == "trajectories.jsonl#4"][0]
    assert hostile["kind"] == "critique" and HOSTILE in hostile["prompt"][0]["content"]  # stored verbatim


def test_cli_feedback_export(client, runs, tmp_path):
    from datasets import load_from_disk

    runner = CliRunner()
    (tmp_path / "empty").mkdir()
    assert runner.invoke(cli_app, ["feedback", "export", str(tmp_path / "empty"), "--out", str(tmp_path / "x")]).exit_code == 2
    assert runner.invoke(cli_app, ["feedback", "export", str(runs), "--out", str(tmp_path / "x")]).exit_code == 0
    assert load_from_disk(str(tmp_path / "x" / "preferences")).num_rows == 0  # no labels yet: empty, typed datasets
    post(client, label())
    result = runner.invoke(cli_app, ["feedback", "export", str(runs), "--out", str(tmp_path / "x")])
    assert result.exit_code == 0 and "1 critiques / ratings" in result.output
    assert runner.invoke(cli_app, ["view", str(tmp_path / "missing")]).exit_code == 2
    assert runner.invoke(cli_app, ["view", str(runs), "--token", "short"]).exit_code == 2


def listening_addresses(port: int) -> set[str]:
    """Local IPv4 addresses (hex, as /proc/net/tcp writes them) listening on `port`."""
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return {local.split(":")[0] for local, state in ((r.split()[1], r.split()[3]) for r in rows)
            if int(local.split(":")[1], 16) == port and state == "0A"}  # 0A: LISTEN


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux's /proc/net/tcp")
def test_view_command_prints_a_token_and_listens_on_loopback_only(runs):
    import os
    import socket
    import subprocess
    import sys
    import time

    import httpx2

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-c", "from longhorizon.cli import app; app()", "view", str(runs), "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", "LONGHORIZON_VIEW_TOKEN": ""})
    try:
        lines = [proc.stdout.readline() for _ in range(3)]
        token = next(line.split()[1] for line in lines if line.strip().startswith("token"))
        assert f"http://127.0.0.1:{port}/?token={token}" in "".join(lines) and len(token) >= 24
        deadline = time.monotonic() + 60
        while not listening_addresses(port) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert listening_addresses(port) == {"0100007F"}  # 127.0.0.1, nothing else
        url = f"http://127.0.0.1:{port}"
        assert httpx2.get(url + "/api/runs").status_code == 401
        assert httpx2.get(url + "/api/runs", headers={TOKEN_HEADER: token}).status_code == 200
        assert httpx2.post(url + "/api/labels", json=label()).status_code == 401
        assert httpx2.post(url + "/api/labels", json=label(), headers={TOKEN_HEADER: token}).status_code == 201
    finally:
        proc.terminate()
        proc.wait(timeout=30)
