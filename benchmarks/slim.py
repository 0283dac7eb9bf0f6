"""SLIM against one critic on the summed reward and DIAYN alone, on PlayTable free play (issue 20, item 6).

The protocol is pre-registered in ``benchmarks/results/slim_protocol.md``; this script only runs
it: the train.py / evaluate.py commands of every arm and seed (two at a time, one thread each),
then one table of the protocol's measures, every seed's value and rliable's 95% interval of the
mean over seeds (rliable: ``pip install rliable``; without it the table shows seeds and means).

    python benchmarks/slim.py --dry-run                  # print the commands
    python benchmarks/slim.py                            # about 2 hours on 2 cores
    python benchmarks/slim.py --budget 40000 --seeds 0 --out slim_pilot   # a pilot

Writes ``benchmarks/results/<out>.{json,md}`` (each finished run also at once to ``<out>_runs.jsonl``)
and each run's skills picture to
``benchmarks/results/<out>_skills/``; the run folders go to ``logs/<out>_runs/`` (not committed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
ENV = "selfgym/PlayTable-v0"
BUDGET = 620_000  # set by the protocol's rule from the pilot (slim_protocol.md, amendment 1)
ARMS = {
    "slim": ["--agent", "slim"],
    "summed": ["--agent", "slim_summed"],
    "diayn": ["--agent", "slim", "-params", "weights:{'diayn': 1.0}"],
}
MEASURES = ("skills_moving_object_5cm", "skill_object_displacement", "skill_final_position_diversity",
            "safety_violations_per_episode", "skill_grasp_rate")  # the last is exploratory (protocol amendment 2)


def commands(arm: str, seed: int, budget: int, logs: Path) -> tuple[list[str], Path]:
    """(train.py command, run folder) for one arm and seed; each run gets its own log folder."""
    folder = logs / f"{arm}_seed{seed}"
    train = [sys.executable, str(ROOT / "train.py"), "--env", ENV, *ARMS[arm], "-n", str(budget), "--seed", str(seed),
             "--num-threads", "1", "--eval-freq", "0", "--no-final-eval", "-f", str(folder)]
    agent = ARMS[arm][1]
    return train, folder / agent / f"{ENV.replace('/', '-')}_1"


def run_one(arm: str, seed: int, budget: int, logs: Path, pictures: Path) -> dict:
    train, run = commands(arm, seed, budget, logs)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(train, check=True, env=env, capture_output=True, text=True)
    evaluate = [sys.executable, str(ROOT / "evaluate.py"), "--run", str(run), "-n", "10"]
    subprocess.run(evaluate, check=True, env=env, capture_output=True, text=True)
    summary = json.loads((run / "eval.json").read_text())
    pictures.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run / "skills.png", pictures / f"{arm}_seed{seed}.png")
    row = {"arm": arm, "seed": seed, "run": str(run), "train_command": " ".join(train[1:]),
           "measures": {m: summary["metrics"][m]["mean"] for m in MEASURES}}
    with open(pictures.parent / f"{pictures.name.removesuffix('_skills')}_runs.jsonl", "a") as rows:
        rows.write(json.dumps(row) + "\n")  # each finished run is kept even if the whole table never is
    return row


def interval(values: list[float]) -> tuple[float, float] | None:
    """rliable's stratified-bootstrap 95% interval of the mean over seeds (None without rliable)."""
    try:
        from rliable import library as rly
    except ImportError:
        return None
    scores = {"x": np.asarray(values, dtype=np.float64).reshape(-1, 1)}
    _, cis = rly.get_interval_estimates(scores, lambda s: np.array([s.mean()]), reps=2000)
    return float(cis["x"][0, 0]), float(cis["x"][1, 0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", type=int, default=BUDGET)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default="slim")
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args()
    logs, pictures = ROOT / "logs" / f"{args.out}_runs", RESULTS / f"{args.out}_skills"
    jobs = [(arm, seed) for seed in args.seeds for arm in ARMS]
    if args.dry_run:
        for arm, seed in jobs:
            print(" ".join(commands(arm, seed, args.budget, logs)[0]))
        return
    with ThreadPoolExecutor(args.workers) as pool:
        rows = list(pool.map(lambda job: run_one(*job, args.budget, logs, pictures), jobs))
    table = {}
    for arm in ARMS:
        for measure in MEASURES:
            values = [r["measures"][measure] for r in rows if r["arm"] == arm]
            table[f"{arm}/{measure}"] = {"seeds": values, "mean": float(np.mean(values)), "ci95": interval(values)}
    result = {"command": " ".join(["python benchmarks/slim.py", *sys.argv[1:]]), "budget": args.budget,
              "seeds": args.seeds, "runs": rows, "table": table, "load_average": os.getloadavg()}
    (RESULTS / f"{args.out}.json").write_text(json.dumps(result, indent=1))
    lines = [f"# SLIM vs summed vs DIAYN alone ({ENV}, {args.budget} steps, seeds {args.seeds})", "",
             f"`{result['command']}`", "", "| arm | " + " | ".join(MEASURES) + " |", "|---" * (len(MEASURES) + 1) + "|"]
    for arm in ARMS:
        cells = []
        for measure in MEASURES:
            cell = table[f"{arm}/{measure}"]
            ci = f" [{cell['ci95'][0]:.3g}, {cell['ci95'][1]:.3g}]" if cell["ci95"] else ""
            cells.append(f"{cell['mean']:.3g}{ci} ({', '.join(f'{v:.3g}' for v in cell['seeds'])})")
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    (RESULTS / f"{args.out}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
