"""Does exploration pay? PPO vs PPO + RND vs PPO + SimHash counts on a sparse-reward task.

Default task: ``selfgym/SparseGridShuffled-v0`` (envs/grid/sparse_grid.py): reward 1 only in the far
corner of a 15 x 15 room, 60 steps per episode, one-hot cell observation, and each cell maps the
4 actions to the 4 moves by its own fixed permutation, so drifting in one direction is still a
random walk (about 2 in 10,000 random episodes reach the goal). ``selfgym/SparseGrid-v0`` is the same
room with plain moves and (x, y) observations; PPO's own noise solves it, so it shows little.
(``--env MountainCar-v0`` works too, but needs several hundred thousand steps per run.)

The methods and seeds are one tune.py experiment: each method is a value of the searched key
``reward`` (``--grid 'reward:none,"rnd:...","simhash:..."'``), each seed a trial, and every trial an
ordinary train.py run folder under ``<exp>/runs/``, with the same PPO settings, step budget and
seeds. The bonus fades out linearly over the first 60% of the budget (``{decay}`` in a method's
spec becomes the reward module's ``schedule=linear,decay_steps=<0.6 x steps>``, final_ratio 0), so
the task reward decides the end.

Measures, all from what train.py and evaluate.py record (tabulated by selfgym.compare):

- ``success_rate`` (metrics.csv, SB3's ``rollout/success_rate``): the fraction of the last 100
  training episodes that reached the goal (the env reports ``is_success``);
- ``eval_success_rate`` / ``eval_return_mean``: train.py's evaluation every ``--eval-every`` steps,
  ``--eval-episodes`` episodes with deterministic actions (curves and final values);
- evaluate.py on each final model, ``--final-episodes`` episodes with sampled actions (the policy
  PPO trains; "solved" = success >= 0.8, as before) and with deterministic actions.

Changed from the recorded runs below (made by this script's own loop before tune.py): the
sampled-action evaluation is only of the final model (train.py evaluates deterministically
during training), and the training success is over the last 100 episodes, not since the last
evaluation; the evaluation at step 0 is gone.

Recorded runs (benchmarks/results/, history, by the earlier version of this script):

    exploration_sparsegrid_plain:    --env selfgym/SparseGrid-v0             (seeds 1-3)
    exploration_sparsegrid_shuffled: (defaults)                         (seeds 1-3)
    exploration_sparsegrid_shuffled_coef:    --methods rnd_hi simhash_hi (seeds 1-3)
    exploration_sparsegrid_shuffled_heldout: --methods ppo simhash_hi --seeds 4 5 6
    exploration_simhash_coef_probe:  SparseGrid-v0, seed 0, simhash coef 0.03 / 0.3 / 0.1 without fade-out

    python benchmarks/exploration.py                       # 3 seeds x 3 methods, 100k steps
    python benchmarks/exploration.py --steps 20000 --seeds 0 1 --methods ppo simhash --out exploration_smoke
    python benchmarks/exploration.py --methods ppo mine --method-spec "mine=rnd:coef=0.1{decay}"

Writes benchmarks/results/<--out>.{json,md} and <--out>_curves_<metric>.png. ``--workers`` trials
run at once (tune.py --max-concurrent), one CPU and one torch thread each.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from tune_bench import ROOT, check_out, compare_runs, evaluate_runs, final_eval_table, run_tune, store, trial_runs

#: the reward modules each method adds to the task reward (spec strings, as on the CLI)
METHODS: dict[str, list[str]] = {
    "ppo": [],
    "rnd": ["rnd:hidden=[64,64],embed_dim=32,coef=0.05,normalize=True,update_proportion=0.25{decay}"],
    "simhash": ["simhash:k=48,coef=0.03{decay}"],
    # a larger count bonus, chosen after the run above on seeds 1-3; checked on held-out seeds 4-6
    "simhash_hi": ["simhash:k=48,coef=0.1{decay}"],
    "rnd_hi": ["rnd:hidden=[64,64],embed_dim=32,coef=0.2,normalize=True,update_proportion=0.25{decay}"],
}
DEFAULT_METHODS = ["ppo", "rnd", "simhash"]
#: the bonus fades out linearly over this fraction of the budget, so the task reward decides the end
DECAY_FRACTION = 0.6
PPO_KWARGS = dict(n_steps=128, batch_size=256, n_epochs=4, gamma=0.99, gae_lambda=0.95, ent_coef=0.01, learning_rate=3e-4)
SOLVED = 0.8  # final sampled-action success that counts a seed as solved
METRICS = ["eval_success_rate", "success_rate", "eval_return_mean", "ep_return_mean"]


def reward_specs(specs: list[str], steps: int) -> list[str]:
    """A method's specs with ``{decay}`` made the modules' linear fade-out to 0 over 60% of ``steps``."""
    decay = f",schedule=linear,decay_steps={int(DECAY_FRACTION * steps)}"
    return [spec.format(decay=decay) for spec in specs]


def grid_value(specs: list[str]) -> str:
    """A method as a value of tune.py's ``reward`` key: none, a quoted spec, or a list of quoted specs."""
    if not specs:
        return "none"
    quoted = [f'"{spec}"' for spec in specs]
    return quoted[0] if len(quoted) == 1 else "[" + ",".join(quoted) + "]"


def tune_args(args: argparse.Namespace, methods: dict[str, list[str]]) -> list[str]:
    grid = ",".join(grid_value(methods[m]) for m in args.methods)
    return ["--env", args.env, "--agent", "ppo", "-n", str(args.steps), "--n-envs", str(args.n_envs),
            "-params", *(f"{k}:{v}" for k, v in PPO_KWARGS.items()), "--eval-freq", str(args.eval_every),
            "--eval-episodes", str(args.eval_episodes), "--no-final-eval", "--seeds", *map(str, args.seeds),
            "--grid", f"reward:{grid}", "--metric", "eval_return_mean", "--max-concurrent", str(args.workers),
            "--cpus-per-trial", "1", "--num-threads", "1"]


def first_step_at(run: Path, column: str, level: float) -> int | None:
    """The first logged step where ``column`` reached ``level`` (None: never)."""
    from selfgym.metrics import read_metrics

    return next((int(r["steps"]) for r in read_metrics(run / "metrics.csv") if (r.get(column) or 0.0) >= level), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="selfgym/SparseGridShuffled-v0", help="selfgym/SparseGridShuffled-v0, selfgym/SparseGrid-v0 or MountainCar-v0")
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--methods", nargs="+", default=DEFAULT_METHODS, help=f"any of {list(METHODS)}")
    parser.add_argument("--method-spec", nargs="*", default=[], metavar="NAME=SPEC[;SPEC]",
                        help="define or override a method: its reward specs ('{decay}' adds the linear fade-out)")
    parser.add_argument("--n-envs", type=int, default=8)
    parser.add_argument("--eval-every", type=int, default=10_000)
    parser.add_argument("--eval-episodes", type=int, default=5, help="train.py's deterministic evaluation episodes")
    parser.add_argument("--final-episodes", type=int, default=20, help="evaluate.py episodes per final model and mode")
    parser.add_argument("--workers", type=int, default=2, help="trials at once (tune.py --max-concurrent)")
    parser.add_argument("--exp-dir", default=None, help="the tune.py experiment folder (default: logs/bench/<out>_<time>)")
    parser.add_argument("--resume", action="store_true", help="continue the interrupted experiment in --exp-dir (with the flags it was started with)")
    parser.add_argument("--out", default="exploration")
    args = parser.parse_args()
    if args.resume and not args.exp_dir:
        parser.error("--resume needs --exp-dir (the experiment to continue)")
    if args.eval_every < 1 or args.eval_episodes < 1 or args.final_episodes < 1:
        parser.error("--eval-every, --eval-episodes and --final-episodes must be >= 1 (the measures need evaluations)")
    methods = dict(METHODS)
    for item in args.method_spec:
        name, _, specs = item.partition("=")
        methods[name] = [s for s in specs.split(";") if s]
    unknown = sorted(set(args.methods) - set(methods))
    if unknown:
        parser.error(f"unknown method(s) {unknown}; known: {sorted(methods)} (or define one with --method-spec)")
    methods = {m: reward_specs(methods[m], args.steps) for m in args.methods}
    check_out(args.out)
    exp_dir = Path(args.exp_dir or ROOT / "logs" / "bench" / f"{args.out}_{time.strftime('%Y%m%d-%H%M%S')}").resolve()

    load_before = os.getloadavg()
    tuned = run_tune(tune_args(args, methods), exp_dir, resume=args.resume)
    trials = trial_runs(exp_dir)
    method_of = {json.dumps(specs): name for name, specs in methods.items()}
    finished = [run for run, _, status in trials if status.get("state") == "finished"]
    evaluations = {"sampled": evaluate_runs(finished, args.final_episodes, False, "eval_sampled"),
                   "deterministic": evaluate_runs(finished, args.final_episodes, True, "eval")}
    comparison = compare_runs([exp_dir / "runs"], METRICS, exp_dir / "compare")
    labels = {row["label"]: method_of.get(json.dumps(row_config(row)), row["label"])
              for metric in comparison.summary["metrics"].values() for row in metric["rows"]}
    final_md, final_rows = final_eval_table(exp_dir, evaluations, labels=labels)

    runs = []
    for run, config, status in trials:
        sampled = evaluations["sampled"].get(str(run), {})
        seconds = status.get("train_seconds")
        runs.append({"method": method_of.get(json.dumps(config["rewards"]), str(config["rewards"])), "seed": config["seed"],
                     "run": str(run), "state": status.get("state", "unknown"), "steps": status.get("num_timesteps"),
                     "steps_per_s": round(status["num_timesteps"] / seconds, 1) if seconds else None,
                     "final_sampled_success": sampled.get("success_rate"),
                     "final_deterministic_success": evaluations["deterministic"].get(str(run), {}).get("success_rate"),
                     "first_step_training_success_0.8": first_step_at(run, "success_rate", SOLVED)})
    summary = {}
    for name in methods:
        mine = [r for r in runs if r["method"] == name]
        scored = [r for r in mine if r["final_sampled_success"] is not None]
        speeds = [r["steps_per_s"] for r in mine if r["steps_per_s"]]
        summary[name] = {"n_seeds": len(mine), "finished": len(scored),
                         "seeds_solved": sum(r["final_sampled_success"] >= SOLVED for r in scored) if scored else None,
                         "steps_per_s_mean": round(sum(speeds) / len(speeds), 1) if speeds else None,
                         "first_step_training_success_0.8": [r["first_step_training_success_0.8"] for r in mine]}
    result = {"env": args.env, "steps": args.steps, "seeds": args.seeds, "n_envs": args.n_envs, "ppo_kwargs": PPO_KWARGS,
              "methods": methods, "bonus_fade_out": f"linear to 0 over the first {DECAY_FRACTION:.0%} of the budget "
              "(reward module schedule=linear, decay_steps, final_ratio=0)",
              "solved_means": f"evaluate.py with sampled actions: success >= {SOLVED} over {args.final_episodes} episodes",
              "tune": tuned, "exp_dir": str(exp_dir), "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
              "summary": summary, "runs": runs, "evaluate": final_rows, "compare": comparison.summary}
    markdown = write_md(result, args, final_md, comparison.text, labels)
    for path in store(args.out, result, markdown, [f for f in comparison.files if f.suffix == ".png"]):
        print(f"wrote {path}")


def row_config(row: dict) -> list[str]:
    """The reward specs of a compare.py row (read back from its first run's config.yaml)."""
    from selfgym.runs import read_yaml

    return read_yaml(Path(row["runs"][0]) / "config.yaml")["rewards"]


def write_md(result: dict, args: argparse.Namespace, final_md: str, compare_text: str, labels: dict[str, str]) -> str:
    lines = [f"# Exploration: {result['env']}, {result['steps']} steps, seeds {result['seeds']} (through tune.py)", "",
             f"`{result['tune']['command']}`", "",
             f"Experiment wall time {result['tune']['wall_s'] / 60:.1f} min ({args.workers} trials at a time, one CPU each"
             + (f"; this call only, resumed with `{result['tune']['resumed_with']}`" if args.resume else "") + "); "
             f"load average before/after: {result['loadavg_before'][0]:.1f} / {result['loadavg_after'][0]:.1f} (2 shared cores).",
             f"Bonus fade-out: {result['bonus_fade_out']}. Solved: {result['solved_means']}.", "",
             "| method | reward modules | seeds solved | first step where a seed's training success >= 0.8 | steps/s |",
             "|---|---|---|---|---|"]
    for name, s in result["summary"].items():
        solved = "–" if s["seeds_solved"] is None else f"{s['seeds_solved']}/{s['finished']}"
        firsts = ", ".join("never" if f is None else str(f) for f in s["first_step_training_success_0.8"])
        lines.append(f"| {name} | {' '.join(result['methods'][name]) or '(task only)'} | {solved} | {firsts} | "
                     f"{s['steps_per_s_mean'] or '–'} |")
    lines += ["", f"## evaluate.py on each final model ({args.final_episodes} episodes per mode)", "", final_md, "",
              "## During training (compare.py over the run folders)", "",
              "Configurations: " + "; ".join(f"`{label}` = {name}" for label, name in labels.items()), "",
              "success_rate: training episodes (last 100) that reached the goal; eval_*: train.py's deterministic "
              f"evaluation, {args.eval_episodes} episodes every {args.eval_every} steps.", "", compare_text]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
