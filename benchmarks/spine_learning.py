"""The spine's learning bar, through the same code path as train.py and evaluate.py.

PPO on CartPole-v1 and SAC on Pendulum-v1 with their hyperparams/ defaults, and the default
main job (persistent SSL on DroneRoom). Prints each evaluation and stores
benchmarks/results/spine_learning.{json,md}; ``--only`` reruns some jobs and keeps the others' stored rows.

    python benchmarks/spine_learning.py [--seed 0] [--only ppo-cartpole ...]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from selfgym.cli import resolve_config, train_parser
from selfgym.train import train

JOBS = {
    "ppo-cartpole": ["--env", "CartPole-v1", "--agent", "ppo"],
    "sac-pendulum": ["--env", "Pendulum-v1", "--agent", "sac"],
    "default-job": [],  # python train.py: DroneRoom, persistent_ssl
}
OUT = Path(__file__).resolve().parent / "results" / "spine_learning"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", nargs="+", choices=sorted(JOBS), default=list(JOBS))
    args = p.parse_args()
    stored = json.loads(OUT.with_suffix(".json").read_text()) if OUT.with_suffix(".json").exists() else {}
    results = {"seed": args.seed, "jobs": stored.get("jobs", {}) if stored.get("seed") == args.seed else {}}
    for key in ("load_before", "load_after"):  # the first runs' loads, for the rows they made
        if key in stored and stored.get("seed") == args.seed:
            results[key] = stored[key]
    with tempfile.TemporaryDirectory() as logs:
        for name in args.only:
            config = resolve_config(train_parser().parse_args([*JOBS[name], "--seed", str(args.seed)]))
            load, start = os.getloadavg(), time.time()
            run = train(config, log_folder=logs)
            summary = json.loads((run / "eval.json").read_text())
            results["jobs"][name] = {
                "command": "python train.py " + " ".join([*JOBS[name], "--seed", str(args.seed)]),
                "n_timesteps": config["n_timesteps"], "wall_s": round(time.time() - start, 1),
                "eval_episodes": summary["n_episodes"], "return_mean": summary["return_mean"],
                "return_std": summary["return_std"],
                "metrics": {k: v["mean"] for k, v in summary["metrics"].items()},
                "time": time.strftime("%Y-%m-%d %H:%M"), "load_before": round(load[0], 1), "load_after": round(os.getloadavg()[0], 1),
            }
            print(name, results["jobs"][name])
    OUT.parent.mkdir(exist_ok=True)
    OUT.with_suffix(".json").write_text(json.dumps(results, indent=1))
    lines = [f"# Spine learning bar (seed {args.seed}, 2 cores)", "",
             "| job | command | steps | wall s | eval return (mean ± std) | when (load before -> after) |", "|---|---|---|---|---|---|"]
    for name, r in results["jobs"].items():
        when = (f"{r['time']} ({r['load_before']} -> {r['load_after']})" if "time" in r  # rows of the first runs: their run's loads
                else f"earlier run ({stored['load_before'][0]:.1f} -> {stored['load_after'][0]:.1f})")
        lines.append(f"| {name} | `{r['command']}` | {r['n_timesteps']} | {r['wall_s']} | "
                     f"{r['return_mean']:.1f} ± {r['return_std']:.1f} ({r['eval_episodes']} episodes) | {when} |")
    OUT.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
