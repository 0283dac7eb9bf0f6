"""rllte-core's (RLeXplore's) reward modules as selfgym reward modules, for side-by-side rows.

``RLLTEReward`` keeps a ``benchmarks/rllte_server.py`` process running in rllte's own venv
(its pins clash with ours) and sends it each rollout: the module's ``compute(samples,
sync=True)`` computes the bonuses and then trains itself, once per rollout, as rllte's own
agents call it. So an rllte arm trains the same SB3 PPO on the same envs, seeds and budget as
ours; only the bonus code differs. rllte's own weighting and normalisation are switched off
(beta 1, kappa 0, ``rwd_norm_type="none"``) so selfgym's ``coef`` and ``normalize`` apply to
every arm alike.

Differences that stay, stated with every table: images go to rllte channels-first (it reads the
first axis as channels); its "espeholt" encoder is used, since its default Nature CNN cannot
read a 7x7 view; RND's observation statistics start from the first rollout instead of rllte's
random-policy warm-up steps; the module's learned state is not saved with run checkpoints.
"""

from __future__ import annotations

import atexit
import os
import pickle
import subprocess
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from selfgym.rewards.base import RewardModule, TransitionBatch

SERVER = Path(__file__).resolve().parent / "rllte_server.py"
#: rllte's venv: ``python -m venv /tmp/rllte-venv; /tmp/rllte-venv/bin/pip install torch==2.13.0 rllte-core``
DEFAULT_PYTHON = os.environ.get("RLLTE_PYTHON", "/tmp/rllte-venv/bin/python")


class RLLTEReward(RewardModule):
    """One of rllte's ``rllte.xplore.reward`` classes (``RND``, ``ICM``, ``E3B``, ...) behind a pipe.

    Args:
        module: the rllte class name.
        python: the interpreter of the venv where rllte-core is installed.
        encoder_model: rllte's encoder for images (``espeholt`` reads MiniGrid's 7x7 view).
        obs_norm_type: rllte's observation normalisation, ``"rms"`` for RND (its default), else none.
    """

    learned = True

    def __init__(self, module: str = "E3B", python: str = DEFAULT_PYTHON, encoder_model: str = "espeholt",
                 obs_norm_type: str = "none", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not Path(python).exists():
            raise FileNotFoundError(f"rllte's python {python!r} does not exist: create the venv "
                                    "(python -m venv /tmp/rllte-venv; /tmp/rllte-venv/bin/pip install torch==2.13.0 rllte-core) "
                                    "or set RLLTE_PYTHON")
        self.module, self.python, self.encoder_model, self.obs_norm_type = module, python, encoder_model, obs_norm_type
        self.channels_last = False
        self.obs_shape: tuple[int, ...] | None = None
        self.n_actions: int | None = None
        self.process: subprocess.Popen | None = None
        self.n_envs: int | None = None
        self.seconds = 0.0  # rllte's own compute + update time, last rollout
        self._cached: tuple[TransitionBatch, np.ndarray] | None = None

    def setup(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        if not isinstance(action_space, gym.spaces.Discrete) or not isinstance(observation_space, gym.spaces.Box):
            raise ValueError(f"the rllte bridge takes a Box observation and Discrete actions, got {observation_space}, {action_space}")
        shape = tuple(int(d) for d in observation_space.shape)
        self.channels_last = len(shape) == 3 and shape[-1] in (1, 3, 4) and shape[0] not in (1, 3, 4)
        self.obs_shape = (shape[2], shape[0], shape[1]) if self.channels_last else shape
        self.n_actions = int(action_space.n)

    def _request(self, message: tuple) -> Any:
        assert self.process is not None and self.process.stdin is not None and self.process.stdout is not None
        pickle.dump(message, self.process.stdin)
        self.process.stdin.flush()
        return pickle.load(self.process.stdout)

    def _start(self, n_envs: int) -> None:
        if self.obs_shape is None:
            raise ValueError(f"reward module {self.name!r}: call setup(observation_space, action_space) first")
        self.process = subprocess.Popen([self.python, str(SERVER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        env=dict(os.environ, OMP_NUM_THREADS="1"))
        atexit.register(self.close)
        kwargs = {"device": "cpu", "beta": 1.0, "kappa": 0.0, "rwd_norm_type": "none", "encoder_model": self.encoder_model,
                  "obs_norm_type": self.obs_norm_type}
        reply = self._request(("init", self.module, self.obs_shape, "float32", self.n_actions, n_envs, kwargs))
        if reply[0] != "ready":
            raise RuntimeError(f"rllte server did not start: {reply}")
        self.n_envs = n_envs

    def samples(self, batch: TransitionBatch) -> dict[str, np.ndarray]:
        """The batch as rllte's (n_steps, n_envs, ...) sample dict."""
        n_envs = int(batch.n_envs or 0)

        def images(obs: Any) -> np.ndarray:
            arr = np.asarray(obs, dtype=np.float32)
            if self.channels_last:
                arr = arr.transpose(0, 3, 1, 2)
            return arr.reshape(-1, n_envs, *arr.shape[1:])

        dones = np.asarray(batch.dones, dtype=np.float32).reshape(-1, n_envs)
        return {"observations": images(batch.obs), "next_observations": images(batch.next_obs),
                "actions": np.asarray(batch.actions).reshape(-1, n_envs).astype(np.int64),
                "rewards": np.asarray(batch.rewards, dtype=np.float32).reshape(-1, n_envs),
                "terminateds": dones, "truncateds": np.zeros_like(dones)}

    def compute(self, batch: TransitionBatch) -> np.ndarray:
        if self._cached is not None and self._cached[0] is batch:
            return self._cached[1]
        if batch.n_envs is None:
            raise ValueError(f"reward module {self.name!r}: rllte's modules take time-ordered rollouts (n_envs set)")
        if self.process is None:
            self._start(int(batch.n_envs))
        elif batch.n_envs != self.n_envs:
            raise ValueError(f"reward module {self.name!r} was started for {self.n_envs} envs, got a batch of {batch.n_envs}")
        rewards, self.seconds = self._request(("compute", self.samples(batch)))
        out = np.asarray(rewards, dtype=np.float32).reshape(-1)
        self._cached = (batch, out)
        return out

    def update(self, batch: TransitionBatch) -> dict[str, float]:
        """rllte trained itself inside ``compute`` (``sync=True``); report its time per transition."""
        self.compute(batch)
        self._cached = None
        return {"rllte_us_per_transition": 1e6 * self.seconds / max(len(batch), 1)}

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                self._request_close()
            finally:
                self.process.wait(timeout=10)
        self.process = None

    def _request_close(self) -> None:
        assert self.process is not None and self.process.stdin is not None
        pickle.dump(("close",), self.process.stdin)
        self.process.stdin.flush()
