"""The reward-module interface: one named reward stream computed over a batch of transitions.

A module is a superset of rllte's ``BaseReward`` (compute over a batch, update, a decaying
coefficient, running normalisation) and of imitation's ``RewardFn`` (a callable over
``state, action, next_state, done``). Agents that understand streams keep each module's
output apart; plain SB3 agents get the weighted sum through ``selfgym.rewards.sb3``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from stable_baselines3.common.running_mean_std import RunningMeanStd


@dataclass
class TransitionBatch:
    """B transitions, flat over (time, env). Observations may be arrays or dicts of arrays."""

    obs: Any
    actions: np.ndarray
    next_obs: Any
    rewards: np.ndarray  # the env's own reward, shape (B,)
    dones: np.ndarray  # shape (B,), terminated or truncated
    infos: list[dict[str, Any]] | None = None
    extras: dict[str, Any] = field(default_factory=dict)  # e.g. {"skill": (B,) ints} for DIAYN
    #: When set, the flat order is time-major over this many envs (index = t * n_envs + env),
    #: as in rllte's (T, n_envs) samples; None for shuffled batches (replay samples).
    n_envs: int | None = None

    def __len__(self) -> int:
        return int(np.asarray(self.rewards).shape[0])


class RewardModule:
    """Base class: override ``compute`` (and ``update`` for learned modules).

    Args:
        coef: weight of this stream when streams are summed into one scalar.
        schedule: ``"constant"``, ``"linear"`` (coef -> coef*final_ratio over ``decay_steps``)
            or ``"exponential"`` (rllte's ``coef * (1 - kappa) ** step``).
        normalize: ``True``/``"rms"``: divide the stream by its running standard deviation
            (SB3's ``RunningMeanStd``; RND-style, rllte's ``rwd_norm_type="rms"``); ``"minmax"``: rescale each batch to
            [0, 1] (rllte's ``"minmax"``); ``False``/``"none"``: raw values.
        name: the stream's name in logs and ``info["reward_components"]``.

    Hooks an integrator calls (all optional to override): ``setup(obs_space, action_space)``
    once the spaces are known, ``watch(batch)`` on every fresh environment step (rllte's
    ``watch``: counts, episodic memory), ``compute``/``__call__`` whenever rewards are needed,
    ``update(batch)`` for learning (``learned = True`` modules).
    """

    #: True for modules whose reward changes as they learn (RND, ICM, DIAYN): they are
    #: recomputed when a batch is used, not cached at collection time.
    learned: bool = False
    #: extras the module needs in ``TransitionBatch.extras`` (e.g. ``("skill",)``).
    requires: tuple[str, ...] = ()

    def __init__(
        self,
        coef: float = 1.0,
        schedule: str = "constant",
        final_ratio: float = 0.0,
        decay_steps: int = 1_000_000,
        kappa: float = 0.0,
        normalize: bool | str = False,
        name: str | None = None,
    ) -> None:
        if schedule not in ("constant", "linear", "exponential"):
            raise ValueError(f"reward module {type(self).__name__}: unknown schedule {schedule!r}; use constant, linear or exponential")
        modes = {True: "rms", False: "none", "rms": "rms", "minmax": "minmax", "none": "none"}
        if not isinstance(normalize, (bool, str)) or normalize not in modes:
            raise ValueError(f"reward module {type(self).__name__}: normalize={normalize!r}; use true/'rms', 'minmax' or false/'none'")
        self.coef, self.schedule, self.final_ratio = float(coef), schedule, float(final_ratio)
        self.decay_steps, self.kappa = int(decay_steps), float(kappa)
        self.normalize = modes[normalize]
        self.name = name or getattr(type(self), "registry_name", type(self).__name__.lower())
        self.rms = RunningMeanStd()

    # -- to override ---------------------------------------------------------------------
    def compute(self, batch: TransitionBatch) -> np.ndarray:
        """The raw reward of each transition, shape (B,)."""
        raise NotImplementedError

    def update(self, batch: TransitionBatch) -> dict[str, float]:
        """Learn from a batch; return metrics to log (``{"loss": ...}``)."""
        return {}

    def setup(self, observation_space: Any, action_space: Any) -> None:
        """Called once the env's spaces are known (before any batch); build networks here."""

    def watch(self, batch: TransitionBatch) -> None:
        """Called on each fresh environment step (B = n_envs), before ``compute``."""

    def extra_state(self) -> dict[str, Any]:
        """Learned state (tensors, arrays, numbers) saved with the run; see ``state_dict``."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    # -- shared behaviour ----------------------------------------------------------------
    def weight(self, step: int) -> float:
        if self.schedule == "linear":
            frac = min(max(step, 0) / max(self.decay_steps, 1), 1.0)
            return self.coef * (1.0 - frac * (1.0 - self.final_ratio))
        if self.schedule == "exponential":
            return self.coef * (1.0 - self.kappa) ** step
        return self.coef

    def __call__(self, batch: TransitionBatch) -> np.ndarray:
        """``compute`` plus shape/NaN checks and optional normalisation (unweighted)."""
        out = np.asarray(self.compute(batch), dtype=np.float32)
        if out.shape != (len(batch),):
            raise ValueError(
                f"reward module {self.name!r} returned shape {out.shape}; expected ({len(batch)},), one reward per transition"
            )
        if not np.all(np.isfinite(out)):
            bad = int(np.flatnonzero(~np.isfinite(out))[0])
            raise ValueError(f"reward module {self.name!r} returned a non-finite reward ({out[bad]}) at batch index {bad}")
        if self.normalize == "rms":
            self.rms.update(out.astype(np.float64))  # moments in float64, as the state is kept
            out = out / float(np.sqrt(self.rms.var) + 1e-8)
        elif self.normalize == "minmax":
            low, high = float(out.min()), float(out.max())
            out = (out - low) / (high - low + 1e-8)
        return out.astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        """Plain floats (the running moments of SB3's ``RunningMeanStd``) and ``extra_state``."""
        return {
            "rms": {"mean": float(self.rms.mean), "var": float(self.rms.var), "count": float(self.rms.count)},
            "extra": self.extra_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        rms = state.get("rms", {})
        self.rms.mean = np.asarray(rms.get("mean", 0.0), dtype=np.float64)
        self.rms.var = np.asarray(rms.get("var", 1.0), dtype=np.float64)
        self.rms.count = float(rms.get("count", 1e-4))
        self.load_extra_state(state.get("extra", {}))


class FunctionReward(RewardModule):
    """Wraps a plain function as a module.

    Per transition: ``f(obs, action, next_obs, info) -> float``. Batched: mark the function
    with ``@batched`` (or pass ``batched=True``) and it receives arrays and the list of infos,
    returning an array of shape (B,). A function whose fourth parameter is named ``done`` or
    ``dones`` (imitation's ``RewardFn``) receives the done flags instead of the infos.
    """

    def __init__(self, fn: Callable[..., Any], batched: bool | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("name", getattr(fn, "__name__", "function"))
        super().__init__(**kwargs)
        self.fn = fn
        self.batched = bool(getattr(fn, "selfgym_batched", False) if batched is None else batched)
        # imitation's RewardFn takes (state, action, next_state, done): pass dones, not infos.
        try:
            params = list(inspect.signature(fn).parameters)
        except (TypeError, ValueError):
            params = []
        self.takes_done = len(params) >= 4 and params[3] in ("done", "dones")

    def compute(self, batch: TransitionBatch) -> np.ndarray:
        infos = batch.infos if batch.infos is not None else [{} for _ in range(len(batch))]
        fourth = batch.dones if self.takes_done else infos
        if self.batched:
            return np.asarray(self.fn(batch.obs, batch.actions, batch.next_obs, fourth), dtype=np.float32)

        def row(x: Any, i: int) -> Any:
            return {k: v[i] for k, v in x.items()} if isinstance(x, dict) else x[i]

        values = []
        for i in range(len(batch)):
            value = self.fn(row(batch.obs, i), batch.actions[i], row(batch.next_obs, i), fourth[i])
            try:
                values.append(float(value))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"reward function {self.name!r} returned {value!r}; expected a float") from exc
        return np.asarray(values, dtype=np.float32)


def batched(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a reward function as taking whole batches (arrays) rather than one transition."""
    fn.selfgym_batched = True  # type: ignore[attr-defined]
    return fn


def accepted_kwargs(cls: type) -> list[str] | None:
    """Keyword arguments ``cls(...)`` accepts along its MRO; None when it takes ``**kwargs`` freely."""
    names: list[str] = []
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = list(inspect.signature(init).parameters.values())[1:]
        names += [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            return sorted(set(names))
    return None  # **kwargs all the way up to object: any keyword may be meant
