"""A label-free guard against consensus on wrong answers in majority-vote self-training.

The failure it targets (issue 22): under the TTRL majority-vote reward, SmolLM2's groups came to
agree (paid 0.75-1.0) while training accuracy was 0.0-0.06. The vote pays agreement, not
correctness, so once the policy's answers concentrate on one wrong value the reward keeps
confirming it; nothing in the signal can tell a right consensus from a wrong one.

Why this design (literature):

* B-STaR (Zeng et al. 2024) measures that self-training loses *exploration* (the diversity of the
  model's candidate answers) within a few iterations, after which self-improvement stalls, and
  keeps it by adapting the sampling temperature from a monitored balance score every iteration.
  Correctness needs labels; answer diversity does not, so the guard monitors diversity only.
* TTRL (Zuo et al. 2025) explains why majority vote works at all: the vote's label can be wrong
  and still help while the group's answers are spread ("lucky hits": a wrong label still marks
  most other wrong answers as wrong). The explanation needs spread answers; when diversity
  collapses, every group agrees and the reward stops carrying information about correctness.
* Entropy-based fixes for TTRL's over-confidence (ETTRL, Liu et al. 2025) and entropy bonuses in
  RL generally keep an entropy floor; a floor *relative to the initial model's* diversity needs no
  tuning per task family.

So: the statistic is the groups' mean normalised answer entropy (0 = every parsable answer of
the group agrees, 1 = all differ) and the top answer's share (agreement), per iteration, smoothed
by an EMA. The floor is ``floor`` times the mean entropy of the first ``warmup`` iterations (the
nearly untrained model's; with 2 groups per iteration one iteration alone is a noisy reference).
Below it the guard acts; at or above it it steps back:

* ``mode="temperature"`` (B-STaR's knob): the sampling temperature is multiplied by ``step`` per
  iteration below the floor, up to ``max_scale``, and divided by it again once diversity has
  recovered. More diverse groups put the minority answers back and give the vote spread to work with.
* ``mode="pause"``: while below the floor the vote gives no pseudo-labels (every reward 0, as a
  group with no majority), so the update holds only the KL term that pulls back towards the
  initial model, until diversity recovers. Stops reinforcing a consensus it cannot check.

The guard never sees targets; the trainer logs its statistics (``reward/majority_vote_guard_*``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

MODES = ("none", "temperature", "pause")


def group_statistics(answers: Sequence[str | None], groups: Sequence[Any]) -> dict[str, float]:
    """Label-free spread of answers over groups: mean top-answer share of the group size
    (``agreement``) and mean normalised entropy of the parsable answers (``entropy``: Shannon
    entropy / log(group size), 0 when the group agrees or has at most one parsable answer).
    Unparsable answers (None) count in the group size but vote for nothing."""
    members: dict[Any, list[str | None]] = {}
    for a, g in zip(answers, groups):
        members.setdefault(g, []).append(a)
    if not members:
        raise ValueError("group_statistics: no answers")
    agreement, entropy = [], []
    for votes in members.values():
        size = len(votes)
        counts = Counter(a for a in votes if a is not None)
        parsable = sum(counts.values())
        agreement.append(max(counts.values()) / size if counts else 0.0)
        h = -sum(c / parsable * math.log(c / parsable) for c in counts.values()) if parsable else 0.0
        entropy.append(h / math.log(size) if size > 1 else 0.0)
    return {"agreement": sum(agreement) / len(agreement), "entropy": sum(entropy) / len(entropy)}


class ConsensusGuard:
    """Entropy floor on the groups' answers, relative to the first iteration's (see the module doc).

    Args:
        mode: ``"temperature"``, ``"pause"`` or ``"none"`` (monitor only).
        floor: fraction of the first iteration's answer entropy below which the guard acts.
        step: temperature factor per iteration below the floor (``"temperature"`` mode).
        max_scale: the most the temperature is multiplied by.
        ema: weight of the newest iteration in the smoothed entropy (1 = no smoothing).
        warmup: iterations whose mean entropy is the reference; the guard does not act during them.
    """

    def __init__(self, mode: str = "temperature", floor: float = 0.5, step: float = 1.25, max_scale: float = 2.0,
                 ema: float = 0.5, warmup: int = 3) -> None:
        if mode not in MODES:
            raise ValueError(f"consensus guard: mode must be one of {', '.join(MODES)}, got {mode!r}")
        if not 0.0 < float(floor) <= 1.0:
            raise ValueError(f"consensus guard: floor must be in (0, 1], got {floor}")
        if not float(step) > 1.0 or not float(max_scale) >= 1.0:
            raise ValueError(f"consensus guard: step must be > 1 and max_scale >= 1, got step={step}, max_scale={max_scale}")
        if not 0.0 < float(ema) <= 1.0:
            raise ValueError(f"consensus guard: ema must be in (0, 1], got {ema}")
        if int(warmup) < 1:
            raise ValueError(f"consensus guard: warmup must be >= 1 iteration, got {warmup}")
        self.mode, self.floor, self.step, self.max_scale, self.ema = mode, float(floor), float(step), float(max_scale), float(ema)
        self.warmup, self.seen = int(warmup), 0
        self.reference: float | None = None  # the mean entropy of the warm-up iterations
        self.smoothed: float | None = None
        self.temperature_scale = 1.0
        self.active = False

    def observe(self, answers: Sequence[str | None], groups: Sequence[Any]) -> dict[str, float]:
        """Update from one iteration's answers; return the statistics and the guard's state."""
        stats = group_statistics(answers, groups)
        h = stats["entropy"]
        self.seen += 1
        if self.seen <= self.warmup:  # the reference is the running mean of the warm-up iterations
            self.reference = h if self.reference is None else self.reference + (h - self.reference) / self.seen
            self.smoothed = h if self.smoothed is None else self.ema * h + (1.0 - self.ema) * float(self.smoothed)
            self.active = False
        else:
            self.smoothed = self.ema * h + (1.0 - self.ema) * float(self.smoothed)
            self.active = self.mode != "none" and self.smoothed < self.floor * float(self.reference)
        if self.mode == "temperature":
            factor = self.step if self.active else 1.0 / self.step
            self.temperature_scale = min(max(self.temperature_scale * factor, 1.0), self.max_scale)
        return {"guard_agreement": stats["agreement"], "guard_entropy": h, "guard_entropy_ema": float(self.smoothed),
                "guard_floor": self.floor * float(self.reference), "guard_active": float(self.active),
                "guard_temperature_scale": self.temperature_scale}

    @property
    def withhold_labels(self) -> bool:
        """``pause`` mode below the floor: the vote gives no labels this iteration."""
        return self.mode == "pause" and self.active

    def state_dict(self) -> dict[str, Any]:
        return {"reference": self.reference, "smoothed": self.smoothed, "temperature_scale": self.temperature_scale,
                "active": self.active, "seen": self.seen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.reference, self.smoothed = state["reference"], state["smoothed"]
        self.temperature_scale, self.active, self.seen = float(state["temperature_scale"]), bool(state["active"]), int(state["seen"])
