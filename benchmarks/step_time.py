"""Time and peak memory of one GRPO step on the bundled model: longhorizon against TRL's GRPOTrainer, fp32 and bf16.

    python3 -m venv .venv-bench
    .venv-bench/bin/pip install torch==2.13.0 -r benchmarks/requirements-trl.txt -e .
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 .venv-bench/bin/python benchmarks/step_time.py [--pairs 2] [--threads 1]

(torch pinned so pip takes the local CPU wheel.) Both sides run in the interpreter that runs this script unless
--ours-python / --trl-python name others; the TRL side's interpreter must have trl and longhorizon installed.

The step, the same on both sides: SmolLM2-135M-Instruct (the bundled model, fp32 weights, the converted directory
`longhorizon.models.bundled.model_dir()`), 16 completions (4 prompts x 4 generations) of at most 32 tokens at
temperature 1, reference log-probs of a frozen copy for a KL term (coefficient 0.04), one full-fine-tune AdamW
update (clip 0.2, grad-norm 1.0) accumulated over 4 micro-batches of 4. The prompts are the first observations of
Execution-v0 (horizon 1, 10-word dictionary, env seeds 0..7) rendered with the chat template plus the pre-filled
"<answer>", exactly as our rollout builds them; TRL gets them as plain-text prompts (no shuffling, so its second
step sees seeds 4..7 like ours) and rewards from the same env's verifier.
bf16 means bf16 autocast of fp32 weights: ours `autocast_bf16=true`, TRL `bf16=True` (accelerate's CPU autocast).

Each run is a fresh subprocess (peak RSS, VmHWM, is per process: loading, both models, AdamW state) that trains 2
steps; the first warms up and the second is reported. Runs alternate ours, TRL, ours, TRL, ... so that load on the
shared machine hits both sides alike; compare the ratios of the same pair.

The split of a step:
- ours: perf/rollout_time (generate), perf/score_time (reference log-probs), update = perf/update_time - score_time.
- TRL: a callback times the step (on_step_begin -> on_step_end, i.e. 4 training_step calls, clipping and the
  optimizer step); `_generate_and_score_completions` is wrapped (generation, rewards, advantages) and within it the
  `_get_per_token_logps_and_entropies` calls on the reference model (reference scoring). generate = that call minus
  reference scoring; update = step - `_generate_and_score_completions`.
TRL settings that differ from its defaults to match ours: gradient_checkpointing=False (TRL defaults to True),
bf16=False for fp32 (TRL defaults to True), a constant learning rate 1e-5, shuffle_dataset=False. Its optimizer
stays its default (adamw_torch_fused); ours is torch.optim.AdamW. TRL stops a completion at EOS only; ours also
at the env's "</answer>", so the sampled-token counts are printed next to the times.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ENV_ID = "longhorizon/Execution-v0"
ENV_KWARGS = {"horizon": 1, "dict_size": 10, "value_range": 9}
PROMPTS, GROUP, MAX_TOKENS, MICRO, KL, LR = 4, 4, 32, 4, 0.04, 1e-5
OURS = ["tasks_per_step=4", "algorithm.group_size=4", "max_new_tokens=32", "algorithm.name=grpo",
        "algorithm.kl_coef=0.04", "lora.enabled=false", "steps=2", "epochs=1", "num_minibatches=1",
        "micro_batch_size=4", "optim.lr=1e-5", "checkpoint_every=0", "eval.episodes=0", "save_final_model=false",
        "save_trajectories=false", "model=smollm2-135m", f"env_id={ENV_ID}",
        "env_kwargs={horizon: 1, dict_size: 10, value_range: 9}"]
MARK = "STEP_TIME_RESULT "
COLUMNS = [("step", "step s", "{:.1f}"), ("generate", "generate s", "{:.1f}"), ("ref_score", "ref score s", "{:.2f}"),
           ("update", "update s", "{:.1f}"), ("tokens", "sampled tok", "{:.0f}"), ("rss_mib", "peak RSS MiB", "{:.0f}")]


# ------------------------------------------------------------------ child processes


def peak_rss_mib() -> float:
    """VmHWM of this process: its peak resident set size."""
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def versions(*names: str) -> dict[str, str]:
    import importlib.metadata as md

    return {name: md.version(name) for name in names}


def run_ours(bf16: bool, threads: int) -> dict:
    """Train 2 steps with our loop; the second step's split."""
    from longhorizon.train import load_config, train

    records: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        sets = [*OURS, f"autocast_bf16={str(bf16).lower()}", f"torch_threads={threads}", f"run_dir={tmp}/run"]
        train(load_config(None, sets), on_log=lambda step, m: records.append(m))
    m = records[-1]
    return {"step": m["perf/step_time"], "generate": m["perf/rollout_time"], "ref_score": m["perf/score_time"],
            "update": m["perf/update_time"] - m["perf/score_time"], "tokens": m["perf/sampled_tokens"],
            "rss_mib": peak_rss_mib(), "versions": versions("torch", "transformers")}


def bench_prompts(tokenizer) -> list[dict]:
    """Env seeds 0..7: our rollout's first prompt (chat template + pre-filled prefix), as text and ids."""
    from longhorizon.context import make_strategy
    from longhorizon.context.base import encode
    from longhorizon.rollout.runner import EpisodeSpec, LiveEpisode

    strategy, rows = make_strategy("full"), []
    for seed in range(2 * PROMPTS):
        episode = LiveEpisode(EpisodeSpec(ENV_ID, seed=seed, env_kwargs=dict(ENV_KWARGS)))
        prefix = strategy.response_prefix(episode.agent_spec.response_prefix)
        ids = strategy.build_prompt(episode.view(), tokenizer) + encode(tokenizer, prefix)
        rows.append({"prompt": tokenizer.decode(ids), "seed": seed, "prefix": prefix, "ids": ids})
    return rows


def env_reward(completions: list[str], seed: list[int], prefix: list[str], **_) -> list[float]:
    """The env's verifier: reset at the prompt's seed, step with prefix + completion."""
    import gymnasium as gym

    rewards = []
    for text, s, p in zip(completions, seed, prefix):
        env = gym.make(ENV_ID, **ENV_KWARGS)
        env.reset(seed=s)
        rewards.append(float(env.step(p + text)[1]))
    return rewards


class StepClock:
    """Splits TRL's optimizer step: wraps `_generate_and_score_completions` and reference scoring."""

    def __init__(self, trainer):
        self.trainer, self.steps, self.t0, self.gen, self.ref, self.logs = trainer, [], 0.0, 0.0, 0.0, []
        self.dtypes: dict[str, set[str]] = {}
        self._wrap("_generate_and_score_completions", "gen")
        self._wrap("_get_per_token_logps_and_entropies", "ref", only=lambda model, *a, **k: model is trainer.ref_model)

    def _wrap(self, name: str, slot: str, only=lambda *a, **k: True) -> None:
        inner = getattr(self.trainer, name)

        def timed(*args, **kwargs):
            if not only(*args, **kwargs):
                return inner(*args, **kwargs)
            t = time.perf_counter()
            out = inner(*args, **kwargs)
            setattr(self, slot, getattr(self, slot) + time.perf_counter() - t)
            return out

        setattr(self.trainer, name, timed)

    def callback(self):
        from transformers import TrainerCallback

        clock = self

        class Clock(TrainerCallback):
            def on_step_begin(self, *args, **kwargs):
                clock.t0, clock.gen, clock.ref = time.perf_counter(), 0.0, 0.0

            def on_step_end(self, *args, **kwargs):
                step = time.perf_counter() - clock.t0
                clock.steps.append({"step": step, "generate": clock.gen - clock.ref, "ref_score": clock.ref,
                                    "update": step - clock.gen})

            def on_log(self, args, state, control, logs=None, **kwargs):
                clock.logs.append(dict(logs or {}))

        return Clock()


def trl_config(out_dir: str, bf16: bool):
    from trl import GRPOConfig

    return GRPOConfig(output_dir=out_dir, use_cpu=True, report_to="none", bf16=bf16, beta=KL,
                      per_device_train_batch_size=MICRO, gradient_accumulation_steps=PROMPTS * GROUP // MICRO,
                      num_generations=GROUP, max_completion_length=MAX_TOKENS, max_steps=2, logging_steps=1,
                      save_strategy="no", learning_rate=LR, lr_scheduler_type="constant", gradient_checkpointing=False,
                      shuffle_dataset=False, temperature=1.0, use_vllm=False, seed=0, disable_tqdm=True)


def run_trl(bf16: bool, threads: int) -> dict:
    """Train 2 steps with TRL's GRPOTrainer; the second step's split."""
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import GRPOTrainer

    from longhorizon.models import bundled

    torch.set_num_threads(threads)
    model_dir = str(bundled.model_dir())
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    rows = bench_prompts(tokenizer)
    same_ids = all(tokenizer(r["prompt"])["input_ids"] == r["ids"] for r in rows)
    data = Dataset.from_list([{k: r[k] for k in ("prompt", "seed", "prefix")} for r in rows])
    with tempfile.TemporaryDirectory() as tmp:
        trainer = GRPOTrainer(model=model_dir, reward_funcs=env_reward, args=trl_config(tmp, bf16),
                              train_dataset=data, processing_class=tokenizer)
        clock = StepClock(trainer)
        trainer.add_callback(clock.callback())
        trainer.train()
    log = [entry for entry in clock.logs if "completions/mean_length" in entry][-1]
    return {**clock.steps[-1], "tokens": log["completions/mean_length"] * PROMPTS * GROUP, "rss_mib": peak_rss_mib(),
            "prompt_ids_match": same_ids, "autocast": trainer.accelerator.native_amp,
            "policy_dtype": str(trainer.model.dtype), "ref_dtype": str(trainer.ref_model.dtype),
            "versions": versions("torch", "transformers", "trl")}


def child(side: str, precision: str, threads: int) -> None:
    result = (run_ours if side == "ours" else run_trl)(precision == "bf16", threads)
    print(MARK + json.dumps(result), flush=True)


# ------------------------------------------------------------------ parent


def measure(python: str, side: str, precision: str, threads: int) -> dict:
    """One run in its own process."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "OMP_NUM_THREADS": str(threads), "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.run([python, __file__, "--child", side, precision, str(threads)], env=env,
                          capture_output=True, text=True)
    found = [line for line in proc.stdout.splitlines() if line.startswith(MARK)]
    if proc.returncode or not found:
        sys.exit(f"{side} {precision} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(found[-1][len(MARK):])


def print_table(precision: str, pairs: list[tuple[dict, dict]]) -> None:
    print(f"\n{precision:<16}" + "".join(f"{title:>14}" for _, title, _ in COLUMNS))
    for i, (ours, trl) in enumerate(pairs, 1):
        for name, m in ((f"ours #{i}", ours), (f"TRL  #{i}", trl)):
            print(f"{name:<16}" + "".join(f"{fmt.format(m[key]):>14}" for key, _, fmt in COLUMNS))
    ratios = [{key: ours[key] / trl[key] for key, _, _ in COLUMNS} for ours, trl in pairs]
    for i, r in enumerate(ratios, 1):
        print(f"{f'ours/TRL #{i}':<16}" + "".join(f"{r[key]:>14.2f}" for key, _, _ in COLUMNS))
    if len(ratios) > 1:
        print(f"{'ours/TRL median':<16}" + "".join(f"{statistics.median(r[k] for r in ratios):>14.2f}"
                                                for k, _, _ in COLUMNS))


def print_header(args: argparse.Namespace, ours: dict, trl: dict) -> None:
    print(f"one GRPO step: SmolLM2-135M-Instruct, {PROMPTS} prompts x {GROUP} = {PROMPTS * GROUP} completions "
          f"<= {MAX_TOKENS} tokens, full fine-tune, KL {KL}, torch threads {args.threads}, 2nd of 2 steps")
    print(f"ours: {args.ours_python} {ours['versions']}")
    print(f"TRL:  {args.trl_python} {trl['versions']}; prompt ids identical to ours: {trl['prompt_ids_match']}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        return child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=1, help="alternating (ours, TRL) runs per precision")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads of both sides")
    ap.add_argument("--precisions", default="fp32,bf16", help="comma-separated: fp32, bf16")
    ap.add_argument("--ours-python", default=sys.executable, help="interpreter of our side")
    ap.add_argument("--trl-python", default=sys.executable, help="interpreter of TRL's side (trl + longhorizon)")
    args = ap.parse_args()
    precisions = args.precisions.split(",")
    runs: dict[str, list[tuple[dict, dict]]] = {p: [] for p in precisions}
    for _ in range(args.pairs):
        for p in precisions:
            ours = measure(args.ours_python, "ours", p, args.threads)
            trl = measure(args.trl_python, "trl", p, args.threads)
            runs[p].append((ours, trl))
            print(f"# {p}: ours {ours['step']:.1f} s, TRL {trl['step']:.1f} s "
                  f"(TRL autocast={trl['autocast']}, weights {trl['policy_dtype']}/{trl['ref_dtype']})", flush=True)
    print_header(args, *runs[precisions[0]][0])
    for p in precisions:
        print_table(p, runs[p])


if __name__ == "__main__":
    main()
