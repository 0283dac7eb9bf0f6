"""Evaluation: load a run, roll its policy out, summarise, write eval.json, record video.

``evaluate_run`` is the importable core; ``selfgym.cli.evaluate_main`` is the thin CLI over it.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from selfgym import agents, env_factory, runs

# info keys that are bookkeeping, not metrics
_SKIP_INFO = {"TimeLimit.truncated", "terminal_observation", "episode", "is_success", "reward_components"}


def _numeric(value: Any) -> float | None:
    if isinstance(value, (bool, np.bool_)):
        return float(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    if isinstance(value, np.ndarray) and value.size == 1 and np.issubdtype(value.dtype, np.number):
        return float(value.reshape(()))
    return None


def _numeric_list(value: Any) -> list[float] | None:
    """A per-round (or per-step) list of numbers reported at episode end, else None."""
    if isinstance(value, (list, tuple, np.ndarray)) and len(value) > 0:
        arr = np.asarray(value)
        if arr.ndim == 1 and np.issubdtype(arr.dtype, np.number):
            return [float(v) for v in arr]
    return None


def rollout(agent: Any, venv: Any, n_episodes: int, deterministic: bool = True,
            frames: list[np.ndarray] | None = None) -> list[dict[str, Any]]:
    """Run ``n_episodes`` full episodes on a 1-env VecEnv; one dict per episode."""
    if venv.num_envs != 1:
        raise ValueError("rollout expects a VecEnv with one env")
    episodes: list[dict[str, Any]] = []
    obs = venv.reset()
    state, episode_start = None, np.ones((1,), dtype=bool)
    ep_return, ep_length = 0.0, 0
    if frames is not None:
        frames.append(venv.get_images()[0])
    while len(episodes) < n_episodes:
        action, state = agent.predict(obs, state=state, episode_start=episode_start, deterministic=deterministic)
        obs, reward, done, infos = venv.step(action)
        info = infos[0]
        ep_return += float(np.asarray(reward).reshape(-1)[0])
        ep_length += 1
        episode_start = np.asarray(done, dtype=bool).reshape(1)
        if frames is not None:
            frames.append(venv.get_images()[0])
        if done[0]:
            monitor = info.get("episode")  # the Monitor's true (unnormalised) return
            record: dict[str, Any] = {
                "return": float(monitor["r"]) if monitor else ep_return,
                "length": int(monitor["l"]) if monitor else ep_length,
                "metrics": {},
            }
            if "is_success" in info:
                record["success"] = bool(info["is_success"])
            for key, value in info.items():
                if key in _SKIP_INFO:
                    continue
                if (num := _numeric(value)) is not None:
                    record["metrics"][key] = num
                elif (curve := _numeric_list(value)) is not None:
                    record.setdefault("curves", {})[key] = curve
            episodes.append(record)
            ep_return, ep_length = 0.0, 0
    return episodes


def summarize(episodes: list[dict[str, Any]]) -> dict[str, Any]:
    returns = np.array([e["return"] for e in episodes], dtype=np.float64)
    lengths = np.array([e["length"] for e in episodes], dtype=np.float64)
    successes = [e["success"] for e in episodes if "success" in e]
    metric_names = sorted({k for e in episodes for k in e["metrics"]})
    metrics = {}
    for name in metric_names:
        values = np.array([e["metrics"][name] for e in episodes if name in e["metrics"]], dtype=np.float64)
        metrics[name] = {"mean": float(values.mean()), "std": float(values.std())}
    curves = {}
    for name in sorted({k for e in episodes for k in e.get("curves", {})}):
        rows = [e["curves"][name] for e in episodes if name in e.get("curves", {})]
        length = max(len(r) for r in rows)
        padded = np.full((len(rows), length), np.nan)
        for i, r in enumerate(rows):
            padded[i, : len(r)] = r
        curves[name] = [float(v) for v in np.nanmean(padded, axis=0)]  # mean over episodes, per index
    return {
        "n_episodes": len(episodes),
        "curves": curves,
        "return_mean": float(returns.mean()),
        "return_std": float(returns.std()),
        "length_mean": float(lengths.mean()),
        "length_std": float(lengths.std()),
        "success_rate": float(np.mean(successes)) if successes else None,
        "metrics": metrics,
        "episodes": episodes,
    }


def format_table(summary: dict[str, Any]) -> str:
    rows = [("episodes", str(summary["n_episodes"])),
            ("return", f"{summary['return_mean']:.3f} ± {summary['return_std']:.3f}"),
            ("episode length", f"{summary['length_mean']:.1f} ± {summary['length_std']:.1f}")]
    if summary.get("success_rate") is not None:
        rows.append(("success rate", f"{summary['success_rate']:.3f}"))
    for name, stats in summary["metrics"].items():
        rows.append((name, f"{stats['mean']:.4g} ± {stats['std']:.3g}"))
    for name, curve in summary.get("curves", {}).items():
        shown = ", ".join(f"{v:.3g}" for v in curve[:6]) + (", ..." if len(curve) > 6 else "")
        rows.append((f"{name} (per index, {len(curve)})", shown))
    width = max(len(r[0]) for r in rows)
    lines = [f"{'metric':<{width}}  value", f"{'-' * width}  {'-' * 20}"]
    lines += [f"{name:<{width}}  {value}" for name, value in rows]
    return "\n".join(lines)


def load_run(run_dir: Path, load_best: bool = False, checkpoint: int | None = None,
             render_mode: str | None = None, seed: int | None = None,
             env_kwargs: dict[str, Any] | None = None) -> tuple[dict[str, Any], Any, Any, Path]:
    """(config, agent, 1-env VecEnv, weights folder) rebuilt from a run folder, pickle-free."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").exists():
        raise FileNotFoundError(f"{run_dir} is not a run folder: it has no config.yaml")
    config = runs.read_yaml(run_dir / "config.yaml")
    if env_kwargs:  # e.g. evaluate on held-out users: --env-kwargs split:test
        config["env_kwargs"] = {**(config.get("env_kwargs") or {}), **env_kwargs}
    folder = runs.model_folder(run_dir, load_best, checkpoint)
    state, _ = runs.load_checkpoint(folder)
    torch.set_num_threads(int(config.get("num_threads", 1)))
    env_factory.import_env_packages(config.get("gym_packages"))
    eval_seed = config.get("seed", 0) + 20_000 if seed is None else seed
    venv = env_factory.make_eval_env(config, eval_seed, render_mode)
    env_factory.load_vec_normalize_state(venv, state.get("vec_normalize"))
    with warnings.catch_warnings():  # e.g. PPO's batch-size advice, irrelevant with one eval env
        warnings.simplefilter("ignore", UserWarning)
        agent = agents.make_agent(config["agent"], venv, dict(config.get("hyperparams") or {}),
                                  device=config.get("device", "auto"), seed=eval_seed, logger=None, reward_modules=[])
    agent_state = dict(state["agent"])
    agent_state.pop("replay_buffer", None)  # not needed to act
    agent.load_state_dict(agent_state)
    return config, agent, venv, folder


def evaluate_run(run_dir: Path, n_episodes: int = 10, load_best: bool = False, checkpoint: int | None = None,
                 deterministic: bool = True, video: str | None = None, seed: int | None = None,
                 output: Path | None = None, env_kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """Roll out the run's policy; write eval.json (in the run folder unless ``output``)."""
    run_dir = Path(run_dir)
    config, agent, venv, folder = load_run(run_dir, load_best, checkpoint, "rgb_array" if video else None, seed,
                                           env_kwargs)
    frames: list[np.ndarray] | None = [] if video else None
    fps = int(venv.metadata.get("render_fps") or 30)
    try:
        episodes = rollout(agent, venv, n_episodes, deterministic, frames)
    finally:
        venv.close()
    summary = summarize(episodes)
    summary.update({"run": str(run_dir), "weights": folder.name, "env": config["env"], "agent": config["agent"],
                    "deterministic": deterministic, "num_timesteps": int(agent.num_timesteps),
                    "env_kwargs": config.get("env_kwargs") or {}})
    if video and frames:
        summary["video"] = str(write_video(video, frames, fps=fps))
    out = output or run_dir / "eval.json"
    Path(out).write_text(json.dumps(summary, indent=1, default=float))
    return summary


def write_video(path: str, frames: list[np.ndarray], fps: int = 30) -> Path:
    import imageio.v2 as imageio

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".gif":
        imageio.mimsave(out, frames, duration=1000 / fps, loop=0)
    elif out.suffix.lower() == ".mp4":
        imageio.mimsave(out, frames, fps=fps, macro_block_size=1)
    else:
        raise ValueError(f"--video must end in .mp4 or .gif, got {path!r}")
    return out
