"""User-defined rewards (plain functions, ports) and clear errors for bad input."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import yaml

from selfgym.rewards import make_reward
from selfgym.rewards.base import FunctionReward, RewardModule, TransitionBatch, batched
from selfgym.registry import UnknownNameError

MY_MOD = '''
def my_reward(obs, action, next_obs, info) -> float:
    """Reward moving the cart right, and staying upright."""
    return float(next_obs[0] - obs[0]) + (1.0 if abs(next_obs[2]) < 0.1 else 0.0)


def bad_shape(obs, action, next_obs, info):
    return [1.0, 2.0]


def gives_nan(obs, action, next_obs, info):
    return float("nan")
'''


def cartpole_batch(n: int = 5) -> TransitionBatch:
    rng = np.random.default_rng(0)
    obs = rng.uniform(-0.2, 0.2, (n, 4)).astype(np.float32)
    next_obs = obs + rng.uniform(-0.05, 0.05, (n, 4)).astype(np.float32)
    return TransitionBatch(obs, rng.integers(0, 2, n), next_obs, np.ones(n, np.float32), np.zeros(n, bool),
                           [{} for _ in range(n)])


@pytest.fixture
def my_mod(tmp_path, monkeypatch):
    (tmp_path / "my_mod.py").write_text(MY_MOD)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_plain_function_from_dotted_path(my_mod):
    module = make_reward("my_mod:my_reward:coef=0.5")
    assert module.name == "my_mod:my_reward" and module.coef == 0.5
    batch = cartpole_batch()
    expected = [float(batch.next_obs[i, 0] - batch.obs[i, 0]) + (abs(batch.next_obs[i, 2]) < 0.1) for i in range(5)]
    np.testing.assert_allclose(module(batch), expected, rtol=1e-6)


def test_batched_function_and_imitation_style_reward_fn():
    @batched
    def speed(obs, action, next_obs, infos):
        return np.abs(next_obs[:, 1])

    batch = cartpole_batch()
    np.testing.assert_allclose(FunctionReward(speed)(batch), np.abs(batch.next_obs[:, 1]))

    def reward_fn(state, action, next_state, done):  # imitation's RewardFn signature
        return np.where(done, -1.0, 0.1)

    batch.dones[2] = True
    np.testing.assert_allclose(FunctionReward(reward_fn, batched=True)(batch), [0.1, 0.1, -1.0, 0.1, 0.1])


def test_unknown_module_name_is_named_with_suggestions():
    with pytest.raises(UnknownNameError, match="unknown reward module 'rdn'.*Did you mean 'rnd'"):
        make_reward("rdn")


@pytest.mark.parametrize("spec, match", [
    ("rnd:hiden=[64]", "reward module 'rnd' does not take 'hiden'"),
    ("simhash:bits=8", "reward module 'simhash' does not take 'bits'"),
    ("icm:beta=2.0", "'icm'.*beta"),
    ("rnd:normalize=maybe", "normalize"),
])
def test_bad_parameters_are_named(spec, match):
    with pytest.raises((TypeError, ValueError), match=match):
        make_reward(spec)


def test_function_with_unknown_parameter_is_named(my_mod):
    with pytest.raises(TypeError, match="reward function 'my_mod:my_reward' does not take 'alpha'"):
        make_reward("my_mod:my_reward:alpha=1")


def test_wrong_shape_and_nan_are_named(my_mod):
    with pytest.raises(ValueError, match="'my_mod:bad_shape' returned .*expected a float"):
        make_reward("my_mod:bad_shape")(cartpole_batch())
    with pytest.raises(ValueError, match="'my_mod:gives_nan' returned a non-finite reward"):
        make_reward("my_mod:gives_nan")(cartpole_batch())

    class TwoColumns(RewardModule):
        def compute(self, batch):
            return np.zeros((len(batch), 2))

    with pytest.raises(ValueError, match="'twocolumns' returned shape \\(5, 2\\); expected \\(5,\\)"):
        TwoColumns()(cartpole_batch())


def test_nan_from_a_learned_module_inside_ppo_is_named():
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    from selfgym.rewards.sb3 import attach

    class Broken(RewardModule):
        learned = True

        def compute(self, batch):
            return np.full(len(batch), np.nan)

    venv, callbacks = attach(make_vec_env("CartPole-v1", n_envs=1), [Broken(name="broken")], PPO)
    model = PPO("MlpPolicy", venv, n_steps=16, batch_size=16)
    with pytest.raises(ValueError, match="'broken' returned a non-finite reward"):
        model.learn(16, callback=callbacks)


@pytest.mark.slow  # a full train.py run: about a minute on the busy 2-core machine
def test_user_function_through_train_cli(my_mod, run_cli, tmp_path):
    result = run_cli("train.py", "--env", "CartPole-v1", "--agent", "ppo", "-n", "512", "--seed", "0",
                     "--reward", "my_mod:my_reward", "--reward", "rnd:hidden=[32],coef=0.1",
                     "-params", "n_steps:128", "batch_size:64", "--no-final-eval", extra_path=my_mod)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = list((tmp_path / "logs" / "ppo").glob("CartPole-v1_*"))
    assert len(runs) == 1
    metrics = (runs[0] / "metrics.csv").read_text()
    for column in ("reward_my_mod:my_reward", "reward_rnd", "reward_rnd_loss"):  # metrics.csv writes / as _
        assert column in metrics.splitlines()[0], metrics.splitlines()[0]
    config = yaml.safe_load((runs[0] / "config.yaml").read_text())
    assert "my_mod:my_reward" in config["rewards"]


@pytest.mark.slow  # starting train.py takes 10-30 s on the busy machine; make_reward's error is tested above
def test_train_cli_rejects_unknown_reward_before_running(run_cli):
    result = run_cli("train.py", "--env", "CartPole-v1", "--agent", "ppo", "-n", "64", "--reward", "curiosty")
    assert result.returncode != 0
    assert "unknown reward module 'curiosty'" in result.stderr


def test_readme_stateful_module_example_runs_and_saves(tmp_path):
    """The `Visits` example of the README's reward section, through PPO and a weights_only reload."""
    import io

    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    from selfgym.rewards.sb3 import attach

    class Visits(RewardModule):
        """1/sqrt(visits) of the rounded x position."""
        def __init__(self, resolution: float = 0.1, **kwargs):
            super().__init__(**kwargs)
            self.resolution, self.counts = resolution, {}
        def watch(self, batch: TransitionBatch) -> None:
            for key in np.round(batch.next_obs[:, 0] / self.resolution).astype(int).tolist():
                self.counts[key] = self.counts.get(key, 0) + 1
        def compute(self, batch: TransitionBatch) -> np.ndarray:
            keys = np.round(batch.next_obs[:, 0] / self.resolution).astype(int).tolist()
            return np.array([self.counts.get(k, 1) ** -0.5 for k in keys], np.float32)
        def extra_state(self):
            return {"counts": dict(self.counts)}
        def load_extra_state(self, state):
            self.counts = dict(state["counts"])

    module = Visits(resolution=0.05, coef=0.1, name="visits")
    venv, callbacks = attach(make_vec_env("CartPole-v1", n_envs=2, seed=0), [module], PPO)
    PPO("MlpPolicy", venv, n_steps=32, batch_size=64, n_epochs=1, seed=0).learn(64, callback=callbacks)
    assert sum(module.counts.values()) == 64
    buf = io.BytesIO()
    torch.save(module.state_dict(), buf)
    buf.seek(0)
    clone = Visits(resolution=0.05)
    clone.load_state_dict(torch.load(buf, weights_only=True))
    assert clone.counts == module.counts
