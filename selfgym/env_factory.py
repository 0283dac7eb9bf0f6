"""Building the vectorised training and evaluation environments for a run."""

from __future__ import annotations

import importlib
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecNormalize

from selfgym.registry import did_you_mean, import_dotted


def import_env_packages(packages: list[str] | None) -> None:
    """Import every ``--gym-packages`` module (whose import registers ids; selfgym's own are registered)."""
    for name in packages or []:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ImportError(f"--gym-packages: cannot import {name!r}: {exc}") from exc


#: env-id prefix -> (the package whose import registers those ids, the selfgym extra installing it),
#: imported on first use as rl-zoo3's import_envs does, so no --gym-packages is needed for them.
ENV_ID_PACKAGES: dict[str, tuple[str, str]] = {"MiniGrid-": ("minigrid", "minigrid"), "BabyAI-": ("minigrid", "minigrid")}


def check_env_id(env_id: str) -> None:
    """Fail early, with close matches, for an id no package registered."""
    if env_id in gym.registry:
        return
    for prefix, (package, extra) in ENV_ID_PACKAGES.items():
        if env_id.startswith(prefix):
            try:
                importlib.import_module(package)
            except ImportError as exc:
                raise ImportError(f"environment {env_id!r} comes from the {package!r} package, which is not installed: "
                                  f"pip install 'selfgym[{extra}]'") from exc
            if env_id in gym.registry:
                return
    raise gym.error.NameNotFound(
        f"environment {env_id!r} is not registered.{did_you_mean(env_id, list(gym.registry))}"
        " Register your own with --gym-packages my_pkg (its import calls gymnasium.register)."
    )


def wrapper_list(spec: Any) -> list[tuple[str, dict[str, Any]]]:
    """``env_wrapper`` as rl-zoo3 writes it: a dotted path, a list of them, or {path: kwargs}."""
    if spec is None:
        return []
    items = spec if isinstance(spec, list) else [spec]
    out = []
    for item in items:
        if isinstance(item, str):
            out.append((item, {}))
        elif isinstance(item, dict) and len(item) == 1:
            (path, kwargs), = item.items()
            out.append((path, kwargs or {}))
        else:
            raise ValueError(f"env_wrapper entries are 'pkg.mod:Wrapper' or {{'pkg.mod:Wrapper': {{kwargs}}}}, got {item!r}")
    return out


def make_env_fn(env_id: str, env_kwargs: dict[str, Any], rank: int, seed: int | None,
                wrappers: Any = None, render_mode: str | None = None):
    def _init() -> gym.Env:
        check_env_id(env_id)  # a fresh worker process (SubprocVecEnv) registers packaged ids again
        kwargs = dict(env_kwargs)
        if render_mode is not None:
            kwargs["render_mode"] = render_mode
        env = gym.make(env_id, **kwargs)
        for path, wkwargs in wrapper_list(wrappers):
            env = import_dotted(path)(env, **wkwargs)
        env = Monitor(env, info_keywords=())
        env = EpisodeStart(env)
        if seed is not None:
            env.action_space.seed(seed + rank)
        return env

    return _init


def make_vec_env(
    env_id: str,
    n_envs: int = 1,
    seed: int | None = None,
    env_kwargs: dict[str, Any] | None = None,
    vec_env: str = "dummy",
    wrappers: Any = None,
    render_mode: str | None = None,
) -> VecEnv:
    check_env_id(env_id)
    fns = [make_env_fn(env_id, env_kwargs or {}, i, seed, wrappers, render_mode) for i in range(n_envs)]
    if vec_env == "subproc" and n_envs > 1:
        venv: VecEnv = SubprocVecEnv(fns)
    elif vec_env in ("dummy", "subproc"):
        venv = DummyVecEnv(fns)
    else:
        raise ValueError(f"--vec-env must be 'dummy' or 'subproc', got {vec_env!r}")
    if seed is not None:
        venv.seed(seed)
    return venv


def wrap_normalize(venv: VecEnv, normalize: Any, training: bool = True) -> VecEnv:
    """``normalize: true`` or ``normalize: {norm_obs: ..., norm_reward: ...}`` as in rl-zoo3."""
    if not normalize:
        return venv
    kwargs = dict(normalize) if isinstance(normalize, dict) else {}
    if not training:
        kwargs["norm_reward"] = False
    venv = VecNormalize(venv, **kwargs)
    venv.training = training
    return venv


def make_eval_env(config: dict[str, Any], seed: int, render_mode: str | None = None) -> VecEnv:
    """One env rebuilt from a run's config, with any VecNormalize frozen and rewards left raw."""
    venv = make_vec_env(config["env"], 1, seed, config.get("env_kwargs"), "dummy", config.get("env_wrapper"), render_mode)
    return wrap_normalize(venv, config.get("normalize"), training=False)


class EpisodeStart(gym.Wrapper):
    """Remembers how its env's latest episode began: the reset's seed, or else the state of
    ``np_random`` just before the reset drew the start. A checkpoint saves it, and a resumed run
    resets each env from it: the episode in progress at the checkpoint begins again exactly as
    it began (a physics state mid-episode is no generic data, its RNG state is). None before
    the first reset: the VecEnv's pending seed stays."""

    episode_start: dict[str, Any] | None = None
    #: Set through ``VecEnv.set_attr`` by ``load_env_rng_state``: how the next reset begins
    #: (``{"seed": s}``, or ``{"seed": None}``: from the generator as it stands), instead of the
    #: seed the VecEnv passes. SB3's public API has no per-env seed for the next reset.
    next_start: dict[str, Any] | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        if self.next_start is not None:
            seed, self.next_start = self.next_start["seed"], None
        self.episode_start = {"seed": int(seed)} if seed is not None else {"rng": self.np_random.bit_generator.state}
        return self.env.reset(seed=seed, options=options)


def env_rng_state(venv: VecEnv) -> dict[str, Any]:
    """What a resumed run needs for its envs to draw what they drew: each sub-env's episode start
    (``EpisodeStart``) and current ``np_random`` state, each sub-env's action space's RNG state
    and the VecEnv's own action space's (the one SB3 samples random warm-up actions from), as plain data."""
    return {"episode_start": venv.get_attr("episode_start"),
            "np_random": [rng.bit_generator.state for rng in venv.get_attr("np_random")],
            "action_space": [space.np_random.bit_generator.state for space in venv.get_attr("action_space")],
            "vec_action_space": venv.action_space.np_random.bit_generator.state}


def load_env_rng_state(venv: VecEnv, state: dict[str, Any], episodes: bool = True) -> None:
    """Put back ``env_rng_state`` instead of the seeds ``make_vec_env`` and SB3 set on construction
    (which would replay the run's first episodes). ``episodes``: the VecEnv's next reset (the
    first thing a resumed agent does) begins each sub-env's episode in progress again, from its
    seed or saved RNG state; False (an evaluation env, which resets before every use): the
    generators go on from their current states."""
    if len(state["episode_start"]) != venv.num_envs:
        raise ValueError(f"the checkpoint holds the episodes of {len(state['episode_start'])} envs; this run has {venv.num_envs}")
    base = venv.unwrapped
    if not episodes:  # the construction seeds are dropped: the generators go on
        for index, rng_state in enumerate(state["np_random"]):
            venv.set_attr("next_start", {"seed": None}, indices=[index])
            venv.set_attr("np_random", _generator(rng_state), indices=[index])
    for index, start in enumerate(state["episode_start"] if episodes else []):  # applied at the next reset
        if start is None:
            continue  # never reset before the checkpoint: its construction seed is still pending
        venv.set_attr("next_start", {"seed": start.get("seed")}, indices=[index])  # no seed: from the saved generator
        if "rng" in start:
            venv.set_attr("np_random", _generator(start["rng"]), indices=[index])
    spaces = venv.get_attr("action_space")  # DummyVecEnv: the spaces themselves; SubprocVecEnv: copies, sent back
    for index, (space, rng_state) in enumerate(zip(spaces, state["action_space"])):
        space.np_random.bit_generator.state = rng_state
        if not isinstance(base, DummyVecEnv):
            venv.set_attr("action_space", space, indices=[index])
    venv.action_space.np_random.bit_generator.state = state["vec_action_space"]


def _generator(state: dict[str, Any]) -> np.random.Generator:
    """A generator of the saved bit generator's kind, in the saved state."""
    bit_generator = getattr(np.random, state["bit_generator"])()
    bit_generator.state = state
    return np.random.Generator(bit_generator)


def find_vec_normalize(venv: VecEnv) -> VecNormalize | None:
    while venv is not None:
        if isinstance(venv, VecNormalize):
            return venv
        venv = getattr(venv, "venv", None)
    return None


def vec_normalize_state(venv: VecEnv) -> dict[str, Any] | None:
    norm = find_vec_normalize(venv)
    if norm is None:
        return None
    def rms(r: Any) -> dict[str, Any]:
        if isinstance(r, dict):
            return {k: rms(v) for k, v in r.items()}
        return {"mean": torch.as_tensor(np.asarray(r.mean)), "var": torch.as_tensor(np.asarray(r.var)), "count": float(r.count)}

    return {"obs_rms": rms(norm.obs_rms) if norm.norm_obs else None, "ret_rms": rms(norm.ret_rms)}


def load_vec_normalize_state(venv: VecEnv, state: dict[str, Any] | None) -> None:
    norm = find_vec_normalize(venv)
    if norm is None or state is None:
        return

    def put(target: Any, src: Any) -> None:
        if isinstance(target, dict):
            for k in target:
                put(target[k], src[k])
            return
        target.mean = src["mean"].numpy().astype(np.float64)
        target.var = src["var"].numpy().astype(np.float64)
        target.count = float(src["count"])

    if state.get("obs_rms") is not None:
        put(norm.obs_rms, state["obs_rms"])
    put(norm.ret_rms, state["ret_rms"])
