"""Issue 4's learning bar: SAC opens PlayTable's drawer, run exactly as a user would.

The seeds are one tune.py experiment, ``python tune.py --env selfgym/PlayTable-v0 --env-kwargs
task:open_drawer --agent sac --seeds ...`` (hyperparams/sac.yml), ``--parallel`` trials at a time
on one CPU (one torch thread) each; every trial is an ordinary run folder under
``<exp>/runs/``. Each final model is then evaluated by evaluate.py over ``--episodes``
deterministic episodes. The tables come from selfgym.compare: the in-training evaluation
(10 episodes every ``--eval-freq`` steps; final value per seed with rliable's interval and a
Wilson interval) and the evaluate.py success rate (rliable's interval over seeds, Wilson over the
pooled episodes) and return (rliable's interval), with each seed's wall time and steps/s.

    python benchmarks/play_table_sac_drawer.py --seeds 2 3 --parallel 2 [--episodes 20] [--exp-dir DIR]
    python benchmarks/play_table_sac_drawer.py --seeds 0 1 --extra -n 3000 --out play_table_sac_drawer_smoke   # smoke

Writes benchmarks/results/<--out>.{json,md} and <--out>_curves_*.png (the recorded results
before tune.py, play_table_sac_drawer*.{json,md}, are history and stay as they are).
``--resume`` continues an interrupted experiment (``--exp-dir``) and tabulates it.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from tune_bench import ROOT, check_out, compare_runs, evaluate_runs, final_eval_table, run_tune, store, trial_runs

COMMAND = ["--env", "selfgym/PlayTable-v0", "--env-kwargs", "task:open_drawer", "--agent", "sac"]


def eval_rows(run: Path) -> list[dict]:
    """The metrics.csv rows that hold an in-training evaluation."""
    from selfgym.metrics import read_metrics

    return [r for r in read_metrics(run / "metrics.csv") if r.get("eval_success_rate") is not None]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[2, 3])
    p.add_argument("--parallel", type=int, default=2, help="trials at once (tune.py --max-concurrent; one CPU each)")
    p.add_argument("--episodes", type=int, default=20, help="evaluate.py episodes per seed")
    p.add_argument("--eval-freq", type=int, default=10000)
    p.add_argument("--exp-dir", default=None, help="the tune.py experiment folder (default: logs/bench/<out>_<time>)")
    p.add_argument("--resume", action="store_true", help="continue the interrupted experiment in --exp-dir (with the flags it was started with)")
    p.add_argument("--out", default="play_table_sac_drawer_tune", help="results name under benchmarks/results/")
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more train.py flags, e.g. -n 50000")
    args = p.parse_args()
    if args.resume and not args.exp_dir:
        p.error("--resume needs --exp-dir (the experiment to continue)")
    if args.eval_freq < 1 or args.episodes < 1:
        p.error("--eval-freq and --episodes must be >= 1 (the in-training and final evaluations are the measures)")
    check_out(args.out)
    exp_dir = Path(args.exp_dir or ROOT / "logs" / "bench" / f"{args.out}_{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    tune_args = [*COMMAND, "--seeds", *map(str, args.seeds), "--max-concurrent", str(args.parallel),
                 "--cpus-per-trial", "1", "--num-threads", "1", "--eval-freq", str(args.eval_freq),
                 "--eval-episodes", "10", "--no-final-eval", "--metric", "eval_success_rate", *args.extra]
    load_before = os.getloadavg()
    tuned = run_tune(tune_args, exp_dir, resume=args.resume)
    trials = trial_runs(exp_dir)
    finished = [run for run, _, status in trials if status.get("state") == "finished"]
    evaluations = {"deterministic": evaluate_runs(finished, args.episodes, True, "eval")}
    comparison = compare_runs([exp_dir / "runs"], ["eval_success_rate", "eval_return_mean", "ep_return_mean"], exp_dir / "compare")
    final_md, final_rows = final_eval_table(exp_dir, evaluations)
    seeds = []
    for run, config, status in trials:
        seconds = status.get("train_seconds")
        steps = int(status.get("num_timesteps", 0))
        seeds.append({"seed": config["seed"], "run": str(run), "state": status.get("state", "unknown"), "steps": steps,
                      "wall_s": seconds, "steps_per_s": round(steps / seconds, 1) if seconds else None,
                      **{f"evaluate_{k}": v for k, v in evaluations["deterministic"].get(str(run), {}).items()
                         if k in ("success_rate", "return_mean", "length_mean")}})
    result = {"tune": tuned, "train_flags": tune_args, "exp_dir": str(exp_dir), "eval_episodes": args.episodes,
              "load_before": load_before, "load_after": os.getloadavg(), "seeds": seeds,
              "evaluate": final_rows, "compare": comparison.summary}
    lines = ["# SAC on PlayTable open_drawer through tune.py", "", f"`{tuned['command']}`", "",
             f"{len(trials)} trials, {args.parallel} at a time (one CPU each): {tuned['wall_s'] / 60:.1f} min wall for the "
             f"experiment{' (this call only: resumed with `' + tuned['resumed_with'] + '`)' if args.resume else ''}. Load average before / after: {load_before[0]:.1f} / {result['load_after'][0]:.1f}.", "",
             "| seed | state | steps | train wall (min) | steps/s | evaluate.py success | evaluate.py return |", "|---|---|---|---|---|---|---|"]
    for s in seeds:
        wall = f"{s['wall_s'] / 60:.1f}" if s["wall_s"] else "–"
        success = s.get("evaluate_success_rate")
        ret = s.get("evaluate_return_mean")
        lines.append(f"| {s['seed']} | {s['state']} | {s['steps']} | {wall} | {s['steps_per_s'] or '–'} | "
                     f"{'–' if success is None else f'**{success:.2f}**'} | {'–' if ret is None else f'{ret:.1f}'} |")
    lines += ["", f"## evaluate.py: {args.episodes} deterministic episodes of each seed's final model", "", final_md, "",
              "## In-training evaluations (compare.py; 10 deterministic episodes per evaluation)", ""]
    logged = {s["seed"]: len(eval_rows(Path(s["run"]))) for s in seeds if s["state"] == "finished"}
    if any(n < s["steps"] // args.eval_freq for s in seeds for n in [logged.get(s["seed"], 1 << 30)]):
        # SB3's off-policy agents write a metrics row at episode ends: the evaluation at the final
        # step is made by train.py but never reaches metrics.csv
        lines += [f"(metrics.csv holds {sorted(set(logged.values()))} in-training evaluations per seed, not the "
                  f"{max(s['steps'] for s in seeds) // args.eval_freq} made: the one at the last step is missing; "
                  "the final model's evaluation is evaluate.py's above.)", ""]
    lines.append(comparison.text)
    for path in store(args.out, result, "\n".join(lines) + "\n", [f for f in comparison.files if f.suffix == ".png"]):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
