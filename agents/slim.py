"""SLIM: Skill Learning with Multiple Critics (Emukpere et al., ICRA 2024), PPO-style.

One skill-conditioned actor pi(a | s, z) and one critic network per reward stream V_k(s, z).
Why several critics: a skill-discovery reward, a reach reward and a safety penalty live on
different scales and horizons; summed into one reward, the largest term drowns the others.
Here each stream k keeps its own discount and GAE, its advantages are normalised over the
minibatch, and only then mixed: A = sum_k w_k * (A_k - mean A_k) / (std A_k + 1e-8).
Scaling one stream's reward (and so its critic) by 1000 leaves A unchanged.

Streams, each named and weighted by the ``weights`` hyperparameter:

* every ``--reward`` module the trainer hands over (DIAYN, RND, ``component:x``, ...); a
  registered module named in ``weights`` but not passed with ``--reward`` is built with its
  defaults (DIAYN gets ``n_skills = skill_dim``, METRA ``skill_dim`` and ``skill_type``), so
  ``--agent slim`` alone runs;
* every key of the env's ``info["reward_components"]`` named in ``weights`` (PlayTable:
  ``safety``; with a task also ``reach``, ``progress``, ``success``).

Learned modules (DIAYN) are computed over each rollout with their current networks, then
updated from the same rollout (as ``selfgym.rewards.sb3`` does for SB3 agents). A skill z
(one-hot of ``skill_dim`` categories, or a ``skill_dim``-D standard normal vector) is drawn
per episode and fed to the actor and every critic; reward modules see the observation laid
out as ``SkillWrapper`` lays it out (``[obs, one_hot(z)]``) plus ``extras["skill"]``.

Baselines in the same code: ``critic="summed"`` (agent ``slim_summed``) is one critic on
sum_k w_k r_k with one discount, i.e. PPO on the weighted sum; DIAYN alone is
``weights={"diayn": 1.0}``. With one stream of weight 1 and ``clip_grad="global"`` the update
is SB3 PPO's on the same batch (tested against SB3's own ``PPO.train``).
"""

from __future__ import annotations

import inspect
from collections import deque
from dataclasses import asdict, fields
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from selfgym.agents.base import TrainingHooks
from selfgym.agents.slim_parts import (Actor, SlimConfig, StackedMLP, check_weights, clip_grad_per_network_,
                                       combined_advantage, gae, ppo_loss)
from selfgym.rewards import REWARDS, RewardModule, TransitionBatch, make_reward
from selfgym.rewards.base import accepted_kwargs


class SlimAgent:
    """The SLIM agent on selfgym's Agent protocol; hyperparameters are ``SlimConfig``'s fields.

    ``eval_skill`` (an int for categorical skills, a vector for continuous ones, None to draw one
    per episode) fixes the skill ``predict`` uses, to roll out each skill in turn.
    """

    default_critic = "multi"

    def __init__(self, env: Any, *, device: str = "cpu", seed: int | None = None, logger: Any = None,
                 reward_modules: list[RewardModule] | None = None, **hyperparams: Any) -> None:
        hyperparams.setdefault("critic", self.default_critic)
        self.cfg = cfg = SlimConfig(**hyperparams)
        cfg.check()
        self.env, self.logger, self.num_timesteps = env, logger, 0
        self.device = torch.device("cpu" if device == "auto" else device)  # small MLPs: "auto" means the CPU
        if not isinstance(env.observation_space, gym.spaces.Box):
            raise ValueError(f"slim needs a Box observation space, got {env.observation_space}")
        self.obs_dim = int(np.prod(env.observation_space.shape))
        self.streams, self.modules, self.components = self._streams(reward_modules or [])
        self.weights = torch.tensor([float(cfg.weights[s]) for s in self.streams])
        skill_obs = gym.spaces.Box(-np.inf, np.inf, (self.obs_dim + cfg.skill_dim,), np.float32)
        for module in self.modules.values():
            module.setup(skill_obs, env.action_space)
        summed = cfg.critic == "summed"
        self.gammas = np.array([cfg.gamma] if summed else [cfg.gammas.get(s, cfg.gamma) for s in self.streams], np.float32)
        self.lambdas = np.array([cfg.gae_lambda] if summed else [cfg.gae_lambdas.get(s, cfg.gae_lambda) for s in self.streams],
                                np.float32)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0 if seed is None else int(seed))
            in_dim = self.obs_dim + cfg.skill_dim
            self.actor = Actor(in_dim, env.action_space, list(cfg.net_arch), cfg.log_std_init).to(self.device)
            self.critics = StackedMLP(len(self.gammas), in_dim, list(cfg.net_arch)).to(self.device)
        params = [*self.actor.parameters(), *self.critics.parameters()]
        self.optimizer = torch.optim.Adam(params, lr=cfg.learning_rate, eps=1e-5, foreach=True)  # SB3 PPO's Adam
        self.skill_gen = torch.Generator().manual_seed(0 if seed is None else int(seed))
        self.predict_gen = torch.Generator().manual_seed(1 if seed is None else int(seed) + 1)
        self.eval_skill: Any = None
        self._last_obs: np.ndarray | None = None
        self._episode_returns: deque[float] = deque(maxlen=100)

    @classmethod
    def check_config(cls, hyperparams: dict[str, Any], reward_names: list[str]) -> None:
        """The checks that need no env: run by ``selfgym.train`` before any run folder exists."""
        cfg = SlimConfig(**{"critic": cls.default_critic, **hyperparams})
        cfg.check()
        check_weights(cfg.weights, reward_names)

    # -- streams -----------------------------------------------------------------------------------
    def _streams(self, given: list[RewardModule]) -> tuple[list[str], dict[str, RewardModule], list[str]]:
        """Match every weighted name to a --reward module, an env component or a registered module."""
        cfg = self.cfg
        modules = {m.name: m for m in given}
        check_weights(cfg.weights, list(modules))
        self.env.reset()
        reset_infos = getattr(self.env, "reset_infos", None) or [{}]
        env_components = sorted(reset_infos[0].get("reward_components", {}))
        streams, components = list(cfg.weights), []
        for name in streams:
            if name in modules:
                continue
            if name in env_components:
                components.append(name)
            elif name in REWARDS:
                offered = {"n_skills": cfg.skill_dim, "skill_dim": cfg.skill_dim, "skill_type": cfg.skill_type}
                accepted = accepted_kwargs(REWARDS.get(name)) or []
                kwargs = {key: value for key, value in offered.items() if key in accepted}
                modules[name] = make_reward((name, kwargs))
            else:
                raise ValueError(
                    f"slim: stream {name!r} in weights is neither a reward module nor an env reward component. "
                    f"Valid: --reward modules [{', '.join(sorted(modules)) or 'none given'}], env components "
                    f"[{', '.join(env_components) or 'none'}], registered modules [{', '.join(REWARDS.names())}]")
        for name, module in modules.items():
            n_skills = getattr(module, "n_skills", None)
            if n_skills is not None and (cfg.skill_type != "categorical" or n_skills != cfg.skill_dim):
                raise ValueError(f"slim: reward module {name!r} reads {n_skills} categorical skills; set skill_type: "
                                 f"categorical and skill_dim: {n_skills} (now {cfg.skill_type}, {cfg.skill_dim})")
            skill = (getattr(module, "skill_dim", None), getattr(module, "skill_type", None))
            if skill[0] is not None and skill != (cfg.skill_dim, cfg.skill_type):
                raise ValueError(f"slim: reward module {name!r} reads {skill[0]}-D {skill[1]} skills; set skill_dim: "
                                 f"{skill[0]} and skill_type: {skill[1]} (now {cfg.skill_dim}, {cfg.skill_type})")
        return streams, {s: modules[s] for s in streams if s in modules}, components

    def _step_rewards(self, batch: TransitionBatch, infos: list[dict[str, Any]]) -> np.ndarray:
        """(N, K) rewards of this step: env components and non-learned modules now (after ``watch``,
        as ``selfgym.rewards.sb3`` does); learned modules stay NaN until the rollout ends."""
        for module in self.modules.values():
            module.watch(batch)
        out = np.full((len(infos), len(self.streams)), np.nan, np.float32)
        for k, name in enumerate(self.streams):
            module = self.modules.get(name)
            if module is None:
                out[:, k] = [info.get("reward_components", {}).get(name, np.nan) for info in infos]
                if np.isnan(out[:, k]).any():
                    raise ValueError(f"slim: the env stopped reporting reward component {name!r}")
            elif not module.learned:
                out[:, k] = module(batch)
        return out

    # -- skills and acting -------------------------------------------------------------------------
    def sample_skills(self, n: int, generator: torch.Generator) -> np.ndarray:
        """(n, skill_dim) skill vectors from p(z): uniform one-hot, or standard normal."""
        dim = self.cfg.skill_dim
        if self.cfg.skill_type == "categorical":
            return np.eye(dim, dtype=np.float32)[torch.randint(dim, (n,), generator=generator).numpy()]
        return torch.randn(n, dim, generator=generator).numpy().astype(np.float32)

    def skill_choices(self, n_continuous: int = 8) -> list[Any]:
        """The skills evaluation rolls out: every category, or ``n_continuous`` fixed draws of z."""
        if self.cfg.skill_type == "categorical":
            return list(range(self.cfg.skill_dim))
        return list(self.sample_skills(n_continuous, torch.Generator().manual_seed(12345)))

    def _inputs(self, obs: np.ndarray, skills: np.ndarray) -> torch.Tensor:
        flat = np.asarray(obs, np.float32).reshape(len(skills), -1)
        return torch.as_tensor(np.concatenate([flat, skills], axis=1), device=self.device)

    def _env_action(self, actions: np.ndarray) -> np.ndarray:
        space = self.env.action_space
        return np.clip(actions, space.low, space.high) if isinstance(space, gym.spaces.Box) else actions

    def predict(self, observation: Any, state: Any = None, episode_start: np.ndarray | None = None,
                deterministic: bool = False) -> tuple[np.ndarray, Any]:
        """SB3's signature; ``state`` carries each env's skill vectors, new ones drawn at episode starts."""
        obs = np.asarray(observation, np.float32).reshape(-1, self.obs_dim)
        skills = np.array(state, np.float32) if state is not None else self.sample_skills(len(obs), self.predict_gen)
        for i in np.flatnonzero(episode_start if episode_start is not None else np.zeros(len(obs), bool)):
            skills[i] = self.sample_skills(1, self.predict_gen)[0]
        if self.eval_skill is not None:
            fixed = np.eye(self.cfg.skill_dim, dtype=np.float32)[int(self.eval_skill)] \
                if self.cfg.skill_type == "categorical" else np.asarray(self.eval_skill, np.float32)
            skills[:] = fixed
        with torch.no_grad():
            dist = self.actor.dist(self._inputs(obs, skills))
            if deterministic:
                action = dist.probs.argmax(-1) if self.actor.discrete else dist.mean
            else:
                action = dist.sample()
        return self._env_action(action.cpu().numpy()), skills

    # -- training ----------------------------------------------------------------------------------
    def learn(self, total_timesteps: int, hooks: TrainingHooks) -> None:
        """Rollout, per-stream GAE, module updates, PPO epochs; until the budget or a hook says stop."""
        n_envs = self.env.num_envs
        if self._last_obs is None:
            self._last_obs = self.env.reset()
            self._skills = self.sample_skills(n_envs, self.skill_gen)
            self._last_starts = np.ones(n_envs, np.float32)
        while self.num_timesteps < total_timesteps:
            rollout = self._collect(hooks)
            if rollout is None:
                return  # a hook asked to stop; the partial rollout is dropped
            self._train(rollout)

    def _collect(self, hooks: TrainingHooks) -> dict[str, Any] | None:
        cfg, n_envs, steps = self.cfg, self.env.num_envs, self.cfg.n_steps
        skill_idx = lambda s: s.argmax(1) if cfg.skill_type == "categorical" else np.zeros(len(s), np.int64)  # noqa: E731
        buf: dict[str, list] = {k: [] for k in ("x", "actions", "log_probs", "values", "starts", "boot", "fixed",
                                                "obs", "next_obs", "skills", "rewards", "dones", "infos")}
        for _ in range(steps):
            x = self._inputs(self._last_obs, self._skills)
            with torch.no_grad():
                dist = self.actor.dist(x)
                action = dist.sample()
                log_prob = dist.log_prob(action) if self.actor.discrete else dist.log_prob(action).sum(-1)
                values = self.critics(x).cpu().numpy()
            actions = action.cpu().numpy()
            obs, rewards, dones, infos = self.env.step(self._env_action(actions))
            self.num_timesteps += n_envs
            next_obs = np.array(obs, np.float32).reshape(n_envs, -1)
            boot = np.zeros((n_envs, len(self.gammas)), np.float32)
            for i in np.flatnonzero(dones):
                next_obs[i] = np.asarray(infos[i]["terminal_observation"], np.float32).reshape(-1)
                if infos[i].get("TimeLimit.truncated", False):  # bootstrap a time-out from V(s_T, z), as SB3 does
                    with torch.no_grad():
                        v_end = self.critics(self._inputs(next_obs[i:i + 1], self._skills[i:i + 1]))[0].cpu().numpy()
                    boot[i] = self.gammas * v_end
                if "episode" in infos[i]:
                    self._episode_returns.append(float(infos[i]["episode"]["r"]))
            last_obs = np.asarray(self._last_obs, np.float32).reshape(n_envs, -1)
            step = TransitionBatch(obs=np.concatenate([last_obs, self._skills], 1), actions=actions,
                                   next_obs=np.concatenate([next_obs, self._skills], 1), rewards=np.asarray(rewards, np.float32),
                                   dones=dones, infos=infos, extras={"skill": skill_idx(self._skills)}, n_envs=n_envs)
            for key, value in (("x", x), ("actions", actions), ("log_probs", log_prob), ("values", values),
                               ("starts", self._last_starts), ("boot", boot), ("skills", self._skills.copy()),
                               ("obs", last_obs), ("next_obs", next_obs), ("rewards", rewards), ("dones", dones),
                               ("infos", infos), ("fixed", self._step_rewards(step, infos))):
                buf[key].append(value)
            self._last_obs, self._last_starts = obs, dones.astype(np.float32)
            if dones.any():
                self._skills = self._skills.copy()
                self._skills[dones] = self.sample_skills(int(dones.sum()), self.skill_gen)
            if not hooks.on_step(self.num_timesteps):
                return None
        skills = np.concatenate(buf["skills"])
        batch = TransitionBatch(
            obs=np.concatenate([np.concatenate(buf["obs"]), skills], 1), actions=np.concatenate(buf["actions"]),
            next_obs=np.concatenate([np.concatenate(buf["next_obs"]), skills], 1),
            rewards=np.concatenate(buf["rewards"]).astype(np.float32), dones=np.concatenate(buf["dones"]),
            infos=[info for step in buf["infos"] for info in step], extras={"skill": skill_idx(skills)}, n_envs=n_envs)
        with torch.no_grad():
            last_values = self.critics(self._inputs(self._last_obs, self._skills)).cpu().numpy()
        return {"batch": batch, "fixed": np.stack(buf["fixed"]), "x": torch.cat(buf["x"]), "actions": torch.as_tensor(batch.actions),
                "log_probs": torch.cat(buf["log_probs"]), "values": np.stack(buf["values"]),
                "starts": np.stack(buf["starts"]), "boot": np.stack(buf["boot"]), "last_values": last_values,
                "last_starts": self._last_starts.copy()}

    def _train(self, rollout: dict[str, Any]) -> None:
        cfg, (steps, n_envs) = self.cfg, rollout["starts"].shape
        streams = rollout["fixed"].copy()  # (T, N, K); learned modules are computed now, over the rollout
        for k, name in enumerate(self.streams):
            if name in self.modules and self.modules[name].learned:
                streams[..., k] = self.modules[name](rollout["batch"]).reshape(steps, n_envs)
        rewards = streams @ self.weights.numpy()[:, None] if cfg.critic == "summed" else streams
        advantages, returns = gae(rewards + rollout["boot"], rollout["values"], rollout["starts"], rollout["last_values"],
                                  rollout["last_starts"], self.gammas, self.lambdas)
        logs: dict[str, float] = {}
        for name, module in self.modules.items():
            if module.learned:
                logs.update({f"reward/{name}/{k}": v for k, v in module.update(rollout["batch"]).items()})
        n_critics = advantages.shape[-1]
        adv = torch.as_tensor(advantages.reshape(-1, n_critics), device=self.device)
        ret = torch.as_tensor(returns.reshape(-1, n_critics), device=self.device)
        weights = (self.weights if cfg.critic == "multi" else torch.ones(1)).to(self.device)
        x, actions, old_log_probs = rollout["x"], rollout["actions"].to(self.device), rollout["log_probs"]
        stats: list[dict[str, float]] = []
        for _ in range(cfg.n_epochs):
            order = torch.randperm(len(x))
            for start in range(0, len(x), cfg.batch_size):
                idx = order[start:start + cfg.batch_size]
                loss, info = self.loss(x[idx], actions[idx], old_log_probs[idx], adv[idx], ret[idx], weights)
                self.optimizer.zero_grad()
                loss.backward()
                if cfg.clip_grad == "global":
                    torch.nn.utils.clip_grad_norm_([*self.actor.parameters(), *self.critics.parameters()], cfg.max_grad_norm)
                else:
                    clip_grad_per_network_(self.actor, self.critics, cfg.max_grad_norm)
                self.optimizer.step()
                stats.append(info)
        for k, name in enumerate(self.streams):
            logs[f"stream/{name}/reward_mean"] = float(streams[..., k].mean())
        critic_names = self.streams if cfg.critic == "multi" else ["summed"]
        for key in stats[0]:
            value = float(np.mean([s[key] for s in stats]))
            if key.startswith("value_loss_"):
                logs[f"stream/{critic_names[int(key.rsplit('_', 1)[1])]}/value_loss"] = value
            else:
                logs[f"train/{key}"] = value
        self._log(logs)

    def loss(self, x: torch.Tensor, actions: torch.Tensor, old_log_probs: torch.Tensor, advantages: torch.Tensor,
             returns: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """SLIM's loss on one minibatch: (B, K) raw per-stream advantages and returns."""
        log_prob, entropy = self.actor.log_prob_entropy(x, actions)
        mixed = combined_advantage(advantages, weights)
        return ppo_loss(log_prob, old_log_probs, entropy, mixed, self.critics(x), returns,
                        self.cfg.clip_range, self.cfg.ent_coef, self.cfg.vf_coef)

    def _log(self, logs: dict[str, float]) -> None:
        if self.logger is None:
            return
        if self._episode_returns:
            self.logger.record("rollout/ep_rew_mean", float(np.mean(self._episode_returns)))
        for key, value in logs.items():
            self.logger.record(key, value)
        self.logger.record("time/total_timesteps", self.num_timesteps)
        self.logger.dump(self.num_timesteps)

    # -- saving ------------------------------------------------------------------------------------
    def state_dict(self, include_buffers: bool = True) -> dict[str, Any]:
        """Every critic, the actor, Adam, both skill samplers and each stream module (discriminator)."""
        return {"config": asdict(self.cfg), "streams": list(self.streams), "num_timesteps": int(self.num_timesteps),
                "actor": self.actor.state_dict(), "critics": self.critics.state_dict(),
                "optimizer": self.optimizer.state_dict(), "skill_generator": self.skill_gen.get_state(),
                "predict_generator": self.predict_gen.get_state(),
                "modules": {name: m.state_dict() for name, m in self.modules.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if list(state["streams"]) != self.streams:
            raise ValueError(f"slim: the checkpoint has streams {state['streams']}; this agent has {self.streams}")
        self.actor.load_state_dict(state["actor"])
        self.critics.load_state_dict(state["critics"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.skill_gen.set_state(state["skill_generator"])
        self.predict_gen.set_state(state["predict_generator"])
        for name, module in self.modules.items():
            module.load_state_dict(state["modules"][name])
        self.num_timesteps = int(state["num_timesteps"])
        self._last_obs = None  # the envs restart: new episodes, new skills


class SlimSummedAgent(SlimAgent):
    """The paper's baseline: one critic on the weighted sum of the same streams (PPO on it)."""

    default_critic = "summed"


def _signature() -> inspect.Signature:
    """The constructor's signature as the registry reads it: SlimConfig's fields are the hyperparameters,
    so an unknown one is refused (naming the valid ones) before any run folder exists."""
    params = list(inspect.signature(SlimAgent.__init__).parameters.values())[:6]
    params += [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=None) for f in fields(SlimConfig)]
    return inspect.Signature(params)


SlimAgent.__init__.__signature__ = _signature()  # type: ignore[attr-defined]
