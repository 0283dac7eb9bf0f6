"""An online learner of a user's hidden priorities, for ``selfgym/CalendarConflict-v0``.

Within an episode it fits a linear utility u(e) = w . g(e) over the principle predicates g
(the first K features of each event) to every round's feedback seen so far: a softmax
(Plackett-Luce first-choice) likelihood of the correct event, with an L2 pull towards a
prior. It then accepts the event of highest utility. ``learn`` fits that prior per role
from training users (the mean of the end-of-episode weights), so early rounds start from
what users of the same role usually want; predict works without it (prior 0).

It reads the feedback from the structured observation's history slot (the last round's
events and correct event), so it needs ``obs_mode="structured"`` and ``window >= 1``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from selfgym.agents.base import TrainingHooks
from selfgym.envs.calendar.schema import N_FEATURES, N_PRINCIPLES, ROLE_NAMES


class PreferenceLearnerAgent:
    def __init__(self, env: Any, *, device: str = "cpu", seed: int | None = None, logger: Any = None,
                 reward_modules: list | None = None, l2: float = 0.002, lr: float = 2.0, fit_steps: int = 40,
                 use_prior: bool = True, log_interval: int = 10) -> None:
        self.env, self.logger = env, logger
        layout = env.get_attr("obs_layout")[0]
        self.m = int(env.get_attr("m")[0])
        self.n_rounds = int(env.get_attr("n")[0])
        if int(env.get_attr("w")[0]) < 1:
            raise ValueError("preference_learner reads feedback from the history window; use window >= 1")
        if env.get_attr("obs_mode")[0] != "structured":
            raise ValueError("preference_learner needs obs_mode='structured'")
        self.layout = {k: tuple(v) for k, v in layout.items()}
        self.slot_size = int(env.get_attr("slot_size")[0])
        self.l2, self.lr, self.fit_steps = float(l2), float(lr), int(fit_steps)
        self.use_prior, self.log_interval = bool(use_prior), int(log_interval)
        self.prior = np.zeros((len(ROLE_NAMES), N_PRINCIPLES))
        self.prior_count = np.zeros(len(ROLE_NAMES))
        self.num_timesteps = 0
        self.rng = np.random.default_rng(seed)
        self._states: dict[int, dict[str, Any]] = {}

    # -- the online model ---------------------------------------------------------------------------
    def _fresh(self, role: int) -> dict[str, Any]:
        w0 = self.prior[role].copy() if self.use_prior else np.zeros(N_PRINCIPLES)
        return {"t": 0, "X": [], "y": [], "w": w0, "w0": w0.copy(), "role": role}

    def _fit(self, s: dict[str, Any]) -> None:
        """Gradient steps on mean softmax cross-entropy + l2 * |w - w0|^2, warm-started."""
        X, y, w = np.stack(s["X"]), np.asarray(s["y"]), s["w"]  # (R, M, K), (R,)
        rows = np.arange(len(y))
        for _ in range(self.fit_steps):
            z = X @ w
            p = np.exp(z - z.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            p[rows, y] -= 1.0
            grad = np.einsum("rm,rmk->k", p, X) / len(y) + 2 * self.l2 * (w - s["w0"])
            w = w - self.lr * grad
        s["w"] = w

    def _observe(self, i: int, obs: np.ndarray, episode_start: bool) -> dict[str, Any]:
        """Update env i's state from its observation: new episode, or the last round's feedback."""
        lo, hi = self.layout["role"]
        role = int(np.argmax(obs[lo:hi]))
        t = int(round(float(obs[-1]) * self.n_rounds))
        s = self._states.get(i)
        if s is None or episode_start or t == 0 or t < s["t"]:
            s = self._states[i] = self._fresh(role)
            s["t"] = 0
        new = min(t - s["t"], (self.layout["history"][1] - self.layout["history"][0]) // self.slot_size)
        if new > 0:
            base = self.layout["history"][0]
            for j in reversed(range(new)):  # oldest first
                slot = obs[base + j * self.slot_size: base + (j + 1) * self.slot_size]
                feats = slot[: self.m * N_FEATURES].reshape(self.m, N_FEATURES)[:, :N_PRINCIPLES]
                s["X"].append(feats.astype(np.float64))
                s["y"].append(int(np.argmax(slot[self.m * N_FEATURES: self.m * N_FEATURES + self.m])))
            self._fit(s)
        s["t"] = t
        return s

    def predict(self, observation: Any, state: Any = None, episode_start: np.ndarray | None = None,
                deterministic: bool = False) -> tuple[np.ndarray, Any]:
        obs = np.asarray(observation, dtype=np.float64)
        single = obs.ndim == 1
        obs = obs[None] if single else obs
        if obs.ndim != 2 or obs.shape[1] != self.layout["progress"][1]:
            raise ValueError(f"preference_learner expects observations of size {self.layout['progress'][1]} "
                             f"(CalendarConflict structured form), got shape {np.shape(observation)}")
        actions = np.empty(len(obs), dtype=np.int64)
        lo, hi = self.layout["current"]
        for i, o in enumerate(obs):
            s = self._observe(i, o, bool(episode_start[i]) if episode_start is not None else False)
            utility = o[lo:hi].reshape(self.m, N_FEATURES)[:, :N_PRINCIPLES] @ s["w"]
            best = np.flatnonzero(utility >= utility.max() - 1e-9)
            actions[i] = best[0] if deterministic else best[int(self.rng.integers(len(best)))]
        return (actions[0:1] if single else actions), None

    def ranking(self, observation: np.ndarray, env_index: int = 0) -> list[int]:
        """The full priority ranking (best first) under the current fit, for ORD."""
        lo, hi = self.layout["current"]
        w = self._states[env_index]["w"] if env_index in self._states else np.zeros(N_PRINCIPLES)
        utility = np.asarray(observation)[lo:hi].reshape(self.m, N_FEATURES)[:, :N_PRINCIPLES] @ w
        return [int(k) for k in np.argsort(-utility, kind="stable")]

    # -- training: role priors from training users ---------------------------------------------------
    def learn(self, total_timesteps: int, hooks: TrainingHooks) -> None:
        """Roll out on the (training-user) env and average each episode's final weights by role."""
        obs = self.env.reset()
        starts = np.ones(self.env.num_envs, dtype=bool)
        sums = self.prior * self.prior_count[:, None]
        episodes: list[dict[str, float]] = []
        while self.num_timesteps < total_timesteps:
            actions, _ = self.predict(obs, episode_start=starts)
            obs, _, dones, infos = self.env.step(actions)
            self.num_timesteps += self.env.num_envs
            starts = dones.copy()
            for i in np.flatnonzero(dones):
                s = self._states[i]
                sums[s["role"]] += s["w"]
                self.prior_count[s["role"]] += 1
                if "episode_metrics" in infos[i]:
                    episodes.append(infos[i]["episode_metrics"])
            if dones.any():
                counts = np.maximum(self.prior_count, 1)[:, None]
                self.prior = np.where(self.prior_count[:, None] > 0, sums / counts, 0.0)
                if self.logger is not None and len(episodes) >= self.log_interval:
                    for key in ("aer", "ord", "err", "error_first_quarter", "error_last_quarter"):
                        self.logger.record(f"calendar/{key}", float(np.mean([e[key] for e in episodes])))
                    self.logger.record("time/total_timesteps", self.num_timesteps)
                    self.logger.dump(self.num_timesteps)
                    episodes = []
            if not hooks.on_step(self.num_timesteps):
                break

    def state_dict(self, include_buffers: bool = True) -> dict[str, Any]:
        return {"prior": torch.as_tensor(self.prior), "prior_count": torch.as_tensor(self.prior_count),
                "num_timesteps": int(self.num_timesteps),
                "hyperparams": {"l2": self.l2, "lr": self.lr, "fit_steps": self.fit_steps, "use_prior": self.use_prior}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        prior = np.asarray(state["prior"], dtype=np.float64)
        if prior.shape != self.prior.shape:
            raise ValueError(f"preference_learner state has a prior of shape {prior.shape}; expected {self.prior.shape}")
        self.prior = prior
        self.prior_count = np.asarray(state["prior_count"], dtype=np.float64)
        self.num_timesteps = int(state.get("num_timesteps", 0))
        self._states = {}
