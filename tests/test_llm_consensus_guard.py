"""The consensus guard (issue 22 item 2): its statistic on hand-made groups, the floor, both
actions, the majority vote's option and the trainer's temperature."""

from __future__ import annotations

import math

import pytest

from selfgym.rewards import make_reward
from selfgym.rewards.consensus_guard import ConsensusGuard, group_statistics


def test_statistic_on_hand_made_groups() -> None:
    stats = group_statistics(["7", "7", "7", "7"], ["a"] * 4)
    assert stats == {"agreement": 1.0, "entropy": 0.0}
    stats = group_statistics(["1", "2", "3", "4"], ["a"] * 4)
    assert stats["agreement"] == 0.25 and stats["entropy"] == pytest.approx(1.0)
    # two groups: [1, 1, 2, unparsable] and [5, 5, 5, 6]
    stats = group_statistics(["1", "1", "2", None, "5", "5", "5", "6"], list("aaaabbbb"))
    h1 = -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3)) / math.log(4)
    h2 = -(3 / 4 * math.log(3 / 4) + 1 / 4 * math.log(1 / 4)) / math.log(4)
    assert stats["agreement"] == pytest.approx((2 / 4 + 3 / 4) / 2)
    assert stats["entropy"] == pytest.approx((h1 + h2) / 2)
    assert group_statistics([None, None], ["a", "a"]) == {"agreement": 0.0, "entropy": 0.0}
    with pytest.raises(ValueError, match="no answers"):
        group_statistics([], [])


def test_temperature_rises_below_the_floor_and_returns_after_recovery() -> None:
    guard = ConsensusGuard("temperature", floor=0.5, step=1.5, max_scale=2.0, ema=1.0, warmup=1)
    spread, collapsed = (["1", "2", "3", "4"], ["a"] * 4), (["9", "9", "9", "9"], ["a"] * 4)
    first = guard.observe(*spread)
    assert first["guard_active"] == 0.0 and guard.temperature_scale == 1.0 and first["guard_floor"] == pytest.approx(0.5)
    scales = [guard.observe(*collapsed)["guard_temperature_scale"] for _ in range(3)]
    assert scales == pytest.approx([1.5, 2.0, 2.0]) and guard.active  # capped at max_scale
    assert guard.observe(*spread)["guard_temperature_scale"] == pytest.approx(2.0 / 1.5) and not guard.active
    assert guard.observe(*spread)["guard_temperature_scale"] == 1.0  # never below the training temperature
    assert not guard.withhold_labels


def test_ema_delays_the_trigger() -> None:
    guard = ConsensusGuard("temperature", floor=0.5, ema=0.5, warmup=1)
    guard.observe(["1", "2", "3", "4"], ["a"] * 4)
    assert guard.observe(["9"] * 4, ["a"] * 4)["guard_entropy_ema"] == pytest.approx(0.5) and not guard.active
    assert guard.observe(["9"] * 4, ["a"] * 4)["guard_entropy_ema"] == pytest.approx(0.25) and guard.active


def test_reference_is_the_mean_of_the_warm_up_iterations_and_the_guard_waits_for_it() -> None:
    guard = ConsensusGuard("temperature", floor=0.9, ema=1.0, warmup=2)
    spread = guard.observe(["1", "2", "3", "4"], ["a"] * 4)  # entropy 1
    collapsed = guard.observe(["9"] * 4, ["a"] * 4)  # entropy 0, still warming up: no action
    assert spread["guard_floor"] == pytest.approx(0.9) and collapsed["guard_floor"] == pytest.approx(0.45)
    assert collapsed["guard_active"] == 0.0 and guard.temperature_scale == 1.0
    assert guard.observe(["9"] * 4, ["a"] * 4)["guard_active"] == 1.0  # 0 < 0.9 x 0.5
    restored = ConsensusGuard(warmup=2)
    restored.load_state_dict(guard.state_dict())
    assert restored.state_dict() == guard.state_dict()
    with pytest.raises(ValueError, match="warmup must be >= 1"):
        ConsensusGuard(warmup=0)


def test_majority_vote_pause_withholds_labels_and_logs_the_guard() -> None:
    mv = make_reward("majority_vote:guard=pause,guard_floor=0.6,guard_warmup=1")
    q = ["q"] * 4
    spread = ["<answer>1</answer>", "<answer>1</answer>", "<answer>2</answer>", "<answer>3</answer>"]
    assert mv(prompts=q, completions=spread) == [1, 1, 0, 0]
    assert mv.last_metrics["guard_active"] == 0.0 and mv.last_metrics["guard_agreement"] == 0.5
    agree = ["<answer>5</answer>"] * 4
    assert mv(prompts=q, completions=agree) == [0, 0, 0, 0]  # collapsed: no labels, no consensus paid
    assert mv.last_metrics["guard_active"] == 1.0 and mv.last_metrics["label_rate"] == 0.0
    assert mv.sampling_temperature_scale == 1.0
    plain = make_reward("majority_vote")
    assert plain(prompts=q, completions=agree) == [1, 1, 1, 1] and "guard_active" not in plain.last_metrics


def test_bad_guard_settings_are_refused_with_the_valid_values() -> None:
    with pytest.raises(ValueError, match="none, temperature, pause"):
        make_reward("majority_vote:guard=entropy")
    with pytest.raises(ValueError, match="floor must be in"):
        ConsensusGuard(floor=1.5)
    with pytest.raises(ValueError, match="step must be > 1"):
        ConsensusGuard(step=0.9)


def test_trainer_samples_at_the_guards_temperature_and_evaluates_at_its_own(tiny_dir) -> None:
    pytest.importorskip("transformers")
    from selfgym import agents
    from selfgym.env_factory import make_vec_env

    import selfgym  # noqa: F401

    venv = make_vec_env("selfgym/TextReasoning-v0", 4, 0, {"split": "test", "test_size": 4})
    params = dict(model=tiny_dir, group_size=2, max_new_tokens=4, heldout_size=0, temperature=0.8)
    mv = make_reward("majority_vote:guard=temperature")
    agent = agents.make_agent("grpo", venv, params, device="cpu", seed=0, reward_modules=[mv])
    agent.rollout()
    assert agent.policy.temperature == pytest.approx(0.8)
    mv.guard.temperature_scale = 1.5
    agent.rollout()
    assert agent.policy.temperature == pytest.approx(1.2) and agent.base_temperature == 0.8


def test_majority_vote_state_carries_the_guard() -> None:
    """The run saves reward modules through ``state_dict``: the guard's floor, smoothed entropy and
    temperature must be in it, or a resumed run starts its warm-up and temperature over."""
    mv = make_reward("majority_vote:guard=temperature,guard_floor=1.0,guard_warmup=1")
    q = ["q"] * 4
    mv(prompts=q, completions=["<answer>1</answer>", "<answer>2</answer>", "<answer>3</answer>", "<answer>4</answer>"])
    mv(prompts=q, completions=["<answer>5</answer>"] * 4)
    assert mv.sampling_temperature_scale == pytest.approx(1.25)
    restored = make_reward("majority_vote:guard=temperature,guard_floor=1.0,guard_warmup=1")
    restored.load_state_dict(mv.state_dict())
    assert restored.guard.state_dict() == mv.guard.state_dict() and restored.sampling_temperature_scale == pytest.approx(1.25)
    plain = make_reward("majority_vote")
    plain.load_state_dict(plain.state_dict())  # no guard, nothing to carry
    with pytest.raises(ValueError, match="guard"):  # a guarded run's state does not load into an unguarded module
        plain.load_state_dict(mv.state_dict())
    older = make_reward("majority_vote:guard=temperature")
    with pytest.warns(UserWarning, match="starts its warm-up again"):  # a checkpoint from before the guard was saved
        older.load_state_dict(plain.state_dict())
    assert older.guard.seen == 0


def _grpo_config(tiny_dir: str, n_timesteps: int) -> dict:
    return {"env": "selfgym/TextReasoning-v0", "agent": "grpo", "n_timesteps": n_timesteps, "seed": 3, "device": "cpu",
            "num_threads": 1, "n_envs": 4, "vec_env": "dummy", "env_kwargs": {"split": "test", "test_size": 4},
            "normalize": False, "env_wrapper": None, "eval_freq": 0, "eval_episodes": 1, "save_freq": 8,
            "keep_checkpoints": 0, "gym_packages": [],
            # stated=false: the tiny random model states no answer, but most of its 24 random bytes hold a digit
            "rewards": ["majority_vote:guard=temperature,guard_floor=1.0,guard_warmup=1,stated=false"],
            "hyperparams": {"model": tiny_dir, "group_size": 4, "max_new_tokens": 24, "heldout_size": 0,
                            "learning_rate": 1e-3}}


def test_a_resumed_run_goes_on_with_the_guards_floor_and_temperature(tiny_dir, tmp_path) -> None:
    """Train 4 iterations (the guard has acted), stop, resume to 6: the guard's floor, smoothed
    entropy and temperature go on from the checkpoint and equal an uninterrupted run's."""
    pytest.importorskip("transformers")
    from selfgym import runs
    from selfgym.train import train

    def guard_state(run_dir, steps):
        state, _ = runs.load_checkpoint(runs.checkpoint_dir(run_dir, steps))
        return state["rewards"]["majority_vote"]["extra"]["guard"]

    whole = train(_grpo_config(tiny_dir, 24), str(tmp_path / "whole"), final_eval=False)
    cut = train(_grpo_config(tiny_dir, 16), str(tmp_path / "cut"), final_eval=False)
    stopped = guard_state(cut, 16)
    assert stopped == guard_state(whole, 16) and stopped["seen"] == 4
    assert stopped["temperature_scale"] > 1.0, "the guard had not acted: the test would not see a lost temperature"
    resumed = train(_grpo_config(tiny_dir, 24), resume_dir=cut, final_eval=False)
    assert guard_state(resumed, 24) == guard_state(whole, 24)
    assert guard_state(resumed, 24)["seen"] == 6 and guard_state(resumed, 24)["reference"] == stopped["reference"]
