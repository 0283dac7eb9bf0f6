"""The command lines: ``train.py`` / ``selfgym-train``, ``evaluate.py`` / ``selfgym-evaluate`` and
``compare.py`` / ``selfgym-compare``.

Thin: flags -> plain-data config -> ``selfgym.train.train``, ``selfgym.evaluation.evaluate_run`` or
``selfgym.compare.compare``.
Only the light core is imported at the top; the trainer, the evaluator and the run-folder code
(torch) are imported once the flags are parsed, so ``--help`` and flag errors answer at once.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from selfgym.config import TRAINER_KEYS, load_conf_file, load_hyperparams, parse_key_values

# The main job: a drone learns monocular distance from its own stereo labels, then flies on it.
DEFAULT_ENV, DEFAULT_AGENT = "selfgym/DroneRoom-v0", "persistent_ssl"



def train_parser() -> argparse.ArgumentParser:
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
    p.add_argument("-P", "--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="show a progress bar (default: when stderr is a terminal)")
    p.add_argument("--gym-packages", nargs="+", default=[], help="modules to import that register envs")
    p.add_argument("--no-final-eval", action="store_true", help="skip eval.json at the end")
    _add_safety_flags(p)
    return p


def _add_safety_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trust-run", action="store_true",
                   help="allow importing the code a run's config.yaml names (gym_packages, dotted agent, "
                        "env_wrapper or reward paths); without it a run folder is read as data only")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")


# Flags -i can honour: the rest would be silently ignored, so they are refused.
_RESUME_FLAGS = {"resume", "n_timesteps", "progress", "no_final_eval", "gym_packages", "trust_run", "debug"}


def _unhonoured_on_resume(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """The flags given with -i that a resumed run cannot apply (its config.yaml fixes them)."""
    flags = []
    for action in parser._actions:
        if action.dest in _RESUME_FLAGS or action.dest == "help":
            continue
        if getattr(args, action.dest) != action.default:
            flags.append("/".join(action.option_strings) or action.dest)
    return flags


def resolve_config(args: argparse.Namespace) -> dict[str, Any]:
    """Hyperparams file -> conf file -> flags; returns the plain-data config of the run."""
    hp = load_hyperparams(args.agent, args.env)
    if args.conf_file:
        hp.update(load_conf_file(args.conf_file, args.env))
    hp.update(parse_key_values(args.hyperparams, "-params"))
    trainer = {k: hp.pop(k) for k in TRAINER_KEYS if k in hp}
    env_kwargs = dict(trainer.get("env_kwargs") or {})
    env_kwargs.update(parse_key_values(args.env_kwargs, "--env-kwargs"))
    # -1 is each count's "choose for me"; any other value is used as given and checked by train()
    n_timesteps = args.n_timesteps if args.n_timesteps != -1 else _whole(trainer.get("n_timesteps", 100_000))
    n_envs = args.n_envs if args.n_envs != -1 else _whole(trainer.get("n_envs", 1))
    seed = args.seed if args.seed != -1 else random.SystemRandom().randrange(2**31)
    return {
        "env": args.env,
        "agent": args.agent,
        "n_timesteps": n_timesteps,
        "seed": seed,
        "device": args.device,
        "num_threads": args.num_threads if args.num_threads != -1 else 1,
        "n_envs": n_envs,
        "vec_env": args.vec_env,
        "env_kwargs": env_kwargs,
        "normalize": trainer.get("normalize", False),
        "env_wrapper": trainer.get("env_wrapper"),
        "rewards": list(args.reward),
        "hyperparams": hp,
        "eval_freq": args.eval_freq if args.eval_freq != -1 else _whole(trainer.get("eval_freq", max(n_timesteps // 10, 1))),
        "eval_episodes": args.eval_episodes if args.eval_episodes != -1 else _whole(trainer.get("eval_episodes", 5)),
        "save_freq": args.save_freq if args.save_freq != -1 else max(n_timesteps // 10, 1),
        "keep_checkpoints": args.keep_checkpoints,
        "gym_packages": list(args.gym_packages),
    }


def _whole(value: Any) -> Any:
    """A count from a YAML file (``1e5`` is read as a float): the int, or the value unchanged to be refused."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value
    return int(number) if number.is_integer() else value


def _report_errors(debug: bool, action: Callable[[], int]) -> int:
    """Run ``action``: a user mistake is one ``error:`` line and exit 2, a fault one line and exit 1.

    ``--debug`` shows the traceback instead.
    """
    from selfgym.evaluation import UntrustedRunError
    from selfgym.runs import CheckpointError
    from selfgym.train import RunFailed, UserError

    try:
        return action()
    except KeyboardInterrupt:
        return 130
    except RunFailed as exc:  # its message says what failed and what is left to resume from
        if debug:
            raise
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except (UserError, UntrustedRunError, CheckpointError, FileNotFoundError, ValueError) as exc:
        if debug:
            raise
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:
        if debug:
            raise
        print(f"error: {type(exc).__name__}: {_one_line(exc)} (--debug shows the traceback)", file=sys.stderr)
        return 1


def _one_line(exc: BaseException) -> str:
    """The message on one line (torch's shape errors, YAML errors span several)."""
    return " ".join(str(exc).split())


def train_main(argv: list[str] | None = None) -> int:
    """``train.py`` / ``selfgym-train``."""
    parser = train_parser()
    args = parser.parse_args(argv)
    from selfgym import runs
    from selfgym.train import train
    if args.resume:
        run_dir = Path(args.resume)
        if not (run_dir / "config.yaml").exists():
            parser.error(f"--resume {run_dir}: not a run folder (no config.yaml)")
        if unhonoured := _unhonoured_on_resume(parser, args):
            parser.error(f"-i continues {run_dir} with the settings in its config.yaml and cannot honour "
                         f"{', '.join(unhonoured)}; drop them, or start a new run (-n sets a new total)")
    progress = sys.stderr.isatty() if args.progress is None else args.progress

    def main() -> int:
        if args.resume:
            config = runs.read_yaml(run_dir / "config.yaml")
            if args.n_timesteps != -1:
                config["n_timesteps"] = args.n_timesteps
            record = ({**runs.read_yaml(run_dir / "args.yaml"), "resumed_with": vars(args)}
                      if (run_dir / "args.yaml").exists() else vars(args))
        else:
            config, record = resolve_config(args), vars(args)
        train(config, args.log_folder, run_dir if args.resume else None, progress=progress,
              final_eval=not args.no_final_eval, args_record=record, trust_run=args.trust_run,
              gym_packages=args.gym_packages)
        return 0

    return _report_errors(args.debug, main)


def evaluate_parser() -> argparse.ArgumentParser:
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
    p.add_argument("--gym-packages", nargs="+", default=[],
                   help="modules to import that register envs (the run's own are imported only when named here)")
    _add_safety_flags(p)
    return p


def evaluate_main(argv: list[str] | None = None) -> int:
    """``evaluate.py`` / ``selfgym-evaluate``."""
    parser = evaluate_parser()
    args = parser.parse_args(argv)
    from selfgym import runs
    from selfgym.evaluation import format_table, run_evaluation, save_evaluation
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
    if args.n_episodes < 1:
        parser.error(f"-n/--n-episodes must be >= 1, got {args.n_episodes}")
    if args.seed is not None and not 0 <= args.seed <= 2**31 - 1:
        parser.error(f"--seed must be in 0..{2**31 - 1}, got {args.seed}")
    try:
        env_kwargs = parse_key_values(args.env_kwargs, "--env-kwargs")
    except ValueError as exc:
        parser.error(str(exc))
    out = Path(args.output) if args.output else run_dir / "eval.json"

    def main() -> int:
        evaluation = run_evaluation(run_dir, args.n_episodes, args.load_best, args.checkpoint, not args.stochastic,
                                    bool(args.video), args.seed, env_kwargs, trust=args.trust_run,
                                    gym_packages=args.gym_packages)
        summary = evaluation.summary  # shown before anything is written: a read-only run still shows it
        print(f"{summary['agent']} on {summary['env']}: {run_dir} ({summary['weights']}, {summary['num_timesteps']} steps)")
        print(format_table(summary), flush=True)
        try:
            save_evaluation(evaluation, out, args.video)
        except OSError as exc:
            print(f"warning: results not saved: {exc}", file=sys.stderr)
            return 0
        if summary.get("video"):
            print(f"video: {summary['video']}")
        print(f"wrote {out}")
        return 0

    return _report_errors(args.debug, main)


def compare_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="compare.py", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Aggregate runs by configuration (config.yaml equal but for the seed and execution settings): a table of the final metric "
                    "(mean, IQM, 95% stratified-bootstrap intervals via rliable) and learning curves across seeds.")
    p.add_argument("paths", nargs="+", metavar="RUN_OR_EXP_DIR", help="run folders, or folders holding them (e.g. logs/)")
    p.add_argument("--metric", action="append", default=None, metavar="COLUMN",
                   help="metrics.csv column, repeatable (default: eval_success_rate if logged, else eval_return_mean, "
                        "else success_rate, else ep_return_mean)")
    p.add_argument("--out", default="compare", help="folder for table.md, summary.json and the PNGs")
    p.add_argument("--mix-envs", action="store_true",
                   help="allow runs of several envs: side by side, aggregated on min-max normalised scores, "
                        "with a performance profile")
    p.add_argument("--reps", type=int, default=10_000, help="bootstrap replicates for the table's intervals")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (the intervals are reproducible)")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    return p


def compare_main(argv: list[str] | None = None) -> int:
    """``compare.py`` / ``selfgym-compare``."""
    parser = compare_parser()
    args = parser.parse_args(argv)
    if args.reps < 1:
        parser.error(f"--reps must be >= 1, got {args.reps}")
    from selfgym.compare import compare

    def main() -> int:
        result = compare(args.paths, args.metric, args.out, args.mix_envs, args.reps, args.seed)
        print(result.text, end="")
        print("wrote " + ", ".join(map(str, result.files)))
        return 0

    return _report_errors(args.debug, main)
