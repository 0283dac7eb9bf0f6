"""The GRPO-family update does not depend on the micro-batch size (``train_batch_size``):
loss and gradient on one fixed rollout (GRPO, RLOO) or set of pairs (DPO) are the same for
micro-batches of 1, 2 and the whole batch, on a tiny random Llama. Also: RLOO refuses GRPO's settings, and the trainers refuse an
env that is not a TextTaskEnv."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("transformers")
import torch  # noqa: E402

import selfgym  # noqa: F401,E402  (registers the selfgym/ ids)
from selfgym import agents  # noqa: E402
from selfgym.env_factory import make_vec_env  # noqa: E402
from selfgym.envs.text.protocol import TextTaskEnv  # noqa: E402

torch.set_num_threads(1)
ENV = "selfgym/TextReasoning-v0"


def _agent(name, tiny_dir, **hp):
    venv = make_vec_env(ENV, 4, 0, {"split": "test", "test_size": 4})
    params = dict(model=tiny_dir, group_size=2, max_new_tokens=6, heldout_size=0, learning_rate=1e-3)
    params.update(hp)
    return agents.make_agent(name, venv, params, device="cpu", seed=0)


def _ragged_rollout(agent):
    """One rollout with fixed rewards and ragged completion lengths 1, 6, 3, 5."""
    roll = agent.rollout()
    roll.returns = np.array([1.0, 0.0, 0.0, 1.0])
    samples = roll.turns[0]
    width = samples.completion_ids.shape[1]
    lengths = torch.tensor([1, 6, 3, 5]).clamp(max=width)
    samples.completion_mask = (torch.arange(width)[None] < lengths[:, None]).to(samples.completion_mask.dtype)
    return roll


def _same_gradient(grads: list[torch.Tensor], reference: list[torch.Tensor]) -> bool:
    """Equal up to float32 summation order: 1e-4 relative, or 1e-5 of the largest gradient entry."""
    scale = max(float(g.abs().max()) for g in reference)
    return all(torch.allclose(g, r, rtol=1e-4, atol=1e-5 * scale) for g, r in zip(grads, reference))


def _loss_and_grads(agent, run) -> tuple[float, list[torch.Tensor]]:
    agent.optimizer.zero_grad(set_to_none=True)
    loss = run()
    return loss, [p.grad.detach().clone() for p in agent.policy.trainable_parameters()]


@pytest.mark.parametrize("loss_type", ["grpo", "dapo"])
def test_grpo_loss_and_gradient_do_not_depend_on_the_micro_batch(tiny_dir, loss_type) -> None:
    agent = _agent("grpo", tiny_dir, beta=0.1, loss_type=loss_type, lora={"r": 4})
    roll = _ragged_rollout(agent)
    with torch.no_grad():  # a policy that moved away from the sampler: ratios != 1, KL != 0
        for p in agent.policy.trainable_parameters():
            p.add_(0.05 * torch.randn_like(p))
    adv = agent.advantages(torch.as_tensor(roll.returns, dtype=torch.float32))
    results = {}
    for micro in (1, 2, 4):
        agent.train_batch_size = micro
        ref = agent.reference_logprobs(roll)
        results[micro] = _loss_and_grads(agent, lambda: agent.accumulate_gradients(roll, adv, ref)["loss"])
    loss_full, grads_full = results[4]
    assert abs(loss_full) > 1e-4 and any(float(g.abs().sum()) > 0 for g in grads_full)
    for micro in (1, 2):
        loss, grads = results[micro]
        assert loss == pytest.approx(loss_full, rel=1e-5, abs=1e-7), (loss_type, micro, loss, loss_full)
        assert _same_gradient(grads, grads_full), (loss_type, micro)


def test_rloo_loss_and_gradient_do_not_depend_on_the_micro_batch(tiny_dir) -> None:
    agent = _agent("rloo", tiny_dir, beta=0.0, lora={"r": 4})
    roll = _ragged_rollout(agent)
    from selfgym.agents.llm.losses import rloo_advantages

    adv = rloo_advantages(torch.as_tensor(roll.returns, dtype=torch.float32), 2)
    results = {}
    for micro in (1, 2, 4):
        agent.train_batch_size = micro
        results[micro] = _loss_and_grads(agent, lambda: agent.accumulate_gradients(roll, adv))
    loss_full, grads_full = results[4]
    assert abs(loss_full) > 1e-4
    for micro in (1, 2):
        loss, grads = results[micro]
        assert loss == pytest.approx(loss_full, rel=1e-5)
        assert _same_gradient(grads, grads_full), micro


def test_dpo_loss_and_gradient_do_not_depend_on_the_micro_batch(tiny_dir) -> None:
    agent = _agent("self_rewarding_dpo", tiny_dir, lora={"r": 4}, dpo_beta=0.5)
    prompts = ["What is 1 + 2?", "What is 3 + 4?", "Sort 3 1 2", "Count to 3"]
    chosen = agent.policy.text_samples(prompts, ["<answer>3</answer>", "7", "1 2 3", "1, 2, 3"])
    rejected = agent.policy.text_samples(prompts, ["4", "<answer>8</answer>", "3 2 1 0", "no"])
    with torch.no_grad():
        for p in agent.policy.trainable_parameters():
            p.add_(0.05 * torch.randn_like(p))  # away from the reference: margins != 0
        ref_c = agent.policy.reference_logprobs(chosen, 1.0).sum(1)
        ref_r = agent.policy.reference_logprobs(rejected, 1.0).sum(1)
    results = {}
    for micro in (1, 2, 4):
        agent.train_batch_size = micro
        results[micro] = _loss_and_grads(agent, lambda: agent.accumulate_gradients(chosen, rejected, ref_c, ref_r)["loss"])
    loss_full, grads_full = results[4]
    assert loss_full != pytest.approx(np.log(2), abs=1e-4)  # margins moved: not the trivial loss
    for micro in (1, 2):
        loss, grads = results[micro]
        assert loss == pytest.approx(loss_full, rel=1e-5)
        assert _same_gradient(grads, grads_full), micro


@pytest.mark.parametrize("setting", [{"clip_eps": 0.1}, {"loss_type": "dapo"}, {"scale_rewards": False}, {"num_iterations": 2}])
def test_rloo_refuses_settings_it_would_ignore(tiny_dir, setting) -> None:
    with pytest.raises(TypeError, match=f"agent .rloo. does not take hyperparameter.*{next(iter(setting))}"):
        _agent("rloo", tiny_dir, **setting)


def test_trainers_need_a_text_task_env(tiny_dir) -> None:
    env = make_vec_env("CartPole-v1", 2, 0, {})
    with pytest.raises(TypeError, match="TextTaskEnv.*heldout_tasks, score_task"):
        agents.make_agent("grpo", env, {"model": tiny_dir, "group_size": 2}, device="cpu", seed=0)
    text_env = make_vec_env(ENV, 1, 0, {"test_size": 2})
    assert isinstance(text_env.envs[0].unwrapped, TextTaskEnv)


def test_train_batch_size_must_be_positive(tiny_dir) -> None:
    with pytest.raises(ValueError, match="train_batch_size must be >= 1"):
        _agent("grpo", tiny_dir, train_batch_size=0)
