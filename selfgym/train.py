"""Training: flags -> resolved config -> env, reward modules, agent -> learn -> run folder.

``train(config)`` is the importable core; ``main()`` is the thin CLI behind ``train.py``.
The resolved config (plain data) is what ``config.yaml`` holds, and it is all ``evaluate.py``
and ``--resume`` need to rebuild the run.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

# The main job: a drone learns monocular distance from its own stereo labels, then flies on it.
DEFAULT_ENV, DEFAULT_AGENT = "selfgym/DroneRoom-v0", "persistent_ssl"


class UserError(Exception):
    """A mistake in the command or config (unknown name, bad hyperparameter, bad checkpoint)."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="train.py",
        description="Train an agent on a Gymnasium env, with optional self-generated reward modules.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--env", default=DEFAULT_ENV, help="Gymnasium id, e.g. CartPole-v1 or selfgym/PlayTable-v0")
    p.add_argument("--agent", "--algo", dest="agent", default=DEFAULT_AGENT, help="registered agent name or pkg.mod:Class")
    p.add_argument("-n", "--n-timesteps", type=int, default=-1, help="environment steps (-1: from hyperparams)")
    p.add_argument("--seed", type=int, default=-1, help="random seed (-1: pick one and record it)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--num-threads", type=int, default=-1, help="torch CPU threads (-1: 1 thread, fastest for MLPs on a small CPU)")
    p.add_argument("--n-envs", type=int, default=-1, help="parallel envs (-1: from hyperparams, else 1)")
    p.add_argument("--vec-env", default="dummy", choices=["dummy", "subproc"])
    p.add_argument("-params", "--hyperparams", nargs="+", default=[], metavar="KEY:VALUE",
                   help="override hyperparameters, e.g. learning_rate:0.001 'policy_kwargs:dict(net_arch=[64,64])'")
    p.add_argument("--env-kwargs", nargs="+", default=[], metavar="KEY:VALUE", help="keyword arguments for gym.make")
    p.add_argument("--reward", action="append", default=[], metavar="NAME[:k=v,...]",
                   help="reward module (repeatable), e.g. rnd:coef=0.01 or my_mod:my_reward")
    p.add_argument("-conf", "--conf-file", default=None, help="YAML hyperparameter file (keyed by env id, or flat)")
    p.add_argument("--eval-freq", type=int, default=-1, help="evaluate every N steps (-1: 10 times per run; 0: never)")
    p.add_argument("--eval-episodes", type=int, default=-1, help="episodes per evaluation (-1: from hyperparams, else 5)")
    p.add_argument("--save-freq", type=int, default=-1, help="checkpoint every N steps (-1: 10 times per run)")
    p.add_argument("--keep-checkpoints", type=int, default=3, help="how many periodic checkpoints to keep (0: all)")
    p.add_argument("-f", "--log-folder", default="logs")
    p.add_argument("-i", "--resume", default=None, metavar="RUN_DIR", help="continue a run from its last checkpoint")
    p.add_argument("-P", "--progress", action="store_true", help="show a progress bar")
    p.add_argument("--gym-packages", nargs="+", default=[], help="modules to import that register envs")
    p.add_argument("--no-final-eval", action="store_true", help="skip eval.json at the end")
    return p


def resolve_config(args: argparse.Namespace) -> dict[str, Any]:
    """Hyperparams file -> conf file -> flags; returns the plain-data config of the run."""
    from selfgym.config import TRAINER_KEYS, load_conf_file, load_hyperparams, parse_key_values

    hp = load_hyperparams(args.agent, args.env)
    if args.conf_file:
        hp.update(load_conf_file(args.conf_file, args.env))
    hp.update(parse_key_values(args.hyperparams, "-params"))
    trainer = {k: hp.pop(k) for k in TRAINER_KEYS if k in hp}
    env_kwargs = dict(trainer.get("env_kwargs") or {})
    env_kwargs.update(parse_key_values(args.env_kwargs, "--env-kwargs"))
    n_timesteps = args.n_timesteps if args.n_timesteps > 0 else int(float(trainer.get("n_timesteps", 100_000)))
    n_envs = args.n_envs if args.n_envs > 0 else int(trainer.get("n_envs", 1))
    seed = args.seed if args.seed >= 0 else random.SystemRandom().randrange(2**31)
    return {
        "env": args.env,
        "agent": args.agent,
        "n_timesteps": n_timesteps,
        "seed": seed,
        "device": args.device,
        "num_threads": args.num_threads if args.num_threads > 0 else 1,
        "n_envs": n_envs,
        "vec_env": args.vec_env,
        "env_kwargs": env_kwargs,
        "normalize": trainer.get("normalize", False),
        "env_wrapper": trainer.get("env_wrapper"),
        "rewards": list(args.reward),
        "hyperparams": hp,
        "eval_freq": args.eval_freq if args.eval_freq >= 0 else int(trainer.get("eval_freq", max(n_timesteps // 10, 1))),
        "eval_episodes": args.eval_episodes if args.eval_episodes > 0 else int(trainer.get("eval_episodes", 5)),
        "save_freq": args.save_freq if args.save_freq > 0 else max(n_timesteps // 10, 1),
        "keep_checkpoints": args.keep_checkpoints,
        "gym_packages": list(args.gym_packages),
    }


class RunHooks:
    """The trainer's side of ``agents.base.TrainingHooks``: checkpoints, eval, progress, Ctrl-C."""

    def __init__(self, run: "Run", progress: bool) -> None:
        self.run = run
        cfg = run.config
        self.next_save = _next_multiple(run.start_steps, cfg["save_freq"])
        self.next_eval = _next_multiple(run.start_steps, cfg["eval_freq"]) if cfg["eval_freq"] > 0 else None
        self.stop_requested = False
        self.bar = None
        if progress:
            from tqdm import tqdm

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
        import torch

        import agents
        import rewards
        from selfgym import env_factory
        from selfgym.metrics import make_logger

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
        from selfgym.env_factory import vec_normalize_state

        return {
            "agent": self.agent.state_dict(include_buffers=include_buffers),
            "vec_normalize": vec_normalize_state(self.venv),
            "rewards": {m.name: m.state_dict() for m in self.reward_modules},
            "best_eval": self.best_eval if include_buffers else None,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        from selfgym.env_factory import load_vec_normalize_state

        self.agent.load_state_dict(state["agent"])
        load_vec_normalize_state(self.venv, state.get("vec_normalize"))
        for module in self.reward_modules:
            if module.name in state.get("rewards", {}):
                module.load_state_dict(state["rewards"][module.name])
        if state.get("best_eval") is not None:
            self.best_eval = float(state["best_eval"])

    def _meta(self, steps: int) -> dict[str, Any]:
        return {"num_timesteps": int(steps), "wall_time": round(self.csv.wall_time, 3),
                "agent": self.config["agent"], "env": self.config["env"]}

    def save_checkpoint(self, steps: int) -> None:
        from selfgym import runs

        runs.save_checkpoint(runs.checkpoint_dir(self.run_dir, steps), self.state(), self._meta(steps))
        runs.prune_checkpoints(self.run_dir, self.config["keep_checkpoints"])

    def save_model(self, folder_name: str) -> None:
        from selfgym import runs

        steps = self.agent.num_timesteps
        runs.save_checkpoint(self.run_dir / folder_name, self.state(include_buffers=False), self._meta(steps))

    # -- evaluation during training ----------------------------------------------------------
    def periodic_eval(self, steps: int) -> None:
        from selfgym import env_factory
        from selfgym.evaluation import rollout, summarize

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
    import agents
    import rewards
    from selfgym import env_factory

    from selfgym.config import find_nan

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
    from selfgym import runs
    from selfgym.metrics import plot_learning_curve, truncate_metrics

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
    plot_learning_curve(run_dir, f"{config['agent']} on {config['env']}")
    elapsed = time.time() - start
    run.close()
    runs.write_status(run_dir, "finished", num_timesteps=steps, train_seconds=round(elapsed, 1))
    if final_eval:
        from selfgym.evaluation import evaluate_run, format_table

        summary = evaluate_run(run_dir, n_episodes=config["eval_episodes"])
        print(format_table(summary))
    print(f"Run saved in {run_dir} ({steps} steps, {elapsed:.0f} s)")
    return run_dir


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from selfgym import runs

    if args.resume:
        run_dir = Path(args.resume)
        if not (run_dir / "config.yaml").exists():
            parser.error(f"--resume {run_dir}: not a run folder (no config.yaml)")
        config = runs.read_yaml(run_dir / "config.yaml")
        if args.n_timesteps > 0:
            config["n_timesteps"] = args.n_timesteps
        record = {**runs.read_yaml(run_dir / "args.yaml"), "resumed_with": vars(args)} if (run_dir / "args.yaml").exists() else vars(args)
        resume = run_dir
    else:
        try:
            config = resolve_config(args)
        except (ValueError, OSError) as exc:
            parser.error(str(exc))
        record, resume = vars(args), None
    try:
        train(config, args.log_folder, resume, progress=args.progress, final_eval=not args.no_final_eval, args_record=record)
    except KeyboardInterrupt:
        return 130
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
