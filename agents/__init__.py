"""The agent registry and ``make_agent``.

Every Stable-Baselines3 algorithm is registered under its lower-case name (``ppo``, ``sac``,
``td3``, ``dqn``, ``a2c``, ``ddpg``; sb3-contrib's when it is installed). Plug in an agent
without editing selfgym by any of:

* ``@agents.register("name")`` on an SB3 algorithm class or an ``agents.base.Agent`` class;
* a dotted path: ``--agent my_pkg.my_mod:MyAgent``;
* an entry point in the group ``selfgym.agents``.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from agents.base import Agent, TrainingHooks
from selfgym.registry import Registry, UnknownNameError, did_you_mean, reject_unknown

AGENTS: Registry[Any] = Registry("agent", "selfgym.agents")

# name -> "module:Class"; imported on first use so that `train.py --help` stays light.
_LAZY: dict[str, str] = {
    "a2c": "stable_baselines3:A2C",
    "ddpg": "stable_baselines3:DDPG",
    "dqn": "stable_baselines3:DQN",
    "ppo": "stable_baselines3:PPO",
    "sac": "stable_baselines3:SAC",
    "td3": "stable_baselines3:TD3",
    # sb3-contrib, when installed
    "ars": "sb3_contrib:ARS",
    "crossq": "sb3_contrib:CrossQ",
    "qrdqn": "sb3_contrib:QRDQN",
    "ppo_lstm": "sb3_contrib:RecurrentPPO",
    "tqc": "sb3_contrib:TQC",
    "trpo": "sb3_contrib:TRPO",
    # selfgym's own agents
    "persistent_ssl": "agents.persistent_ssl:PersistentSSLAgent",
    "preference_learner": "agents.preference_learner:PreferenceLearnerAgent",
    "grpo": "agents.llm.grpo:GRPOAgent",
    "rloo": "agents.llm.grpo:RLOOAgent",
    "self_rewarding_dpo": "agents.llm.dpo:SelfRewardingDPOAgent",
}

_AGENT_ARGS = {"self", "env", "device", "seed", "logger", "reward_modules"}


def register(name: str) -> Callable[[Any], Any]:
    """Decorator: register an SB3 algorithm class or an ``Agent`` class under ``name``."""

    def add(obj: Any) -> Any:
        AGENTS.register(name, obj)
        return obj

    return add


def register_lazy(name: str, target: str) -> None:
    _LAZY[name] = target


def available() -> list[str]:
    return sorted(set(AGENTS.names()) | set(_LAZY))


def get_agent_class(name: str) -> Any:
    """The registered class for ``name``; unknown names get the close matches."""
    if name not in AGENTS and name in _LAZY:
        module_name, _, attr = _LAZY[name].partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ImportError(f"agent {name!r} needs {module_name!r}, which is not installed ({exc})") from exc
        AGENTS.register(name, getattr(module, attr), overwrite=True)
    if name not in AGENTS and ":" not in name:
        names = available()
        raise UnknownNameError(
            f"unknown agent {name!r}.{did_you_mean(name, names)} Registered: {', '.join(names)}."
            " A plug-in can also be given as 'pkg.module:Name'."
        )
    return AGENTS.get(name)


def is_sb3_class(cls: Any) -> bool:
    from stable_baselines3.common.base_class import BaseAlgorithm

    return inspect.isclass(cls) and issubclass(cls, BaseAlgorithm)


def valid_hyperparams(cls: Any) -> list[str] | None:
    """Hyperparameter names the agent accepts; None when its constructor takes ``**kwargs``."""
    if is_sb3_class(cls):
        from agents.sb3_agent import valid_hyperparams as sb3_valid

        return sb3_valid(cls)
    params = inspect.signature(cls.__init__).parameters.values()
    if any(p.kind == p.VAR_KEYWORD for p in params):
        return None
    return sorted(p.name for p in params if p.name not in _AGENT_ARGS and p.kind != p.VAR_POSITIONAL)


def check_hyperparams(name: str, hyperparams: dict[str, Any]) -> Any:
    """The agent's class, after rejecting hyperparameters it does not take (naming the valid ones)."""
    cls = get_agent_class(name)
    reject_unknown(f"agent {name!r}", hyperparams, valid_hyperparams(cls), what="hyperparameter(s) ")
    return cls


def make_agent(
    name: str,
    env: Any,
    hyperparams: dict[str, Any],
    *,
    device: str = "auto",
    seed: int | None = None,
    logger: Any = None,
    reward_modules: list | None = None,
) -> Agent:
    cls = check_hyperparams(name, hyperparams)
    common = dict(device=device, seed=seed, logger=logger, reward_modules=reward_modules or [])
    if is_sb3_class(cls):
        from agents.sb3_agent import SB3Agent

        return SB3Agent(cls, env, **common, **hyperparams)
    return cls(env, **common, **hyperparams)


__all__ = ["AGENTS", "Agent", "TrainingHooks", "register", "register_lazy", "available", "get_agent_class", "check_hyperparams", "make_agent"]
