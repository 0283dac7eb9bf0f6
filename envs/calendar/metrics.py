"""PEARL's evaluation metrics: decision error, Optimal Rank Distance (ORD), AER and ERR.

ORD = 1 - pos(e*)/(M-1) with pos 0-indexed in the agent's ranking. AER is the mean error
over an episode's N rounds; ERR = (error in the first quarter - error in the last quarter)
/ error in the first quarter (papers.md section 3). A quarter is max(1, N // 4) rounds.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np


def ord_score(ranking: Sequence[int], winner: int) -> float:
    """1 - pos(winner)/(M-1): 1 when the winner is ranked first, 0 when last."""
    ranking = list(ranking)
    m = len(ranking)
    if m < 2:
        raise ValueError(f"ORD needs a ranking of at least 2 events, got {ranking}")
    return 1.0 - ranking.index(winner) / (m - 1)


def expected_ord(accepted: int, winner: int, m: int) -> float:
    """ORD when only the accepted event is given: the others count as tied behind it, so a
    wrong pick puts the winner at the mean position 1..M-1, i.e. M/2."""
    return 1.0 if accepted == winner else 1.0 - (m / 2) / (m - 1)


def quarter_errors(errors: Sequence[float]) -> tuple[float, float]:
    """(mean error over the first quarter of rounds, mean error over the last quarter)."""
    e = np.asarray(errors, dtype=np.float64)
    if e.size == 0:
        raise ValueError("quarter_errors needs at least one round")
    q = max(1, e.size // 4)
    return float(e[:q].mean()), float(e[-q:].mean())


def error_reduction_rate(first: float, last: float) -> float:
    """Relative drop of the error; 0 when there was no error to reduce in the first quarter."""
    return (first - last) / first if first > 0 else 0.0


def episode_metrics(errors: Sequence[float], ords: Sequence[float]) -> dict[str, float]:
    """The per-episode (per-user) numbers put in ``info["episode_metrics"]`` at the last round."""
    first, last = quarter_errors(errors)
    return {
        "aer": float(np.mean(errors)),
        "ord": float(np.mean(ords)),
        "err": error_reduction_rate(first, last),
        "error_first_quarter": first,
        "error_last_quarter": last,
    }


def summarize(episodes: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Pool episodes (each ``{"user_id", "per_round_error", "per_round_ord"}``) into one report.

    ``err`` is pooled: the relative drop between the mean first- and last-quarter errors over
    all episodes (per-episode ERR is noisy when a quarter holds few errors); ``err_mean`` is
    the mean of the per-episode values. ``per_user`` averages repeated episodes of one user.
    """
    if not episodes:
        raise ValueError("summarize needs at least one finished episode")
    errs = [np.asarray(e["per_round_error"], dtype=np.float64) for e in episodes]
    ords = [np.asarray(e["per_round_ord"], dtype=np.float64) for e in episodes]
    per_ep = [episode_metrics(e, o) for e, o in zip(errs, ords)]
    first = float(np.mean([m["error_first_quarter"] for m in per_ep]))
    last = float(np.mean([m["error_last_quarter"] for m in per_ep]))
    by_user: dict[Any, list[dict[str, float]]] = defaultdict(list)
    for ep, m in zip(episodes, per_ep):
        by_user[ep.get("user_id", -1)].append(m)
    n = min(len(e) for e in errs)
    return {
        "episodes": len(episodes),
        "aer": float(np.mean([m["aer"] for m in per_ep])),
        "ord": float(np.mean([m["ord"] for m in per_ep])),
        "error_first_quarter": first,
        "error_last_quarter": last,
        "err": error_reduction_rate(first, last),
        "err_mean": float(np.mean([m["err"] for m in per_ep])),
        "per_round_error": np.mean([e[:n] for e in errs], axis=0).tolist(),
        "per_user": {str(u): {k: float(np.mean([m[k] for m in ms])) for k in ms[0]} for u, ms in sorted(by_user.items())},
    }
