"""``pearl``: PEARL (Li et al. 2026), GRPO over whole CalendarConflict rounds with round-wise advantages.

One iteration (papers.md section 3):

1. a training user is drawn; G copies of the env replay that user's year (same user, same seed,
   ``train_rounds`` rounds, 20 by default as the paper trains) in lockstep: every copy finishes
   round t before any copy starts round t+1;
2. in each round a copy answers up to K = ``hub_turns`` times with StrategyHub calls
   (``{"action": "list"}`` / ``{"action": "update", ...}``), then with its JSON decision; the
   env's StrategyHub carries across the rounds of the year, its limits (10 strategies of 350
   characters, K calls a round) are the env's;
3. the round's reward is the env's curriculum-weighted PEARL reward
   r~_t = lambda_f r^f + lambda_a r^a + lambda_r(t) r^r + lambda_i(t) r^i (``reward="pearl"``);
4. advantages are ``roundwise_advantages`` (return-to-go over rounds, normalised over the group
   at each round position); every completion of round t of copy i (hub calls and decision)
   gets A_{t,i}, and the loss is the clipped GRPO objective (agents/llm/losses.py ``grpo_loss``;
   KL to the reference off by default, as the paper's "KL loss off").

``init_run`` starts from an ``llm_sft`` (or ``pearl``) run of the same model and LoRA setting;
another agent's or model's run is refused naming both. Prompts too long for the model's context
are refused before the first step, naming their token count and the limit. ``num_timesteps``
counts decisions (G x rounds per iteration).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from selfgym.agents.llm.calendar_common import (calendar_settings, check_prompt_lengths, gold_answer,
                                                load_init_run, make_env)
from selfgym.agents.llm.grpo import grpo_gradients, reference_logprobs
from selfgym.agents.llm.trainer import PolicyCheckpoint
from selfgym.envs.text.spaces import as_text, texts
from selfgym.llm.policy import LLMPolicy, Samples
from selfgym.rewards.calendar import roundwise_advantages

INIT_AGENTS = ("llm_sft", "pearl")


@dataclass
class Turn:
    """One batched sampling call: the copies that answered and the round they answered in."""

    samples: Samples
    copies: np.ndarray
    round_index: int


@dataclass
class GroupRollout:
    """G copies of one user's year: per round the decision rewards, plus every sampled turn."""

    rewards: np.ndarray  # (G, N) r~_t of each copy's decision
    turns: list[Turn] = field(default_factory=list)
    rounds_in_step: list[list[int]] = field(default_factory=list)  # env round counter of each copy after each round
    format_failures: int = 0
    hub_calls: int = 0
    decisions_correct: int = 0
    tokens: int = 0
    sample_seconds: float = 0.0


class PearlAgent(PolicyCheckpoint):
    """GRPO over whole rounds with PEARL's round-wise advantages on CalendarConflict-v0.

    Args:
        model: ``"default"`` (SmolLM2-135M-Instruct, offline) or a local model folder.
        init_run: an ``llm_sft`` or ``pearl`` run folder to start from (same model and ``lora``).
        group_size: G, copies of one user's year per iteration (the paper: 8).
        train_rounds: N of the training years (the paper trains on 20; evaluation uses the env's).
        gamma: discount of the return-to-go over rounds (not given in the paper; 1.0).
        users_per_step: groups (users) per gradient step (the paper's batch: 16).
        learning_rate, clip_eps, beta, temperature, top_p, max_new_tokens, lora, dtype,
        num_threads, train_batch_size, max_grad_norm: as the GRPO agent's.
    """

    agent_name = "pearl"

    def __init__(self, env: Any, *, device: str = "auto", seed: int | None = None, logger: Any = None,
                 reward_modules: list | None = None, model: str = "default", init_run: str | None = None,
                 group_size: int = 8, train_rounds: int = 20, gamma: float = 1.0, users_per_step: int = 1,
                 learning_rate: float = 1e-5, clip_eps: float = 0.2, beta: float = 0.0, temperature: float = 0.7,
                 top_p: float = 1.0, max_new_tokens: int = 96, lora: dict[str, Any] | None = None, dtype: str = "auto",
                 num_threads: int | None = None, train_batch_size: int = 8, max_grad_norm: float = 1.0) -> None:
        if reward_modules:
            raise ValueError("pearl's reward is the env's PEARL reward (format, decision, ranking, hub use with the "
                             "curriculum); it takes no --reward modules")
        for name, value in (("group_size", group_size), ("train_rounds", train_rounds), ("users_per_step", users_per_step),
                            ("train_batch_size", train_batch_size)):
            if int(value) < 1:
                raise ValueError(f"pearl: {name} must be >= 1, got {value}")
        if int(group_size) < 2:
            raise ValueError(f"pearl: group_size must be >= 2 (advantages are relative to the group), got {group_size}")
        self.settings = calendar_settings(env, self.agent_name)
        self.logger, self.seed = logger, 0 if seed is None else int(seed)
        torch.manual_seed(self.seed)
        self.rng = np.random.default_rng(self.seed)
        self.group_size, self.train_rounds, self.gamma = int(group_size), int(train_rounds), float(gamma)
        self.users_per_step, self.train_batch_size = int(users_per_step), int(train_batch_size)
        self.clip_eps, self.beta, self.max_grad_norm = float(clip_eps), float(beta), float(max_grad_norm)
        self.policy = LLMPolicy(model, device=device, dtype=dtype, lora=lora, num_threads=num_threads,
                                max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p)
        if init_run:
            self.policy.load_trainable_state(load_init_run(init_run, self.agent_name, model, lora, INIT_AGENTS))
        self.optimizer = torch.optim.AdamW(self.policy.trainable_parameters(), lr=float(learning_rate), weight_decay=0.0)
        self.envs = [make_env(self.settings, n_rounds=self.train_rounds, reward="pearl") for _ in range(self.group_size)]
        self.num_timesteps, self.iteration, self.checked_lengths = 0, 0, False

    @classmethod
    def resolve_hyperparams(cls, hyperparams: dict[str, Any], env_id: str) -> dict[str, Any]:
        """train.py's hook, before any run folder exists: ``init_run`` checked and made absolute."""
        init_run = hyperparams.get("init_run")
        if not init_run:
            return hyperparams
        folder = Path(str(init_run)).expanduser().resolve()
        load_init_run(folder, cls.agent_name, hyperparams.get("model", "default"), hyperparams.get("lora"), INIT_AGENTS)
        return {**hyperparams, "init_run": str(folder)}

    # -- checks -----------------------------------------------------------------------------
    def check_prompt_lengths(self) -> int:
        """Refuse, before any step, prompts the model cannot take: the training users' years played
        with the correct answers, the hub full (10 strategies of 350 characters) and a tool result."""
        env = make_env(self.settings, n_rounds=self.train_rounds)
        prompts = []
        for uid in self.settings["users"][:5]:
            obs, _ = env.reset(seed=0, options={"user_id": int(uid)})
            env.hub.strategies = ["x" * env.hub.max_chars] * env.hub.max_strategies
            env._tool_result = env.hub.render()  # the longest tool result: a 'list' of a full hub
            for t in range(env.n):
                prompts.append(env.render_text())
                obs, *_ = env.step(gold_answer(env.data.rounds[t].scores))  # type: ignore[union-attr]
                env._tool_result = env.hub.render()
        return check_prompt_lengths(self.policy, prompts, self.policy.max_new_tokens, "pearl rollouts", self.settings)

    # -- rollouts ---------------------------------------------------------------------------
    def rollout(self, user_id: int, seed: int) -> GroupRollout:
        """G copies of ``user_id``'s year, round by round in lockstep; never raises on a bad answer."""
        envs, n = self.envs, self.train_rounds
        obs = [as_text(env.reset(seed=seed, options={"user_id": int(user_id)})[0]) for env in envs]
        out = GroupRollout(rewards=np.zeros((len(envs), n)))
        for t in range(n):
            pending = np.arange(len(envs))  # copies that have not decided round t yet
            while len(pending):
                start = time.perf_counter()
                samples = self.policy.sample([obs[i] for i in pending])
                out.sample_seconds += time.perf_counter() - start
                out.tokens += int(samples.completion_mask.sum())
                out.turns.append(Turn(samples, pending.copy(), t))
                still = []
                for row, i in enumerate(pending):
                    next_obs, reward, _, _, info = envs[i].step(samples.texts[row])
                    obs[i] = as_text(next_obs)
                    if info["feedback"]["hub_step"]:
                        out.hub_calls += 1
                        still.append(i)
                        continue
                    out.rewards[i, t] = reward
                    out.format_failures += int(not info["feedback"]["valid"])
                    out.decisions_correct += int(info["is_success"])
                pending = np.asarray(still, dtype=np.int64)
            out.rounds_in_step.append([int(env.t) for env in envs])
        return out

    # -- the update -------------------------------------------------------------------------
    def turn_advantages(self, rolls: list[GroupRollout]) -> list[list[torch.Tensor]]:
        """Per group, per turn: the round-wise advantage A_{t,i} of each row's copy and round."""
        out = []
        for roll in rolls:
            adv = roundwise_advantages(roll.rewards, gamma=self.gamma)
            out.append([torch.as_tensor(adv[turn.copies, turn.round_index], dtype=torch.float32) for turn in roll.turns])
        return out

    def update(self, rolls: list[GroupRollout]) -> dict[str, float]:
        advantages = self.turn_advantages(rolls)
        if not any(bool((a != 0).any()) for group in advantages for a in group):
            return {"advantage_nonzero": 0.0}  # every copy earned the same at every round: nothing to learn
        samples = [turn.samples for roll in rolls for turn in roll.turns]
        self.policy.model.train()
        reference = reference_logprobs(self.policy, samples, self.train_batch_size) if self.beta else None
        self.optimizer.zero_grad(set_to_none=True)
        stats = grpo_gradients(self.policy, samples, [adv for group in advantages for adv in group], reference,
                               self.train_batch_size, self.clip_eps, self.beta, "grpo")
        grad_norm = torch.nn.utils.clip_grad_norm_(self.policy.trainable_parameters(), self.max_grad_norm)
        self.optimizer.step()
        nonzero = float(np.mean([float((a != 0).float().mean()) for group in advantages for a in group]))
        return {"loss": stats["loss"], "clip_fraction": stats["clip_fraction"], "grad_norm": float(grad_norm),
                "advantage_nonzero": nonzero}

    def learn(self, total_timesteps: int, hooks: Any) -> None:
        if not self.checked_lengths:
            self.longest_prompt = self.check_prompt_lengths()
            self.checked_lengths = True
        users = self.settings["users"]
        while self.num_timesteps < total_timesteps:
            start = time.perf_counter()
            picks = self.rng.choice(len(users), size=self.users_per_step)
            seeds = self.rng.integers(0, 2**31 - 1, size=self.users_per_step)
            rolls = [self.rollout(users[int(k)], int(s)) for k, s in zip(picks, seeds)]
            stats = self.update(rolls)
            self.iteration += 1
            self.num_timesteps += sum(r.rewards.size for r in rolls)
            self._log(rolls, stats, time.perf_counter() - start)
            if not hooks.on_step(self.num_timesteps):
                break

    def _log(self, rolls: list[GroupRollout], stats: dict[str, float], seconds: float) -> None:
        if self.logger is None:
            return
        decisions = sum(r.rewards.size for r in rolls)
        record = self.logger.record
        record("rollout/round_reward", float(np.mean([r.rewards.mean() for r in rolls])))
        record("rollout/decision_accuracy", sum(r.decisions_correct for r in rolls) / decisions)
        record("rollout/format_failure_rate", sum(r.format_failures for r in rolls) / decisions)
        record("rollout/hub_calls_per_round", sum(r.hub_calls for r in rolls) / decisions)
        record("time/tokens_per_s", sum(r.tokens for r in rolls) / max(sum(r.sample_seconds for r in rolls), 1e-9))
        record("time/s_per_step", seconds)
        for key, value in stats.items():
            record(f"train/{key}", value)
        self.logger.dump(self.num_timesteps)

    # -- acting and checkpoints ------------------------------------------------------------
    def predict(self, observation: Any, state: Any = None, episode_start: Any = None,
                deterministic: bool = False) -> tuple[np.ndarray, Any]:
        answers = self.policy.sample(texts(observation), greedy=deterministic).texts
        return np.array(answers + [""], dtype=object)[:-1], state


__all__ = ["PearlAgent", "GroupRollout", "INIT_AGENTS"]
