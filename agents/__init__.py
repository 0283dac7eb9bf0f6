"""The agent registry and ``make_agent``.

Every Stable-Baselines3 algorithm is registered under its lower-case name (``ppo``, ``sac``,
``td3``, ``dqn``, ``a2c``, ``ddpg``; sb3-contrib's when it is installed). Plug in an agent
without editing selfgym by any of:

* ``@agents.register("name")`` on an SB3 algorithm class or an ``selfgym.agents.base.Agent`` class;
* a dotted path: ``--agent my_pkg.my_mod:MyAgent``;
* an entry point in the group ``selfgym.agents``.
"""

from __future__ import annotations

import inspect
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm

from selfgym.agents.base import Agent, TrainingHooks
from selfgym.agents.sb3_agent import SB3Agent
from selfgym.agents.sb3_agent import valid_hyperparams as sb3_valid_hyperparams
from selfgym.registry import Registry, reject_unknown
from selfgym.rewards.base import accepted_kwargs

AGENTS: Registry[Any] = Registry("agent", "selfgym.agents")

# Built-ins as name -> "module:Class", imported on first use: SB3 algorithms, sb3-contrib's
# (when installed) and selfgym's own agents.
BUILTIN_AGENTS: dict[str, str] = {
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
    "persistent_ssl": "selfgym.agents.persistent_ssl:PersistentSSLAgent",
    "preference_learner": "selfgym.agents.preference_learner:PreferenceLearnerAgent",
    "slim": "selfgym.agents.slim:SlimAgent",
    "lma3": "selfgym.agents.lma3:LMA3Agent",
    "slim_summed": "selfgym.agents.slim:SlimSummedAgent",
    "skill_hrl": "selfgym.agents.skill_hrl:SkillHRLAgent",
    "grpo": "selfgym.agents.llm.grpo:GRPOAgent",
    "rloo": "selfgym.agents.llm.rloo:RLOOAgent",
    "self_rewarding_dpo": "selfgym.agents.llm.dpo:SelfRewardingDPOAgent",
    "llm_sft": "selfgym.agents.llm.calendar_sft:CalendarSFTAgent",
    "pearl": "selfgym.agents.llm.pearl:PearlAgent",
    # offline, learning from play (Lynch et al. 2019): num_timesteps counts gradient steps
    "play_gcbc": "selfgym.agents.play_gcbc:PlayGCBCAgent",
    "play_lmp": "selfgym.agents.play_lmp:PlayLMPAgent",
    "bc": "selfgym.agents.bc:BCAgent",
}
for name, target in BUILTIN_AGENTS.items():
    AGENTS.register_lazy(name, target)

_AGENT_ARGS = {"self", "env", "device", "seed", "logger", "reward_modules"}

register = AGENTS.register  # ``@register("name")`` on an SB3 algorithm class or an ``Agent`` class
register_lazy = AGENTS.register_lazy
available = AGENTS.names
get_agent_class = AGENTS.get  # unknown names get the close matches


def is_sb3_class(cls: Any) -> bool:
    return inspect.isclass(cls) and issubclass(cls, BaseAlgorithm)


def valid_hyperparams(cls: Any) -> list[str] | None:
    """Hyperparameter names the agent accepts; None when its constructor takes ``**kwargs``."""
    if is_sb3_class(cls):
        return sb3_valid_hyperparams(cls)
    names = accepted_kwargs(cls)  # follows **kwargs up the base classes (RLOOAgent -> LLMTrainer)
    if names is None:
        return None
    return sorted(set(names) - _AGENT_ARGS)


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
        return SB3Agent(cls, env, **common, **hyperparams)
    return cls(env, **common, **hyperparams)


__all__ = ["AGENTS", "Agent", "TrainingHooks", "register", "register_lazy", "available", "get_agent_class", "check_hyperparams", "make_agent"]
