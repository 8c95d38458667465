"""Time and peak memory of one GRPO step on the bundled model, fp32 and bf16 autocast side by side.

    python benchmarks/step_time.py [--threads 1] [--model smollm2-135m]

A step: 16 completions (4 tasks x group of 4) of at most 32 tokens on
Execution-v0 (horizon 1, 10-word dictionary), reference log-probs, one
full-fine-tune AdamW update with a k3 KL term (coefficient 0.04) to a frozen
reference copy. Each precision runs in its own process (peak RSS is per
process) and trains 2 steps: the first warms up, the second is reported.
No checkpoint or evaluation is part of the step.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile

SETTINGS = ["tasks_per_step=4", "algorithm.group_size=4", "max_new_tokens=32", "algorithm.name=grpo",
            "algorithm.kl_coef=0.04", "lora.enabled=false", "steps=2", "epochs=1", "num_minibatches=1",
            "micro_batch_size=4", "checkpoint_every=0", "eval.episodes=0", "save_final_model=false",
            "save_trajectories=false", "env_id=longhorizon/Execution-v0",
            "env_kwargs={horizon: 1, dict_size: 10, value_range: 9}"]
COLUMNS = [("perf/step_time", "step s", "{:.1f}"), ("perf/rollout_time", "rollout s", "{:.1f}"),
           ("perf/update_time", "update s", "{:.1f}"), ("perf/sampled_tokens", "sampled", "{:.0f}"),
           ("perf/tokens_per_s", "sampled tok/s", "{:.1f}"), ("perf/train_tokens_per_s", "train tok/s", "{:.0f}"),
           ("perf/peak_memory_mb", "peak MiB", "{:.0f}")]


def one_run(sets: list[str]) -> None:
    """Child process: train 2 steps, print the second step's metrics as JSON."""
    from longhorizon.train import load_config, train

    records: list[dict[str, float]] = []
    train(load_config(None, sets), on_log=lambda step, m: records.append(m))
    print(json.dumps(records[-1]))


def measure(model: str, threads: int | None, bf16: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        sets = [*SETTINGS, f"model={model}", f"autocast_bf16={str(bf16).lower()}", f"run_dir={tmp}/run"]
        sets += [f"torch_threads={threads}"] if threads else []
        out = subprocess.run([sys.executable, __file__, "--child", *sets], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        return one_run(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    args = ap.parse_args()
    rows = {name: measure(args.model, args.threads, bf16) for name, bf16 in (("fp32", False), ("bf16 autocast", True))}
    print(f"one GRPO step: model={args.model}, 16 completions <= 32 tokens, full fine-tune, KL 0.04, "
          f"threads={args.threads or 'default'}")
    print(f"{'':<15}" + "".join(f"{title:>15}" for _, title, _ in COLUMNS))
    for name, m in rows.items():
        print(f"{name:<15}" + "".join(f"{fmt.format(m[key]):>15}" for key, _, fmt in COLUMNS))


if __name__ == "__main__":
    main()
