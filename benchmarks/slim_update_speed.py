"""SLIM's update against SB3 PPO's, side by side in one run (issue 20, item 7, first half).

Same batch (``n_steps * n_envs`` transitions), same network width (64-64 tanh actor and
critic), same epochs and minibatch size, one torch thread. Timed per update:

* SB3: ``RolloutBuffer.compute_returns_and_advantage`` + ``PPO.train()`` on a filled buffer;
* SLIM: ``SlimAgent._train`` on a rollout of the same size: per-stream GAE over K streams
  (non-learned streams are computed during collection, as SB3's rewards are), the PPO epochs
  with K critics.

Rounds alternate SB3 and SLIM; we report medians and the ratio. The target is SLIM <= 1.3x SB3.

    python benchmarks/slim_update_speed.py            # writes benchmarks/results/slim_update_speed.{json,md}
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import configure
from stable_baselines3.common.vec_env import DummyVecEnv

from selfgym.agents import make_agent
from selfgym.rewards import TransitionBatch, make_reward

RESULTS = Path(__file__).resolve().parent / "results"
OBS_DIM, SKILL_DIM = 3, 8  # Pendulum's observation and an 8-skill one-hot


class SpacesOnly(gym.Env):
    """SB3's PPO needs an env to build its policy and buffer; it is never stepped."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (OBS_DIM + SKILL_DIM,), np.float32)
    action_space = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        return np.zeros(OBS_DIM + SKILL_DIM, np.float32), {}

    def step(self, action):
        return np.zeros(OBS_DIM + SKILL_DIM, np.float32), 0.0, False, False, {}


def sb3_update(n_envs: int, n_steps: int, batch_size: int, n_epochs: int):
    model = PPO("MlpPolicy", DummyVecEnv([SpacesOnly] * n_envs), n_steps=n_steps, batch_size=batch_size,
                n_epochs=n_epochs, seed=0, device="cpu")
    model.set_logger(configure(None, [""]))
    rng = np.random.default_rng(0)
    buf = model.rollout_buffer

    def run() -> None:
        buf.reset()
        buf.observations[:] = rng.normal(size=buf.observations.shape)
        buf.actions[:] = rng.normal(size=buf.actions.shape)
        buf.rewards[:] = rng.normal(size=buf.rewards.shape)
        buf.values[:] = rng.normal(size=buf.values.shape)
        buf.log_probs[:] = rng.normal(size=buf.log_probs.shape) - 1.0
        buf.full, buf.pos = True, n_steps
        buf.compute_returns_and_advantage(torch.zeros(n_envs), np.zeros(n_envs))
        model.train()

    return run


def slim_update(n_streams: int, n_envs: int, n_steps: int, batch_size: int, n_epochs: int):
    names = [f"s{k}" for k in range(n_streams)]
    venv = make_vec_env("Pendulum-v1", n_envs=n_envs, seed=0)
    agent = make_agent("slim", venv, {"weights": dict.fromkeys(names, 1.0), "skill_dim": SKILL_DIM, "n_steps": n_steps,
                                      "batch_size": batch_size, "n_epochs": n_epochs, "clip_grad": "per_network"},
                       seed=0, reward_modules=[make_reward(("task", {"name": n})) for n in names])
    rng = np.random.default_rng(0)
    size = n_steps * n_envs

    def run() -> None:
        x = torch.as_tensor(rng.normal(size=(size, OBS_DIM + SKILL_DIM)), dtype=torch.float32)
        actions = torch.as_tensor(rng.normal(size=(size, 1)), dtype=torch.float32)
        batch = TransitionBatch(obs=x.numpy(), actions=actions.numpy(), next_obs=x.numpy(),
                                rewards=rng.normal(size=size).astype(np.float32), dones=np.zeros(size, bool), n_envs=n_envs)
        agent._train({"batch": batch, "fixed": rng.normal(size=(n_steps, n_envs, n_streams)).astype(np.float32), "x": x, "actions": actions,
                      "log_probs": torch.as_tensor(rng.normal(size=size) - 1.0, dtype=torch.float32),
                      "values": rng.normal(size=(n_steps, n_envs, n_streams)).astype(np.float32),
                      "starts": np.zeros((n_steps, n_envs), np.float32), "boot": np.zeros((n_steps, n_envs, n_streams), np.float32),
                      "last_values": np.zeros((n_envs, n_streams), np.float32), "last_starts": np.zeros(n_envs, np.float32)})

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--n-envs", type=int, default=4)
    parser.add_argument("--n-steps", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--n-epochs", type=int, default=10)
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--out", default="slim_update_speed")
    args = parser.parse_args()
    torch.set_num_threads(1)
    shape = (args.n_envs, args.n_steps, args.batch_size, args.n_epochs)
    contenders = {"sb3_ppo": sb3_update(*shape)}
    contenders.update({f"slim_{k}_streams": slim_update(k, *shape) for k in args.streams})
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for name, fn in contenders.items():
        fn()  # warm-up
    for _ in range(args.rounds):
        for name, fn in contenders.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(t) for name, t in times.items()}
    result = {"command": " ".join(["python benchmarks/slim_update_speed.py", *sys.argv[1:]]),
              "batch": args.n_envs * args.n_steps, "n_envs": args.n_envs, "n_steps": args.n_steps,
              "batch_size": args.batch_size, "n_epochs": args.n_epochs, "width": [64, 64], "torch_threads": 1,
              "load_average": os.getloadavg(), "seconds": times, "median_s": medians,
              "ratio_to_sb3": {n: medians[n] / medians["sb3_ppo"] for n in medians}}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(result, indent=1))
    lines = [f"# SLIM update vs SB3 PPO update ({result['batch']} transitions, {args.n_epochs} epochs, minibatch "
             f"{args.batch_size}, 64-64, 1 thread; load {result['load_average'][0]:.2f})", "",
             f"`{result['command']}`", "", "| update | median s | ratio to SB3 PPO |", "|---|---|---|"]
    lines += [f"| {n} | {medians[n]:.3f} | {result['ratio_to_sb3'][n]:.2f} |" for n in medians]
    (RESULTS / f"{args.out}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
