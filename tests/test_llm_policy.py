"""LLMPolicy on a tiny random Llama (built offline): sampling, log-probs, LoRA, errors."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")
import torch  # noqa: E402

from selfgym.llm.policy import LLMPolicy, completion_mask  # noqa: E402
from selfgym.llm.tiny import byte_tokenizer, tiny_llama, tiny_policy  # noqa: E402

torch.set_num_threads(1)


def test_sampled_logprobs_match_a_forward_pass_and_masks_stop_at_eos() -> None:
    policy = tiny_policy(max_new_tokens=12, temperature=0.8)
    samples = policy.sample(["What is 2 + 2?", "Sort [3, 1, 2]."], generator_seed=0)
    assert samples.completion_ids.shape == samples.logprobs.shape == samples.completion_mask.shape
    assert torch.allclose(policy.logprobs(samples), samples.logprobs, atol=1e-4)
    assert torch.all(samples.logprobs <= 0) and len(samples.texts) == 2
    ids = torch.tensor([[5, 2, 7, 2], [5, 6, 7, 8]])
    assert completion_mask(ids, 2).tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]


def test_greedy_is_deterministic_and_seeded_sampling_reproducible() -> None:
    policy = tiny_policy()
    assert policy.generate(["abc", "de"]) == policy.generate(["abc", "de"])
    a = policy.sample(["abc"], generator_seed=3).texts
    assert a == policy.sample(["abc"], generator_seed=3).texts


def test_reference_equals_policy_at_start_so_kl_is_zero() -> None:
    from selfgym.agents.llm.losses import k3_kl

    for lora in (None, {"r": 4}):
        policy = tiny_policy(lora=lora)
        samples = policy.sample(["hello", "world!"], generator_seed=1)
        kl = k3_kl(policy.logprobs(samples).detach(), policy.reference_logprobs(samples))
        assert float(kl.abs().max()) < 1e-5


def test_lora_trains_adapters_only_and_state_round_trips() -> None:
    policy = tiny_policy(lora={"r": 4, "alpha": 8})
    names = list(policy.trainable_state())
    assert names and all("lora_" in n for n in names)
    state = policy.trainable_state()
    with torch.no_grad():
        for p in policy.trainable_parameters():
            p.add_(0.5)
    policy.load_trainable_state(state)
    assert all(torch.equal(policy.trainable_state()[k], v) for k, v in state.items())
    with pytest.raises(KeyError, match="missing"):
        policy.load_trainable_state({})


def test_chat_template_is_applied() -> None:
    policy = tiny_policy(system_prompt="Be brief.")
    text = policy.render("hi")
    assert text.startswith("<|im_start|>system\nBe brief.<|im_end|>") and text.endswith("<|im_start|>assistant\n")


def test_clear_errors_for_bad_models_and_long_prompts(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        LLMPolicy(str(tmp_path / "no_such_model"), device="cpu")
    tok = byte_tokenizer(chat_template=None)
    with pytest.raises(ValueError, match="no chat template"):
        LLMPolicy(tiny_llama(len(tok)), tok, device="cpu")
    raw = LLMPolicy(tiny_llama(len(tok)), tok, device="cpu", use_chat_template=False)
    assert raw.render("plain") == "plain"
    policy = tiny_policy(max_new_tokens=8)
    with pytest.raises(ValueError, match="context window of 2048"):
        policy.sample(["x" * 2100])


def test_loads_from_a_local_folder(tmp_path) -> None:
    tok = byte_tokenizer()
    tiny_llama(len(tok)).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    policy = LLMPolicy(str(tmp_path), device="cpu", max_new_tokens=4)
    assert len(policy.generate(["hi"])) == 1 and policy.dtype == torch.float32
