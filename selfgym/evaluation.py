"""Evaluation: load a run, roll its policy out, summarise, write eval.json, record video.

``evaluate_run`` is the importable core; ``selfgym.cli.evaluate_main`` is the thin CLI over it
(it prints the results before it writes them, so a read-only run still shows them).

A run folder is data: ``load_run`` imports no code that the run's config.yaml names
(``gym_packages``, a ``module:EnvId`` env, a dotted ``env_wrapper`` or ``agent``) unless the
caller trusts the run or names the module itself; see ``check_run_code``.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from selfgym import agents, env_factory, rewards, runs, skill_metrics
from selfgym.config import parse_spec

#: Dotted paths in these packages are installed library code, as safe to name as a registered
#: name (the shipped hyperparameters name ``selfgym.envs...`` and ``minigrid.wrappers`` wrappers).
TRUSTED_PACKAGES = ("selfgym", "gymnasium", "stable_baselines3", "sb3_contrib", "minigrid")


class UntrustedRunError(ValueError):
    """A run's config names code to import that the user did not name."""


def _module_of(path: str) -> str:
    return path.partition(":")[0] if ":" in path else path


def _covered(module: str, names: Sequence[str]) -> bool:
    """``module`` is one of ``names`` or inside one of them (``my_pkg.envs`` is inside ``my_pkg``)."""
    return any(module == n or module.startswith(n + ".") for n in names)


def _reward_plugin(spec: Any) -> str | None:
    """The dotted path a ``--reward`` spec imports, or None for a registered name."""
    name = parse_spec(spec)[0] if isinstance(spec, str) else str(spec[0])
    if name.startswith("component:") or ":" not in name or name in rewards.REWARDS:
        return None
    return name


def code_named_by_run(config: dict[str, Any], with_rewards: bool = False) -> list[tuple[str, str]]:
    """(config entry, module or dotted path) of the code loading this config would import.

    Registered names (built-ins and installed entry points) and paths inside
    ``TRUSTED_PACKAGES`` are not listed. ``with_rewards``: resuming builds the reward modules
    too; evaluating does not.
    """
    named = [("gym_packages", str(m)) for m in config.get("gym_packages") or []]
    env_id = str(config.get("env", ""))
    if ":" in env_id:  # gymnasium imports the module of "module:EnvId"
        named.append(("env", env_id))
    named += [("env_wrapper", path) for path, _ in env_factory.wrapper_list(config.get("env_wrapper"))]
    agent = str(config.get("agent", ""))
    if ":" in agent and agent not in agents.AGENTS:
        named.append(("agent", agent))
    if with_rewards:
        named += [("rewards", path) for spec in config.get("rewards") or [] if (path := _reward_plugin(spec))]
    return [(entry, path) for entry, path in named if not _covered(_module_of(path), TRUSTED_PACKAGES)]


def check_run_code(run_dir: Path, config: dict[str, Any], *, trust: bool = False,
                   named_modules: Sequence[str] = (), with_rewards: bool = False) -> None:
    """Refuse a run whose config names code the user did not name on the command line.

    A run copied from another machine can hold a module of its own and name it; importing it
    would run it. ``named_modules`` (``--gym-packages``) are the user's own, with their
    sub-modules; ``trust`` (``--trust-run``) allows everything.
    """
    if trust:
        return
    foreign = [(e, p) for e, p in code_named_by_run(config, with_rewards) if not _covered(_module_of(p), named_modules)]
    if foreign:
        listed = ", ".join(f"{entry} {path!r}" for entry, path in foreign)
        raise UntrustedRunError(
            f"{Path(run_dir) / 'config.yaml'} names code to import: {listed}. A run folder is data and selfgym "
            "imports no code it names. If you trust this run, pass --trust-run, or name the module yourself with "
            f"--gym-packages {' '.join(sorted({_module_of(p) for _, p in foreign}))}")

# info keys that are bookkeeping, not metrics
_SKIP_INFO = {"TimeLimit.truncated", "terminal_observation", "episode", "is_success", "reward_components",
              "action_mask"}  # a text env's mask of valid commands (CookingWorld), not a metric


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
    if summary.get("task_suite"):
        lines += ["", "Success per task (held-out test cases):", summary["task_suite"]["table"]]
    return "\n".join(lines)


def load_run(run_dir: Path, load_best: bool = False, checkpoint: int | None = None,
             render_mode: str | None = None, seed: int | None = None,
             env_kwargs: dict[str, Any] | None = None, *, trust: bool = False,
             gym_packages: Sequence[str] = ()) -> tuple[dict[str, Any], Any, Any, Path]:
    """(config, agent, 1-env VecEnv, weights folder) rebuilt from a run folder, pickle-free.

    Imports no code the config names unless ``trust`` or the module is in ``gym_packages``
    (which are imported too, as ``--gym-packages`` is when training).
    """
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").exists():
        raise FileNotFoundError(f"{run_dir} is not a run folder: it has no config.yaml")
    config = runs.read_yaml(run_dir / "config.yaml")
    check_run_code(run_dir, config, trust=trust, named_modules=gym_packages)
    if env_kwargs:  # e.g. evaluate on held-out users: --env-kwargs split:test
        config["env_kwargs"] = {**(config.get("env_kwargs") or {}), **env_kwargs}
    folder = runs.model_folder(run_dir, load_best, checkpoint)
    state, _ = runs.load_checkpoint(folder)
    torch.set_num_threads(int(config.get("num_threads", 1)))
    env_factory.import_env_packages([*(config.get("gym_packages") or []), *gym_packages])
    eval_seed = config.get("seed", 0) + 20_000 if seed is None else seed
    venv = env_factory.make_eval_env(config, eval_seed, render_mode)
    env_factory.load_vec_normalize_state(venv, state.get("vec_normalize"))
    with warnings.catch_warnings():  # e.g. PPO's batch-size advice, irrelevant with one eval env
        warnings.simplefilter("ignore", UserWarning)
        agent = agents.make_agent(config["agent"], venv, dict(config.get("hyperparams") or {}),
                                  device=config.get("device", "auto"), seed=eval_seed, logger=None, reward_modules=[])
    agent_state = dict(state["agent"])
    agent_state.pop("replay_buffer", None)  # not needed to act
    try:
        agent.load_state_dict(agent_state)
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        venv.close()
        raise runs.CheckpointError(f"checkpoint {folder} does not fit agent {config['agent']!r} on {config['env']!r} "
                                   f"(wrong keys or shapes): {exc}") from exc
    return config, agent, venv, folder


@dataclass
class Evaluation:
    """Rolled-out results, not yet written: the CLI shows them before writing anything."""

    summary: dict[str, Any]
    frames: list[np.ndarray] | None
    fps: int


def run_evaluation(run_dir: Path, n_episodes: int = 10, load_best: bool = False, checkpoint: int | None = None,
                   deterministic: bool = True, video: bool = False, seed: int | None = None,
                   env_kwargs: dict[str, Any] | None = None, *, trust: bool = False,
                   gym_packages: Sequence[str] = ()) -> Evaluation:
    """Roll out the run's policy; writes nothing (see ``save_evaluation``)."""
    if int(n_episodes) < 1:
        raise ValueError(f"the number of evaluation episodes must be >= 1, got {n_episodes}")
    run_dir = Path(run_dir)
    config, agent, venv, folder = load_run(run_dir, load_best, checkpoint, "rgb_array" if video else None, seed,
                                           env_kwargs, trust=trust, gym_packages=gym_packages)
    frames: list[np.ndarray] | None = [] if video else None
    fps = int(venv.metadata.get("render_fps") or 30)
    try:
        episodes = rollout(agent, venv, n_episodes, deterministic, frames)
        skills = (skill_metrics.evaluate_skills(agent, venv, deterministic=deterministic)
                  if skill_metrics.applies(agent, venv, config["env"]) else None)
    finally:
        venv.close()
    summary = summarize(episodes)
    if skills is not None:  # a skill-conditioned agent: what each skill does to the blocks
        summary["metrics"].update(skills["metrics"])
        summary["skills"] = skills
    summary.update({"run": str(run_dir), "weights": folder.name, "env": config["env"], "agent": config["agent"],
                    "deterministic": deterministic, "num_timesteps": int(agent.num_timesteps),
                    "env_kwargs": config.get("env_kwargs") or {}})
    suite = getattr(agent, "evaluate_task_suite", None)
    if callable(suite):  # an agent with a task protocol (the play agents: the 18 PlayTable tasks) adds its table
        summary["task_suite"] = suite(deterministic=deterministic)
    return Evaluation(summary, frames, fps)


def save_evaluation(evaluation: Evaluation, output: Path, video: str | None = None) -> None:
    """Write the video (if asked) and the summary JSON, each atomically."""
    if video and evaluation.frames:
        evaluation.summary["video"] = str(write_video(video, evaluation.frames, fps=evaluation.fps))
    if "skills" in evaluation.summary:
        picture = skill_metrics.draw(evaluation.summary["skills"], Path(output).with_name("skills.png"))
        evaluation.summary["skills_picture"] = str(picture)
    runs.atomic_write(Path(output), json.dumps(evaluation.summary, indent=1, default=float))


def evaluate_run(run_dir: Path, n_episodes: int = 10, load_best: bool = False, checkpoint: int | None = None,
                 deterministic: bool = True, video: str | None = None, seed: int | None = None,
                 output: Path | None = None, env_kwargs: dict[str, Any] | None = None, *, trust: bool = False,
                 gym_packages: Sequence[str] = ()) -> dict[str, Any]:
    """Roll out the run's policy; write eval.json (in the run folder unless ``output``)."""
    evaluation = run_evaluation(run_dir, n_episodes, load_best, checkpoint, deterministic, bool(video), seed,
                                env_kwargs, trust=trust, gym_packages=gym_packages)
    save_evaluation(evaluation, output or Path(run_dir) / "eval.json", video)
    return evaluation.summary


def write_video(path: str, frames: list[np.ndarray], fps: int = 30) -> Path:
    import imageio.v2 as imageio

    out = Path(path)
    if out.suffix.lower() not in (".gif", ".mp4"):
        raise ValueError(f"--video must end in .mp4 or .gif, got {path!r}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with runs.atomic_output(out) as tmp:
        if out.suffix.lower() == ".gif":
            imageio.mimsave(tmp, frames, duration=1000 / fps, loop=0)
        else:
            imageio.mimsave(tmp, frames, fps=fps, macro_block_size=1)
    return out
