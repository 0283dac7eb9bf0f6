"""``llm_sft``: supervised fine-tuning of an LLM policy on CalendarConflict-v0 (PEARL's SFT baseline).

The data are (prompt, correct answer) pairs from the training users: each training user's year
is played with the correct answers, so every prompt shows the history a perfect assistant would
have seen, and the target is the JSON answer with the user's true ranking
(``{"priority_ranking": [...], "selected_event_to_accept": id}``, then the end-of-turn token).
The loss is the token-level negative log-likelihood of the answer (TRL's SFT loss: every answer
token of the batch weighted equally), minibatches drawn from a shuffled pass over the pairs.

The pairs are made from the env's settings and users, deterministically; their SHA-256 is kept
in the checkpoint, so a resumed run on different data is refused. ``num_timesteps`` counts
gradient steps (like the other offline agents). ``predict`` answers with the model (greedy when
deterministic), so ``evaluate.py`` plays the held-out users with it.
"""

from __future__ import annotations

import copy
import hashlib
import time
from typing import Any

import numpy as np
import torch

from selfgym.agents.llm.calendar_common import calendar_settings, check_prompt_lengths, gold_answer, make_env
from selfgym.envs.text.spaces import as_text, texts
from selfgym.llm.policy import LLMPolicy, Samples


def sft_pairs(settings: dict[str, Any], users: list[int]) -> tuple[list[str], list[str]]:
    """(prompts, answers): every round of every user's year, played with the correct answers."""
    env = make_env(settings, users=users)
    prompts, answers = [], []
    for uid in users:
        obs, _ = env.reset(seed=0, options={"user_id": int(uid)})
        for t in range(env.n):
            answer = gold_answer(env.data.rounds[t].scores)  # type: ignore[union-attr]
            prompts.append(as_text(obs))
            answers.append(answer)
            obs, _, done, _, info = env.step(answer)
            assert info["is_success"], info["message"]  # the gold answer must be right
            if done:
                break
    return prompts, answers


def pairs_digest(prompts: list[str], answers: list[str]) -> str:
    h = hashlib.sha256()
    for p, a in zip(prompts, answers):
        h.update(p.encode())
        h.update(b"\0")
        h.update(a.encode())
        h.update(b"\1")
    return h.hexdigest()


def sft_loss(logp: torch.Tensor, mask: torch.Tensor, normalizer: float | None = None) -> torch.Tensor:
    """Negative log-likelihood summed over answer tokens / ``normalizer`` (default: this batch's token count)."""
    total = -(logp * mask).sum()
    return total / (float(mask.sum()) if normalizer is None else normalizer)


class CalendarSFTAgent:
    """Supervised fine-tuning on (prompt, correct JSON answer) pairs of the training users.

    Args:
        model: ``"default"`` (SmolLM2-135M-Instruct, offline) or a local model folder.
        learning_rate, batch_size: AdamW step size; answers per gradient step.
        train_batch_size: micro-batch (sequences per forward/backward); changes memory, not the step.
        lora: LoRA settings (``{"r": 16, "alpha": 32}``) or None for full fine-tuning.
        max_new_tokens: answer length when acting (``predict``); the JSON answer is ~35 tokens.
        dtype, num_threads, max_grad_norm, log_interval: as the other LLM agents.
    """

    agent_name = "llm_sft"

    def __init__(self, env: Any, *, device: str = "auto", seed: int | None = None, logger: Any = None,
                 reward_modules: list | None = None, model: str = "default", learning_rate: float = 5e-5,
                 batch_size: int = 8, train_batch_size: int = 4, lora: dict[str, Any] | None = None,
                 max_new_tokens: int = 64, dtype: str = "auto", num_threads: int | None = None,
                 max_grad_norm: float = 1.0, log_interval: int = 10) -> None:
        if reward_modules:
            raise ValueError(f"{self.agent_name} learns from the correct answers; it takes no --reward modules")
        for name, value in (("batch_size", batch_size), ("train_batch_size", train_batch_size), ("log_interval", log_interval)):
            if int(value) < 1:
                raise ValueError(f"{self.agent_name}: {name} must be >= 1, got {value}")
        self.settings = calendar_settings(env, self.agent_name)
        self.logger, self.seed = logger, 0 if seed is None else int(seed)
        torch.manual_seed(self.seed)
        self.rng = np.random.default_rng(self.seed)
        self.model_name, self.lora = model, lora
        self.policy = LLMPolicy(model, device=device, dtype=dtype, lora=lora, num_threads=num_threads,
                                max_new_tokens=max_new_tokens)
        self.batch_size, self.train_batch_size = int(batch_size), int(train_batch_size)
        self.max_grad_norm, self.log_interval = float(max_grad_norm), int(log_interval)
        self.optimizer = torch.optim.AdamW(self.policy.trainable_parameters(), lr=float(learning_rate), weight_decay=0.0)
        self.eos = self.policy.tokenizer.eos_token or ""
        self.num_timesteps, self.epoch, self.cursor = 0, 0, 0
        self.prompts: list[str] = []
        self.answers: list[str] = []
        self.order: np.ndarray | None = None
        self.digest: str | None = None  # of the pairs: made on the first learn() (evaluation needs none)
        self.loaded_digest: str | None = None

    # -- data -----------------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Make the pairs of the env's users and check them, before any training step: every
        prompt fits the context, and a resumed run trains on the pairs it started with."""
        if self.digest is not None:
            return
        prompts, answers = sft_pairs(self.settings, self.settings["users"])
        answers = [a + self.eos for a in answers]
        digest = pairs_digest(prompts, answers)
        if self.loaded_digest is not None and self.loaded_digest != digest:
            raise ValueError(f"{self.agent_name}: this run was trained on SFT pairs with SHA-256 {self.loaded_digest[:12]}..., "
                             f"the env now gives pairs with {digest[:12]}... (different users, rounds, window or "
                             "text_style); resume with the run's own env settings")
        answer_tokens = max(len(self.policy.tokenizer.encode(a, add_special_tokens=False)) for a in answers)
        self.longest_prompt = check_prompt_lengths(self.policy, prompts, answer_tokens, f"{self.agent_name} data", self.settings)
        self.prompts, self.answers, self.digest = prompts, answers, digest
        if self.order is None:
            self.order = self.rng.permutation(len(self.prompts))

    # -- training -------------------------------------------------------------------------
    def next_batch(self) -> np.ndarray:
        """Indices of the next ``batch_size`` pairs of the shuffled pass (a new shuffle per pass)."""
        out = []
        while len(out) < self.batch_size:
            if self.cursor >= len(self.order):
                self.epoch, self.cursor = self.epoch + 1, 0
                self.order = self.rng.permutation(len(self.prompts))
            take = self.order[self.cursor:self.cursor + self.batch_size - len(out)]
            out.extend(take.tolist())
            self.cursor += len(take)
        return np.asarray(out)

    def samples(self, indices: np.ndarray) -> Samples:
        return self.policy.text_samples([self.prompts[i] for i in indices], [self.answers[i] for i in indices])

    def batch_loss(self, indices: np.ndarray, backward: bool = False) -> float:
        """The batch's token-mean NLL, a micro-batch at a time (gradients accumulated when ``backward``)."""
        parts = [indices[i:i + self.train_batch_size] for i in range(0, len(indices), self.train_batch_size)]
        encoded = [self.samples(p) for p in parts]
        normalizer = float(sum(float(s.completion_mask.sum()) for s in encoded))
        total = 0.0
        for part in encoded:
            with torch.set_grad_enabled(backward):
                loss = sft_loss(self.policy.logprobs(part, temperature=1.0), part.completion_mask, normalizer)
            if backward:
                loss.backward()
            total += float(loss.detach())
        return total

    def train_step(self) -> dict[str, float]:
        self.policy.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.batch_loss(self.next_batch(), backward=True)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.policy.trainable_parameters(), self.max_grad_norm)
        self.optimizer.step()
        return {"loss": loss, "grad_norm": float(grad_norm)}

    def learn(self, total_timesteps: int, hooks: Any) -> None:
        self.prepare_data()
        while self.num_timesteps < total_timesteps:
            start = time.perf_counter()
            stats = self.train_step()
            self.num_timesteps += 1
            if self.logger is not None and self.num_timesteps % self.log_interval == 0:
                for key, value in stats.items():
                    self.logger.record(f"train/{key}", value)
                self.logger.record("train/epoch", self.epoch + self.cursor / len(self.order))
                self.logger.record("time/s_per_step", time.perf_counter() - start)
                self.logger.dump(self.num_timesteps)
            if not hooks.on_step(self.num_timesteps):
                break

    # -- acting ---------------------------------------------------------------------------
    def predict(self, observation: Any, state: Any = None, episode_start: Any = None,
                deterministic: bool = False) -> tuple[np.ndarray, Any]:
        answers = self.policy.sample(texts(observation), greedy=deterministic).texts
        return np.array(answers + [""], dtype=object)[:-1], state

    # -- checkpoints ----------------------------------------------------------------------
    def state_dict(self, include_buffers: bool = True) -> dict[str, Any]:
        state: dict[str, Any] = {"policy": self.policy.trainable_state(), "num_timesteps": int(self.num_timesteps)}
        if self.digest or self.loaded_digest:
            state["data_sha256"] = self.digest or self.loaded_digest
        if include_buffers and self.order is not None:
            state["optimizer"] = self.optimizer.state_dict()
            state["data_position"] = {"epoch": int(self.epoch), "cursor": int(self.cursor),
                                      "order": torch.as_tensor(self.order)}
            state["rng"] = {"numpy": self.rng.bit_generator.state, "torch": torch.get_rng_state()}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.loaded_digest = state.get("data_sha256")
        self.policy.load_trainable_state(state["policy"])
        self.num_timesteps = int(state.get("num_timesteps", 0))
        if "optimizer" in state:
            self.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))
        if "data_position" in state:
            pos = state["data_position"]
            self.epoch, self.cursor, self.order = int(pos["epoch"]), int(pos["cursor"]), pos["order"].numpy().copy()
        if "rng" in state:
            self.rng.bit_generator.state = state["rng"]["numpy"]
            torch.set_rng_state(state["rng"]["torch"])


__all__ = ["CalendarSFTAgent", "sft_pairs", "sft_loss"]
