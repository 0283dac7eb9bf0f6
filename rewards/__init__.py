"""Reward modules: the registry and ``make_reward`` (``--reward NAME[:key=value,...]``).

Plug in a module without editing selfgym by any of:

* ``@rewards.register("name")`` on a ``RewardModule`` subclass or a plain function;
* a dotted path: ``--reward my_pkg.my_mod:MyReward`` (class) or ``my_mod:my_reward`` (function);
* an entry point in the group ``selfgym.rewards``.
"""

from __future__ import annotations

import inspect
from typing import Any

from selfgym.rewards.base import FunctionReward, RewardModule, TransitionBatch, accepted_kwargs, batched
from selfgym.rewards.env_rewards import ComponentReward, TaskReward
from selfgym.config import parse_spec
from selfgym.registry import Registry, reject_unknown


def _remember_name(name: str, obj: Any) -> None:
    """A module class learns the name it is registered under: its stream is called that."""
    if inspect.isclass(obj):
        obj.registry_name = name


REWARDS: Registry[Any] = Registry("reward module", "selfgym.rewards", on_register=_remember_name)
REWARDS.register("task", TaskReward)
REWARDS.register("component", ComponentReward)

# Built-ins that live in their own files, as name -> "module:Class", imported on first use
# (torch, transformers).
BUILTIN_REWARDS: dict[str, str] = {
    # intrinsic rewards (rewards/intrinsic/)
    "rnd": "selfgym.rewards.intrinsic.rnd:RND",
    "icm": "selfgym.rewards.intrinsic.icm:ICM",
    "diayn": "selfgym.rewards.intrinsic.diayn:DIAYN",
    "metra": "selfgym.rewards.intrinsic.metra:METRA",
    "simhash": "selfgym.rewards.intrinsic.simhash:SimHashCount",
    "e3b": "selfgym.rewards.intrinsic.e3b:E3B",
    "re3": "selfgym.rewards.intrinsic.re3:RE3",
    "ride": "selfgym.rewards.intrinsic.ride:RIDE",
    "ngu": "selfgym.rewards.intrinsic.ngu:NGU",
    "disagreement": "selfgym.rewards.intrinsic.disagreement:Disagreement",
    "pseudo_counts": "selfgym.rewards.intrinsic.pseudo_counts:PseudoCounts",
    # self-generated rewards for LLM policies (rewards/llm.py)
    "majority_vote": "selfgym.rewards.llm:MajorityVoteReward",
    "self_judge": "selfgym.rewards.llm:SelfJudgeReward",
    "likelihood": "selfgym.rewards.llm:LikelihoodReward",
    "verifier": "selfgym.rewards.llm:VerifierReward",
    # PlayTable, read off the state observation (rewards/play_table.py)
    "object_reach": "selfgym.rewards.play_table:ObjectReach",
    # CalendarConflict (rewards/calendar.py)
    "calendar_format": "selfgym.rewards.calendar:FormatReward",
    "calendar_decision": "selfgym.rewards.calendar:DecisionReward",
    "calendar_ranking": "selfgym.rewards.calendar:RankingReward",
    "calendar_hub_use": "selfgym.rewards.calendar:HubUseReward",
}
for name, target in BUILTIN_REWARDS.items():
    REWARDS.register_lazy(name, target)

register = REWARDS.register  # ``@register("name")`` on a ``RewardModule`` subclass or a reward function
register_lazy = REWARDS.register_lazy
available = REWARDS.names


def make_reward(spec: str | tuple[str, dict[str, Any]]) -> RewardModule:
    """Build a module from ``"rnd:coef=0.01"``, ``"component:reach"`` or ``"my_mod:fn"``."""
    name, kwargs = parse_spec(spec) if isinstance(spec, str) else spec
    kwargs = dict(kwargs)
    if name.startswith("component:"):
        kwargs.setdefault("component", name.split(":", 1)[1])
        name = "component"
    obj = REWARDS.get(name)
    if inspect.isclass(obj) and issubclass(obj, RewardModule):
        valid = accepted_kwargs(obj)
        reject_unknown(f"reward module {name!r}", kwargs, valid)
        if "registry_name" not in vars(obj) and "name" in (valid or ["name"]):
            kwargs.setdefault("name", name)  # the stream is called what the user asked for
        module = obj(**kwargs)
    elif callable(obj):
        reject_unknown(f"reward function {name!r}", kwargs, [v for v in accepted_kwargs(FunctionReward) or [] if v != "fn"])
        kwargs.setdefault("name", name)
        module = FunctionReward(obj, **kwargs)
    else:
        raise TypeError(f"{name!r} is neither a RewardModule subclass nor a callable")
    return module


__all__ = [
    "REWARDS",
    "RewardModule",
    "TransitionBatch",
    "FunctionReward",
    "batched",
    "register",
    "register_lazy",
    "make_reward",
    "available",
]
