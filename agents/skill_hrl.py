"""skill_hrl: a high-level PPO that picks a frozen learned skill every k steps (SLIM's downstream use).

Why: SLIM (Emukpere et al. 2024) learns skills as primitives for a later task; this agent tests
that claim. The skill policy pi(a | s, z) of a finished ``slim`` / ``slim_summed`` run is loaded
and frozen; the high level is Stable-Baselines3's PPO, used as is, on an env whose action is a
skill (``Discrete(skill_dim)`` for categorical skills, ``Box(-3, 3, (skill_dim,))`` for continuous
ones). One high-level step runs the skill for ``k`` env steps (fewer if the episode ends) and
earns the sum of their rewards. Budgets and logs count env steps, so a run compares with PPO from
scratch at the same number of env steps::

    python train.py --env selfgym/PlayTable-v0 --env-kwargs task:push_to_target --agent skill_hrl \\
        -params skills_run:logs/slim/selfgym-PlayTable-v0_1 k:10

The frozen actor is saved in every checkpoint, so evaluation uses the very skills trained with,
even if the skills run is resumed later. ``predict`` acts at the env's level (evaluate.py rolls
out the plain env): it asks PPO for a skill every k steps or at an episode start, in between it
runs the skill.
"""

from __future__ import annotations

import copy
import inspect
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from selfgym import runs
from selfgym.agents import AGENTS  # the registry names this module lazily, so importing it here is no cycle
from selfgym.agents.base import TrainingHooks
from selfgym.agents.sb3_agent import SB3Agent
from selfgym.agents.slim import SlimAgent
from selfgym.agents.slim_parts import Actor, SlimConfig
from selfgym.registry import Registry

SKILL_AGENTS_NOTE = "a run of a skill agent (slim, slim_summed)"
CONTINUOUS_SKILL_BOUND = 3.0  # |z_i| <= 3: three standard deviations of SLIM's N(0, I) skills


# -- the frozen skills -------------------------------------------------------------------------------
def check_skills_run(skills_run: Any, agents: Registry[Any]) -> Path:
    """The skills run folder, absolute, after checking it holds a skill agent's run."""
    if not skills_run or not isinstance(skills_run, (str, Path)):
        raise ValueError(f"skill_hrl needs skills_run: {SKILL_AGENTS_NOTE}'s folder, e.g. "
                         f"-params skills_run:logs/slim/selfgym-PlayTable-v0_1 (got {skills_run!r})")
    folder = Path(skills_run).expanduser().resolve()
    if not (folder / "config.yaml").is_file():
        raise ValueError(f"skill_hrl: skills_run {str(skills_run)!r} is not a run folder (no config.yaml at {folder})")
    config = runs.read_yaml(folder / "config.yaml")
    name = config.get("agent")
    cls = agents.get(name) if isinstance(name, str) and name in agents else None
    if not (inspect.isclass(cls) and issubclass(cls, SlimAgent)):
        raise ValueError(f"skill_hrl: skills_run {str(folder)!r} was trained by agent {name!r}, which is not a skill "
                         f"agent; give {SKILL_AGENTS_NOTE}")
    return folder


class FrozenSkills:
    """pi(a | s, z) of a skills run, read from its final model (or latest checkpoint), never trained."""

    def __init__(self, folder: Path, agents: Registry[Any], obs_dim: int, action_space: gym.Space) -> None:
        config = runs.read_yaml(folder / "config.yaml")
        cls = agents.get(config["agent"])
        known = {f.name for f in fields(SlimConfig)}
        self.cfg = SlimConfig(**{"critic": cls.default_critic,
                                 **{k: v for k, v in (config.get("hyperparams") or {}).items() if k in known}})
        self.folder, self.skill_dim, self.categorical = folder, self.cfg.skill_dim, self.cfg.skill_type == "categorical"
        self.actor = Actor(obs_dim + self.skill_dim, action_space, list(self.cfg.net_arch), self.cfg.log_std_init)
        state, _ = runs.load_checkpoint(runs.model_folder(folder))
        self.load(state["agent"]["actor"], f"skills run {str(folder)!r} (env {config.get('env')!r})")
        self.actor.requires_grad_(False)
        self.action_space = action_space

    def load(self, actor_state: dict[str, Any], source: str) -> None:
        try:
            self.actor.load_state_dict(actor_state)
        except RuntimeError as exc:
            raise ValueError(f"skill_hrl: the skill policy of {source} does not fit this env's observations and actions "
                             f"(its env must have the same spaces): {exc}") from exc

    def skill_vectors(self, choices: np.ndarray) -> np.ndarray:
        """High-level actions -> (n, skill_dim) skill vectors as the skill policy was fed them."""
        if self.categorical:
            return np.eye(self.skill_dim, dtype=np.float32)[np.asarray(choices, np.int64).reshape(-1)]
        z = np.asarray(choices, np.float32).reshape(-1, self.skill_dim)
        return np.clip(z, -CONTINUOUS_SKILL_BOUND, CONTINUOUS_SKILL_BOUND)

    def act(self, obs: np.ndarray, skills: np.ndarray, deterministic: bool) -> np.ndarray:
        x = torch.as_tensor(np.concatenate([np.asarray(obs, np.float32).reshape(len(skills), -1), skills], 1))
        with torch.no_grad():
            dist = self.actor.dist(x)
            if deterministic:
                action = dist.probs.argmax(-1) if self.actor.discrete else dist.mean
            else:
                action = dist.sample()
        action = action.numpy()
        space = self.action_space
        return np.clip(action, space.low, space.high) if isinstance(space, gym.spaces.Box) else action

    def high_level_space(self) -> gym.Space:
        if self.categorical:
            return gym.spaces.Discrete(self.skill_dim)
        return gym.spaces.Box(-CONTINUOUS_SKILL_BOUND, CONTINUOUS_SKILL_BOUND, (self.skill_dim,), np.float32)


class SkillEnv(gym.Wrapper):
    """One step = one skill run for ``k`` env steps (fewer at an episode end); reward = their sum.

    ``info["skill_steps"]`` is how many env steps the skill took; the last step's info is kept
    otherwise (``is_success``, the Monitor's ``episode``).
    """

    def __init__(self, env: gym.Env, skills: FrozenSkills, k: int, deterministic: bool) -> None:
        super().__init__(env)
        self.skills, self.k, self.deterministic = skills, int(k), bool(deterministic)
        self.action_space = skills.high_level_space()
        self._obs: np.ndarray | None = None

    def reset(self, **kwargs: Any):
        self._obs, info = self.env.reset(**kwargs)
        return self._obs, info

    def step(self, action: Any):
        skill = self.skills.skill_vectors(np.asarray(action)[None])
        total, terminated, truncated, info, steps = 0.0, False, False, {}, 0
        while steps < self.k and not (terminated or truncated):
            low = self.skills.act(self._obs[None], skill, self.deterministic)[0]
            self._obs, reward, terminated, truncated, info = self.env.step(low)
            total += float(reward)
            steps += 1
        return self._obs, total, terminated, truncated, {**info, "skill_steps": steps}


# -- the agent ----------------------------------------------------------------------------------------
class _EnvStepLogger:
    """SB3's logger, except that rows are written at the env-step count, and the speed is in env
    steps per second (SB3 counts high-level decisions)."""

    def __init__(self, logger: Any, agent: "SkillHRLAgent") -> None:
        self._logger, self._agent = logger, agent
        self.since: tuple[float, int] = (time.time(), 0)  # set when learn() starts

    def dump(self, step: int = 0) -> None:
        started, steps_then = self.since
        self._logger.record("time/skill_decisions", step)
        self._logger.record("time/fps", int((self._agent.num_timesteps - steps_then) / max(time.time() - started, 1e-9)))
        self._logger.dump(self._agent.num_timesteps)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._logger, name)


class _CountEnvSteps(BaseCallback):
    """Adds each decision's env steps to the agent's count; stops at the budget or when a hook says so."""

    def __init__(self, agent: "SkillHRLAgent", total: int, hooks: TrainingHooks) -> None:
        super().__init__()
        self.agent, self.total, self.hooks = agent, total, hooks

    def _on_step(self) -> bool:
        self.agent.env_steps += sum(int(info["skill_steps"]) for info in self.locals["infos"])
        return bool(self.hooks.on_step(self.agent.env_steps)) and self.agent.env_steps < self.total


class SkillHRLAgent:
    """High-level PPO over frozen skills.

    Args:
        skills_run: the run folder of a ``slim`` / ``slim_summed`` run (its final model, else its
            latest checkpoint); its env must have this env's observation and action spaces.
        k: env steps per skill choice.
        skill_deterministic: run each skill with its mean action (as skills are evaluated), or sample.
        ppo: SB3 PPO's hyperparameters for the high level (``n_steps`` counts decisions per env).
    """

    def __init__(self, env: VecEnv, *, device: str = "auto", seed: int | None = None, logger: Any = None,
                 reward_modules: list | None = None, skills_run: str | None = None, k: int = 10,
                 skill_deterministic: bool = True, ppo: dict[str, Any] | None = None) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"skill_hrl: k (env steps per skill) must be a whole number >= 1, got {k!r}")
        if not isinstance(skill_deterministic, bool):
            raise ValueError(f"skill_hrl: skill_deterministic must be true or false, got {skill_deterministic!r}")
        envs = getattr(env, "envs", None)
        if not isinstance(env, DummyVecEnv) or envs is None:
            raise ValueError(f"skill_hrl runs skills inside each env, so it needs --vec-env dummy and no normalize "
                             f"wrapper; got {type(env).__name__}")
        if not isinstance(env.observation_space, gym.spaces.Box) or len(env.observation_space.shape) != 1:
            raise ValueError(f"skill_hrl needs a flat Box observation space, got {env.observation_space}")
        self.k, self.skill_deterministic, self.ppo_kwargs = int(k), skill_deterministic, dict(ppo or {})
        self.obs_dim = int(env.observation_space.shape[0])
        folder = check_skills_run(skills_run, AGENTS)
        self.skills = FrozenSkills(folder, AGENTS, self.obs_dim, env.action_space)
        self.skill_env = DummyVecEnv([lambda e=e: SkillEnv(e, self.skills, self.k, skill_deterministic) for e in envs])
        if seed is not None:
            self.skill_env.seed(int(seed))
        self.inner = SB3Agent(PPO, self.skill_env, device=device, seed=seed, reward_modules=reward_modules, **self.ppo_kwargs)
        self._logger = _EnvStepLogger(logger, self) if logger is not None else None
        if self._logger is not None:
            self.inner.model.set_logger(self._logger)
        self.env_steps = 0

    @classmethod
    def resolve_hyperparams(cls, hyperparams: dict[str, Any], env_id: str) -> dict[str, Any]:
        """train.py's hook, before any run folder exists: the skills run checked, its path made absolute."""
        return {**hyperparams, "skills_run": str(check_skills_run(hyperparams.get("skills_run"), AGENTS))}

    @property
    def num_timesteps(self) -> int:
        """Env steps (not high-level decisions): the budget PPO from scratch is compared at."""
        return self.env_steps

    def learn(self, total_timesteps: int, hooks: TrainingHooks) -> None:
        remaining = int(total_timesteps) - self.env_steps
        if remaining <= 0:
            return
        model = self.inner.model
        if self._logger is not None:
            self._logger.since = (time.time(), self.env_steps)
        callback = CallbackList([*self.inner.reward_callbacks, _CountEnvSteps(self, int(total_timesteps), hooks)])
        model.learn(remaining, callback=callback, log_interval=1, reset_num_timesteps=False)  # >= 1 env step per decision

    def predict(self, observation: Any, state: Any = None, episode_start: np.ndarray | None = None,
                deterministic: bool = False) -> tuple[np.ndarray, Any]:
        """Env-level actions; ``state`` = (skill vectors, steps left in each env's current skill)."""
        obs = np.asarray(observation, np.float32).reshape(-1, self.obs_dim)
        n = len(obs)
        skills, left = (np.array(state[0], np.float32), np.array(state[1], np.int64)) if state is not None \
            else (np.zeros((n, self.skills.skill_dim), np.float32), np.zeros(n, np.int64))
        choose = left <= 0
        if episode_start is not None:
            choose |= np.asarray(episode_start, bool).reshape(n)
        if choose.any():
            choices, _ = self.inner.model.predict(obs[choose], deterministic=deterministic)
            skills[choose] = self.skills.skill_vectors(choices)
            left[choose] = self.k
        actions = self.skills.act(obs, skills, self.skill_deterministic)
        return actions, (skills, left - 1)

    def state_dict(self, include_buffers: bool = True) -> dict[str, Any]:
        """PPO's state, the env-step count and the frozen skill policy itself."""
        return {"ppo": self.inner.state_dict(include_buffers), "env_steps": int(self.env_steps),
                "skills": {"run": str(self.skills.folder), "actor": copy.deepcopy(self.skills.actor.state_dict())}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state["ppo"])
        self.skills.load(state["skills"]["actor"], f"the checkpoint (skills from {state['skills']['run']!r})")
        self.env_steps = int(state["env_steps"])
