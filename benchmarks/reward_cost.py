"""CPU cost of each reward module, per transition, against the cost of a pybullet env step.

Two paths, as ``selfgym.rewards.sb3`` uses them:

* per step (non-learned modules, and what a per-step wrapper would pay): ``watch`` + ``__call__``
  on a batch of ``n_envs`` transitions, every step;
* batched at rollout end (learned modules, on-policy): ``__call__`` + ``update`` over a whole
  rollout of ``rollout`` transitions, reported per transition.

The reference step is ``selfgym/PlayTable-v0`` when it can be built, and always a plain pybullet
loop (KUKA arm + table + 3 cubes, 4 x ``stepSimulation`` at 240 Hz = one 60 Hz control step).
Timings are medians of repeats on one torch thread; the machine is shared, so the load average
is stored with the figures.

    python benchmarks/reward_cost.py          # writes benchmarks/results/reward_cost.{json,md}
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

OBS_DIM, ACT_DIM, N_SKILLS = 27, 7, 8
MODULES = {
    "task": "task",
    "function (python, per transition)": "benchmarks.reward_cost:speed_reward",
    "simhash": "simhash:k=32",
    "rnd (MLP 256-256-64)": "rnd",
    "icm (MLP 256, features 64)": "icm",
    "diayn (MLP 128-128, 8 skills)": f"diayn:n_skills={N_SKILLS}",
}


def speed_reward(obs, action, next_obs, info) -> float:
    """A typical ten-line user reward: progress along x minus an action cost."""
    return float(next_obs[0] - obs[0]) - 0.01 * float(np.square(action).sum())


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def make_batch(n: int, rng: np.random.Generator):
    from selfgym.rewards.base import TransitionBatch

    obs = rng.uniform(-1, 1, (n, OBS_DIM + N_SKILLS)).astype(np.float32)
    obs[:, OBS_DIM:] = np.eye(N_SKILLS, dtype=np.float32)[rng.integers(0, N_SKILLS, n)]
    next_obs = obs.copy()
    next_obs[:, :OBS_DIM] += rng.normal(0, 0.05, (n, OBS_DIM)).astype(np.float32)
    actions = rng.uniform(-1, 1, (n, ACT_DIM)).astype(np.float32)
    return TransitionBatch(obs, actions, next_obs, np.zeros(n, np.float32), np.zeros(n, bool), [{} for _ in range(n)])


def module_costs(n_envs: int, rollout: int, repeats: int) -> dict:
    import gymnasium as gym

    from selfgym.rewards import make_reward

    rng = np.random.default_rng(0)
    obs_space = gym.spaces.Box(-1.0, 1.0, (OBS_DIM + N_SKILLS,), np.float32)
    act_space = gym.spaces.Box(-1.0, 1.0, (ACT_DIM,), np.float32)
    step_batch, rollout_batch = make_batch(n_envs, rng), make_batch(rollout, rng)
    out = {}
    for label, spec in MODULES.items():
        module = make_reward(spec)
        module.setup(obs_space, act_space)
        module.update(rollout_batch)  # warm-up (allocations, first optimiser step)

        def per_step():
            module.watch(step_batch)
            module(step_batch)

        def at_rollout_end():
            module(rollout_batch)
            module.update(rollout_batch)

        step_s = timed(per_step, repeats * 20)
        batch_s = timed(at_rollout_end, repeats)
        compute_s = timed(lambda: module(rollout_batch), repeats)
        out[label] = {
            "spec": spec, "learned": module.learned,
            "per_step_us_per_transition": 1e6 * step_s / n_envs,
            "rollout_end_us_per_transition": 1e6 * batch_s / rollout,
            "rollout_end_compute_only_us_per_transition": 1e6 * compute_s / rollout,
        }
    return out


def pybullet_loop_step_s(repeats: int) -> float:
    import pybullet as p
    import pybullet_data

    client = p.connect(p.DIRECT)
    p.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=client)
    p.setGravity(0, 0, -9.81, physicsClientId=client)
    p.loadURDF("plane.urdf", physicsClientId=client)
    p.loadURDF("table/table.urdf", [0.5, 0, 0], physicsClientId=client)
    arm = p.loadURDF("kuka_iiwa/model.urdf", [0, 0, 0.62], useFixedBase=True, physicsClientId=client)
    for i in range(3):
        p.loadURDF("cube_small.urdf", [0.5 + 0.05 * i, 0.1 * i - 0.1, 0.7], physicsClientId=client)
    joints = list(range(p.getNumJoints(arm, physicsClientId=client)))
    rng = np.random.default_rng(0)

    def step():
        target = rng.uniform(-1, 1, len(joints))
        p.setJointMotorControlArray(arm, joints, p.POSITION_CONTROL, targetPositions=target, physicsClientId=client)
        for _ in range(4):
            p.stepSimulation(physicsClientId=client)
        p.getJointStates(arm, joints, physicsClientId=client)  # the observation read-back

    for _ in range(50):
        step()
    per_step = timed(lambda: [step() for _ in range(50)], repeats) / 50
    p.disconnect(client)
    return per_step


def playtable_step_s(repeats: int) -> float | None:
    try:
        import gymnasium as gym

        import selfgym  # noqa: F401  (registers the selfgym/ ids)

        env = gym.make("selfgym/PlayTable-v0")
        env.reset(seed=0)
    except Exception as exc:  # not there yet, or broken: the plain loop is the reference
        print(f"selfgym/PlayTable-v0 not usable ({type(exc).__name__}: {exc}); using the pybullet loop only")
        return None

    def run():
        for _ in range(50):
            _, _, term, trunc, _ = env.step(env.action_space.sample())
            if term or trunc:
                env.reset()

    run()
    per_step = timed(run, repeats) / 50
    env.close()
    return per_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-envs", type=int, default=8)
    parser.add_argument("--rollout", type=int, default=2048, help="transitions per rollout (n_steps x n_envs)")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    load_before = os.getloadavg()
    loop_s = pybullet_loop_step_s(args.repeats)
    playtable_s = playtable_step_s(args.repeats)
    costs = module_costs(args.n_envs, args.rollout, args.repeats)
    reference_s = playtable_s if playtable_s is not None else loop_s
    for row in costs.values():
        row["per_step_vs_reference"] = row["per_step_us_per_transition"] * 1e-6 / reference_s
        row["rollout_end_vs_reference"] = row["rollout_end_us_per_transition"] * 1e-6 / reference_s
        row["per_step_vs_pybullet_loop"] = row["per_step_us_per_transition"] * 1e-6 / loop_s
        row["rollout_end_vs_pybullet_loop"] = row["rollout_end_us_per_transition"] * 1e-6 / loop_s
    result = {
        "obs_dim": OBS_DIM + N_SKILLS, "action_dim": ACT_DIM, "n_envs": args.n_envs, "rollout": args.rollout,
        "torch_threads": 1, "pybullet_loop_step_ms": 1e3 * loop_s,
        "playtable_step_ms": None if playtable_s is None else 1e3 * playtable_s,
        "reference": "selfgym/PlayTable-v0" if playtable_s is not None else "pybullet loop",
        "loadavg_before": load_before, "loadavg_after": os.getloadavg(), "modules": costs,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "reward_cost.json").write_text(json.dumps(result, indent=1))
    lines = [
        "# Reward module cost (CPU, 1 torch thread)", "",
        f"Reference env step: pybullet loop {1e3 * loop_s:.2f} ms"
        + (f", selfgym/PlayTable-v0 {1e3 * playtable_s:.2f} ms" if playtable_s else "")
        + f". Load average before/after: {load_before[0]:.1f} / {os.getloadavg()[0]:.1f} (2 shared cores).",
        f"Per step: watch + compute on {args.n_envs} envs. Rollout end: compute + update over {args.rollout} transitions.", "",
        "| module | per step (us/transition) | rollout end (us/transition) | compute only | rollout end / env step |",
        "|---|---|---|---|---|",
    ]
    for label, row in costs.items():
        lines.append(f"| {label} | {row['per_step_us_per_transition']:.1f} | {row['rollout_end_us_per_transition']:.1f} | "
                     f"{row['rollout_end_compute_only_us_per_transition']:.1f} | {100 * row['rollout_end_vs_reference']:.2f}% |")
    (RESULTS / "reward_cost.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
