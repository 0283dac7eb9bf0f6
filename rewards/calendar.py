"""PEARL's round-wise rewards for CalendarConflict, as reward modules and plain functions.

Terms (papers.md section 3), read from the env's ``info["reward_components"]``:
format r^f = 1[answer valid], decision r^a = 1[accepted the user's choice], ranking
r^r = ORD = 1 - pos(e*)/(M-1), hub use r^i = 1[valid StrategyHub call this round].
With ``curriculum=True`` ranking and hub use are weighted by PEARL's schedule
lambda_r = 0.5 t/N and lambda_i = 0.5 (1 - t/N), t the 1-based round, N the episode's rounds.
``roundwise_advantages`` is PEARL's per-round-position normalisation over a group of rollouts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from selfgym.envs.calendar.env import curriculum_weights
from selfgym.rewards.base import RewardModule, TransitionBatch

__all__ = ["FormatReward", "DecisionReward", "RankingReward", "HubUseReward", "curriculum_weights",
           "pearl_round_reward", "roundwise_advantages"]


class _ComponentTerm(RewardModule):
    """One CalendarConflict reward term, optionally weighted by PEARL's curriculum."""

    component = ""
    schedule_index: int | None = None  # 0 -> lambda_r, 1 -> lambda_i

    def __init__(self, curriculum: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.curriculum = bool(curriculum)
        if self.curriculum and self.schedule_index is None:
            raise ValueError(f"reward module {self.name!r} has no curriculum weight (only ranking and hub use do)")

    def compute(self, batch: TransitionBatch) -> np.ndarray:
        if batch.infos is None:
            raise ValueError(f"reward module {self.name!r} needs the env infos (CalendarConflict's reward_components)")
        out = np.empty(len(batch), dtype=np.float32)
        for i, info in enumerate(batch.infos):
            comps = info.get("reward_components") or {}
            if self.component not in comps:
                raise KeyError(f"reward module {self.name!r} needs info['reward_components'][{self.component!r}]; "
                               "is the env selfgym/CalendarConflict-v0?")
            value = float(comps[self.component])
            if self.curriculum:
                fb = info["feedback"]
                value *= curriculum_weights(int(fb["round"]), int(fb["n_rounds"]))[self.schedule_index]  # type: ignore[index]
            out[i] = value
        return out


class FormatReward(_ComponentTerm):
    """r^f: 1 when the answer (decision or hub call) was well formed."""

    component = "format"


class DecisionReward(_ComponentTerm):
    """r^a: 1 when the accepted event is the user's hidden choice."""

    component = "decision"


class RankingReward(_ComponentTerm):
    """r^r = ORD; with ``curriculum=True`` times lambda_r = 0.5 t/N."""

    component = "ranking"
    schedule_index = 0


class HubUseReward(_ComponentTerm):
    """r^i: a valid StrategyHub call this round; with ``curriculum=True`` times 0.5 (1 - t/N)."""

    component = "hub_use"
    schedule_index = 1


def pearl_round_reward(components: Mapping[str, float], t: int, n: int, format_coef: float = 0.5,
                       decision_coef: float = 1.0) -> float:
    """r~_t = lambda_f r^f + lambda_a r^a + lambda_r(t) r^r + lambda_i(t) r^i (lambda_f, lambda_a
    are not given in the paper; the defaults are ours)."""
    lam_r, lam_i = curriculum_weights(t, n)
    return (format_coef * components["format"] + decision_coef * components["decision"]
            + lam_r * components["ranking"] + lam_i * components["hub_use"])


def roundwise_advantages(rewards: np.ndarray, gamma: float = 1.0, mask: np.ndarray | None = None,
                         eps: float = 1e-6) -> np.ndarray:
    """PEARL's advantages for G rollouts of T rounds: A_{t,i} = (G_{t,i} - mu_t) / sigma_t.

    ``rewards`` is (G, T); G_{t,i} = sum_{tau >= t} gamma^(tau - t) r_{tau,i} is the return to go;
    mu_t, sigma_t are its mean and standard deviation over the group at round position t
    (only rollouts where ``mask`` is true count; masked entries get advantage 0).
    """
    r = np.asarray(rewards, dtype=np.float64)
    if r.ndim != 2:
        raise ValueError(f"rewards must be (G rollouts, T rounds), got shape {r.shape}")
    m = np.ones_like(r, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    if m.shape != r.shape:
        raise ValueError(f"mask shape {m.shape} does not match rewards shape {r.shape}")
    if not np.all(np.isfinite(r[m])):
        raise ValueError("rewards contain NaN or inf")
    r = np.where(m, r, 0.0)
    returns = np.zeros_like(r)
    running = np.zeros(r.shape[0])
    for t in range(r.shape[1] - 1, -1, -1):
        running = r[:, t] + gamma * running
        returns[:, t] = running
    count = m.sum(0)
    mu = np.where(count > 0, (returns * m).sum(0) / np.maximum(count, 1), 0.0)
    var = np.where(count > 0, (((returns - mu) ** 2) * m).sum(0) / np.maximum(count, 1), 0.0)
    adv = (returns - mu) / (np.sqrt(var) + eps)
    return np.where(m, adv, 0.0).astype(np.float32)
