"""Seconds per PEARL GRPO step and per SFT step on CalendarConflict-v0, and sampling tokens/s.

    OMP_NUM_THREADS=1 python benchmarks/calendar_pearl_speed.py --group 8 --rounds 20      # the issue's step
    OMP_NUM_THREADS=1 python benchmarks/calendar_pearl_speed.py --group 8 --rounds 2 --out calendar_pearl_speed_pilot

One ``pearl`` iteration (G copies of one training user's year of ``--rounds`` rounds, compact
prompts, hub_turns 3, LoRA, temperature 0.7, the agent's default max_new_tokens 96) is run and
timed as sampling (rollout) and update; then ``--sft-steps`` ``llm_sft`` steps (batch 8). The model
is the default (SmolLM2-135M-Instruct) unless ``--model PATH``; the device is auto (CUDA, bf16,
when there is one). Prints where it ran. Writes benchmarks/results/<out>.{json,md}.

KV cache across the G samples: not reused. Every copy's prompt differs after round 1 (its own
past choices and its own StrategyHub), so only the instructions and user context are a shared
prefix; HF ``generate`` keeps one KV cache per row and has no cross-row prefix sharing, so the
prompts are encoded once per row per turn (batched).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from selfgym.agents import make_agent
from selfgym.env_factory import make_vec_env

RESULTS = Path(__file__).resolve().parent / "results"
ENV = "selfgym/CalendarConflict-v0"


class _Hooks:
    def on_step(self, n: int) -> bool:
        return True


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--group", type=int, default=8)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--sft-steps", type=int, default=2)
    p.add_argument("--model", default="default")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="calendar_pearl_speed")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    lora = {"r": 16, "alpha": 32, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]}
    venv = make_vec_env(ENV, 1, 0, {"obs_mode": "text", "text_style": "compact"})
    agent = make_agent("pearl", venv, {"model": a.model, "group_size": a.group, "train_rounds": a.rounds, "lora": lora,
                                       "learning_rate": 2e-5}, device=a.device, seed=0)
    device = str(agent.policy.device) + (f" ({torch.cuda.get_device_name()})" if agent.policy.device.type == "cuda" else "")
    print(f"running on {device}, dtype {agent.policy.dtype}, torch threads {torch.get_num_threads()}", flush=True)
    out: dict[str, Any] = {"command": f"OMP_NUM_THREADS=1 python benchmarks/calendar_pearl_speed.py --group {a.group} "
                                      f"--rounds {a.rounds} --sft-steps {a.sft_steps} --out {a.out}",
                           "device": device, "host": platform.node(), "load_before": os.getloadavg(),
                           "model": agent.policy.name, "group": a.group, "rounds": a.rounds}
    start = time.perf_counter()
    agent.longest_prompt = agent.check_prompt_lengths()
    out["length_check_s"] = time.perf_counter() - start
    start = time.perf_counter()
    roll = agent.rollout(agent.settings["users"][0], seed=0)
    rollout_s = time.perf_counter() - start
    start = time.perf_counter()
    roll.rewards = roll.rewards + np.random.default_rng(0).normal(0, 1e-3, roll.rewards.shape)  # force an update
    stats = agent.update([roll])
    update_s = time.perf_counter() - start
    sequences = sum(int(t.samples.completion_ids.shape[0]) for t in roll.turns)
    prompt_tokens = [int(t.samples.prompt_mask.sum(1).float().mean()) for t in roll.turns]
    out["pearl"] = {"rollout_s": rollout_s, "sample_s": roll.sample_seconds, "update_s": update_s,
                    "step_s": rollout_s + update_s, "sampled_tokens": roll.tokens,
                    "sampled_tokens_per_s": roll.tokens / max(roll.sample_seconds, 1e-9),
                    "sequences": sequences, "turn_batches": len(roll.turns),
                    "tokens_per_completion": roll.tokens / max(sequences, 1),
                    "mean_prompt_tokens": float(np.mean(prompt_tokens)), "hub_calls": roll.hub_calls,
                    "format_failures": roll.format_failures, "decisions": int(roll.rewards.size),
                    "loss": stats.get("loss")}
    print(json.dumps(out["pearl"], indent=1), flush=True)
    del agent
    sft = make_agent("llm_sft", venv, {"model": a.model, "lora": lora, "batch_size": 8, "train_batch_size": 4},
                     device=a.device, seed=0)
    start = time.perf_counter()
    sft.prepare_data()
    out["sft_data_s"] = time.perf_counter() - start
    times = []
    for _ in range(a.sft_steps):
        start = time.perf_counter()
        sft.train_step()
        times.append(time.perf_counter() - start)
    out["sft"] = {"pairs": len(sft.prompts), "step_s": float(np.mean(times)), "steps": a.sft_steps, "batch_size": 8,
                  "longest_prompt_tokens": sft.longest_prompt}
    out["load_after"] = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{a.out}.json").write_text(json.dumps(out, indent=2) + "\n")
    pe = out["pearl"]
    md = (f"# PEARL and SFT step cost on CalendarConflict-v0\n\n`{out['command']}`\n\nRan on {device}, model {out['model']} "
          f"(LoRA r=16), compact prompts (mean {pe['mean_prompt_tokens']:.0f} tokens), load average before "
          f"{', '.join(f'{x:.1f}' for x in out['load_before'])}.\n\n"
          "| step | seconds | detail |\n|---|---|---|\n"
          f"| pearl GRPO step, G={a.group}, N={a.rounds} | {pe['step_s']:.0f} | rollout {pe['rollout_s']:.0f} s "
          f"(sampling {pe['sample_s']:.0f} s, {pe['sampled_tokens_per_s']:.1f} tokens/s, {pe['sequences']} completions in "
          f"{pe['turn_batches']} batches), update {pe['update_s']:.0f} s |\n"
          f"| llm_sft step, batch 8 | {out['sft']['step_s']:.1f} | {out['sft']['pairs']} training pairs |\n")
    (RESULTS / f"{a.out}.md").write_text(md)
    print(md)
    return out


if __name__ == "__main__":
    main()
