"""Save -> load -> continue for every SB3 (and, when installed, sb3-contrib) algorithm.

The adapter (agents/sb3_agent.py) checkpoints plain tensors, not SB3's pickle, so it must name
every piece of state a resumed run needs. Per algorithm, on tiny settings: after loading, the
step count, every integer counter of the algorithm object, the parameters, optimiser states
and the replay buffer equal the saved run's bit for bit; training on continues the step count,
keeps the saved transitions, and two runs resumed from the same checkpoint stay identical.
"""

from __future__ import annotations

import io
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.utils import set_random_seed
from stable_baselines3.common.vec_env import DummyVecEnv

from selfgym import agents

SMALL_NET = "dict(net_arch=[16])"
OFF_POLICY = dict(learning_starts=10, buffer_size=200, batch_size=8, train_freq=1, gradient_steps=1, policy_kwargs=SMALL_NET)
#: name -> (env id, hyperparameters, steps before the checkpoint and after it)
CASES: dict[str, tuple[str, dict[str, Any], int]] = {
    "ppo": ("CartPole-v1", dict(n_steps=16, batch_size=8, n_epochs=2, policy_kwargs=SMALL_NET), 32),
    "a2c": ("CartPole-v1", dict(n_steps=4, policy_kwargs=SMALL_NET), 32),
    "dqn": ("CartPole-v1", dict(OFF_POLICY, target_update_interval=7), 40),
    "sac": ("Pendulum-v1", OFF_POLICY, 40),
    "td3": ("Pendulum-v1", dict(OFF_POLICY, policy_delay=3), 40),
    "ddpg": ("Pendulum-v1", OFF_POLICY, 40),
    # sb3-contrib
    "qrdqn": ("CartPole-v1", dict(OFF_POLICY, target_update_interval=7, policy_kwargs="dict(net_arch=[16], n_quantiles=5)"), 40),
    "tqc": ("Pendulum-v1", dict(OFF_POLICY, policy_kwargs="dict(net_arch=[16], n_critics=2, n_quantiles=5)"), 40),
    "crossq": ("Pendulum-v1", dict(OFF_POLICY, policy_kwargs="dict(net_arch=[16])"), 40),
    "trpo": ("CartPole-v1", dict(n_steps=16, batch_size=16, n_critic_updates=2, cg_max_steps=3, policy_kwargs=SMALL_NET), 32),
    "ppo_lstm": ("CartPole-v1", dict(policy="MlpLstmPolicy", n_steps=16, batch_size=8, n_epochs=2,
                                     policy_kwargs="dict(net_arch=[16], lstm_hidden_size=8)"), 32),
}
#: Attributes set afresh by every ``learn`` call (and the constructor seed), not state to carry over.
PER_LEARN_CALL = {"_total_timesteps", "_num_timesteps_at_start", "start_time", "seed"}  # seed: the resumed run is built with another


class _Hooks:
    def on_step(self, num_timesteps: int) -> bool:
        return True


def _make(name: str, seed: int):
    env_id, params, _ = CASES[name]
    try:
        agents.get_agent_class(name)
    except (ImportError, ModuleNotFoundError):
        pytest.skip(f"{name} needs sb3-contrib")
    venv = DummyVecEnv([lambda: gym.make(env_id)])
    return agents.make_agent(name, venv, dict(params), device="cpu", seed=seed)


def _through_disk(state: dict[str, Any]) -> dict[str, Any]:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)  # plain data only: no pickled SB3 objects


def assert_same(a: Any, b: Any, path: str = "state") -> None:
    """Recursive bit-for-bit equality of nested dicts/lists of tensors, arrays and numbers."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), (path, sorted(set(a) ^ set(b)))
        for key in a:
            assert_same(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a.cpu(), torch.as_tensor(b).cpu()), path
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b, err_msg=path)
    else:
        assert a == b, (path, a, b)


def _int_counters(model: Any) -> dict[str, int]:
    return {k: int(v) for k, v in vars(model).items()
            if isinstance(v, (int, np.integer)) and not isinstance(v, bool) and k not in PER_LEARN_CALL}


@pytest.mark.parametrize("name", list(CASES))
def test_save_load_continue(name: str) -> None:
    steps = CASES[name][2]
    original = _make(name, seed=0)
    original.learn(steps, _Hooks())
    state = _through_disk(original.state_dict())
    assert state["counters"]["num_timesteps"] == steps

    resumed, twin = _make(name, seed=1), _make(name, seed=1)
    for agent in (resumed, twin):
        agent.load_state_dict(state)
        assert _int_counters(agent.model) == _int_counters(original.model)  # every counter, named or not
        assert_same(agent.state_dict(), state)  # parameters, optimisers, buffer: bit for bit
    if "replay_buffer" in state:
        for key in ("observations", "actions", "rewards", "dones"):
            np.testing.assert_array_equal(getattr(resumed.model.replay_buffer, key), getattr(original.model.replay_buffer, key))

    for agent in (resumed, twin):
        set_random_seed(123)
        agent.learn(2 * steps, _Hooks())
        assert agent.num_timesteps == 2 * steps
    after = resumed.state_dict()
    assert_same(after, twin.state_dict())  # resuming is deterministic
    assert after["counters"]["n_updates"] > state["counters"]["n_updates"]
    if "replay_buffer" in state:
        saved, now = state["replay_buffer"], after["replay_buffer"]
        assert int(now["pos"]) == 2 * steps
        for key, value in saved["arrays"].items():  # the saved transitions are still there
            assert torch.equal(now["arrays"][key][: len(value)], value), key


def test_unknown_buffer_arrays_are_refused() -> None:
    agent = _make("dqn", seed=0)
    agent.model.replay_buffer.priorities = np.zeros(agent.model.replay_buffer.buffer_size)
    with pytest.raises(NotImplementedError, match="priorities"):
        agent.state_dict()


def test_frame_stack_is_refused_not_ignored() -> None:
    """``frame_stack`` was once accepted and ignored; now nothing consumes it, so it is refused
    by name (stack frames with an ``env_wrapper`` instead)."""
    from selfgym.config import TRAINER_KEYS

    assert "frame_stack" not in TRAINER_KEYS
    with pytest.raises(TypeError, match="does not take hyperparameter.*'frame_stack'"):
        agents.check_hyperparams("ppo", {"frame_stack": 4})
