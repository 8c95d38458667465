"""Load test of the viewer's label writes: 50 concurrent annotators x 200 writes each, on loopback only.

    python benchmarks/feedback_load.py [--annotators 50] [--writes 200] [--deadline 300]

Starts `longhorizon view` on the demo runs (longhorizon.ui.demo) in a
subprocess on a free 127.0.0.1 port, then runs one thread per annotator, each
with its own keep-alive HTTP client, posting labels to `POST /api/labels`.
Along the way each annotator re-sends every 20th label (a retry: must answer
200, not store twice) and, before every 25th label, tries a write with no token
and one with a wrong token (must answer 401 and store nothing). Every loop is
bounded in count and by the deadline; the server is stopped at the end.

Checks, read back from the SQLite file: 0 labels lost (every accepted id is
stored), 0 duplicated (rows == distinct accepted ids, retries answered 200),
0 writes accepted without the token (none of their ids is stored). Prints the
throughput (accepted writes per second of wall time) and the p50 / p99
latency of the accepted writes. Exits 1 if a check fails.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx2
import numpy as np

from longhorizon.store.feedback import FEEDBACK_DB, FeedbackStore
from longhorizon.ui.auth import TOKEN_HEADER
from longhorizon.ui.demo import write_demo_runs

TOKEN = "load-test-token-" + uuid.uuid4().hex
EPISODES = [0, 1, 2, 3]  # eval-demo episodes with 3 turns


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(runs: Path, port: int) -> subprocess.Popen:
    code = "from longhorizon.cli import app; app()"
    cmd = [sys.executable, "-c", code, "view", str(runs), "--host", "127.0.0.1", "--port", str(port), "--token", TOKEN]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ})


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited: {proc.stderr.read().decode()}")
        try:
            if httpx2.get(url + "/api/runs", headers={TOKEN_HEADER: TOKEN}, timeout=2).status_code == 200:
                return
        except httpx2.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("the server did not start in time")


def make_label(annotator: int, k: int) -> dict:
    episode = EPISODES[k % len(EPISODES)]
    base = {"label_id": f"load-{annotator:02d}-{k:04d}-{uuid.uuid4().hex[:8]}", "annotator": f"annotator-{annotator:02d}",
            "run": "eval-demo", "source": "trajectories.jsonl", "episode": episode}
    if k % 3 == 2:
        return {**base, "kind": "critique", "text": f"note {k} from annotator {annotator}", "turn": k % 3}
    return {**base, "kind": "turn_rating", "turn": k % 3, "value": ("good", "bad", "first_mistake")[k % 3]}


class Annotator(threading.Thread):
    """One annotator: `writes` labels, with retries and tokenless attempts mixed in; stops at the deadline."""

    def __init__(self, url: str, index: int, writes: int, deadline: float, start_gate: threading.Event):
        super().__init__(daemon=True)
        self.url, self.index, self.writes, self.deadline, self.gate = url, index, writes, deadline, start_gate
        self.accepted: list[str] = []
        self.latencies: list[float] = []
        self.rejected_ids: list[str] = []
        self.problems: list[str] = []

    def run(self) -> None:
        self.gate.wait()
        with httpx2.Client(base_url=self.url, timeout=30) as client:
            for k in range(self.writes):
                if time.monotonic() > self.deadline:
                    self.problems.append(f"annotator {self.index} hit the deadline after {k} writes")
                    return
                self.one(client, k)

    def one(self, client: httpx2.Client, k: int) -> None:
        label = make_label(self.index, k)
        if k % 25 == 0:
            self.unauthorised(client, label)
        t0 = time.perf_counter()
        status = client.post("/api/labels", json=label, headers={TOKEN_HEADER: TOKEN}).status_code
        self.latencies.append(time.perf_counter() - t0)
        if status != 201:
            self.problems.append(f"{label['label_id']}: {status} instead of 201")
            return
        self.accepted.append(label["label_id"])
        if k % 20 == 0:
            retry = client.post("/api/labels", json=label, headers={TOKEN_HEADER: TOKEN}).status_code
            if retry != 200:
                self.problems.append(f"retry of {label['label_id']}: {retry} instead of 200")

    def unauthorised(self, client: httpx2.Client, label: dict) -> None:
        for headers in ({}, {TOKEN_HEADER: "not-the-token-" + uuid.uuid4().hex}):
            bad = {**label, "label_id": "bad-" + uuid.uuid4().hex}
            self.rejected_ids.append(bad["label_id"])
            status = client.post("/api/labels", json=bad, headers=headers).status_code
            if status != 401:
                self.problems.append(f"a write without the token answered {status}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--annotators", type=int, default=50)
    ap.add_argument("--writes", type=int, default=200)
    ap.add_argument("--deadline", type=float, default=300.0, help="seconds; every annotator stops by then")
    args = ap.parse_args()
    runs = write_demo_runs(Path(tempfile.mkdtemp(prefix="feedback-load-")) / "runs")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_server(runs, port)
    try:
        wait_ready(url, proc)
        gate = threading.Event()
        threads = [Annotator(url, i, args.writes, time.monotonic() + args.deadline, gate) for i in range(args.annotators)]
        for t in threads:
            t.start()
        t0 = time.perf_counter()
        gate.set()
        for t in threads:
            t.join(args.deadline + 60)
        wall = time.perf_counter() - t0
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return report(threads, runs, wall, args)


def report(threads: list[Annotator], runs: Path, wall: float, args: argparse.Namespace) -> int:
    accepted = [i for t in threads for i in t.accepted]
    rejected = [i for t in threads for i in t.rejected_ids]
    problems = [p for t in threads for p in t.problems]
    stored = [label.label_id for label in FeedbackStore(runs / FEEDBACK_DB).labels()]
    lat = np.array([x for t in threads for x in t.latencies]) * 1000
    lost = len(set(accepted) - set(stored))
    duplicated = len(stored) - len(set(stored)) + len(set(stored) - set(accepted))
    accepted_without_token = len(set(rejected) & set(stored))
    print(f"{args.annotators} annotators x {args.writes} writes on 127.0.0.1: {len(accepted)} accepted in {wall:.1f} s "
          f"-> {len(accepted) / wall:.0f} writes/s")
    print(f"latency of a write: p50 {np.percentile(lat, 50):.1f} ms, p99 {np.percentile(lat, 99):.1f} ms, "
          f"max {lat.max():.1f} ms")
    print(f"stored rows {len(stored)}; lost {lost}; duplicated {duplicated}; "
          f"tokenless/wrong-token writes tried {len(rejected)}, accepted {accepted_without_token}")
    ok = (len(accepted) == args.annotators * args.writes and lost == 0 and duplicated == 0
          and accepted_without_token == 0 and not problems)
    for p in problems[:10]:
        print("problem:", p)
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
