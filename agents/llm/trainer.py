"""What the LLM trainers share: groups over the VecEnv, rollouts, reward streams, held-out
evaluation, logging and state.

How a group maps onto the VecEnv: the env has ``n_envs = prompts_per_step * group_size``
sub-envs; sub-envs ``[g*G, (g+1)*G)`` form group g. Each iteration the trainer draws one
training task index per group and resets every sub-env of the group on it
(``options={"split": "train", "task_index": k}``), so the G sub-envs show the same question.
All n_envs completions are sampled in one batch, stepped through the VecEnv (the env's verifier
reward and infos come back), then every reward module scores the transitions, with
``extras["group"]`` = the group id (what majority vote counts over). Multi-turn envs (the
two-turn self-correction option) repeat sample+step until every sub-env is done; a sequence's
return is the sum of its turns' rewards. ``num_timesteps`` counts completions.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from selfgym.envs.text.protocol import missing_methods
from selfgym.envs.text.spaces import texts
from selfgym.llm.policy import LLMPolicy, Samples
from selfgym.rewards.base import TransitionBatch


def slice_samples(samples: Samples, rows: slice) -> Samples:
    """Rows ``rows`` of a batch of samples (padding columns kept: log-probs do not change)."""
    ref = samples.ref_logprobs[rows] if samples.ref_logprobs is not None else None
    return Samples(samples.prompt_ids[rows], samples.prompt_mask[rows], samples.completion_ids[rows],
                   samples.completion_mask[rows], samples.logprobs[rows], samples.texts[rows], ref)


def micro_batches(turns: list[Samples], size: int) -> Iterator[tuple[int, slice, Samples]]:
    """(turn, rows, part) for every micro-batch of at most ``size`` sequences of every turn.

    The one loop the trainers share: reference log-probs, the loss and its gradient are
    computed a micro-batch at a time to bound memory, and the losses, divided by the whole
    batch's count (agents/llm/losses.py), add up to the full-batch loss.
    """
    if size < 1:
        raise ValueError(f"micro-batch size must be >= 1, got {size}")
    for turn, samples in enumerate(turns):
        for start in range(0, samples.completion_ids.shape[0], size):
            rows = slice(start, start + size)
            yield turn, rows, slice_samples(samples, rows)


@dataclass
class Rollout:
    """One iteration's data: per turn the samples; per sequence the return and its streams."""

    turns: list[Samples] = field(default_factory=list)
    prompts: list[list[str]] = field(default_factory=list)
    returns: np.ndarray | None = None  # (n_envs,) weighted sum of streams over turns
    streams: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (n_envs,) summed over turns
    correct: np.ndarray | None = None  # (n_envs,) verifier outcome of the last turn (monitoring)
    tokens: int = 0
    sample_seconds: float = 0.0


class PolicyCheckpoint:
    """``state_dict``/``load_state_dict`` of an agent that trains ``self.policy`` with
    ``self.optimizer`` and draws from ``self.rng`` (the LLM trainers and pearl): the trainable
    weights and counters; with ``include_buffers`` also the optimizer and the numpy and torch RNG
    states, so a resumed run goes on as the uninterrupted one would."""

    policy: LLMPolicy
    optimizer: torch.optim.Optimizer
    rng: np.random.Generator
    num_timesteps: int
    iteration: int

    def state_dict(self, include_buffers: bool = True) -> dict[str, Any]:
        state: dict[str, Any] = {
            "policy": self.policy.trainable_state(),
            "num_timesteps": int(self.num_timesteps),
            "iteration": int(self.iteration),
        }
        if include_buffers:
            state["optimizer"] = self.optimizer.state_dict()
            state["rng"] = {"numpy": self.rng.bit_generator.state, "torch": torch.get_rng_state()}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_trainable_state(state["policy"])
        self.num_timesteps, self.iteration = int(state.get("num_timesteps", 0)), int(state.get("iteration", 0))
        if "optimizer" in state:
            self.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))  # torch keeps and mutates the given tensors
        if "rng" in state:
            self.rng.bit_generator.state = state["rng"]["numpy"]
            torch.set_rng_state(state["rng"]["torch"])


class LLMTrainer(PolicyCheckpoint):
    """Base of the GRPO, RLOO and self-rewarding DPO agents (Agent protocol of agents/base.py).

    ``env`` is a VecEnv of ``TextTaskEnv`` (selfgym/envs/text/protocol.py): what this class calls
    on it. ``train_batch_size`` is the micro-batch size (sequences per forward/backward pass);
    it bounds memory and does not change the loss or its gradient.
    """

    def __init__(
        self,
        env: Any,
        *,
        device: str = "auto",
        seed: int | None = None,
        logger: Any = None,
        reward_modules: list | None = None,
        model: str = "default",
        group_size: int = 4,
        learning_rate: float = 5e-5,
        max_new_tokens: int = 64,
        temperature: float = 1.0,
        top_p: float = 1.0,
        lora: dict[str, Any] | None = None,
        dtype: str = "auto",
        num_threads: int | None = None,
        system_prompt: str | None = None,
        heldout_size: int = 50,
        eval_every: int = 5,
        max_grad_norm: float = 1.0,
        train_batch_size: int = 8,
    ) -> None:
        missing = missing_methods(env)
        if missing:
            raise TypeError(f"{type(self).__name__} needs a text task env (selfgym.envs.text.protocol.TextTaskEnv); "
                            f"this env has no {', '.join(missing)}")
        if int(train_batch_size) < 1:
            raise ValueError(f"{type(self).__name__}: train_batch_size must be >= 1, got {train_batch_size}")
        self.env, self.logger = env, logger
        self.reward_modules = list(reward_modules or [])
        self.group_size = int(group_size)
        if self.group_size < 1:
            raise ValueError(f"{type(self).__name__}: group_size must be >= 1, got {group_size}")
        self.n_groups = env.num_envs // self.group_size  # checked in learn(): predict works with any n_envs
        self.seed = 0 if seed is None else int(seed)
        torch.manual_seed(self.seed)
        self.rng = np.random.default_rng(self.seed)
        self.base_temperature = float(temperature)  # evaluation's; a reward's guard may scale the sampling one
        self.policy = LLMPolicy(model, device=device, dtype=dtype, lora=lora, num_threads=num_threads,
                                system_prompt=system_prompt, max_new_tokens=max_new_tokens,
                                temperature=temperature, top_p=top_p)
        for module in self.reward_modules:
            if hasattr(module, "bind_policy"):
                module.bind_policy(self.policy)
        self.optimizer = torch.optim.AdamW(self.policy.trainable_parameters(), lr=float(learning_rate), weight_decay=0.0)
        self.heldout_size, self.eval_every = int(heldout_size), int(eval_every)
        self.max_grad_norm, self.train_batch_size = float(max_grad_norm), int(train_batch_size)
        self.num_timesteps, self.iteration = 0, 0
        self.last_heldout: float | None = None

    # -- rollouts ------------------------------------------------------------------------
    def reset_groups(self, tasks: np.ndarray | None = None) -> np.ndarray:
        """Reset every sub-env on its group's training task (new ones unless given)."""
        if tasks is None:
            tasks = self.rng.integers(0, 2**31 - 1, size=self.n_groups)
        self.last_tasks = tasks
        options = [{"split": "train", "task_index": int(tasks[j // self.group_size])} for j in range(self.env.num_envs)]
        self.env.set_options(options)
        return self.env.reset()

    def rollout(self, tasks: np.ndarray | None = None, reference: bool = False) -> Rollout:
        """Sample, step and score one group per task (``reference``: sample the initial model)."""
        out = Rollout()
        self.policy.temperature = self.sampling_temperature()
        n = self.env.num_envs
        groups = np.arange(n) // self.group_size
        obs = self.reset_groups(tasks)
        active = np.ones(n, dtype=bool)
        out.returns = np.zeros(n)
        out.correct = np.zeros(n)
        while active.any():
            prompts = texts(obs)
            start = time.perf_counter()
            samples = self.policy.sample(prompts, reference=reference, score_reference=self.score_reference_while_sampling)
            out.sample_seconds += time.perf_counter() - start
            out.tokens += int(samples.completion_mask.sum())
            actions = np.array(samples.texts + [""], dtype=object)[:-1]  # keep a 1-D object array
            next_obs, env_rewards, dones, infos = self.env.step(actions)
            batch = TransitionBatch(np.array(prompts, dtype=object), actions, next_obs, np.asarray(env_rewards, dtype=np.float32),
                                    np.asarray(dones), list(infos), {"group": groups})
            total = self.combine_rewards(batch, out.streams)
            out.returns += total * active
            out.correct = np.where(active, [float(i.get("is_success", False)) for i in infos], out.correct)
            out.turns.append(samples)
            out.prompts.append(prompts)
            active &= ~np.asarray(dones, dtype=bool)
            obs = next_obs
            if len(out.turns) > 16:
                raise RuntimeError("LLM trainers expect short text episodes (<= 16 turns)")
        return out

    #: Sample the reference's log-probs with the policy's (GRPO with a KL term sets it).
    score_reference_while_sampling = False

    def sampling_temperature(self) -> float:
        """The training temperature times every reward module's ``sampling_temperature_scale``
        (the majority vote's consensus guard raises it while the groups' answers have collapsed).
        Set before sampling, so one iteration samples and scores at one temperature."""
        scale = 1.0
        for module in self.reward_modules:
            scale *= float(getattr(module, "sampling_temperature_scale", 1.0))
        return self.base_temperature * scale

    def combine_rewards(self, batch: TransitionBatch, streams: dict[str, np.ndarray]) -> np.ndarray:
        """Weighted sum of the reward streams; the env's verifier reward when no module is given."""
        if not self.reward_modules:
            value = np.asarray(batch.rewards, dtype=np.float64)
            streams["env"] = streams.get("env", 0.0) + value
            return value
        total = np.zeros(len(batch))
        for module in self.reward_modules:
            value = np.asarray(module(batch), dtype=np.float64)
            streams[module.name] = streams.get(module.name, 0.0) + value
            total += module.weight(self.num_timesteps) * value
            for key, metric in getattr(module, "last_metrics", {}).items():
                self._record(f"reward/{module.name}_{key}", metric)
        return total

    # -- evaluation ----------------------------------------------------------------------
    @torch.no_grad()
    def heldout_completions(self, size: int | None = None, samples: int = 0, temperature: float | None = None,
                            seed: int = 0) -> tuple[list[dict[str, Any]], list[list[str]]]:
        """The first ``size`` held-out tasks and, per task, one greedy completion (``samples=0``)
        or ``samples`` completions sampled at ``temperature`` (default: the training temperature).

        Sampling is seeded and leaves the global torch RNG as it was, so an evaluation in the
        middle of training does not change the training run.
        """
        if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 0:
            raise ValueError(f"samples must be >= 0 and a whole number (0 = greedy), got {samples!r}")
        samples = int(samples)
        tasks = self.env.env_method("heldout_tasks", indices=[0])[0][: size or self.heldout_size]
        questions = [t["question"] for t in tasks]
        batch = max(self.env.num_envs, 8)
        if samples == 0:
            return tasks, [[c] for c in self.policy.generate(questions, greedy=True, batch_size=batch)]
        repeated = [q for q in questions for _ in range(samples)]
        device = self.policy.device
        cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(seed)
            flat = self.policy.generate(repeated, greedy=False, batch_size=batch,
                                        temperature=self.base_temperature if temperature is None else temperature)
        return tasks, [flat[i * samples:(i + 1) * samples] for i in range(len(tasks))]

    def heldout_accuracy(self, size: int | None = None, samples: int = 0, temperature: float | None = None,
                         seed: int = 0) -> float:
        """Accuracy on the env's fixed held-out set: greedy (``samples=0``), or the mean over
        ``samples`` sampled completions per task (pass@1 estimated from k samples, TTRL's avg@k)."""
        tasks, completions = self.heldout_completions(size, samples, temperature, seed)
        if not tasks:
            return float("nan")
        return float(np.mean(self.heldout_correct(tasks, completions)))

    def heldout_correct(self, tasks: list[dict[str, Any]], completions: list[list[str]]) -> list[list[bool]]:
        """The env's verifier on each completion of each task (as ``heldout_completions`` returns them)."""
        return [[self.env.env_method("score_task", t, c, indices=[0])[0][0] >= 1.0 for c in cs]
                for t, cs in zip(tasks, completions)]

    # -- Agent protocol ------------------------------------------------------------------
    def learn(self, total_timesteps: int, hooks: Any) -> None:
        if self.env.num_envs % self.group_size:
            raise ValueError(
                f"{type(self).__name__}: n_envs ({self.env.num_envs}) must be a multiple of group_size ({self.group_size}); "
                "n_envs = prompts per step x group_size"
            )
        if self.heldout_size and self.iteration == 0:
            self.last_heldout = self.heldout_accuracy()
            self._record("heldout/accuracy", self.last_heldout)
            self._dump()
        while self.num_timesteps < total_timesteps:
            start = time.perf_counter()
            roll = self.rollout()
            metrics = self.update(roll)
            self.iteration += 1
            self.num_timesteps += self.env.num_envs
            self._log_iteration(roll, metrics, time.perf_counter() - start)
            if self.heldout_size and self.eval_every and self.iteration % self.eval_every == 0:
                self.last_heldout = self.heldout_accuracy()
                self._record("heldout/accuracy", self.last_heldout)
            self._dump()
            if not hooks.on_step(self.num_timesteps):
                break

    def update(self, roll: Rollout) -> dict[str, float]:
        raise NotImplementedError

    def predict(self, observation: Any, state: Any = None, episode_start: Any = None, deterministic: bool = False) -> tuple[np.ndarray, Any]:
        completions = self.policy.sample(texts(observation), greedy=deterministic).texts
        return np.array(completions + [""], dtype=object)[:-1], state

    # -- logging -------------------------------------------------------------------------
    def _record(self, key: str, value: Any) -> None:
        if self.logger is not None:
            self.logger.record(key, value)

    def _dump(self) -> None:
        if self.logger is not None:
            self.logger.dump(self.num_timesteps)

    def _log_iteration(self, roll: Rollout, metrics: dict[str, float], seconds: float) -> None:
        for name, value in roll.streams.items():
            self._record(f"reward/{name}", float(np.mean(value)))
        self._record("rollout/ep_rew_mean", float(np.mean(roll.returns)))
        self._record("rollout/success_rate", float(np.mean(roll.correct)))
        lengths = torch.cat([s.lengths.float() for s in roll.turns])
        self._record("rollout/response_length", float(lengths.mean()))
        self._record("rollout/temperature", self.policy.temperature)
        self._record("time/tokens_per_s", roll.tokens / max(roll.sample_seconds, 1e-9))
        self._record("time/s_per_step", seconds)
        self._record("time/iterations", self.iteration)
        for key, value in metrics.items():
            self._record(f"train/{key}", value)
