"""Scripted-expert success rate per PlayTable task (the expert = play primitives aimed at a task).

    OMP_NUM_THREADS=1 python benchmarks/play_table_expert.py [--episodes 20] [--steps 150]

Stores benchmarks/results/play_table_expert.json and .md. Each episode: reset(seed=i), plan from
the reset scene state, follow the waypoints without feedback; success = the task's detector at
any step of the episode (and at the last step, reported separately).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from selfgym.envs.play_table.env import PlayTableEnv
from selfgym.envs.play_table.primitives import ScriptedExpert
from selfgym.envs.play_table.tasks import TASK_NAMES

RESULTS = Path(__file__).resolve().parent / "results"


def evaluate(task: str, episodes: int, steps: int) -> dict[str, float]:
    env = PlayTableEnv(task=task)
    any_ok = last_ok = 0
    for ep in range(episodes):
        obs, _ = env.reset(seed=1000 + ep)
        expert = ScriptedExpert(task)
        expert.reset(obs)
        hit = False
        for _ in range(steps):
            obs, _, terminated, _, info = env.step(expert.act(obs))
            hit = hit or info["is_success"]
            if terminated:
                break
        any_ok += hit
        last_ok += info["is_success"]
    env.close()
    return {"success_rate": any_ok / episodes, "success_rate_at_end": last_ok / episodes}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--steps", type=int, default=150)
    args = ap.parse_args()
    t0, load0 = time.time(), os.getloadavg()
    rates = {}
    for task in TASK_NAMES:
        rates[task] = evaluate(task, args.episodes, args.steps)
        print(f"{task:20s} {rates[task]['success_rate']:.2f} (at end {rates[task]['success_rate_at_end']:.2f})", flush=True)
    mean = sum(r["success_rate"] for r in rates.values()) / len(rates)
    result = {"per_task": rates, "mean_success_rate": mean, "episodes_per_task": args.episodes,
              "max_steps": args.steps, "seeds": f"1000..{1000 + args.episodes - 1}",
              "wall_s": time.time() - t0, "loadavg_1_5_15": [load0, os.getloadavg()]}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "play_table_expert.json").write_text(json.dumps(result, indent=2))
    rows = [f"| {t} | {r['success_rate']:.2f} | {r['success_rate_at_end']:.2f} |" for t, r in rates.items()]
    (RESULTS / "play_table_expert.md").write_text("\n".join(
        ["# PlayTable scripted expert", "", f"{args.episodes} episodes per task, {args.steps} steps each.", "",
         "| task | success (any step) | success (last step) |", "|---|---|---|", *rows, "",
         f"mean over 18 tasks: {mean:.2f}", ""]))
    print(f"mean {mean:.2f}")


if __name__ == "__main__":
    main()
