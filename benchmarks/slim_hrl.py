"""skill_hrl over SLIM's skills against PPO from scratch on PlayTable's push_to_target (issue 20, items 5-6).

The protocol is pre-registered in ``benchmarks/results/slim_hrl_protocol.md``; this script only
runs it: per seed S, skill_hrl over the skills of the SLIM benchmark's slim run of seed S, and PPO
from scratch, at the same env-step budget (two runs at a time, one thread each); then
``evaluate.py -n 50`` on each, and a table of the final success rate and return per arm, every
seed's value and rliable's 95% interval of the mean over seeds (``selfgym.compare``; needs the
``compare`` extra).

    python benchmarks/slim_hrl.py --dry-run
    python benchmarks/slim_hrl.py --skills-logs /path/to/logs/slim_runs   # the SLIM benchmark's runs
    python benchmarks/slim_hrl.py --budget 4000 --seeds 0 --skills-run logs/slim/... --out slim_hrl_pilot

    python benchmarks/slim_hrl.py --tables-only          # the table from the runs finished so far
    python benchmarks/slim_hrl.py --smoke --skills-logs /tmp/copy/of/slim_runs   # seed 0, 1,000 steps, into /tmp

Writes ``benchmarks/results/<out>.{json,md}`` (each finished run also at once to
``<out>_runs.jsonl``, a crashed run with its error; a restart skips the (arm, seed) runs finished
there); run folders go to ``logs/<out>_runs/`` (not committed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from selfgym.compare import interval_estimates, wilson
from selfgym.metrics import read_metrics

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
ENV, ENV_KWARGS = "selfgym/PlayTable-v0", ["--env-kwargs", "task:push_to_target"]
BUDGET = 434_176  # set by the protocol's rule from the pilot (slim_hrl_protocol.md, amendment 1): 53 x 8,192
N_ENVS, EVAL_EPISODES, CURVE_POINTS = 4, 50, 10
ARMS = ("skill_hrl", "ppo")
SMOKE = Path("/tmp/selfgym_smoke/slim_hrl")  # --smoke writes here, never to benchmarks/results


def skills_for(seed: int, args: argparse.Namespace) -> Path:
    """The slim run whose skills skill_hrl of this seed uses: the SLIM benchmark's run of the same seed."""
    if args.skills_run:
        return Path(args.skills_run).resolve()
    logs = Path(args.skills_logs)
    before_tune = logs / f"slim_seed{seed}" / "slim" / f"{ENV.replace('/', '-')}_1"  # benchmarks/slim.py's own loop
    if before_tune.exists() or not (logs / "slim" / "runs").is_dir():
        return before_tune.resolve()
    import slim  # benchmarks/slim.py on tune.py: the slim arm's trial of this seed in <logs>/slim/runs/
    from tune_bench import trial_runs

    found = [run for run, config, _ in trial_runs(logs / "slim") if config["seed"] == seed and slim.arm_of("slim", config) == "slim"]
    return found[0].resolve() if found else before_tune.resolve()


def commands(arm: str, seed: int, budget: int, logs: Path, skills: Path) -> tuple[list[str], Path]:
    """(train.py command, run folder) for one arm and seed; each run gets its own log folder."""
    folder = logs / f"{arm}_seed{seed}"
    agent = ["--agent", "skill_hrl", "-params", f"skills_run:{skills}"] if arm == "skill_hrl" else ["--agent", "ppo"]
    train = [sys.executable, str(ROOT / "train.py"), "--env", ENV, *ENV_KWARGS, *agent, "-n", str(budget),
             "--n-envs", str(N_ENVS), "--seed", str(seed), "--num-threads", "1",
             "--eval-freq", str(max(budget // CURVE_POINTS, 1)), "--eval-episodes", "10", "--no-final-eval", "-f", str(folder)]
    return train, folder / agent[1] / f"{ENV.replace('/', '-')}_1"


def run_one(arm: str, seed: int, budget: int, logs: Path, skills: Path) -> dict:
    train, run = commands(arm, seed, budget, logs, skills)
    shutil.rmtree(logs / f"{arm}_seed{seed}", ignore_errors=True)  # a crashed earlier try: train.py would make _2
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    evaluate = [sys.executable, str(ROOT / "evaluate.py"), "--run", str(run), "-n", str(EVAL_EPISODES)]
    for command in (train, evaluate):
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command[1:])} exited {done.returncode}: {done.stderr[-2000:]}")
    summary = json.loads((run / "eval.json").read_text())
    curve = success_curve(run / "metrics.csv")
    status = json.loads((run / "status.json").read_text())
    return {"arm": arm, "seed": seed, "run": str(run), "train_command": " ".join(train[1:]),
            "env_steps": int(status["num_timesteps"]), "train_seconds": status.get("train_seconds"),
            "success_rate": float(summary["success_rate"]), "return_mean": float(summary["return_mean"]),
            "eval_success_curve": curve}


def success_curve(metrics: Path) -> list[tuple[int, float]]:
    """(steps, eval_success_rate) of the rows that have both: most rows carry no evaluation, and the
    trainer's final flush row leaves cells empty."""
    return [(int(r["steps"]), r["eval_success_rate"]) for r in read_metrics(metrics)
            if r.get("eval_success_rate") is not None and r.get("steps") is not None]


def table(rows: list[dict]) -> dict[str, dict]:
    """Per arm and measure: seeds' values, mean with rliable's 95% interval; success also pooled (Wilson)."""
    out = {}
    for arm in ARMS:
        mine = [r for r in rows if r["arm"] == arm]
        if not mine:  # a partial table: this arm has no finished run yet
            continue
        for measure in ("success_rate", "return_mean"):
            values = [r[measure] for r in mine]
            cell = {"seeds": values, **interval_estimates(np.array(values)[:, None], reps=2000, seed=0)}
            if measure == "success_rate":
                cell["wilson_pooled"] = wilson(sum(round(v * EVAL_EPISODES) for v in values), EVAL_EPISODES * len(values))
            out[f"{arm}/{measure}"] = cell
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", type=int, default=BUDGET)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--skills-logs", default=str(ROOT / "logs" / "slim_runs"),
                        help="benchmarks/slim.py's run folders (slim_seed<S>/slim/..., or its tune.py experiments slim/runs/...)")
    parser.add_argument("--skills-run", help="one slim run for every seed (pilots only)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default="slim_hrl")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--tables-only", action="store_true", help="no training: the table from <out>_runs.jsonl")
    parser.add_argument("--smoke", action="store_true",
                        help=f"the pipeline end to end: seed 0, 1,000 env steps, into {SMOKE} (not results)")
    args = parser.parse_args()
    if args.budget is None or args.budget < 1:
        sys.exit(f"slim_hrl: --budget must be a number of env steps >= 1 (the protocol's B), got {args.budget}")
    results = SMOKE if args.smoke else RESULTS
    if args.smoke:
        args.budget, args.seeds = 1000, args.seeds[:1]
    logs, jsonl = (SMOKE if args.smoke else ROOT / "logs") / f"{args.out}_runs", results / f"{args.out}_runs.jsonl"
    jobs = [(arm, seed) for seed in args.seeds for arm in ARMS]
    if args.dry_run:
        for arm, seed in jobs:
            print(" ".join(commands(arm, seed, args.budget, logs, skills_for(seed, args))[0]))
        return
    from tune_bench import recorded_runs, run_recorded

    if args.tables_only:
        latest = recorded_runs(jsonl, ("arm", "seed"))
        rows = [latest[job] for job in jobs if latest.get(job, {}).get("returncode") == 0]
    else:
        missing = [str(skills_for(s, args)) for s in args.seeds if not (skills_for(s, args) / "config.yaml").exists()]
        if missing:
            sys.exit(f"slim_hrl: no skills run at {', '.join(missing)}; run benchmarks/slim.py first or pass --skills-logs")
        rows = run_recorded({job: (lambda job=job: run_one(*job, args.budget, logs, skills_for(job[1], args)))
                             for job in jobs}, ("arm", "seed"), jsonl, args.workers)
    failed = [r for job, r in recorded_runs(jsonl, ("arm", "seed")).items() if job in jobs and r["returncode"] != 0]
    write_tables(rows, failed, [f"{arm} seed {seed}" for arm, seed in jobs if not any(
        r["arm"] == arm and r["seed"] == seed for r in rows)], args, results)
    if failed:
        raise SystemExit(f"{len(failed)} of {len(jobs)} runs failed (see {jsonl}): {[(r['arm'], r['seed']) for r in failed]}")


def write_tables(rows: list[dict], failed: list[dict], missing: list[str], args: argparse.Namespace, results: Path) -> None:
    """<out>.json/.md from the finished runs; a partial table names the runs it lacks."""
    cells = table(rows)
    command = " ".join(["python benchmarks/slim_hrl.py", *sys.argv[1:]])
    result = {"command": command, "budget": args.budget, "seeds": args.seeds, "runs": rows, "table": cells,
              "failed": failed, "missing": missing, "load_average": os.getloadavg()}
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{args.out}.json").write_text(json.dumps(result, indent=1))
    lines = [f"# skill_hrl (SLIM skills) vs PPO from scratch, push_to_target ({args.budget} env steps, seeds {args.seeds})",
             "", f"`{command}`", "", "| arm | success rate (end of episode) | return |", "|---|---|---|"]
    for arm in ARMS:
        if f"{arm}/success_rate" not in cells:
            continue
        success, ret = cells[f"{arm}/success_rate"], cells[f"{arm}/return_mean"]
        lines.append(f"| {arm} | {success['mean']:.3f} [{success['mean_ci'][0]:.3f}, {success['mean_ci'][1]:.3f}] "
                     f"({', '.join(f'{v:.2f}' for v in success['seeds'])}; pooled Wilson "
                     f"[{success['wilson_pooled'][0]:.3f}, {success['wilson_pooled'][1]:.3f}]) | "
                     f"{ret['mean']:.1f} [{ret['mean_ci'][0]:.1f}, {ret['mean_ci'][1]:.1f}] "
                     f"({', '.join(f'{v:.1f}' for v in ret['seeds'])}) |")
    if missing:
        lines += ["", f"Partial table: no finished run for {', '.join(missing)}."]
    (results / f"{args.out}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
