"""Self-generated reward modules: RewardModule form and TRL-callable form."""

from __future__ import annotations

import numpy as np
import pytest

from selfgym.envs.text.reasoning import TextReasoningEnv
from selfgym.envs.text.spaces import text_obs
from selfgym.rewards import make_reward
from selfgym.rewards.base import TransitionBatch


def test_majority_vote_counts_parsable_answers_per_prompt() -> None:
    mv = make_reward("majority_vote")
    prompts = ["q1"] * 4 + ["q2"] * 3
    completions = ["<answer>3</answer>", "so 3 = 3", "<answer>4</answer>", "no idea", "1", "1", "<answer>1.0</answer>"]
    assert mv(prompts=prompts, completions=completions, family="arithmetic") == [1, 1, 0, 0, 1, 1, 1]


def test_majority_vote_counts_only_stated_answers() -> None:
    # What SmolLM2 converged to under the lenient reading (seed 11): echoes of the question,
    # whose last number "agreed" -> full reward for zero accuracy. Stated-only: no votes, no reward.
    echoes = ["4 + 8", "4 + 8", "<answer>4 + 8", "4 + 8.", "4 + 8 = 12"]
    prompts = ["What is 4 + 8?"] * len(echoes)
    assert make_reward("majority_vote:min_ratio=0")(prompts=prompts, completions=echoes, family="arithmetic") == [0, 0, 0, 0, 1]
    # the default min_ratio (0.5): one stated answer among five is no consensus
    assert make_reward("majority_vote")(prompts=prompts, completions=echoes, family="arithmetic") == [0] * 5
    assert make_reward("majority_vote:stated=false")(prompts=prompts, completions=echoes, family="arithmetic") == [1, 1, 1, 1, 0]
    stated = ["3 + 6 = 9", "The answer is 9.", "<answer>9</answer>", "9", "\\boxed{9}", "3 + 6 is 9"]
    assert make_reward("majority_vote")(prompts=["q"] * 6, completions=stated, family="arithmetic") == [1, 1, 1, 1, 1, 0]
    for bad in ("maybe", "nan"):
        with pytest.raises(ValueError, match="stated must be true or false"):
            make_reward(f"majority_vote:stated={bad}")


def test_majority_vote_ties_and_all_unparsable() -> None:
    prompts, completions = ["q"] * 4, ["<answer>1</answer>", "<answer>2</answer>", "<answer>2</answer>", "<answer>1</answer>"]
    assert make_reward("majority_vote")(prompts=prompts, completions=completions) == [0, 0, 0, 0]
    assert make_reward("majority_vote:tie_break=first")(prompts=prompts, completions=completions) == [1, 0, 0, 1]
    assert make_reward("majority_vote:tie_break=all")(prompts=prompts, completions=completions) == [1, 1, 1, 1]
    mv = make_reward("majority_vote")
    assert mv(prompts=["q"] * 3, completions=["", "???", "no"], family="arithmetic") == [0, 0, 0]
    assert mv.last_metrics["label_rate"] == 0.0
    assert make_reward("majority_vote:min_ratio=0.75")(prompts=["q"] * 4, completions=["1", "1", "2", "3"], family="arithmetic") == [0] * 4
    with pytest.raises(ValueError, match="tie_break"):
        make_reward("majority_vote:tie_break=random")


def test_majority_vote_on_env_batches_uses_group_ids_and_env_answers() -> None:
    obs = np.stack([text_obs("same prompt")] * 4)
    infos = [{"answer": a, "target": "7"} for a in ["7", "7", None, "8"]]
    batch = TransitionBatch(obs, np.array(["a", "b", "c", "d"], dtype=object), obs, np.zeros(4), np.ones(4), infos,
                            {"group": np.array([0, 0, 1, 1])})
    mv = make_reward("majority_vote:stated=false")  # the env's parsed answers vote
    assert mv(batch).tolist() == [1, 1, 0, 1]  # group 1: "8" is the only vote
    assert mv.last_metrics == {"label_rate": 1.0, "label_accuracy": 0.5}


def test_trl_conversational_completions() -> None:
    mv = make_reward("majority_vote")
    prompts = [[{"role": "user", "content": "What is 1+1?"}]] * 2
    completions = [[{"role": "assistant", "content": "<answer>2</answer>"}]] * 2
    assert mv(prompts=prompts, completions=completions, family=["arithmetic"] * 2) == [1.0, 1.0]


def test_verifier_reward_from_env_infos_and_task_column() -> None:
    env = TextReasoningEnv(task="countdown", test_size=2)
    task = env.heldout_tasks()[0]
    good = f"<answer>{task['data']['solution']}</answer>"
    v = make_reward("verifier")
    assert v(prompts=[task["question"]] * 2, completions=[good, "junk"], task=[task, task]) == [1.0, 0.0]
    batch = TransitionBatch(None, np.array(["x"], dtype=object), None, np.zeros(1), np.ones(1),
                            [{"reward_components": {"correct": 1.0, "format": 1.0}}])
    assert v(batch).tolist() == [1.0]
    with pytest.raises(KeyError, match="verifier reward needs"):
        v(prompts=["q"], completions=["1"])


def test_model_based_rewards_with_a_tiny_policy() -> None:
    pytest.importorskip("transformers")
    from selfgym.llm.tiny import tiny_policy

    policy = tiny_policy()
    judge = make_reward("self_judge")
    judge.bind_policy(policy)
    p_yes = judge(prompts=["What is 1+1?", "hi"], completions=["2", "ok"])
    assert all(0.0 <= p <= 1.0 for p in p_yes)
    rubric = make_reward("self_judge:mode=rubric,judge_tokens=4")
    rubric.bind_policy(policy)
    assert rubric(prompts=["q"], completions=["a"]) == [0.0]  # random model: no "Score: k" -> 0
    lik = make_reward("likelihood")
    lik.bind_policy(policy)
    value = lik(prompts=["q"], completions=["abc"])[0]
    total, count = policy.text_logprobs(["q"], ["abc"], reference=True)
    assert value == pytest.approx(float(total[0] / count[0])) and value < 0
    raw = make_reward("likelihood:normalize_length=False")
    raw.bind_policy(policy)
    assert raw(prompts=["q"], completions=["abc"])[0] == pytest.approx(float(total[0]))
    assert lik(prompts=["q"], completions=[""]) == [-10.0]


@pytest.mark.integration  # importing trl + datasets alone takes tens of seconds
def test_reward_fn_in_trl_grpo_trainer_for_one_step(tmp_path) -> None:
    trl = pytest.importorskip("trl")
    datasets = pytest.importorskip("datasets")
    from selfgym.llm.tiny import byte_tokenizer, tiny_llama

    tok = byte_tokenizer()
    model = tiny_llama(len(tok))
    mv = make_reward("majority_vote:tie_break=first")
    rows = [{"prompt": "What is 1 + 1? Give the final answer inside <answer></answer> tags.", "family": "arithmetic"}] * 4
    args = trl.GRPOConfig(output_dir=str(tmp_path), per_device_train_batch_size=4, num_generations=4, max_completion_length=8,
                          max_steps=1, use_cpu=True, report_to=[], logging_steps=1, save_strategy="no")
    trainer = trl.GRPOTrainer(model=model, reward_funcs=[mv], args=args, train_dataset=datasets.Dataset.from_list(rows),
                              processing_class=tok)
    trainer.train()
    assert trainer.state.global_step == 1


def test_majority_vote_default_threshold_and_numerically_equal_answers() -> None:
    from selfgym.rewards.llm import MajorityVoteReward, vote_key

    assert MajorityVoteReward().min_ratio == 0.5  # what every reported result used
    mv = make_reward("majority_vote")
    # no family column (e.g. TRL without one): "12.0", "12" and "12.00" are one vote
    completions = ["<answer>12.0</answer>", "<answer>12</answer>", "<answer>13</answer>", "<answer>12.00</answer>"]
    assert mv(prompts=["q"] * 4, completions=completions) == [1, 1, 0, 1]
    # exactly half is enough; under half is not
    assert mv(prompts=["q"] * 4, completions=["<answer>7</answer>", "<answer>7.0</answer>", "<answer>8</answer>", "x"]) == [1, 1, 0, 0]
    lone = ["<answer>7</answer>", "x", "y"]
    assert mv(prompts=["q"] * 3, completions=lone) == [0, 0, 0]
    assert make_reward("majority_vote:min_ratio=0")(prompts=["q"] * 3, completions=lone) == [1, 0, 0]
    assert [vote_key(a) for a in ("12.0", "0.50", "1,200", "-3", "12 apples", None)] == ["12", "1/2", "1200", "-3", "12 apples", None]
