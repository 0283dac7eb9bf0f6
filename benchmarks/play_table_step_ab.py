"""Lockstep A/B of PlayTable physics variants in one process: CPU time per step and bit-identity.

Every variant gets its own env; they step in turn (the order alternating each step, so all see the
same machine load), each driven by the same random actions or by its own copy of a seeded policy.
A variant is env keyword arguments plus, optionally, pybullet engine parameters set after the
scene is built (the initial state is then saved again). Prints microseconds of CPU per step and
the first (episode, step) whose observation differs from the first variant's ("identical" if none).
The figures in play_table_speed_notes_2026-11-30.md were made with it, e.g.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/play_table_step_ab.py --workloads random play expert \\
        --variant base '{}' --variant merged '{"env": {"merge_fixed_links": true}}' \\
        --variant cone0 '{"engine": {"enableConeFriction": 0}}'
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np

from selfgym.envs.play_table.env import PlayTableEnv
from selfgym.envs.play_table.primitives import PlayPolicy, ScriptedExpert

# name: (env kwargs, policy factory (seed -> policy) or None for random actions, steps, reset every, seed)
WORKLOADS = {
    "random": ({}, None, 1500, 100, 0),
    "drawer_random": ({"task": "open_drawer"}, None, 1000, 100, 1),
    "play": ({}, lambda s: PlayPolicy(seed=s), 600, 300, 0),
    "expert": ({"task": "push_to_target"}, lambda s: ScriptedExpert("push_to_target", seed=s), 600, 120, 0),
}


def make(workload_kwargs: dict, variant: dict) -> PlayTableEnv:
    env = PlayTableEnv(**workload_kwargs, **variant.get("env", {}))
    if variant.get("engine"):
        env.scene.pb.setPhysicsEngineParameter(**variant["engine"])
        env.scene._init_state = env.scene.pb.saveState()
    return env


def run(workload: str, variants: dict[str, dict], seed_offset: int = 0) -> dict[str, tuple[float, tuple | None]]:
    """{variant: (us of CPU per step, first (episode start step, step) that differs from the first variant, or None)}."""
    kwargs, policy, steps, every, seed = WORKLOADS[workload]
    seed += seed_offset
    envs = {name: make(kwargs, v) for name, v in variants.items()}
    names = list(envs)
    cpu = dict.fromkeys(names, 0.0)
    first_diff: dict[str, tuple | None] = dict.fromkeys(names)
    actions = np.random.default_rng(seed).uniform(-1, 1, (steps, 7)).astype(np.float32)
    obs = {k: e.reset(seed=seed)[0] for k, e in envs.items()}
    policies = {k: policy(seed) for k in envs} if policy else None
    episode = 0
    for t in range(steps):
        if t and t % every == 0:
            episode = t
            for k, e in envs.items():
                obs[k] = e.reset(seed=seed + t)[0]
                if policies:
                    policies[k] = policy(seed + t)
        for k in (names if t % 2 == 0 else names[::-1]):
            action = policies[k].act(obs[k]) if policies else actions[t]
            start = time.process_time()
            obs[k], _, terminated, _, _ = envs[k].step(action)
            cpu[k] += time.process_time() - start
            if terminated:
                obs[k] = envs[k].reset(seed=seed + 5000 + t)[0]
        for k in names[1:]:
            if first_diff[k] is None and not np.array_equal(obs[k], obs[names[0]]):
                first_diff[k] = (episode, t)
    for e in envs.values():
        e.close()
    return {k: (1e6 * cpu[k] / steps, first_diff[k]) for k in names}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workloads", nargs="+", default=["random", "play", "expert"], choices=sorted(WORKLOADS))
    ap.add_argument("--variant", nargs=2, action="append", metavar=("NAME", "JSON"), required=True,
                    help='e.g. merged \'{"env": {"merge_fixed_links": true}}\' or cone0 \'{"engine": {"enableConeFriction": 0}}\'')
    ap.add_argument("--seeds", type=int, default=1, help="run each workload this many times, seeds shifted by 10")
    args = ap.parse_args()
    variants = {}
    for name, text in args.variant:
        spec = json.loads(text)
        unknown = set(spec) - {"env", "engine"}
        if unknown:
            ap.error(f"variant {name}: unknown keys {sorted(unknown)}; valid: env, engine")
        variants[name] = spec
    warnings.filterwarnings("ignore", message="PlayTable without a task")
    for workload in args.workloads:
        for s in range(args.seeds):
            result = run(workload, variants, seed_offset=10 * s)
            base = result[next(iter(result))][0]
            for name, (us, diff) in result.items():
                same = "identical" if diff is None else f"differs from episode {diff[0]}, step {diff[1]}"
                print(f"{workload:14s} seed+{10 * s:<3d} {name:16s} {us:7.0f} us/step {100 * (us / base - 1):+6.1f}%  {same}",
                      flush=True)


if __name__ == "__main__":
    main()
