"""Does exploration pay? PPO vs PPO + RND vs PPO + SimHash counts on a sparse-reward task.

Default task: ``selfgym/SparseGridShuffled-v0`` (envs/grid/sparse_grid.py): reward 1 only in the far
corner of a 15 x 15 room, 60 steps per episode, one-hot cell observation, and each cell maps the
4 actions to the 4 moves by its own fixed permutation, so drifting in one direction is still a
random walk (about 2 in 10,000 random episodes reach the goal). ``selfgym/SparseGrid-v0`` is the same
room with plain moves and (x, y) observations; PPO's own noise solves it, so it shows little.
(``--env MountainCar-v0`` works too, but needs several hundred thousand steps per run, too many
for the 2 shared cores this was measured on.) Each method gets the same step budget and seeds;
the bonus fades out linearly over the first 60% of the budget so the task reward decides the
end. Every ``--eval-every`` steps the policy is run for ``--eval-episodes`` episodes, sampling
its actions (the policy PPO trains) and deterministically, and the fraction of training
episodes that reached the goal is recorded.

Recorded runs (benchmarks/results/):

    exploration_sparsegrid_plain:    --env selfgym/SparseGrid-v0             (seeds 1-3)
    exploration_sparsegrid_shuffled: (defaults)                         (seeds 1-3)
    exploration_sparsegrid_shuffled_coef:    --methods rnd_hi simhash_hi (seeds 1-3)
    exploration_sparsegrid_shuffled_heldout: --methods ppo simhash_hi --seeds 4 5 6
    exploration_simhash_coef_probe:  SparseGrid-v0, seed 0, simhash coef 0.03 / 0.3 / 0.1 without fade-out

    python benchmarks/exploration.py                       # 3 seeds x 3 methods, 100k steps
    python benchmarks/exploration.py --steps 30000 --seeds 0 --methods ppo simhash   # smoke
    python benchmarks/exploration.py --methods ppo mine --method-spec "mine=rnd:coef=0.1{decay}"

Writes benchmarks/results/<--out>.{json,md,png}. Runs go to a process pool of ``--workers``
processes (1 torch thread each).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

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


def run_one(env_id: str, method: str, specs: list[str], seed: int, steps: int, n_envs: int, eval_every: int,
            eval_episodes: int) -> dict:
    import torch

    torch.set_num_threads(1)
    import gymnasium as gym
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    import selfgym  # noqa: F401  (registers the selfgym/ ids, SparseGrid among them)
    from selfgym.rewards import make_reward
    from selfgym.rewards.sb3 import attach

    venv = make_vec_env(env_id, n_envs=n_envs, seed=seed)
    callbacks = []
    specs = [spec.format(decay=f",schedule=linear,decay_steps={int(DECAY_FRACTION * steps)}") for spec in specs]
    if specs:
        venv, callbacks = attach(venv, [make_reward(spec) for spec in specs], PPO)
    model = PPO("MlpPolicy", venv, seed=seed, verbose=0, **PPO_KWARGS)
    eval_env = gym.make(env_id)
    curve: list[dict] = []

    def rollouts(deterministic: bool) -> tuple[float, float]:
        returns, successes = [], []
        for ep in range(eval_episodes):
            obs, _ = eval_env.reset(seed=10_000 + ep)
            total, done, success = 0.0, False, False
            while not done:
                action, _ = model.predict(obs, deterministic=deterministic)
                obs, r, terminated, truncated, _ = eval_env.step(action)
                total += float(r)
                success |= bool(terminated)
                done = terminated or truncated
            returns.append(total)
            successes.append(success)
        return float(np.mean(returns)), float(np.mean(successes))

    def evaluate(step: int) -> None:
        ret, success = rollouts(deterministic=False)
        det_ret, det_success = rollouts(deterministic=True)
        window = cb.pop_window() if step else None
        curve.append({"step": step, "return": ret, "success": success, "deterministic_return": det_ret,
                      "deterministic_success": det_success, "train_success": window})

    class Eval(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.next_eval = eval_every
            self.train_successes = 0
            self.window = [0, 0]  # goal reached, episodes since the last evaluation

        def pop_window(self) -> float:
            rate = self.window[0] / max(self.window[1], 1)
            self.window = [0, 0]
            return rate

        def _on_step(self) -> bool:
            for info, done in zip(self.locals["infos"], self.locals["dones"]):
                if done:
                    self.window[1] += 1
                if done and not info.get("TimeLimit.truncated", False):
                    self.train_successes += 1
                    self.window[0] += 1
            if self.num_timesteps >= self.next_eval:
                evaluate(self.num_timesteps)
                self.next_eval += eval_every
            return True

    cb = Eval()
    start = time.perf_counter()
    evaluate(0)
    model.learn(steps, callback=[*callbacks, cb])
    elapsed = time.perf_counter() - start
    final = curve[-1]
    return {"method": method, "seed": seed, "curve": curve, "wall_s": elapsed, "steps_per_s": steps / elapsed,
            "final_return": final["return"], "final_success": final["success"],
            "train_goal_reached": cb.train_successes}


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
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default="exploration")
    parser.add_argument("--replot", action="store_true", help="only rewrite the .md and .png from the stored .json")
    args = parser.parse_args()
    if args.replot:
        result = json.loads((RESULTS / f"{args.out}.json").read_text())
        write_md(result, RESULTS / f"{args.out}.md")
        plot(result, RESULTS / f"{args.out}.png")
        return
    os.environ["OMP_NUM_THREADS"] = "1"

    methods = dict(METHODS)
    for item in args.method_spec:
        name, _, specs = item.partition("=")
        methods[name] = [s for s in specs.split(";") if s]
    unknown = sorted(set(args.methods) - set(methods))
    if unknown:
        parser.error(f"unknown method(s) {unknown}; known: {sorted(methods)} (or define one with --method-spec)")
    load_before = os.getloadavg()
    jobs = [(args.env, m, methods[m], s, args.steps, args.n_envs, args.eval_every, args.eval_episodes)
            for s in args.seeds for m in args.methods]
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        runs = list(pool.map(run_one, *zip(*jobs)))
    summary = {}
    for method in args.methods:
        mine = [r for r in runs if r["method"] == method]
        summary[method] = {
            "final_return_mean": float(np.mean([r["final_return"] for r in mine])),
            "final_success_mean": float(np.mean([r["final_success"] for r in mine])),
            "seeds_solved": int(sum(r["final_success"] >= 0.8 for r in mine)),
            "n_seeds": len(mine),
            "steps_per_s_mean": float(np.mean([r["steps_per_s"] for r in mine])),
        }
        print(f"{method:8s} final return {summary[method]['final_return_mean']:8.1f}  success "
              f"{summary[method]['final_success_mean']:.2f}  solved {summary[method]['seeds_solved']}/{len(mine)} seeds"
              f"  ({summary[method]['steps_per_s_mean']:.0f} steps/s)")
    result = {"env": args.env, "steps": args.steps, "seeds": args.seeds, "n_envs": args.n_envs,
              "ppo_kwargs": PPO_KWARGS, "methods": {m: methods[m] for m in args.methods},
              "bonus_fade_out": f"linear to 0 over the first {DECAY_FRACTION:.0%} of the budget",
              "solved_means": "the trained (stochastic) policy reaches the goal in >= 80% of eval episodes at the end",
              "loadavg_before": load_before, "loadavg_after": os.getloadavg(), "summary": summary, "runs": runs}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(result, indent=1))
    write_md(result, RESULTS / f"{args.out}.md")
    plot(result, RESULTS / f"{args.out}.png")
    print(f"wrote {RESULTS / args.out}.json/.md/.png")


def write_md(result: dict, path: Path) -> None:
    lines = [f"# Exploration: {result['env']}, {result['steps']} steps, seeds {result['seeds']}", "",
             f"Load average before/after: {result['loadavg_before'][0]:.1f} / {result['loadavg_after'][0]:.1f} (2 shared cores).",
             f"Bonus fade-out: {result.get('bonus_fade_out', 'none')}. Solved: {result['solved_means']}.", "",
             "| method | reward modules | seeds solved | final success (sampled) | final success (deterministic) "
             "| training episodes reaching the goal, last window | first step where a seed's training success >= 0.8 | steps/s |",
             "|---|---|---|---|---|---|---|---|"]
    for m, s in result["summary"].items():
        runs = [r for r in result["runs"] if r["method"] == m]
        det = np.mean([r["curve"][-1].get("deterministic_success", float("nan")) for r in runs])
        train = np.mean([r["curve"][-1].get("train_success") or 0.0 for r in runs])
        firsts = []
        for r in runs:
            hit = [p["step"] for p in r["curve"] if (p.get("train_success") or 0.0) >= 0.8]
            firsts.append(str(hit[0]) if hit else "never")
        lines.append(f"| {m} | {' '.join(result['methods'][m]) or '(task only)'} | {s['seeds_solved']}/{s['n_seeds']} | "
                     f"{s['final_success_mean']:.2f} | {det:.2f} | {train:.2f} | {', '.join(firsts)} | {s['steps_per_s_mean']:.0f} |")
    path.write_text("\n".join(lines) + "\n")


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    colors = {"ppo": "tab:gray", "rnd": "tab:blue", "simhash": "tab:orange", "rnd_hi": "tab:cyan", "simhash_hi": "tab:red"}
    for run in result["runs"]:
        steps = [p["step"] for p in run["curve"]]
        label = run["method"] if run["seed"] == result["seeds"][0] else None
        axes[0].plot(steps, [p["return"] for p in run["curve"]], color=colors.get(run["method"]), alpha=0.8, label=label)
        axes[1].plot(steps, [p["success"] for p in run["curve"]], color=colors.get(run["method"]), alpha=0.8, label=label)
        points = [(p["step"], p["train_success"]) for p in run["curve"] if p.get("train_success") is not None]
        axes[2].plot(*zip(*points), color=colors.get(run["method"]), alpha=0.8, label=label)
    axes[0].set(xlabel="env steps", ylabel="eval return (sampled actions)", title=result["env"])
    axes[1].set(xlabel="env steps", ylabel="eval success rate (sampled actions)", ylim=(-0.05, 1.05))
    axes[2].set(xlabel="env steps", ylabel="training episodes reaching the goal", ylim=(-0.05, 1.05))
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
