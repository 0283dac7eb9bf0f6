"""The cheaper GRPO step (issue 22 item 3) leaves log-probs and the loss as the plain path has them:
shared-prefix scoring and sampling, reference log-probs with the LoRA adapter disabled, and
decoding that drops finished rows. Tiny random Llama, fixed batches."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")
pytest.importorskip("peft")
import torch  # noqa: E402

from selfgym.agents.llm.losses import group_advantages, grpo_loss  # noqa: E402
from selfgym.llm.policy import Samples, decode, prefix_runs, sequence_logprobs  # noqa: E402
from selfgym.llm.tiny import tiny_llama, tiny_policy  # noqa: E402

torch.set_num_threads(1)
G = 3
QUESTIONS = ["What is 2 + 2?", "Sort [3, 1, 2].", "hi"]


def trained_lora_policy(**kwargs):
    """A LoRA policy whose adapter is not zero (a fresh adapter would hide a reference mix-up)."""
    policy = tiny_policy(lora={"r": 4, "alpha": 8}, **kwargs)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in policy.trainable_parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=gen))
    return policy


def fixed_batch(policy, seed: int = 0) -> Samples:
    prompts = [q for q in QUESTIONS for _ in range(G)]
    return policy.sample(prompts, generator_seed=seed, max_new_tokens=10)


def test_prefix_runs_finds_groups_of_repeated_prompts() -> None:
    ids = torch.tensor([[0, 5, 6], [0, 5, 6], [7, 8, 9], [0, 5, 6]])
    mask = torch.tensor([[0, 1, 1], [0, 1, 1], [1, 1, 1], [0, 1, 1]])
    firsts, inverse = prefix_runs(ids, mask)
    assert firsts.tolist() == [0, 2, 3] and inverse.tolist() == [0, 0, 1, 2]


def test_shared_prefix_scoring_gives_the_plain_log_probs_and_gradient() -> None:
    policy = trained_lora_policy(temperature=0.9)
    s = fixed_batch(policy)
    assert len(prefix_runs(s.prompt_ids, s.prompt_mask)[0]) == len(QUESTIONS)  # the batch does share prompts
    grads = []
    for shared in (True, False):
        policy.model.zero_grad(set_to_none=True)
        logp = sequence_logprobs(policy.model, s.prompt_ids, s.prompt_mask, s.completion_ids, s.completion_mask,
                                 0.9, shared_prefix=shared)
        adv = group_advantages(torch.arange(len(s.texts), dtype=torch.float32), G)
        loss, _ = grpo_loss(logp, s.logprobs, None, adv, s.completion_mask, beta=0.0)
        loss.backward()
        grads.append((logp.detach(), loss.detach(), [p.grad.clone() for p in policy.trainable_parameters()]))
    (lp_a, loss_a, g_a), (lp_b, loss_b, g_b) = grads
    assert torch.allclose(lp_a, lp_b, atol=1e-5)
    assert torch.allclose(loss_a, loss_b, atol=1e-6)
    assert all(torch.allclose(a, b, atol=1e-5, rtol=1e-4) for a, b in zip(g_a, g_b))
    assert any(float(a.abs().sum()) > 0 for a in g_a)  # the gradient reaches the prompt's shared cache too


def test_shared_prefix_sampling_records_the_plain_paths_log_probs() -> None:
    policy = trained_lora_policy(temperature=0.8, top_p=0.95)
    s = fixed_batch(policy, seed=1)
    plain = sequence_logprobs(policy.model, s.prompt_ids, s.prompt_mask, s.completion_ids, s.completion_mask,
                              0.8, shared_prefix=False)
    assert torch.allclose(s.logprobs, plain.detach(), atol=1e-5)
    assert len(set(s.texts)) > len(QUESTIONS)  # rows of one prompt still sample different completions


def test_greedy_decoding_matches_transformers_generate() -> None:
    policy = trained_lora_policy()
    prompts = [q for q in QUESTIONS for _ in range(2)]
    ids, mask = policy.encode(prompts, 12)
    ours = policy.sample(prompts, greedy=True, max_new_tokens=12)
    policy.model.eval()
    out = policy.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=12, do_sample=False,
                                pad_token_id=policy.tokenizer.pad_token_id, eos_token_id=policy.tokenizer.eos_token_id)
    theirs = policy.tokenizer.batch_decode(out[:, ids.shape[1]:], skip_special_tokens=True)
    assert ours.texts == theirs


class _Out(dict):
    __getattr__ = dict.__getitem__


class _EosAfter(torch.nn.Module):
    """A fake LM: the rows of prompt run r send token 1 until step stop[r], then the end token 2.
    Its KV cache holds each row's run id, so rows dropped from the cache leave the batch."""

    def __init__(self, stop: list[int], prompt_len: int) -> None:
        super().__init__()
        self.stop, self.prompt_len, self.rows_seen = torch.tensor(stop), prompt_len, []

    def forward(self, input_ids, attention_mask, position_ids, use_cache, logits_to_keep=0, **kw):
        from transformers import DynamicCache

        cache = kw.get("cache", kw.get("past_key_values"))
        if cache is None:
            cache = DynamicCache()
            run = torch.arange(input_ids.shape[0], dtype=torch.float32)[:, None, None, None]
            cache.update(run, run, 0)
        self.rows_seen.append(input_ids.shape[0])
        runs = cache.layers[0].keys[:, 0, 0, 0].long()
        step = attention_mask.shape[1] - self.prompt_len
        logits = torch.full((input_ids.shape[0], 1, 4), -10.0)
        logits[:, 0, 1] = 0.0
        logits[self.stop[runs] <= step, 0, 2] = 10.0
        return _Out(logits=logits, cache=cache)


def test_decoding_drops_finished_rows_and_stops_when_all_have_ended() -> None:
    model = _EosAfter([2, 5, 1], prompt_len=2)
    prompt = torch.tensor([[3, 3], [3, 3], [0, 3], [3, 3]])  # runs: rows 0-1, row 2, row 3
    mask = torch.tensor([[1, 1], [1, 1], [0, 1], [1, 1]])
    ids, out_mask, logps, _ = decode(model, prompt, mask, 20, greedy=True, eos_token_id=2, pad_token_id=0)
    assert out_mask.sum(1).tolist() == [3, 3, 6, 2]  # up to and including each row's end token
    assert ids.shape == (4, 6) and ids[3].tolist() == [1, 2, 0, 0, 0, 0]  # finished rows padded
    assert model.rows_seen == [3, 4, 3, 1, 1, 1]  # 3 distinct prompts prefilled; then only rows still writing
    assert torch.all(logps[out_mask == 0] == 0)
    short, short_mask, _, _ = decode(model.__class__([9, 9, 9], 2), prompt, mask, 4, greedy=True, eos_token_id=2)
    assert short.shape == (4, 4) and short_mask.sum().item() == 16  # max_new_tokens caps rows without an end


def test_reference_log_probs_with_the_adapter_disabled_equal_a_frozen_base_copy() -> None:
    policy = trained_lora_policy()
    s = fixed_batch(policy, seed=2)
    base = tiny_llama(len(policy.tokenizer), seed=0)  # a second copy of the initial model, as built
    second_copy = sequence_logprobs(base, s.prompt_ids, s.prompt_mask, s.completion_ids, s.completion_mask,
                                    policy.temperature, shared_prefix=False)
    ref = policy.reference_logprobs(s)
    assert torch.allclose(ref, second_copy, atol=1e-5)
    assert not torch.allclose(ref, policy.logprobs(s).detach(), atol=1e-3)  # the adapter does change them


def test_reference_log_probs_scored_while_sampling_equal_the_separate_reference_pass() -> None:
    policy = trained_lora_policy(temperature=0.9)
    prompts = [q for q in QUESTIONS for _ in range(G)]
    s = policy.sample(prompts, generator_seed=3, max_new_tokens=10, score_reference=True)
    plain = policy.sample(prompts, generator_seed=3, max_new_tokens=10)
    assert s.texts == plain.texts and torch.allclose(s.logprobs, plain.logprobs, atol=1e-5)  # same draws
    separate = policy.reference_logprobs(s)
    assert s.ref_logprobs is not None and torch.allclose(s.ref_logprobs, separate, atol=1e-5)
    assert not torch.allclose(s.ref_logprobs, s.logprobs, atol=1e-3)
    adv = group_advantages(torch.arange(len(prompts), dtype=torch.float32), G)
    logp = policy.logprobs(s)
    one, _ = grpo_loss(logp, s.logprobs, s.ref_logprobs, adv, s.completion_mask)
    two, _ = grpo_loss(logp, s.logprobs, separate, adv, s.completion_mask)
    assert torch.allclose(one, two, atol=1e-6)  # the GRPO loss with its KL term is unchanged
    assert tiny_policy().sample(["hi"], score_reference=True).ref_logprobs is None  # no LoRA: a separate copy
