"""Issue 4's learning bar: SAC opens PlayTable's drawer, run exactly as a user would.

Each seed runs ``python train.py --env selfgym/PlayTable-v0 --env-kwargs task:open_drawer --agent sac``
(hyperparams/sac.yml) as its own single-thread process (``--parallel`` of them at a time), then
``evaluate.py``'s evaluation of the final model over ``--episodes`` deterministic episodes.
Prints and stores benchmarks/results/play_table_sac_drawer.{json,md}: per seed the evaluate.py
success rate, the in-training evaluation curve, wall time and steps/s, with the load average.

    python benchmarks/play_table_sac_drawer.py --seeds 2 3 --parallel 2 [--episodes 20] [--logs DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "play_table_sac_drawer"
COMMAND = ["train.py", "--env", "selfgym/PlayTable-v0", "--env-kwargs", "task:open_drawer", "--agent", "sac"]


def train_command(seed: int, logs: str, eval_freq: int, extra: list[str]) -> list[str]:
    return [sys.executable, *COMMAND, "--seed", str(seed), "-f", logs, "--num-threads", "1",
            "--eval-freq", str(eval_freq), "--eval-episodes", "10", "--no-final-eval", *extra]


def eval_curve(run: Path) -> list[tuple[int, float]]:
    """(steps, success rate) of every in-training evaluation in the run's metrics.csv."""
    from selfgym.metrics import read_metrics

    return [(int(r["steps"]), r["eval_success_rate"]) for r in read_metrics(run / "metrics.csv")
            if r.get("eval_success_rate") is not None]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[2, 3])
    p.add_argument("--parallel", type=int, default=2, help="seeds trained at once (one thread each)")
    p.add_argument("--episodes", type=int, default=20, help="evaluate.py episodes per seed")
    p.add_argument("--eval-freq", type=int, default=10000)
    p.add_argument("--logs", default=None, help="run folders go here (default: a temporary folder)")
    p.add_argument("--out", default=str(OUT), help="results path without suffix (.json and .md are written)")
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more train.py flags, e.g. -n 50000")
    args = p.parse_args()
    from selfgym.evaluation import evaluate_run

    logs = args.logs or tempfile.mkdtemp(prefix="sac_drawer_")
    results = {"command": "python " + " ".join(COMMAND), "extra_flags": args.extra, "seeds": {},
               "eval_episodes": args.episodes, "load_before": os.getloadavg(), "logs": logs}
    pending = list(args.seeds)
    running: dict[int, tuple[subprocess.Popen, float, Path]] = {}
    while pending or running:
        while pending and len(running) < args.parallel:
            seed = pending.pop(0)
            folder = Path(logs) / f"seed{seed}"
            log = open(Path(logs) / f"seed{seed}.log", "w")
            proc = subprocess.Popen(train_command(seed, str(folder), args.eval_freq, args.extra), cwd=ROOT,
                                    stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
            running[seed] = (proc, time.time(), folder)
            print(f"seed {seed}: training (log {log.name})", flush=True)
        time.sleep(5)
        for seed, (proc, start, folder) in list(running.items()):
            if proc.poll() is None:
                continue
            del running[seed]
            wall = time.time() - start
            if proc.returncode != 0:
                results["seeds"][seed] = {"error": f"train.py exited with {proc.returncode}; see {folder}.log"}
                print(f"seed {seed}: FAILED ({proc.returncode})", flush=True)
                continue
            run = next((folder / "sac").iterdir())
            summary = evaluate_run(run, n_episodes=args.episodes)
            curve = eval_curve(run)
            steps = summary["num_timesteps"]
            results["seeds"][seed] = {"run": str(run), "steps": steps, "wall_s": round(wall), "steps_per_s": round(steps / wall, 1),
                                      "evaluate_success_rate": summary["success_rate"], "evaluate_return_mean": summary["return_mean"],
                                      "evaluate_length_mean": summary["length_mean"], "training_eval_curve": curve,
                                      "load_after": os.getloadavg()}
            print(f"seed {seed}: evaluate.py success {summary['success_rate']:.2f} over {args.episodes} episodes, "
                  f"{steps} steps in {wall / 60:.1f} min; in-training evals {[round(s, 1) for _, s in curve]}", flush=True)
    done = [r for r in results["seeds"].values() if "evaluate_success_rate" in r]
    if done:
        results["mean_success_rate"] = sum(r["evaluate_success_rate"] for r in done) / len(done)
        results["min_success_rate"] = min(r["evaluate_success_rate"] for r in done)
    out = Path(args.out)
    out.parent.mkdir(exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    lines = [f"# SAC on PlayTable open_drawer: `{results['command']}` {' '.join(args.extra)}", "",
             f"evaluate.py: {args.episodes} deterministic episodes of the final model per seed; in-training evaluations: "
             f"10 episodes every {args.eval_freq} steps. Load average before: {results['load_before'][0]:.1f}.", "",
             "| seed | steps | wall (min) | steps/s | evaluate.py success | in-training evaluation success |", "|---|---|---|---|---|---|"]
    for seed, r in results["seeds"].items():
        if "error" in r:
            lines.append(f"| {seed} | - | - | - | {r['error']} | - |")
            continue
        curve = " ".join(f"{s:.1f}" for _, s in r["training_eval_curve"])
        lines.append(f"| {seed} | {r['steps']} | {r['wall_s'] / 60:.1f} | {r['steps_per_s']} | **{r['evaluate_success_rate']:.2f}** | {curve} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
