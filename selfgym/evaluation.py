"""Evaluation: load a run, roll its policy out, summarise, write eval.json, record video.

``evaluate_run`` is the importable core; ``main()`` is the thin CLI behind ``evaluate.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

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
    import torch

    import agents
    from selfgym import env_factory, runs

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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="evaluate.py", description="Evaluate a trained run.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--run", default=None, help="run folder, e.g. logs/ppo/CartPole-v1_1")
    p.add_argument("--env", default=None, help="with --agent: find the run under --log-folder")
    p.add_argument("--agent", "--algo", dest="agent", default=None)
    p.add_argument("-f", "--log-folder", default="logs")
    p.add_argument("--exp-id", type=int, default=0, help="run number (0: latest)")
    p.add_argument("-n", "--n-episodes", "--eval-episodes", dest="n_episodes", type=int, default=10)
    p.add_argument("--load-best", action="store_true", help="use best_model/ (saved by periodic evaluation)")
    p.add_argument("--checkpoint", type=int, default=None, metavar="STEPS", help="use the checkpoint at this step")
    p.add_argument("--stochastic", action="store_true", help="sample actions instead of the deterministic policy")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--env-kwargs", nargs="+", default=[], metavar="KEY:VALUE",
                   help="override the run's env keyword arguments, e.g. split:test for held-out data")
    p.add_argument("--video", default=None, metavar="OUT.mp4|OUT.gif", help="record rgb_array frames")
    p.add_argument("--output", default=None, help="where to write the JSON (default: <run>/eval.json)")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from selfgym import runs

    if args.run:
        run_dir = Path(args.run)
    elif args.env and args.agent:
        try:
            run_dir = runs.find_run(args.log_folder, args.agent, args.env, args.exp_id)
        except FileNotFoundError as exc:
            parser.error(str(exc))
    else:
        parser.error("give --run DIR, or --env and --agent (with -f and --exp-id)")
    if args.video and Path(args.video).suffix.lower() not in (".mp4", ".gif"):
        parser.error(f"--video must end in .mp4 or .gif, got {args.video!r}")
    from selfgym.config import parse_key_values

    try:
        env_kwargs = parse_key_values(args.env_kwargs, "--env-kwargs")
    except ValueError as exc:
        parser.error(str(exc))
    try:
        summary = evaluate_run(run_dir, args.n_episodes, args.load_best, args.checkpoint, not args.stochastic,
                               args.video, args.seed, Path(args.output) if args.output else None, env_kwargs)
    except (runs.CheckpointError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{summary['agent']} on {summary['env']}: {run_dir} ({summary['weights']}, {summary['num_timesteps']} steps)")
    print(format_table(summary))
    if summary.get("video"):
        print(f"video: {summary['video']}")
    print(f"wrote {args.output or run_dir / 'eval.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
