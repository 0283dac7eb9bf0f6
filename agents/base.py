"""What ``train.py`` and ``evaluate.py`` need of an agent, whatever its algorithm.

An agent registered in ``selfgym.agents.AGENTS`` is either a Stable-Baselines3 ``BaseAlgorithm``
subclass (used as is through ``selfgym.agents.sb3_agent.SB3Agent``) or a class that follows
``Agent`` below and is built as::

    Cls(env, *, device=..., seed=..., logger=..., reward_modules=[...], **hyperparams)

``env`` is an SB3 ``VecEnv``; ``logger`` is an SB3 ``Logger`` whose outputs are the run's
metrics.csv and TensorBoard; ``hyperparams`` are the resolved values from
``hyperparams/<agent>.yml`` and ``-params``. Unknown hyperparameters are rejected before
the agent is built, from the constructor's signature.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class TrainingHooks(Protocol):
    """Called by the agent as it trains; the trainer uses it for checkpoints, eval, progress."""

    def on_step(self, num_timesteps: int) -> bool:
        """Called after each environment step (or each iteration). False means stop now."""
        ...


@runtime_checkable
class Agent(Protocol):
    num_timesteps: int

    def learn(self, total_timesteps: int, hooks: TrainingHooks) -> None:
        """Train until ``num_timesteps`` reaches ``total_timesteps`` or a hook says stop."""
        ...

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, Any]:
        """Actions for a batch of observations (SB3's signature)."""
        ...

    def state_dict(self, include_buffers: bool = True) -> dict[str, Any]:
        """Everything needed to continue training: tensors, arrays, numbers, strings, nested
        dicts and lists only (it is loaded with ``torch.load(weights_only=True)``)."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...
