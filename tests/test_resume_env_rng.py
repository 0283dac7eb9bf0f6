"""A resumed run's environments go on drawing where the uninterrupted run's would.

Before the fix, a resumed run rebuilt its envs with the run's seed and their first reset
re-seeded them: every resume replayed the episode starts of the run's beginning. Now a
checkpoint holds each sub-env's ``np_random`` and action-space RNG states (and the VecEnv's own
action space's, which SB3 samples for random warm-up actions), and a resume restores them and
drops the pending seeds.

What is exactly equal, and when: a checkpoint holds no env's mid-episode state (a physics
state is not generic data) and no half-collected on-policy rollout, so a resumed run begins new
episodes. Where the checkpoint falls at an episode end of every sub-env and at a rollout end
(Pendulum's fixed 200-step episodes, ``n_steps`` 200), a run stopped at N and resumed to 2N
equals the uninterrupted run to 2N: the same weights and the same logged training metrics.
Elsewhere (CartPole's episodes of any length) the episodes in progress at N are cut short, and
what is equal is the RNG streams: the first reset after the resume draws what the uninterrupted
run's envs would have drawn at their next reset.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from selfgym import runs
from selfgym.cli import train_main
from selfgym.metrics import read_metrics
from selfgym.train import Run

PENDULUM = ["--env", "Pendulum-v1", "--agent", "ppo", "--seed", "3", "--n-envs", "2", "--eval-freq", "400", "--eval-episodes", "1",
            "--no-final-eval",
            "--save-freq", "400", "--keep-checkpoints", "0", "-params", "n_steps:200", "batch_size:200", "n_epochs:2"]


def train(logs, *args: str) -> None:
    assert train_main(["-f", str(logs), *args]) == 0


def policy(run) -> dict[str, torch.Tensor]:
    return runs.load_checkpoint(run / "model")[0]["agent"]["params"]["policy"]


def training_rows(run) -> list[dict]:
    """metrics.csv rows without the columns of wall-clock time and of SB3's count of iterations
    within one learn() call (a resumed run's learn call starts it again)."""
    return [{k: v for k, v in row.items() if not k.startswith("time_") and k not in ("steps_per_s", "wall_time")}
            for row in read_metrics(run / "metrics.csv")]


def test_stopped_at_n_and_resumed_to_2n_equals_the_uninterrupted_run(tmp_path) -> None:
    train(tmp_path / "a", "-n", "800", *PENDULUM)
    train(tmp_path / "b", "-n", "400", *PENDULUM)
    run_a, run_b = tmp_path / "a/ppo/Pendulum-v1_1", tmp_path / "b/ppo/Pendulum-v1_1"
    assert train_main(["-i", str(run_b), "-n", "800"]) == 0
    a, b = policy(run_a), policy(run_b)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=0, msg=key)
    # Every logged metric takes the same values in the same order. The rows are laid out apart:
    # a learn() call that ends writes its last update's training values in a row of its own (at
    # 400 in the stopped run), where the uninterrupted run writes them with the next rollout's.
    rows_a, rows_b = training_rows(run_a), training_rows(run_b)
    keys = {k for row in rows_a + rows_b for k in row} - {"steps"}
    series = {run: {k: [row[k] for row in rows if row.get(k) is not None] for k in keys}
              for run, rows in (("a", rows_a), ("b", rows_b))}
    assert series["b"] == series["a"]
    assert series["a"]["train_value_loss"] and len(series["a"]["ep_return_mean"]) == 2
    assert len(series["a"]["eval_return_mean"]) == 2  # the evaluation after the resume sees the episode it would have


def _env_rng(run, steps: int) -> dict:
    return runs.load_checkpoint(runs.checkpoint_dir(run, steps))[0]["env_rng"]


def test_checkpoint_holds_every_sub_env_rng_and_a_resume_goes_on_from_it(tmp_path) -> None:
    """CartPole (episodes of any length): the first reset after the resume is the reset the
    uninterrupted envs would have made next, not the run's first reset again."""
    import gymnasium as gym

    args = ["--env", "CartPole-v1", "--agent", "ppo", "--seed", "5", "--n-envs", "2", "--eval-freq", "128", "--eval-episodes", "1",
            "--no-final-eval",
            "--save-freq", "128", "-params", "n_steps:64", "batch_size:64", "n_epochs:1"]
    train(tmp_path / "c", "-n", "128", *args)
    run = tmp_path / "c/ppo/CartPole-v1_1"
    saved = _env_rng(run, 128)
    assert len(saved["episode_start"]) == 2 and len(saved["action_space"]) == 2 and saved["vec_action_space"]
    assert all("rng" in start for start in saved["episode_start"])  # 64 random CartPole steps: each env has reset since its seed

    def next_reset(rng_state: dict) -> np.ndarray:
        env = gym.make("CartPole-v1")
        env.reset(seed=0)
        env.unwrapped.np_random.bit_generator.state = rng_state
        return env.reset()[0]

    expected = np.stack([next_reset(start["rng"]) for start in saved["episode_start"]])
    replay = np.stack([gym.make("CartPole-v1").reset(seed=5 + i)[0] for i in range(2)])  # the run's first episodes
    state, _ = runs.load_checkpoint(runs.checkpoint_dir(run, 128))
    resumed = Run(runs.read_yaml(run / "config.yaml"), run, state, 0.0)
    try:
        first = resumed.venv.reset()  # the reset SB3's learn makes first when it goes on
        evaluation = resumed.eval_venv.reset()  # what the next evaluation starts from
        assert resumed.best_eval == state["best_eval"] > -np.inf  # before, a resumed run forgot its best evaluation
    finally:
        resumed.close()
    np.testing.assert_array_equal(first, expected)
    assert not np.allclose(first, replay)
    env = gym.make("CartPole-v1")
    env.reset(seed=0)
    env.unwrapped.np_random.bit_generator.state = state["eval_env_rng"]["np_random"][0]  # the evaluation env's stream goes on
    np.testing.assert_array_equal(evaluation[0], env.reset()[0])


def test_a_checkpoint_without_env_rng_still_resumes_with_a_warning(tmp_path) -> None:
    train(tmp_path / "d", "-n", "400", *PENDULUM)
    run = tmp_path / "d/ppo/Pendulum-v1_1"
    folder = runs.checkpoint_dir(run, 400)
    state, meta = runs.load_checkpoint(folder)
    del state["env_rng"]  # as selfgym wrote checkpoints before it saved the envs' RNGs
    runs.save_checkpoint(folder, state, meta)
    with pytest.warns(UserWarning, match="no env RNG state"):
        assert train_main(["-i", str(run), "-n", "800"]) == 0
    assert runs.load_checkpoint(run / "model")[1]["num_timesteps"] == 800
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert "env_rng" in runs.load_checkpoint(run / "model")[0]


@pytest.mark.slow  # worker processes import selfgym: about 6 s on 2 quiet cores
def test_subprocess_envs_restore_like_in_process_ones() -> None:
    from selfgym.env_factory import env_rng_state, load_env_rng_state, make_vec_env

    source = make_vec_env("CartPole-v1", 2, 1)
    source.reset()
    for _ in range(40):  # past some episode ends: the episode starts are RNG states, not seeds
        source.step(np.array([source.action_space.sample() for _ in range(2)]))
    state = env_rng_state(source)
    restored = {}
    for kind in ("dummy", "subproc"):
        venv = make_vec_env("CartPole-v1", 2, 1, vec_env=kind)
        try:
            load_env_rng_state(venv, state)
            restored[kind] = venv.reset()
            assert [s.np_random.bit_generator.state for s in venv.get_attr("action_space")] == state["action_space"]
        finally:
            venv.close()
    np.testing.assert_array_equal(restored["subproc"], restored["dummy"])


def test_a_checkpoint_of_another_env_count_is_refused() -> None:
    from selfgym.env_factory import env_rng_state, load_env_rng_state, make_vec_env

    state = env_rng_state(make_vec_env("CartPole-v1", 2, 1))
    with pytest.raises(ValueError, match="episodes of 2 envs; this run has 3"):
        load_env_rng_state(make_vec_env("CartPole-v1", 3, 1), state)
