"""Runs one rllte-core (RLeXplore) intrinsic reward module in rllte's own Python, for
``benchmarks/rllte_bridge.py``.

rllte-core 1.0.1 pins gymnasium 1.0 (selfgym uses 1.4), so it lives in its own venv and this
script is its side of a pipe: pickled requests on stdin, pickled replies on stdout. It imports
nothing from selfgym.

Requests (tuples): ("init", module_name, obs_shape, obs_dtype, n_actions, n_envs, kwargs),
("compute", samples), ("close",). ``samples`` are numpy arrays shaped (n_steps, n_envs, ...) with
rllte's keys; "compute" calls the module's ``compute(samples, sync=True)`` (rewards, then its own
``update``), as rllte's agents do once per rollout, and replies (rewards (T, n_envs), seconds).
"""

from __future__ import annotations

import pickle
import sys
import time
import types

import gymnasium as gym
import numpy as np
import torch as th


def stand_in_envs(obs_shape: tuple[int, ...], obs_dtype: str, n_actions: int, n_envs: int) -> types.SimpleNamespace:
    """What rllte's BaseReward reads from its ``envs`` argument: the spaces and the number of envs."""
    low, high = (0, 255) if obs_dtype == "uint8" else (-np.inf, np.inf)
    return types.SimpleNamespace(observation_space=gym.spaces.Box(low, high, obs_shape, np.dtype(obs_dtype)),
                                 action_space=gym.spaces.Discrete(n_actions),
                                 unwrapped=types.SimpleNamespace(num_envs=n_envs))


def main() -> None:
    th.set_num_threads(1)
    from rllte.xplore import reward as rllte_reward

    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    module = None
    while True:
        try:
            request = pickle.load(stdin)
        except EOFError:  # the trainer's process ended without a "close"
            return
        if request[0] == "init":
            _, name, obs_shape, obs_dtype, n_actions, n_envs, kwargs = request
            kwargs = dict(kwargs)
            obs_norm = kwargs.pop("obs_norm_type", None)
            module = getattr(rllte_reward, name)(stand_in_envs(tuple(obs_shape), obs_dtype, n_actions, n_envs),
                                                  obs_norm_type="none", **kwargs)
            if obs_norm == "rms":  # rllte primes these with random-policy steps of real envs; here the first rollout does
                from rllte.common.utils import TorchRunningMeanStd

                module.obs_norm_type, module.obs_norm = "rms", TorchRunningMeanStd(shape=module.obs_shape)
            reply = ("ready", th.__version__)
        elif request[0] == "compute":
            assert module is not None, "init first"
            samples = {k: th.as_tensor(v) for k, v in request[1].items()}
            start = time.perf_counter()
            rewards = module.compute(samples, sync=True)
            reply = (rewards.detach().cpu().numpy().astype(np.float32), time.perf_counter() - start)
        else:
            return
        pickle.dump(reply, stdout)
        stdout.flush()


if __name__ == "__main__":
    main()
