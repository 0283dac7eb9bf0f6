"""Training: flags -> resolved config -> env, reward modules, agent -> learn -> run folder.

``train(config)`` is the importable core; ``selfgym.cli.train_main`` is the thin CLI over it.
The resolved config (plain data) is what ``config.yaml`` holds, and it is all ``evaluate.py``
and ``--resume`` need to rebuild the run.
"""

from __future__ import annotations

import contextlib
import math
import random
import shutil
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.utils import set_random_seed
from tqdm import tqdm

from selfgym import agents, env_factory, rewards, runs
from selfgym.config import find_nan, parse_spec
from selfgym.evaluation import check_run_code, evaluate_run, format_table, rollout, summarize
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


def rng_state() -> dict[str, Any]:
    """The global torch, numpy and Python RNG states, as tensors and plain data (weights-only loadable)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {"torch": torch.get_rng_state(),
            "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
            "python": {"version": version, "internal": list(internal), "gauss": gauss}}


def load_rng_state(state: dict[str, Any]) -> None:
    """Put back ``rng_state()``: a resumed run draws the numbers the uninterrupted one would have."""
    torch.set_rng_state(state["torch"])
    npy = state["numpy"]
    np.random.set_state((npy["kind"], npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"],
                         npy["cached_gaussian"]))
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss"]))


class Run:
    """One run folder and everything alive in it: envs, reward modules, agent, logger."""

    def __init__(self, config: dict[str, Any], run_dir: Path, resume_state: dict[str, Any] | None, wall_offset: float) -> None:
        self.config, self.run_dir = config, run_dir
        torch.set_num_threads(config["num_threads"])
        seed = config["seed"]
        if resume_state is None:  # agents that draw from the global RNGs (not only SB3's) repeat with their seed;
            set_random_seed(seed)  # a resumed run gets its saved RNG states back in load_state
        self.venv = env_factory.make_vec_env(config["env"], config["n_envs"], seed, config["env_kwargs"],
                                             config["vec_env"], config["env_wrapper"])
        self.venv = env_factory.wrap_normalize(self.venv, config["normalize"])
        self.reward_modules = [rewards.make_reward(spec) for spec in config["rewards"]]
        self.logger, self.csv = make_logger(run_dir, wall_offset)
        self.agent = agents.make_agent(config["agent"], self.venv, dict(config["hyperparams"]), device=config["device"],
                                       seed=seed, logger=self.logger, reward_modules=self.reward_modules)
        self.start_steps = 0
        self.eval_venv: Any = None
        self.best_eval = -float("inf")
        if resume_state is not None:  # after the defaults above, which it replaces (the best evaluation, the eval env)
            self.load_state(resume_state)
            self.start_steps = self.agent.num_timesteps

    # -- state -------------------------------------------------------------------------------
    def state(self, include_buffers: bool = True) -> dict[str, Any]:
        return {
            "agent": self.agent.state_dict(include_buffers=include_buffers),
            "vec_normalize": env_factory.vec_normalize_state(self.venv),
            "rewards": {m.name: m.state_dict() for m in self.reward_modules},
            "best_eval": self.best_eval if include_buffers else None,
            "rng": rng_state(),
            "env_rng": env_factory.env_rng_state(self.venv),
            "eval_env_rng": env_factory.env_rng_state(self.eval_venv) if self.eval_venv is not None else None,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.agent.load_state_dict(state["agent"])
        env_factory.load_vec_normalize_state(self.venv, state.get("vec_normalize"))
        for module in self.reward_modules:
            if module.name in state.get("rewards", {}):
                module.load_state_dict(state["rewards"][module.name])
        if state.get("best_eval") is not None:
            self.best_eval = float(state["best_eval"])
        if state.get("rng") is not None:
            load_rng_state(state["rng"])
        if state.get("eval_env_rng") is not None:  # evaluations go on with the episodes the next one would see
            self.eval_venv = env_factory.make_eval_env(self.config, self.config["seed"] + 10_000)
            env_factory.load_env_rng_state(self.eval_venv, state["eval_env_rng"], episodes=False)
        if state.get("env_rng") is not None:
            env_factory.load_env_rng_state(self.venv, state["env_rng"])
        else:
            warnings.warn("the checkpoint has no env RNG state (written by selfgym before it saved one): the envs start "
                          "again from the run's seed, so the resumed run replays its first episodes' starts", stacklevel=2)

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
        if self.eval_venv is None:  # (a resumed run's is made and restored in load_state)
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


#: Seeds the trainer accepts: gymnasium and numpy take any non-negative seed below 2**32, and
#: the trainer derives more from it (env i gets seed + i, evaluation seed + 10_000 and + 20_000).
MAX_SEED = 2**31 - 1

# config key -> (flag, smallest value, the sentinel the flag documents)
_COUNTS = {
    "n_timesteps": ("-n/--n-timesteps", 1, "-1 takes it from the hyperparameters"),
    "n_envs": ("--n-envs", 1, "-1 takes it from the hyperparameters"),
    "num_threads": ("--num-threads", 1, "-1 means 1 thread"),
    "save_freq": ("--save-freq", 1, "-1 means 10 times per run"),
    "eval_freq": ("--eval-freq", 0, "0 never evaluates, -1 evaluates 10 times per run"),
    "eval_episodes": ("--eval-episodes", 1, "-1 takes it from the hyperparameters"),
    "keep_checkpoints": ("--keep-checkpoints", 0, "0 keeps all"),
}
_SCHEDULE_LIMITS = {"coef": None, "final_ratio": None, "kappa": (0.0, 1.0), "decay_steps": (1, None)}


def validate_numbers(config: dict[str, Any]) -> None:
    """Every count and the seed in range, and no NaN in the hyperparameters or env kwargs."""
    for key, (flag, least, sentinel) in _COUNTS.items():
        value = config.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{key} must be a whole number >= {least} ({flag}; {sentinel}), got {value!r}")
    seed = config.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must be a whole number in 0..{MAX_SEED} (--seed; -1 picks one), got {seed!r}")
    for section in ("hyperparams", "env_kwargs"):
        if (key := find_nan(config[section], "")) is not None:
            raise ValueError(f"{section} {key!r} is NaN; give a number")


def checked_reward(spec: str) -> Any:
    """The reward module for ``spec``, after its numbers are checked: every given number finite
    (before the module is built, so its constructor never sees a NaN), then the weight and
    schedule in range (NaN or a bad schedule would only surface mid-run)."""
    _, kwargs = parse_spec(spec) if isinstance(spec, str) else spec
    for key, value in kwargs.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"--reward {spec}: {key}={value} is not a finite number")
    module = rewards.make_reward(spec)
    for attr, limits in _SCHEDULE_LIMITS.items():
        value = getattr(module, attr, None)
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        low, high = limits or (None, None)
        if not math.isfinite(value) or (low is not None and value < low) or (high is not None and value >= high):
            bounds = "a finite number" if limits is None else f"in [{low}, {high})" if high is not None else f">= {low}"
            raise ValueError(f"--reward {spec}: {attr}={value} must be {bounds}")
    return module


def _validate(config: dict[str, Any]) -> None:
    """Check names and numbers before any folder is created: env id, agent, hyperparameters, rewards."""
    validate_numbers(config)
    if str(config.get("device", "auto")).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {config['device']} was asked for but torch sees no CUDA device; use cpu or auto")
    reward_modules = [checked_reward(spec) for spec in config["rewards"]]
    env_factory.import_env_packages(config["gym_packages"])
    env_factory.check_env_id(config["env"])
    agent_cls = agents.check_hyperparams(config["agent"], config["hyperparams"])
    # offline agents find (or collect), check and hash their dataset here; config.yaml records
    # its absolute path and sha256, and a resume checks the file still has that hash
    if hasattr(agent_cls, "resolve_hyperparams"):
        config["hyperparams"] = agent_cls.resolve_hyperparams(dict(config["hyperparams"]), config["env"])
    # multi-stream agents (slim) check each --reward stream has a valid weight
    if hasattr(agent_cls, "check_config"):
        agent_cls.check_config(config["hyperparams"], [module.name for module in reward_modules])


class RunFailed(Exception):
    """Training stopped on an error after the run folder existed (a full disk, a plug-in bug).

    Its message says whether status.json could be marked failed, and what is left to resume from.
    """


def train(config: dict[str, Any], log_folder: str = "logs", resume_dir: str | Path | None = None,
          progress: bool = False, final_eval: bool = True, args_record: dict[str, Any] | None = None, *,
          trust_run: bool = False, gym_packages: Sequence[str] = (),
          on_metrics: Callable[[dict[str, float]], None] | None = None) -> Path:
    """Train per ``config`` (or resume ``resume_dir``); returns the run folder.

    ``on_metrics`` is called with every metrics.csv row once it is written (tune.py reports
    them to Ray Tune this way).

    Resuming imports no code the run's config names (see ``check_run_code``) unless
    ``trust_run`` or the module is in ``gym_packages``. The run folder is locked for the whole
    training: a second trainer on it gets a UserError naming the process that holds it.
    """
    resume = Path(resume_dir) if resume_dir is not None else None
    try:
        if resume is not None:
            check_run_code(resume, config, trust=trust_run, named_modules=gym_packages, with_rewards=True)
        _validate(config)
    except Exception as exc:
        raise UserError(str(exc)) from exc
    run_dir = resume if resume is not None else _new_run_dir(log_folder, config)
    lock = runs.RunLock(run_dir)
    try:
        lock.acquire()
    except (runs.RunLockedError, OSError) as exc:
        raise UserError(str(exc)) from exc
    try:
        run = _open_run(config, run_dir, resume is not None)
        run.csv.on_row = on_metrics
        return _train_locked(run, progress, final_eval, args_record, fresh=resume is None)
    finally:
        lock.release()


def _new_run_dir(log_folder: str, config: dict[str, Any]) -> Path:
    try:
        return runs.new_run_dir(log_folder, config["agent"], config["env"])
    except OSError as exc:
        raise UserError(f"cannot make a run folder under -f {log_folder}: {exc}") from exc


def _open_run(config: dict[str, Any], run_dir: Path, resuming: bool) -> "Run":
    """Build the run; on resume first clear a killed writer's leftovers and load the last good checkpoint."""
    resume_state, wall_offset = None, 0.0
    if resuming:
        removed = runs.remove_stale_temporaries(run_dir) + runs.remove_stale_temporaries(run_dir / runs.CHECKPOINT_DIR)
        if removed:
            print(f"Removed leftovers of an interrupted write: {', '.join(removed)}")
        try:
            resume_state, meta, folder = runs.latest_valid_checkpoint(run_dir)
        except runs.CheckpointError as exc:
            raise UserError(str(exc)) from exc
        wall_offset = float(meta.get("wall_time", 0.0))
        truncate_metrics(run_dir / "metrics.csv", int(meta["num_timesteps"]))
        print(f"Resuming {run_dir} from {folder.name} ({meta['num_timesteps']} steps)")
    try:
        return Run(config, run_dir, resume_state, wall_offset)
    except Exception as exc:
        if not resuming:  # never leave a half-made folder that looks like a run
            _remove_new_run(run_dir)
        raise UserError(f"could not build the run: {type(exc).__name__}: {exc}") from exc


def _remove_new_run(run_dir: Path) -> None:
    shutil.rmtree(run_dir, ignore_errors=True)
    with contextlib.suppress(OSError):  # nor the agent folder, if this run was all it held
        run_dir.parent.rmdir()


def _train_locked(run: "Run", progress: bool, final_eval: bool, args_record: dict[str, Any] | None,
                  fresh: bool) -> Path:
    """Learn and save; any error marks the run failed (where status.json can still be written).

    A new run that fails before its first checkpoint has nothing to resume: its folder is removed,
    so no failed run is left looking like one.
    """
    config, run_dir = run.config, run.run_dir
    hooks: RunHooks | None = None
    start = time.time()
    try:
        runs.write_yaml(run_dir / "config.yaml", config)
        if args_record is not None:
            runs.write_yaml(run_dir / "args.yaml", args_record)
        runs.write_status(run_dir, "running", num_timesteps=run.start_steps)
        hooks = RunHooks(run, progress)
        _learn(run, hooks)
        steps = run.agent.num_timesteps
        if run.logger.name_to_value:  # values logged since the last row (an off-policy agent writes rows
            run.logger.dump(steps)    # at episode ends only, so its last evaluation would be lost)
        run.save_checkpoint(steps)
        if hooks.stop_requested:
            runs.write_status(run_dir, "interrupted", num_timesteps=steps)
            _draw_picture(run)
            print(f"Interrupted at {steps} steps. Resume with: python train.py -i {run_dir}")
            raise KeyboardInterrupt
        run.save_model(runs.MODEL_DIR)
        picture = _draw_picture(run)
        elapsed = time.time() - start
        runs.write_status(run_dir, "finished", num_timesteps=steps, train_seconds=round(elapsed, 1))
    except KeyboardInterrupt:
        _mark(run, "interrupted", None)
        raise
    except BaseException as exc:
        if fresh and not runs.list_checkpoints(run_dir):
            _remove_new_run(run_dir)
            raise RunFailed(f"training failed at step {run.agent.num_timesteps}, before its first checkpoint: "
                            f"{type(exc).__name__}: {exc}; {run_dir} was removed (nothing to resume)") from exc
        marked = _mark(run, "failed", exc)
        raise RunFailed(_failure_message(run, exc, marked)) from exc
    finally:
        if hooks is not None:
            hooks.close()
        run.close()
    if final_eval:
        summary = evaluate_run(run_dir, n_episodes=config["eval_episodes"], trust=True,
                               gym_packages=config["gym_packages"])
        print(format_table(summary))
    print(f"Run saved in {run_dir} ({steps} steps, {elapsed:.0f} s)")
    if picture is not None:
        print(f"What was learned: {picture}")
    return run_dir


def _draw_picture(run: "Run") -> Path | None:
    """The run's picture: the agent's own (``draw_picture(run_dir, title)``, e.g. persistent_ssl's
    flight metrics against flight time) where it has one, else the learning curve."""
    title = f"{run.config['agent']} on {run.config['env']}"
    draw = getattr(run.agent, "draw_picture", None)
    return draw(run.run_dir, title) if callable(draw) else plot_learning_curve(run.run_dir, title)


def _learn(run: "Run", hooks: RunHooks) -> None:
    """``agent.learn`` with Ctrl-C and SIGTERM (what schedulers and ``kill`` send) turned into
    "save a checkpoint and stop"; a second signal aborts at once."""
    if threading.current_thread() is not threading.main_thread():  # signal handlers live in the main thread
        run.agent.learn(run.config["n_timesteps"], hooks)
        return
    stop_signals = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.getsignal(signum) for signum in stop_signals}

    def on_stop_signal(signum: int, frame: Any) -> None:
        if hooks.stop_requested:  # the second signal: stop at once
            raise KeyboardInterrupt
        hooks.stop_requested = True
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        print(f"\n{name}: saving a checkpoint and stopping (send it again to abort without saving)", file=sys.stderr)

    for signum in stop_signals:
        signal.signal(signum, on_stop_signal)
    try:
        run.agent.learn(run.config["n_timesteps"], hooks)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _mark(run: "Run", state: str, exc: BaseException | None) -> bool:
    """status.json after an abnormal end, if it can still be written (a full disk may refuse)."""
    error = {} if exc is None else {"error": f"{type(exc).__name__}: {exc}"[:500]}
    try:
        runs.write_status(run.run_dir, state, num_timesteps=run.agent.num_timesteps, **error)
    except OSError:
        return False
    return True


#: Below this many free bytes on the run's disk, a failure message says so (torch.save reports a
#: full disk as "unexpected pos", not ENOSPC).
_LOW_SPACE = 64 * 2**20


def _failure_message(run: "Run", exc: BaseException, marked: bool) -> str:
    """What failed, whether status.json says so, and what is left to resume from."""
    ckpts = runs.list_checkpoints(run.run_dir)
    left = (f"the last good checkpoint is {ckpts[-1][1].name}; resume with: python train.py -i {run.run_dir}"
            if ckpts else "no checkpoint was saved")
    status = "The run is marked failed in status.json" if marked else "status.json could not be updated either"
    free = shutil.disk_usage(run.run_dir).free
    disk = f" (the run's disk has only {free // 1024} KiB free)" if free < _LOW_SPACE else ""
    return (f"training {run.run_dir} stopped at step {run.agent.num_timesteps}: {type(exc).__name__}: {exc}{disk}. "
            f"{status}; {left}")
