"""LMA3 on CookingWorld: does LM goal generation discover and master more goals than relabelling alone?

The protocol is pre-registered in ``benchmarks/results/lma3_protocol.md``; this script only runs
it: train.py then evaluate.py for every arm and seed (two runs at a time, one thread each),
then one table (goals discovered, goals mastered, held-out success; every seed and the mean)
and the curves of goals discovered and mastered against environment steps (50 per episode)
with rliable's 95% bootstrap bands over seeds, drawn by selfgym.compare.

    python benchmarks/lma3.py --dry-run                          # print the commands
    python benchmarks/lma3.py                                    # the protocol (see its budget)
    python benchmarks/lma3.py --arms oracle --seeds 0 --out lma3_pilot --oracle-steps 2000   # a pilot
    python benchmarks/lma3.py --model /path/to/local/model       # a larger local model (GPU: runs unchanged)
    python benchmarks/lma3.py --tables-only                      # the table from the runs finished so far
    python benchmarks/lma3.py --smoke                            # every arm, 1-2 episodes, into /tmp (no results)

Writes ``benchmarks/results/<out>.{json,md}`` and ``<out>_curves/`` (PNG); run folders go to
``logs/<out>_runs/`` (not committed). Each run's line is appended to ``<out>_runs.jsonl`` as it
finishes (a crashed run with its error); a restart skips the (arm, seed) runs finished there.
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

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
ENV = "selfgym/CookingWorld-v0"
LM_STEPS = 2_500  # 50 episodes per LM run: the protocol's budget rule, amendment 2 (lma3_protocol.md)
ORACLE_STEPS = 10_000  # 200 episodes per oracle run
ARMS = {
    # name: (hyperparameters, uses the LM)
    "lma3": (["relabeler:lm", "reward:lm", "generator:lm", "decompose:True"], True),
    "lma3_no_generator": (["relabeler:lm", "reward:lm", "generator:none"], True),
    "lma3_no_decomposition": (["relabeler:lm", "reward:lm", "generator:lm", "decompose:False"], True),
    "oracle": (["relabeler:oracle", "reward:oracle", "generator:oracle", "decompose:True"], False),
    "oracle_no_generator": (["relabeler:oracle", "reward:oracle", "generator:none"], False),
    # amendment 1 (before any run): the hand-coded-goal baseline, its library fixed to the grammar's goals
    "hand_coded": (["relabeler:oracle", "reward:oracle", "generator:none", "goal_space:hand"], False),
}
MEASURES = ("goals_discovered", "goals_mastered", "goals_mastered_oracle", "heldout_success")
SMOKE = Path("/tmp/selfgym_smoke/lma3")  # --smoke writes here, never to benchmarks/results


def commands(arm: str, seed: int, logs: Path, lm_steps: int, oracle_steps: int, model: str) -> tuple[list[str], Path]:
    params, uses_lm = ARMS[arm]
    folder = logs / f"{arm}_seed{seed}"
    steps = lm_steps if uses_lm else oracle_steps
    train = [sys.executable, str(ROOT / "train.py"), "--env", ENV, "--agent", "lma3", "-n", str(steps),
             "--seed", str(seed), "--num-threads", "1", "--eval-freq", "0", "--no-final-eval", "-f", str(folder),
             "-params", *params, f"model:{model}"]
    return train, folder / "lma3" / f"{ENV.replace('/', '-')}_1"


def run_one(arm: str, seed: int, logs: Path, lm_steps: int, oracle_steps: int, model: str) -> dict:
    train, run = commands(arm, seed, logs, lm_steps, oracle_steps, model)
    shutil.rmtree(logs / f"{arm}_seed{seed}", ignore_errors=True)  # a crashed earlier try: train.py would make _2
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    evaluate = [sys.executable, str(ROOT / "evaluate.py"), "--run", str(run), "-n", "1"]
    for command in (train, evaluate):
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr[-2000:]}")
    suite = json.loads((run / "eval.json").read_text())["task_suite"]
    return {"arm": arm, "seed": seed, "run": str(run), "episodes": suite["episodes"],
            "goals_discovered": suite["goals_discovered"], "goals_mastered": suite["goals_mastered"],
            "goals_mastered_oracle": suite["goals_mastered_oracle"],
            "heldout_success": suite["heldout_success"], "mastered_examples": suite["mastered_examples"][:5],
            **lm_cost(run), "command": " ".join(train)}


def lm_cost(run: Path) -> dict:
    """LM seconds, calls and parse failures of the training, from the run's goals.json (written at
    the end of training). Not from eval.json: before 2026-11-30 a loaded agent's role counters
    started at zero, so evaluate.py reported 0 s and 0 failures for every run."""
    report = json.loads((run / "goals.json").read_text())
    lm = report.get("lm_stats") or {}
    return {"lm_seconds": sum(r["seconds"] for r in lm.values()),
            "lm_parse_failures": sum(r["parse_failures"] for r in lm.values()),
            "lm_answers": {role: r["prompts"] for role, r in lm.items()},
            "lm_failures": {role: r["parse_failures"] for role, r in lm.items()},
            "goals_generated": sum(1 for _ in report.get("generated_examples", []))}


def estimate(values: list[float]) -> dict:
    """Mean over seeds with rliable's 95% stratified-bootstrap interval (the protocol's analysis)."""
    from selfgym.compare import interval_estimates  # rliable: the 'compare' extra

    if len(values) < 2:
        return {"mean": float(np.mean(values)), "mean_ci": [float("nan"), float("nan")]}
    return interval_estimates(np.asarray(values, dtype=np.float64).reshape(-1, 1), 2000, 0)


def table(rows: list[dict]) -> tuple[list[str], dict]:
    """The markdown table (mean [95% interval] (every seed)) and the estimates it shows."""
    lines = ["| arm | episodes | " + " | ".join(MEASURES) + " | LM s / episode | goals generated |",
             "|---|---|" + "---|" * (len(MEASURES) + 2)]
    estimates: dict = {}
    for arm in ARMS:
        mine = sorted((r for r in rows if r["arm"] == arm), key=lambda r: r["seed"])
        if not mine:
            continue
        cells = []
        for m in MEASURES:
            values = [r[m] for r in mine if r[m] is not None]
            est = estimates.setdefault(arm, {})[m] = estimate(values) if values else None
            cells.append(f"{est['mean']:.3g} [{est['mean_ci'][0]:.3g}, {est['mean_ci'][1]:.3g}] "
                         f"({', '.join(f'{v:.3g}' for v in values)})" if est else "n/a")
        per_episode = [r["lm_seconds"] / r["episodes"] for r in mine if r.get("lm_seconds") is not None]
        cells.append(f"{np.mean(per_episode):.3g}" if per_episode else "n/a")
        cells.append(", ".join(str(r.get("goals_generated", "n/a")) for r in mine))
        lines.append(f"| {arm} | {mine[0]['episodes']} | " + " | ".join(cells) + " |")
    return lines, estimates


def decide(estimates: dict, arm: str, ablation: str) -> str:
    """The protocol's rule (amendment 2, item 4): supported if ``arm``'s mean beats ``ablation``'s on
    goals discovered and on goals mastered per the oracle, with disjoint 95% intervals on at least
    one; contradicted if ``ablation``'s mean is higher on both; otherwise inconclusive."""
    if arm not in estimates or ablation not in estimates:
        return f"{arm} vs {ablation}: not decided (an arm has no finished run)"
    pairs = [(estimates[arm][m], estimates[ablation][m]) for m in ("goals_discovered", "goals_mastered_oracle")]
    higher = [a["mean"] > b["mean"] for a, b in pairs]
    apart = [a["mean_ci"][0] > b["mean_ci"][1] for a, b in pairs]
    if all(higher) and any(apart):
        verdict = "supported"
    elif all(a["mean"] < b["mean"] for a, b in pairs):
        verdict = "contradicted"
    else:
        verdict = "inconclusive"
    shown = "; ".join(f"{m}: {a['mean']:.3g} vs {b['mean']:.3g}" for m, (a, b) in
                      zip(("discovered", "mastered per the oracle"), pairs))
    return f"{arm} vs {ablation}: **{verdict}** ({shown}; intervals apart on {sum(apart)} of 2)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--lm-steps", type=int, default=LM_STEPS)
    ap.add_argument("--oracle-steps", type=int, default=ORACLE_STEPS)
    ap.add_argument("--model", default="default", help="the LM roles' model: 'default' or a local path")
    ap.add_argument("--parallel", type=int, default=2)
    ap.add_argument("--out", default="lma3")
    ap.add_argument("--dry-run", action="store_true")
    ap.add_argument("--tables-only", action="store_true", help="no training: the table from <out>_runs.jsonl")
    ap.add_argument("--smoke", action="store_true",
                    help=f"the pipeline end to end at 1 LM / 2 oracle episodes, seed 0, into {SMOKE} (not results)")
    args = ap.parse_args()
    results, logs = RESULTS, ROOT / "logs" / f"{args.out}_runs"
    if args.smoke:
        args.lm_steps, args.oracle_steps, args.seeds = 50, 100, args.seeds[:1]
        results, logs = SMOKE, SMOKE / f"{args.out}_runs"
    record = results / f"{args.out}_runs.jsonl"
    jobs = [(arm, seed) for arm in args.arms for seed in args.seeds]
    if args.dry_run:
        for arm, seed in jobs:
            print(" ".join(commands(arm, seed, logs, args.lm_steps, args.oracle_steps, args.model)[0]))
        return
    from tune_bench import recorded_runs, run_recorded

    if args.tables_only:
        latest = recorded_runs(record, ("arm", "seed"))
        rows = [latest[job] for job in jobs if latest.get(job, {}).get("returncode") == 0]
    else:
        rows = run_recorded({job: (lambda job=job: run_one(*job, logs, args.lm_steps, args.oracle_steps, args.model))
                             for job in jobs}, ("arm", "seed"), record, args.parallel)
    failed = [r for job, r in recorded_runs(record, ("arm", "seed")).items() if job in jobs and r["returncode"] != 0]
    write_tables(rows, failed, args, results)
    if failed:
        raise SystemExit(f"{len(failed)} of {len(jobs)} runs failed (see {record}): {[(r['arm'], r['seed']) for r in failed]}")


def write_tables(rows: list[dict], failed: list[dict], args: argparse.Namespace, results: Path) -> None:
    """<out>.json/.md from the finished runs (a partial table says which runs it lacks), then the curves."""
    curves = results / f"{args.out}_curves"
    missing = [f"{arm} seed {seed}" for arm in args.arms for seed in args.seeds
               if not any(r["arm"] == arm and r["seed"] == seed for r in rows)]
    results.mkdir(parents=True, exist_ok=True)
    for row in rows:  # records made before lm_cost existed read 0 LM seconds off eval.json
        if Path(row["run"], "goals.json").exists():
            row.update(lm_cost(Path(row["run"])))
    lines, estimates = table(rows)
    md = [f"# LMA3 on CookingWorld ({args.out})", "", f"Command: `python benchmarks/lma3.py {' '.join(sys.argv[1:])}`",
          "", "Mean over seeds [rliable's 95% stratified-bootstrap interval] (each seed); held-out success: "
          "20 human-written goals x 3 test layouts, oracle-judged. LM seconds and generated goals from each "
          "run's goals.json.", "", *lines, "",
          "Decision rule (protocol, amendment 2): " + decide(estimates, "lma3", "lma3_no_generator") + ".",
          "Secondary, the loop itself: " + decide(estimates, "oracle", "oracle_no_generator") + ".", "",
          f"Curves with 95% bands: `{curves}/`.", ""]
    if missing:
        md += [f"Partial table: no finished run for {', '.join(missing)}.", ""]
    (results / f"{args.out}.json").write_text(json.dumps({"rows": rows, "failed": failed, "missing": missing,
                                                          "estimates": estimates, "args": vars(args)}, indent=1))
    (results / f"{args.out}.md").write_text("\n".join(md))
    print("\n".join(md))
    if rows:
        try:  # the table above is written whatever happens to the pictures
            from selfgym.compare import compare  # rliable: the 'compare' extra

            compare([Path(r["run"]) for r in rows],
                    metrics=["lma3_goals_discovered", "lma3_goals_mastered", "lma3_goals_mastered_oracle"], out=curves)
        except Exception as error:
            print(f"lma3: the curves were not drawn ({type(error).__name__}: {error}); the table is written", flush=True)


if __name__ == "__main__":
    main()
