"""DIAYN (Eysenbach et al., 2018): skills discovered by rewarding states that reveal the skill.

A skill z is drawn per episode from a uniform p(z) and shown to the policy (``SkillWrapper``
appends it to the observation, so any SB3 agent becomes skill-conditioned). A discriminator
q(z|s) learns to tell the skill from the state; the reward ``log q(z|s') - log p(z)`` is high
where the skill is easy to read off the state, pushing skills apart. It is about
``-log n_skills`` + ``log n_skills`` = 0 while the discriminator is guessing, and rises towards
``log n_skills`` as it learns.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from selfgym.rewards.base import TransitionBatch
from selfgym.rewards.intrinsic._torch import TorchReward, flat_obs, mlp
from selfgym.rewards.intrinsic.state_slice import check_fits, feature_indices

SKILL_KEY = "skill"


class SkillWrapper(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Samples a skill per episode and appends it, one-hot, to the observation.

    Box observations become ``[obs.flatten(), one_hot(z)]``; Dict observations get a ``"skill"``
    key. ``info["skill"]`` holds z. ``skill=k`` fixes the skill (evaluation, videos per skill).
    Use it in a run with ``env_wrapper: {"selfgym.rewards.intrinsic.diayn:SkillWrapper": {n_skills: 8}}``.
    """

    def __init__(self, env: gym.Env, n_skills: int = 8, skill: int | None = None) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, n_skills=n_skills, skill=skill)
        gym.ObservationWrapper.__init__(self, env)
        if n_skills < 2:
            raise ValueError(f"SkillWrapper: n_skills must be >= 2, got {n_skills}")
        if skill is not None and not 0 <= skill < n_skills:
            raise ValueError(f"SkillWrapper: skill={skill} is outside 0..{n_skills - 1}")
        self.n_skills, self.fixed_skill, self.skill = int(n_skills), skill, 0
        one_hot = gym.spaces.Box(0.0, 1.0, (self.n_skills,), np.float32)
        space = env.observation_space
        if isinstance(space, gym.spaces.Dict):
            if SKILL_KEY in space.spaces:
                raise ValueError(f"SkillWrapper: the observation already has a {SKILL_KEY!r} key")
            self.observation_space = gym.spaces.Dict({**space.spaces, SKILL_KEY: one_hot})
        elif isinstance(space, gym.spaces.Box):
            low = np.concatenate([np.broadcast_to(space.low, space.shape).ravel(), one_hot.low]).astype(np.float32)
            high = np.concatenate([np.broadcast_to(space.high, space.shape).ravel(), one_hot.high]).astype(np.float32)
            self.observation_space = gym.spaces.Box(low, high, dtype=np.float32)
        else:
            raise TypeError(f"SkillWrapper supports Box and Dict observations, not {space}")

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.skill = self.fixed_skill if self.fixed_skill is not None else int(self.np_random.integers(self.n_skills))
        info[SKILL_KEY] = self.skill
        return self.observation(obs), info

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        info[SKILL_KEY] = self.skill
        return self.observation(obs), reward, terminated, truncated, info

    def observation(self, observation: Any) -> Any:
        one_hot = np.zeros(self.n_skills, dtype=np.float32)
        one_hot[self.skill] = 1.0
        if isinstance(observation, dict):
            return {**observation, SKILL_KEY: one_hot}
        return np.concatenate([np.asarray(observation, dtype=np.float32).ravel(), one_hot])


class DIAYN(TorchReward):
    """Reward ``log q(z|s') - log p(z)`` from a discriminator trained by cross-entropy.

    The skill is read from ``batch.extras["skill"]`` when given, otherwise from the observation
    as ``SkillWrapper`` lays it out (last ``n_skills`` entries, or the ``"skill"`` key). The
    discriminator sees the state without the skill; ``obs_slice`` restricts it to some features:
    ``[start, stop]`` or PlayTable names (``obs_slice=objects``: the two blocks' poses;
    ``cube_pos+long_pos``; see ``state_slice.py``), so that skills are told apart by what they do
    to objects, not by where the arm is, as SLIM's tabletop skills need.
    """

    def __init__(self, n_skills: int = 8, hidden: Sequence[int] = (128, 128), epochs: int = 1,
                 batch_size: int = 256, obs_slice: Sequence[int] | str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("lr", 3e-4)
        super().__init__(**kwargs)
        if n_skills < 2:
            raise ValueError(f"reward module {self.name!r}: n_skills must be >= 2, got {n_skills}")
        self.n_skills, self.hidden = int(n_skills), [int(h) for h in hidden]
        self.epochs, self.batch_size = int(epochs), int(batch_size)
        self.obs_slice = obs_slice
        self.obs_index = feature_indices(obs_slice, f"reward module {self.name!r}")
        self._rng = np.random.default_rng(self.seed)

    def setup(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        if isinstance(observation_space, gym.spaces.Dict):
            ok = SKILL_KEY in observation_space.spaces and observation_space[SKILL_KEY].shape == (self.n_skills,)
        else:
            ok = len(observation_space.shape) == 1 and observation_space.shape[0] > self.n_skills
        if not ok:
            raise ValueError(
                f"reward module {self.name!r} needs skill-conditioned observations with n_skills={self.n_skills}: "
                f"wrap the env with selfgym.rewards.intrinsic.diayn:SkillWrapper (n_skills={self.n_skills}), e.g. "
                f"-params 'env_wrapper:{{\"selfgym.rewards.intrinsic.diayn:SkillWrapper\": {{\"n_skills\": {self.n_skills}}}}}'"
            )
        n_features = (sum(int(np.prod(s.shape)) for k, s in observation_space.spaces.items() if k != SKILL_KEY)
                      if isinstance(observation_space, gym.spaces.Dict) else observation_space.shape[0] - self.n_skills)
        check_fits(self.obs_index, n_features, self.obs_slice, f"reward module {self.name!r}")
        super().setup(observation_space, action_space)

    def build(self) -> nn.ModuleDict:
        assert self.obs_dim is not None
        return nn.ModuleDict({"discriminator": mlp(self.obs_dim, self.hidden, self.n_skills)})

    def obs_features(self, obs: Any) -> np.ndarray:
        features = flat_obs(obs, skip_keys=(SKILL_KEY,)) if isinstance(obs, dict) else flat_obs(obs)[:, : -self.n_skills]
        return features if self.obs_index is None else features[:, self.obs_index]

    def skills(self, batch: TransitionBatch) -> np.ndarray:
        if SKILL_KEY in batch.extras:
            z = np.asarray(batch.extras[SKILL_KEY]).reshape(-1).astype(np.int64)
        else:
            one_hot = flat_obs(batch.obs[SKILL_KEY]) if isinstance(batch.obs, dict) else flat_obs(batch.obs)[:, -self.n_skills :]
            z = one_hot.argmax(axis=1)
        if z.shape != (len(batch),) or z.min() < 0 or z.max() >= self.n_skills:
            raise ValueError(f"reward module {self.name!r}: skills must be {len(batch)} ints in 0..{self.n_skills - 1}")
        return z

    def _log_q(self, batch: TransitionBatch) -> tuple[torch.Tensor, torch.Tensor]:
        self.ensure_built(batch)
        assert self.nets is not None
        logits = self.nets["discriminator"](self.tensor(self.obs_features(batch.next_obs)))
        return logits, torch.as_tensor(self.skills(batch), device=self.device)

    def compute(self, batch: TransitionBatch) -> np.ndarray:
        with torch.no_grad():
            logits, z = self._log_q(batch)
            log_q = F.log_softmax(logits, dim=1).gather(1, z[:, None]).squeeze(1)
        return (log_q + math.log(self.n_skills)).cpu().numpy()

    def update(self, batch: TransitionBatch) -> dict[str, float]:
        self.ensure_built(batch)
        assert self.nets is not None and self.optimizer is not None
        x = self.tensor(self.obs_features(batch.next_obs))
        z = torch.as_tensor(self.skills(batch), device=self.device)
        losses, correct = [], 0
        for _ in range(self.epochs):
            order = self._rng.permutation(len(x))
            for start in range(0, len(x), self.batch_size):
                idx = torch.as_tensor(order[start : start + self.batch_size])
                logits = self.nets["discriminator"](x[idx])
                loss = F.cross_entropy(logits, z[idx])
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
                losses.append(loss.item())
                correct += int((logits.argmax(1) == z[idx]).sum())
        return {"loss": float(np.mean(losses)), "accuracy": correct / (len(x) * self.epochs)}
