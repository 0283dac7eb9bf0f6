"""Registries, name suggestions, spec parsing and the safe evaluation of config values."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from selfgym import agents
from selfgym import rewards
from selfgym.rewards.base import TransitionBatch
from selfgym.config import parse_key_values, parse_spec, resolve_value, safe_eval
from selfgym.registry import Registry, UnknownNameError
from tests.conftest import REPO, cli_env


def test_unknown_names_suggest_close_matches():
    with pytest.raises(UnknownNameError, match="Did you mean 'sac'"):
        agents.get_agent_class("sca")
    with pytest.raises(UnknownNameError, match="Did you mean 'task'"):
        rewards.make_reward("tsak")


def test_registry_refuses_silent_overwrite():
    reg: Registry[int] = Registry("thing", "selfgym.test_things")
    reg.register("a", 1)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a", 2)
    reg.register("a", 2, overwrite=True)
    assert reg.get("a") == 2


def test_parse_spec_handles_dotted_names_and_nested_values():
    assert parse_spec("rnd:coef=0.01,hidden=[64, 64]") == ("rnd", {"coef": 0.01, "hidden": [64, 64]})
    assert parse_spec("my_pkg.mod:my_reward") == ("my_pkg.mod:my_reward", {})
    assert parse_spec("my_pkg.mod:Cls:coef=2") == ("my_pkg.mod:Cls", {"coef": 2})
    nan = parse_key_values(["gamma:nan", "clip:inf"], "-params")
    assert nan["gamma"] != nan["gamma"] and nan["clip"] == float("inf")  # real floats, not strings
    assert parse_key_values(["lr:1e-3", "net:[8,8]", "name:abc", "on:true"], "-params") == {
        "lr": 1e-3, "net": [8, 8], "name": "abc", "on": True}
    with pytest.raises(ValueError, match="key:value"):
        parse_key_values(["oops"], "-params")


def test_config_values_are_evaluated_safely():
    import torch.nn as nn

    assert safe_eval("dict(net_arch=[64, 64], activation_fn=nn.Tanh)") == {"net_arch": [64, 64], "activation_fn": nn.Tanh}
    assert resolve_value("learning_rate", "lin_0.001")(0.5) == pytest.approx(0.0005)
    for evil in ("__import__('os').system('true')", "dict(x=open('f'))", "().__class__"):
        with pytest.raises(ValueError):
            safe_eval(evil)


def test_reward_function_errors_name_the_module():
    batch = TransitionBatch(np.zeros((3, 2)), np.zeros((3, 1)), np.zeros((3, 2)), np.zeros(3), np.zeros(3), [{}] * 3)

    @rewards.batched
    def wrong_shape(obs, action, next_obs, infos):
        return np.zeros(2)

    def not_finite(obs, action, next_obs, info):
        return float("nan")

    with pytest.raises(ImportError, match="has no attribute 'nope'"):
        rewards.make_reward("selfgym.rewards.base:nope")
    module = rewards.FunctionReward(wrong_shape)
    with pytest.raises(ValueError, match="'wrong_shape' returned shape"):
        module(batch)
    with pytest.raises(ValueError, match="'not_finite' returned a non-finite reward"):
        rewards.FunctionReward(not_finite)(batch)


def test_component_stream_reads_info_and_explains_missing_terms():
    batch = TransitionBatch(None, np.zeros((2, 1)), None, np.zeros(2), np.zeros(2),
                            [{"reward_components": {"reach": -0.5}}, {"reward_components": {"reach": -0.25}}])
    np.testing.assert_allclose(rewards.make_reward("component:reach")(batch), [-0.5, -0.25])
    with pytest.raises(KeyError, match="no reward component 'grasp'.*reach"):
        rewards.make_reward("component:grasp")(batch)


def test_help_is_fast_and_light():
    code = "import sys, runpy; sys.argv=['train.py','--help']\ntry: runpy.run_path('train.py', run_name='__main__')\nexcept SystemExit: pass\n" \
           "print(sorted(m for m in ('torch','transformers','ray','stable_baselines3') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=60)
    assert out.stdout.strip().splitlines()[-1] == "[]"
