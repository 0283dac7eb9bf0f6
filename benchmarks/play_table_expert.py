"""Scripted-expert success rate per PlayTable task (the expert = play primitives aimed at a task).

    OMP_NUM_THREADS=1 python benchmarks/play_table_expert.py [--episodes 20] [--steps 150] [--merge-fixed-links --tag NAME]

Stores benchmarks/results/play_table_expert[_TAG].json and .md. ``--merge-fixed-links`` runs the env
with its 9-link Panda (``PlayTableEnv(merge_fixed_links=True)``), to see what that physics option
costs the expert. Each episode: reset(seed=i), plan from
the reset scene state, follow the waypoints without feedback; success = the task's detector at
any step of the episode (and at the last step, reported separately).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from selfgym.envs.play_table.env import PlayTableEnv
from selfgym.envs.play_table.primitives import ScriptedExpert
from selfgym.envs.play_table.tasks import TASK_NAMES

RESULTS = Path(__file__).resolve().parent / "results"


def evaluate(task: str, episodes: int, steps: int, **env_kwargs) -> dict[str, float]:
    env = PlayTableEnv(task=task, **env_kwargs)
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
    ap.add_argument("--merge-fixed-links", action="store_true", help="the env's 9-link Panda (merge_fixed_links=True)")
    ap.add_argument("--tag", default="", help="store as play_table_expert_TAG.json / .md (the default files are kept)")
    args = ap.parse_args()
    if args.tag and not args.tag.replace("_", "").replace("-", "").isalnum():
        ap.error(f"--tag must be letters, digits, '_' or '-', got {args.tag!r}")
    if args.merge_fixed_links and not args.tag:
        ap.error("--merge-fixed-links needs a --tag (play_table_expert.json holds the default physics' rates)")
    name = "play_table_expert" + (f"_{args.tag}" if args.tag else "")
    t0, load0 = time.time(), os.getloadavg()
    rates = {}
    for task in TASK_NAMES:
        rates[task] = evaluate(task, args.episodes, args.steps, merge_fixed_links=args.merge_fixed_links)
        print(f"{task:20s} {rates[task]['success_rate']:.2f} (at end {rates[task]['success_rate_at_end']:.2f})", flush=True)
    mean = sum(r["success_rate"] for r in rates.values()) / len(rates)
    result = {"per_task": rates, "mean_success_rate": mean, "episodes_per_task": args.episodes,
              "max_steps": args.steps, "seeds": f"1000..{1000 + args.episodes - 1}",
              "merge_fixed_links": args.merge_fixed_links, "command": " ".join(["python", *sys.argv]),
              "wall_s": time.time() - t0, "loadavg_1_5_15": [load0, os.getloadavg()]}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2))
    rows = [f"| {t} | {r['success_rate']:.2f} | {r['success_rate_at_end']:.2f} |" for t, r in rates.items()]
    (RESULTS / f"{name}.md").write_text("\n".join(
        ["# PlayTable scripted expert", "", f"{args.episodes} episodes per task, {args.steps} steps each"
         + (", the 9-link Panda (merge_fixed_links=True)." if args.merge_fixed_links else "."), "",
         "| task | success (any step) | success (last step) |", "|---|---|---|", *rows, "",
         f"mean over 18 tasks: {mean:.2f}", "", f"command: `{result['command']}`", ""]))
    print(f"mean {mean:.2f}")


if __name__ == "__main__":
    main()
