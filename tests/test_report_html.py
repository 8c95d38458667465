"""`longhorizon report`: the page renders for an eval and a training run, names their numbers, loads nothing
remote, and shows a run's text (a `<script>` action included) as text."""

import json
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from typer.testing import CliRunner

from longhorizon.cli import app
from longhorizon.eval import load_eval_config
from longhorizon.eval.report_html import build_report, viewer_link, write_report
from longhorizon.types import Trajectory, Turn, load_trajectories

runner = CliRunner()
VIEWER = "http://127.0.0.1:8765"
EVIL = '<script>alert(1)</script><img src="http://evil.example/x.png"><a href="https://evil.example">x</a>'


class Page(HTMLParser):
    """Every tag, every src/href, and the text."""

    def __init__(self):
        super().__init__()
        self.tags, self.urls, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.urls += [v for k, v in attrs if k in ("src", "href") and v is not None]

    def handle_data(self, data):
        self.text.append(data)


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    page.text = "".join(page.text)
    return page


def check_safe(page: Page, run_name: str) -> None:
    assert "script" not in page.tags
    for url in page.urls:
        if url.startswith("data:"):
            assert url.startswith("data:image/png;base64,")
        else:  # only the viewer's episode links
            parts = urlsplit(url)
            assert f"{parts.scheme}://{parts.netloc}" == VIEWER and parts.path == "/episode", url
            query = parse_qs(parts.query)
            assert query["run"] == [run_name] and set(query) == {"run", "src", "i"}


def with_evil_action(path, index=0):
    trajectories = load_trajectories(path)
    trajectories[index].turns[0].action = EVIL
    trajectories[index].turns[0].reward = -5.0  # the worst episode: rendered turn by turn
    path.write_text("".join(json.dumps(t.to_dict()) + "\n" for t in trajectories))


@pytest.fixture()
def eval_run(tmp_path):
    from longhorizon.eval import run
    from longhorizon.eval.diagnose import DiagnoseOptions, diagnose

    cfg = load_eval_config(None, [], {"model": "noisy-oracle:0.7", "horizons": [1, 2, 4], "episodes": 20,
                                      "env_kwargs.dict_size": 5, "run_dir": str(tmp_path / "runs" / "ev")})
    run(cfg)
    diagnose("self-conditioning", cfg, DiagnoseOptions(error_rates=[0, 1]))
    with_evil_action(tmp_path / "runs" / "ev" / "trajectories.jsonl")
    return tmp_path / "runs" / "ev"


def test_eval_report_names_its_numbers_and_is_self_contained(eval_run):
    path = write_report(eval_run, viewer_url=VIEWER)
    html = path.read_text()
    page = parse(html)
    metrics = json.loads((eval_run / "metrics.json").read_text())
    for row in metrics["horizons"]:
        assert f"{row['success_rate']:.3f} ± {row['success_se']:.3f}" in page.text
    assert f"{metrics['horizon_length']['value']:.2f}" in page.text
    ci = metrics["horizon_length_ci"]
    assert f"[{ci['low']:.2f}, {ci['high']:.2f}]" in page.text
    assert "self-conditioning" in page.text and "noisy-oracle:0.7" in page.text  # diagnostics and config
    assert page.tags.count("img") == 2  # the horizon curves and the self-conditioning plot, inline
    check_safe(page, "ev")
    assert EVIL in page.text  # the action is shown as text, tags and all
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count('<a href="' + VIEWER) == 60 + 2 + 2  # every episode, and the worst and best two


def test_training_report_names_its_numbers(tmp_path):
    run_dir = tmp_path / "runs" / "train1"
    (run_dir / "eval").mkdir(parents=True)
    (run_dir / "trajectories").mkdir()
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"model": "tiny-random", "steps": 2}))
    rows = [{"step": 0, "eval/reward_mean": 0.25, "eval/success_rate": 0.125},
            {"step": 1, "charts/reward_mean": 0.5, "charts/success_rate": 0.25, "losses/approx_kl": 0.01,
             "losses/entropy": 1.5},
            {"step": 2, "charts/reward_mean": 0.75, "charts/success_rate": 0.5, "losses/approx_kl": 0.02,
             "losses/entropy": 1.25, "eval/reward_mean": 0.8125, "eval/success_rate": 0.4375}]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 3, "torn')

    def episode(seed, reward, action="<answer>1</answer>"):
        turn = Turn(observation=f"obs {seed}", action=action, reward=reward, info={"correct": reward > 0})
        return json.dumps(Trajectory(env_id="longhorizon/Execution-v0", seed=seed, turns=[turn],
                                     success=reward > 0).to_dict()) + "\n"

    (run_dir / "eval" / "step_000000.jsonl").write_text(episode(1, 0.0) + episode(2, 1.0))
    (run_dir / "eval" / "step_000002.jsonl").write_text(episode(1, 1.0) + episode(2, 0.0, EVIL))
    (run_dir / "trajectories" / "step_000001.jsonl").write_text(episode(5, 1.0))
    result = runner.invoke(app, ["report", str(run_dir), "--viewer-url", VIEWER, "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    html = (run_dir / "report.html").read_text()
    page = parse(html)
    assert "0.8125 (step 2)" in page.text and "0.4375 (step 2)" in page.text  # the final eval reward and success
    assert "0.75 (step 2)" in page.text and "1.25 (step 2)" in page.text
    assert "steps: 2" in page.text and page.tags.count("img") == 1
    check_safe(page, "train1")
    assert EVIL in page.text and "script" not in page.tags
    report = build_report(run_dir, viewer_url=VIEWER)
    assert [(w, e.source, e.index) for w, e in report.extremes] == [
        ("worst", "eval/step_000002.jsonl", 1), ("best", "eval/step_000002.jsonl", 0)]
    assert report.total_episodes == 5
    link = viewer_link(VIEWER, "a b/c", "trajectories/step_000001.jsonl", 0)
    assert parse_qs(urlsplit(link).query) == {"run": ["a b/c"], "src": ["trajectories/step_000001.jsonl"], "i": ["0"]}


def test_report_on_a_real_tiny_training_run(tmp_path):
    """A 1-step tiny-random training run, reported as it is written."""
    from longhorizon.train import load_config, train

    train(load_config(None, ["model=tiny-random", "env_kwargs={horizon: 2, dict_size: 2}", "max_new_tokens=5",
                             "steps=1", "tasks_per_step=2", "algorithm.group_size=2", "micro_batch_size=2",
                             "eval.episodes=2", "torch_threads=1", "save_final_model=false",
                             f"run_dir={tmp_path / 'tr'}"]))
    assert list((tmp_path / "tr" / "trajectories").glob("step_*.jsonl"))
    html = write_report(tmp_path / "tr", viewer_url=VIEWER).read_text()
    page = parse(html)
    check_safe(page, "tr")
    rows = [json.loads(line) for line in (tmp_path / "tr" / "metrics.jsonl").read_text().splitlines()]
    last = [r for r in rows if "charts/reward_mean" in r][-1]
    assert f"{last['charts/reward_mean']:.4g} (step {last['step']})" in page.text


def test_report_refuses_what_is_not_a_run(tmp_path):
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "not a run directory" in result.output
