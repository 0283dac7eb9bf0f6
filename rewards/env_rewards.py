"""Streams that come from the environment itself: its reward and its named reward components."""

from __future__ import annotations

from typing import Any

import numpy as np

from selfgym.rewards.base import RewardModule, TransitionBatch


class TaskReward(RewardModule):
    """The env's own scalar reward, as a stream like any other."""

    registry_name = "task"

    def compute(self, batch: TransitionBatch) -> np.ndarray:
        return np.asarray(batch.rewards, dtype=np.float32).reshape(-1)


class ComponentReward(RewardModule):
    """One term of ``info["reward_components"]``; selected as ``component:<term>``."""

    registry_name = "component"

    def __init__(self, component: str, **kwargs: Any) -> None:
        kwargs.setdefault("name", f"component:{component}")
        super().__init__(**kwargs)
        self.component = component

    def compute(self, batch: TransitionBatch) -> np.ndarray:
        if batch.infos is None:
            raise ValueError(f"reward module {self.name!r} needs infos with 'reward_components'")
        out = np.empty(len(batch), dtype=np.float32)
        for i, info in enumerate(batch.infos):
            components = info.get("reward_components")
            if components is None or self.component not in components:
                known = sorted(components) if components else []
                raise KeyError(
                    f"reward module {self.name!r}: the env reports no reward component {self.component!r}"
                    f" (it reports: {', '.join(known) or 'none'})"
                )
            out[i] = components[self.component]
        return out
