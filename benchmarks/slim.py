"""SLIM against one critic on the summed reward and DIAYN alone, on PlayTable free play (issue 20, item 6).

The protocol is pre-registered in ``benchmarks/results/slim_protocol.md``; this script only runs
it, through tune.py: the slim and diayn arms are one experiment of agent ``slim`` (the searched key
``weights``: the shipped 1/1/1 weights of ``hyperparams/slim.yml``, or ``{'diayn': 1.0}``), the
summed arm one experiment of agent ``slim_summed``; ``--seeds`` of each, two trials at a time, one
thread each (9 runs in 5 slots, as the budget rule assumed). Each trial's config is the protocol's
train.py command's (checked before Ray starts; the slim arm names its default weights
explicitly). Then ``evaluate.py --run <run> -n 10`` on every run and one table of the protocol's
measures, every seed's value and rliable's 95% interval of the mean over seeds
(``selfgym.compare.interval_estimates``, 2,000 resamples), plus compare.py's learning curves of the
streams. Unlike the first runner, the runs go arm by arm, not seed by seed.

    python benchmarks/slim.py --dry-run                  # print the commands
    python benchmarks/slim.py                            # about 2 hours on 2 cores
    python benchmarks/slim.py --budget 40000 --seeds 0 --out slim_pilot   # a pilot

Writes ``benchmarks/results/<out>.{json,md}`` (each evaluated run also at once to ``<out>_runs.jsonl``),
each run's skills picture to ``benchmarks/results/<out>_skills/`` and compare.py's curves to
``<out>_curves_*.png``; the experiments go to ``logs/<out>_runs/<slim|summed>/`` (not committed).
An interrupted experiment is continued (tune.py --resume) when the script is run again.
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

from tune_bench import ROOT, RESULTS, check_out, compare_runs, run_tune, trial_runs

ENV = "selfgym/PlayTable-v0"
BUDGET = 620_000  # set by the protocol's rule from the pilot (slim_protocol.md, amendment 1)
ARMS = {
    "slim": ["--agent", "slim"],
    "summed": ["--agent", "slim_summed"],
    "diayn": ["--agent", "slim", "-params", "weights:{'diayn': 1.0}"],
}
#: tune.py experiments: name -> (agent, the ``weights`` grid value of each arm it runs, or None)
EXPERIMENTS = {
    "slim": ("slim", {"slim": "{'diayn': 1.0, 'object_reach': 1.0, 'safety': 1.0}", "diayn": "{'diayn': 1.0}"}),
    "summed": ("slim_summed", {"summed": None}),
}
MEASURES = ("skills_moving_object_5cm", "skill_object_displacement", "skill_final_position_diversity",
            "safety_violations_per_episode", "skill_grasp_rate")  # the last is exploratory (protocol amendment 2)
CURVES = ("stream_diayn_reward_mean", "stream_object_reach_reward_mean", "stream_safety_reward_mean",
          "reward_diayn_accuracy", "ep_return_mean")


def tune_command(experiment: str, seeds: list[int], budget: int, workers: int) -> list[str]:
    """tune.py's flags for one experiment (without --exp-dir)."""
    agent, arms = EXPERIMENTS[experiment]
    grid = [v for v in arms.values() if v is not None]
    return ["--env", ENV, "--agent", agent, "-n", str(budget), "--seeds", *map(str, seeds), "--num-threads", "1",
            "--eval-freq", "0", "--no-final-eval", "--max-concurrent", str(workers), "--cpus-per-trial", "1",
            *(["--grid", "weights:" + ",".join(grid)] if grid else [])]


def arm_of(experiment: str, config: dict) -> str:
    """The arm a trial's config.yaml belongs to (by its weights)."""
    from selfgym.config import parse_value

    arms = EXPERIMENTS[experiment][1]
    if len(arms) == 1:
        return next(iter(arms))
    return next(arm for arm, value in arms.items() if parse_value(value) == config["hyperparams"]["weights"])


def evaluate(arm: str, run: Path, seed: int, out: str) -> dict:
    """The protocol's ``evaluate.py --run <run> -n 10``; the row is appended to ``<out>_runs.jsonl`` at once."""
    command = [sys.executable, str(ROOT / "evaluate.py"), "--run", str(run), "-n", "10"]
    subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True)
    summary = json.loads((run / "eval.json").read_text())
    pictures = RESULTS / f"{out}_skills"
    pictures.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run / "skills.png", pictures / f"{arm}_seed{seed}.png")
    row = {"arm": arm, "seed": seed, "run": str(run), "evaluate_command": " ".join(["python", *command[1:]]),
           "measures": {m: summary["metrics"][m]["mean"] for m in MEASURES}}
    with open(RESULTS / f"{out}_runs.jsonl", "a") as rows:
        rows.write(json.dumps(row) + "\n")  # each finished run is kept even if the whole table never is
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", type=int, default=BUDGET)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default="slim")
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args()
    logs = ROOT / "logs" / f"{args.out}_runs"
    if args.dry_run:
        for name in EXPERIMENTS:
            flags = tune_command(name, args.seeds, args.budget, args.workers)
            print(" ".join(["python tune.py", *(f'"{a}"' if " " in a else a for a in flags), "--exp-dir", str(logs / name)]))
        print(f"then per run: python evaluate.py --run {logs}/<experiment>/runs/<trial>/<agent>/{ENV.replace('/', '-')}_1 -n 10")
        return
    from selfgym.compare import interval_estimates

    check_out(args.out)

    rows, commands = [], {}
    for name in EXPERIMENTS:
        exp = logs / name
        tuned = run_tune(tune_command(name, args.seeds, args.budget, args.workers), exp,
                         resume=(exp / "selfgym_tune.json").exists())
        commands[name] = tuned
        for run, config, status in trial_runs(exp):
            if status.get("state") != "finished":
                print(f"{run}: {status.get('state', 'no status')}, not evaluated (see {tuned['log']})")
                continue
            rows.append(evaluate(arm_of(name, config), run, int(config["seed"]), args.out))
    rows.sort(key=lambda r: (list(ARMS).index(r["arm"]), r["seed"]))
    table = {}
    for arm in ARMS:
        for measure in MEASURES:
            values = [r["measures"][measure] for r in rows if r["arm"] == arm]
            if not values:
                continue
            estimate = interval_estimates(np.asarray(values, dtype=np.float64).reshape(-1, 1), 2000, 0)
            table[f"{arm}/{measure}"] = {"seeds": values, "mean": estimate["mean"], "ci95": estimate["mean_ci"]}
    try:
        curves = compare_runs([logs / name / "runs" for name in EXPERIMENTS], list(CURVES), logs / "compare")
        curve_files = [f for f in curves.files if f.suffix == ".png"]
    except ValueError as exc:  # compare.py's CompareError: e.g. no run logged yet
        curves, curve_files = None, []
        print(f"(no learning curves: {exc})")
    result = {"command": " ".join(["python benchmarks/slim.py", *sys.argv[1:]]), "tune": commands,
              "budget": args.budget, "seeds": args.seeds, "runs": rows, "table": table,
              "load_average": os.getloadavg(), "curves": curves.summary if curves else None}
    (RESULTS / f"{args.out}.json").write_text(json.dumps(result, indent=1))
    lines = [f"# SLIM vs summed vs DIAYN alone ({ENV}, {args.budget} steps, seeds {args.seeds})", "",
             f"`{result['command']}`", "", *(f"- `{c['command']}` ({c['wall_s'] / 60:.1f} min)" for c in commands.values()),
             "", "| arm | " + " | ".join(MEASURES) + " |", "|---" * (len(MEASURES) + 1) + "|"]
    for arm in ARMS:
        cells = []
        for measure in MEASURES:
            cell = table.get(f"{arm}/{measure}")
            cells.append("–" if cell is None else f"{cell['mean']:.3g} [{cell['ci95'][0]:.3g}, {cell['ci95'][1]:.3g}] "
                         f"({', '.join(f'{v:.3g}' for v in cell['seeds'])})")
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    if curves is not None:
        arms = {}  # compare.py's configuration label -> arm
        for metric in curves.summary["metrics"].values():
            for crow in metric["rows"]:
                arms.update({crow["label"]: r["arm"] for r in rows if r["run"] in crow["runs"]})
        lines += ["", "## Learning curves (compare.py over the run folders)", "",
                  "Configurations: " + "; ".join(f"`{label}` = {arm}" for label, arm in arms.items()), "", curves.text]
    for picture in curve_files:
        shutil.copyfile(picture, RESULTS / f"{args.out}_{picture.name}")
    (RESULTS / f"{args.out}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
