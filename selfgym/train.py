"""Training: flags -> resolved config -> env, reward modules, agent -> learn -> run folder.

``train(config)`` is the importable core; ``selfgym.cli.train_main`` is the thin CLI over it.
The resolved config (plain data) is what ``config.yaml`` holds, and it is all ``evaluate.py``
and ``--resume`` need to rebuild the run.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from selfgym import agents, env_factory, rewards, runs
from selfgym.config import find_nan
from selfgym.evaluation import evaluate_run, format_table, rollout, summarize
from selfgym.metrics import make_logger, plot_learning_curve, truncate_metrics

class UserError(Exception):
    """A mistake in the command or config (unknown name, bad hyperparameter, bad checkpoint)."""


class RunHooks:
    """The trainer's side of ``selfgym.agents.base.TrainingHooks``: checkpoints, eval, progress, Ctrl-C."""

    def __init__(self, run: "Run", progress: bool) -> None:
        self.run = run
        cfg = run.config
        self.next_save = _next_multiple(run.start_steps, cfg["save_freq"])
        self.next_eval = _next_multiple(run.start_steps, cfg["eval_freq"]) if cfg["eval_freq"] > 0 else None
        self.stop_requested = False
        self.bar = None
        if progress:
            self.bar = tqdm(total=cfg["n_timesteps"], initial=run.start_steps, unit="step", dynamic_ncols=True, smoothing=0.1)
        self._last = run.start_steps

    def on_step(self, num_timesteps: int) -> bool:
        if self.bar is not None and num_timesteps != self._last:
            self.bar.update(num_timesteps - self._last)
            ret = self.run.csv.last_row.get("ep_return_mean")
            if ret is not None:
                self.bar.set_postfix(ep_return=f"{ret:.2f}", refresh=False)
        self._last = num_timesteps
        if num_timesteps >= self.next_save:
            self.run.save_checkpoint(num_timesteps)
            self.next_save = _next_multiple(num_timesteps, self.run.config["save_freq"])
        if self.next_eval is not None and num_timesteps >= self.next_eval:
            self.run.periodic_eval(num_timesteps)
            self.next_eval = _next_multiple(num_timesteps, self.run.config["eval_freq"])
        return not self.stop_requested

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _next_multiple(steps: int, freq: int) -> int:
    return (steps // freq + 1) * freq


class Run:
    """One run folder and everything alive in it: envs, reward modules, agent, logger."""

    def __init__(self, config: dict[str, Any], run_dir: Path, resume_state: dict[str, Any] | None, wall_offset: float) -> None:
        self.config, self.run_dir = config, run_dir
        torch.set_num_threads(config["num_threads"])
        seed = config["seed"]
        self.venv = env_factory.make_vec_env(config["env"], config["n_envs"], seed, config["env_kwargs"],
                                             config["vec_env"], config["env_wrapper"])
        self.venv = env_factory.wrap_normalize(self.venv, config["normalize"])
        self.reward_modules = [rewards.make_reward(spec) for spec in config["rewards"]]
        self.logger, self.csv = make_logger(run_dir, wall_offset)
        self.agent = agents.make_agent(config["agent"], self.venv, dict(config["hyperparams"]), device=config["device"],
                                       seed=seed, logger=self.logger, reward_modules=self.reward_modules)
        self.start_steps = 0
        if resume_state is not None:
            self.load_state(resume_state)
            self.start_steps = self.agent.num_timesteps
        self.eval_venv = None
        self.best_eval = -float("inf")

    # -- state -------------------------------------------------------------------------------
    def state(self, include_buffers: bool = True) -> dict[str, Any]:
        return {
            "agent": self.agent.state_dict(include_buffers=include_buffers),
            "vec_normalize": env_factory.vec_normalize_state(self.venv),
            "rewards": {m.name: m.state_dict() for m in self.reward_modules},
            "best_eval": self.best_eval if include_buffers else None,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.agent.load_state_dict(state["agent"])
        env_factory.load_vec_normalize_state(self.venv, state.get("vec_normalize"))
        for module in self.reward_modules:
            if module.name in state.get("rewards", {}):
                module.load_state_dict(state["rewards"][module.name])
        if state.get("best_eval") is not None:
            self.best_eval = float(state["best_eval"])

    def _meta(self, steps: int) -> dict[str, Any]:
        return {"num_timesteps": int(steps), "wall_time": round(self.csv.wall_time, 3),
                "agent": self.config["agent"], "env": self.config["env"]}

    def save_checkpoint(self, steps: int) -> None:
        runs.save_checkpoint(runs.checkpoint_dir(self.run_dir, steps), self.state(), self._meta(steps))
        runs.prune_checkpoints(self.run_dir, self.config["keep_checkpoints"])

    def save_model(self, folder_name: str) -> None:
        steps = self.agent.num_timesteps
        runs.save_checkpoint(self.run_dir / folder_name, self.state(include_buffers=False), self._meta(steps))

    # -- evaluation during training ----------------------------------------------------------
    def periodic_eval(self, steps: int) -> None:
        cfg = self.config
        if self.eval_venv is None:
            self.eval_venv = env_factory.make_eval_env(cfg, cfg["seed"] + 10_000)
        env_factory.load_vec_normalize_state(self.eval_venv, env_factory.vec_normalize_state(self.venv))
        summary = summarize(rollout(self.agent, self.eval_venv, cfg["eval_episodes"], deterministic=True))
        self.logger.record("eval/mean_reward", summary["return_mean"])
        self.logger.record("eval/mean_ep_length", summary["length_mean"])
        if summary.get("success_rate") is not None:
            self.logger.record("eval/success_rate", summary["success_rate"])
        if summary["return_mean"] > self.best_eval:
            self.best_eval = summary["return_mean"]
            self.save_model("best_model")

    def close(self) -> None:
        self.venv.close()
        if self.eval_venv is not None:
            self.eval_venv.close()
        self.logger.close()


def _validate(config: dict[str, Any]) -> None:
    """Check names before any folder is created: env id, agent, hyperparameters, reward specs."""
    for section in ("hyperparams", "env_kwargs"):
        if (key := find_nan(config[section], "")) is not None:
            raise ValueError(f"{section} {key!r} is NaN; give a number")
    env_factory.import_env_packages(config["gym_packages"])
    env_factory.check_env_id(config["env"])
    agents.check_hyperparams(config["agent"], config["hyperparams"])
    for spec in config["rewards"]:
        rewards.make_reward(spec)


def train(config: dict[str, Any], log_folder: str = "logs", resume_dir: str | Path | None = None,
          progress: bool = False, final_eval: bool = True, args_record: dict[str, Any] | None = None) -> Path:
    """Train per ``config`` (or resume ``resume_dir``); returns the run folder."""
    resume_state, wall_offset, meta = None, 0.0, None
    try:
        if resume_dir is not None:
            resume_state, meta, folder = runs.latest_valid_checkpoint(Path(resume_dir))
        _validate(config)
    except Exception as exc:
        raise UserError(str(exc)) from exc
    if resume_dir is not None:
        run_dir = Path(resume_dir)
        wall_offset = float(meta.get("wall_time", 0.0))
        truncate_metrics(run_dir / "metrics.csv", int(meta["num_timesteps"]))
        print(f"Resuming {run_dir} from {folder.name} ({meta['num_timesteps']} steps)")
    else:
        run_dir = runs.new_run_dir(log_folder, config["agent"], config["env"])
    try:
        run = Run(config, run_dir, resume_state, wall_offset)
    except Exception as exc:
        if resume_dir is None:  # never leave a half-made folder that looks like a run
            shutil.rmtree(run_dir, ignore_errors=True)
            with contextlib.suppress(OSError):  # nor the agent folder, if this run was all it held
                run_dir.parent.rmdir()
        raise UserError(f"could not build the run: {type(exc).__name__}: {exc}") from exc
    runs.write_yaml(run_dir / "config.yaml", config)
    if args_record is not None:
        runs.write_yaml(run_dir / "args.yaml", args_record)
    runs.write_status(run_dir, "running", num_timesteps=run.start_steps)
    hooks = RunHooks(run, progress)
    previous = signal.getsignal(signal.SIGINT)

    def on_sigint(signum: int, frame: Any) -> None:
        if hooks.stop_requested:  # second Ctrl-C: stop at once
            raise KeyboardInterrupt
        hooks.stop_requested = True
        print("\nCtrl-C: saving a checkpoint and stopping (press again to abort without saving)", file=sys.stderr)

    signal.signal(signal.SIGINT, on_sigint)
    start = time.time()
    try:
        run.agent.learn(config["n_timesteps"], hooks)
    except BaseException as exc:
        hooks.close()
        state = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        runs.write_status(run_dir, state, num_timesteps=run.agent.num_timesteps, error=repr(exc)[:500])
        run.close()
        raise
    finally:
        signal.signal(signal.SIGINT, previous)
    hooks.close()
    steps = run.agent.num_timesteps
    run.save_checkpoint(steps)
    if hooks.stop_requested:
        runs.write_status(run_dir, "interrupted", num_timesteps=steps)
        plot_learning_curve(run_dir, f"{config['agent']} on {config['env']}")
        run.close()
        print(f"Interrupted at {steps} steps. Resume with: python train.py -i {run_dir}")
        raise KeyboardInterrupt
    run.save_model(runs.MODEL_DIR)
    picture = plot_learning_curve(run_dir, f"{config['agent']} on {config['env']}")
    elapsed = time.time() - start
    run.close()
    runs.write_status(run_dir, "finished", num_timesteps=steps, train_seconds=round(elapsed, 1))
    if final_eval:
        summary = evaluate_run(run_dir, n_episodes=config["eval_episodes"])
        print(format_table(summary))
    print(f"Run saved in {run_dir} ({steps} steps, {elapsed:.0f} s)")
    if picture is not None:
        print(f"What was learned: {picture}")
    return run_dir
