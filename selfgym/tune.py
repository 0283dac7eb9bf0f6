"""Many train.py runs as Ray Tune trials: seeds, grids, Optuna search, ASHA, on one machine or a cluster.

Each trial is an ordinary run folder (``<exp>/runs/<trial_id>/<agent>/<env>_1``: config.yaml,
metrics.csv, checkpoints), trained by ``selfgym.train.train`` exactly as train.py would; it reports
every metrics.csv row to Tune through ``train(on_metrics=...)``. Tune restarts a trial whose
process died (``--max-failures``) and the trial resumes from its run folder's last checkpoint; a
whole experiment stopped with Ctrl-C or ``kill`` continues with ``--resume EXP_DIR``, and Tune
keeps its finished trials. This is the only module that imports Ray.
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import os
import re
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from selfgym import runs
from selfgym.cli import _report_errors, resolve_config, train_parser
from selfgym.config import TRAINER_KEYS, _split_top_level, parse_value

#: Written in the experiment folder at the start: what ``--resume`` needs to rebuild the trainable.
SPEC_FILE = "selfgym_tune.json"

#: Search-space distributions (``name(args)`` in the YAML file) -> (Tune function name, arity).
DISTRIBUTIONS = {
    "uniform": ("uniform", 2), "quniform": ("quniform", 3), "loguniform": ("loguniform", 2),
    "qloguniform": ("qloguniform", 3), "randint": ("randint", 2), "qrandint": ("qrandint", 3),
    "lograndint": ("lograndint", 2), "choice": ("choice", None),
}


class TuneUserError(ValueError):
    """A mistake in the tune.py flags or files, found before Ray starts."""


@dataclass
class Distribution:
    """One search-space entry: ``loguniform(1e-5, 1e-3)`` -> Distribution("loguniform", (1e-5, 1e-3))."""

    name: str
    args: tuple[Any, ...]

    def to_tune(self) -> Any:
        from ray import tune

        if self.name == "choice":
            return tune.choice(list(self.args))
        return getattr(tune, DISTRIBUTIONS[self.name][0])(*self.args)


@dataclass
class TuneSpec:
    """Everything a trial needs, as plain data (stored in the experiment folder for ``--resume``)."""

    train_argv: list[str]
    cwd: str
    exp_dir: str
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    metric: str = "eval_return_mean"
    mode: str = "max"
    space: dict[str, Any] = field(default_factory=dict)  # key -> fixed value, grid list, or Distribution text
    seeds: list[int] = field(default_factory=list)
    search: str = "grid"
    n_trials: int = 1
    scheduler: str = "fifo"
    grace_period: int = 0
    max_concurrent: int = 0
    max_failures: int = 2
    report_every: float = 5.0  # seconds between reports to Tune (each one waits for the driver)


# -- parsing ---------------------------------------------------------------------------------
def parse_distribution(key: str, text: str) -> Distribution:
    """``"loguniform(1e-5, 1e-3)"`` -> Distribution; an unknown name or bad arguments named in the error."""
    match = re.fullmatch(r"\s*([A-Za-z_]\w*)\s*\((.*)\)\s*", text, flags=re.S)
    if match is None:
        raise TuneUserError(f"search space {key}: {text!r} is not name(arguments); "
                            f"use one of {', '.join(DISTRIBUTIONS)}, e.g. loguniform(1e-5, 1e-3)")
    name, body = match.group(1), match.group(2)
    if name not in DISTRIBUTIONS:
        raise TuneUserError(f"search space {key}: unknown distribution {name!r}; valid: {', '.join(DISTRIBUTIONS)}")
    try:
        args = ast.literal_eval(f"({body},)") if body.strip() else ()
    except (ValueError, SyntaxError) as exc:
        raise TuneUserError(f"search space {key}: the arguments of {text!r} are not Python literals ({exc})") from None
    if name == "choice" and len(args) == 1 and isinstance(args[0], (list, tuple)):
        args = tuple(args[0])  # choice([a, b]) as well as choice(a, b)
    arity = DISTRIBUTIONS[name][1]
    if arity is None:
        if not args:
            raise TuneUserError(f"search space {key}: choice() needs at least one value")
    else:
        if len(args) != arity or not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args):
            names = "low, high" + (", q" if arity == 3 else "")
            raise TuneUserError(f"search space {key}: {name} takes {arity} numbers ({names}), got {text!r}")
        if not all(math.isfinite(a) for a in args) or not args[0] < args[1]:
            raise TuneUserError(f"search space {key}: {name} needs finite low < high, got {text!r}")
        if name.startswith("log") or name == "qloguniform":
            if args[0] <= 0:
                raise TuneUserError(f"search space {key}: {name} needs low > 0, got {text!r}")
    return Distribution(name, tuple(args))


def load_space(path: str | Path) -> dict[str, Any]:
    """A YAML search space: ``key: loguniform(1e-5, 1e-3)``, ``key: [a, b]`` (a choice) or a fixed value.

    Returned as plain data ({"distribution": text} or the fixed value), checked here, turned into
    Tune's objects only in the driver.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise TuneUserError(f"--space {path}: no such file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise TuneUserError(f"--space {path}: not valid YAML ({' '.join(str(exc).split())})") from None
    if not isinstance(data, dict) or not data:
        raise TuneUserError(f"--space {path}: expected a mapping of hyperparameter -> distribution, got {type(data).__name__}")
    space: dict[str, Any] = {}
    for key, value in data.items():
        text = f"choice({value!r})" if isinstance(value, list) else value
        if isinstance(text, str) and "(" in text:
            parse_distribution(str(key), text)
            space[str(key)] = {"distribution": text}
        else:
            space[str(key)] = value
    return space


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
    """``["learning_rate:1e-3,3e-4", "n_steps:64,128"]`` -> {key: [values]} (commas inside brackets kept)."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, values = item.partition(":")
        if not sep or not key or not values.strip():
            raise TuneUserError(f"--grid {item!r}: expected KEY:V1,V2,... e.g. learning_rate:1e-3,3e-4")
        if key in grid:
            raise TuneUserError(f"--grid names {key} twice")
        grid[key] = [parse_value(v) for v in _split_top_level(values, ",")]
    return grid


# -- checks before Ray starts ----------------------------------------------------------------
def check_space_keys(agent: str, keys: list[str]) -> None:
    """Every searched key is a hyperparameter the agent takes, or a trainer key; else name the valid ones."""
    from selfgym import agents

    hyper = {k: None for k in keys if k not in TRAINER_KEYS and k not in ("seed", "reward")}
    try:
        agents.check_hyperparams(agent, hyper)
    except (TypeError, KeyError, ValueError) as exc:
        message = exc.args[0] if exc.args else str(exc)
        raise TuneUserError(f"search space: {message} (or a trainer key: {', '.join(TRAINER_KEYS)}; or seed, "
                            "reward)") from None


def trial_config(spec: TuneSpec, overrides: dict[str, Any], seed: int) -> dict[str, Any]:
    """The run config of one trial: train.py's flags, then the trial's values as ``-params``."""
    args = train_parser().parse_args(spec.train_argv)
    args.seed = seed
    overrides = dict(overrides)
    if "reward" in overrides:  # the --reward modules as one more searched key: "none", a spec or a list of specs
        value = overrides.pop("reward")
        args.reward = [] if value in (None, "", "none") else [value] if isinstance(value, str) else list(value)
    args.hyperparams = list(args.hyperparams) + [f"{k}:{v!r}" for k, v in overrides.items()]
    config = resolve_config(args)
    if args.num_threads == -1:
        config["num_threads"] = max(1, int(spec.cpus_per_trial))
    return config


def check_address(address: str, timeout: float = 3.0) -> None:
    """An unreachable ``host:port`` or ``ray://host:port`` fails here within ``timeout`` seconds."""
    if address == "auto":
        return
    parsed = urlparse(address if "://" in address else f"ray://{address}")
    if parsed.hostname is None or parsed.port is None:
        raise TuneUserError(f"--address {address}: expected auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((parsed.hostname, parsed.port), timeout=timeout).close()
    except OSError as exc:
        raise TuneUserError(f"--address {address}: cannot reach a Ray cluster there ({exc}); start one with "
                            "`ray start --head` or leave --address out to run on this machine") from None


# -- the trial --------------------------------------------------------------------------------
def resume_point(log_folder: Path) -> tuple[Path | None, int]:
    """(run folder, steps of its newest checkpoint) of a restarted trial's earlier run, or
    (None, 0) when none has a checkpoint yet: the trial then starts a fresh run."""
    for run_dir in (p.parent for p in sorted(Path(log_folder).glob("*/*/config.yaml"))):
        checkpoints = runs.list_checkpoints(run_dir)
        if checkpoints:
            return run_dir, checkpoints[-1][0]
    return None, 0


def run_trial(trial: dict[str, Any], spec: dict[str, Any]) -> None:
    """One Tune trial: a train.py run in its own folder, resumed from its checkpoints on a restart."""
    from ray import tune

    from selfgym.train import train

    tspec = TuneSpec(**spec)
    if Path(tspec.cwd).is_dir():  # relative paths in the flags mean what they meant to the user
        os.chdir(tspec.cwd)
        if tspec.cwd not in sys.path:
            sys.path.insert(0, tspec.cwd)
    final_eval = not train_parser().parse_args(tspec.train_argv).no_final_eval
    trial_id = tune.get_context().get_trial_id()
    log_folder = Path(tspec.exp_dir) / "runs" / trial_id
    resume, start = resume_point(log_folder)
    overrides = {k: v for k, v in trial.items() if k != "seed"}
    if resume is not None:
        config = runs.read_yaml(resume / "config.yaml")
    else:
        config = trial_config(tspec, overrides, int(trial.get("seed", 0)))
    latest: dict[str, Any] = {"resumed_from_steps": start, "restarts": int(resume is not None)}

    last_report = [-math.inf]

    def report(row: dict[str, float]) -> None:
        # every row is folded in, but Tune hears at most one result per report_every seconds (a
        # report blocks until the driver has taken it: PPO on CartPole writes a row every 256 steps,
        # and reporting each one doubled its training time) and at every evaluation
        latest.update({k: v for k, v in row.items() if isinstance(v, (int, float)) and math.isfinite(v)})
        due = time.monotonic() - last_report[0] >= tspec.report_every or any(k.startswith("eval_") for k in row)
        if due and tspec.metric in latest:  # Tune refuses a result without the metric it optimises
            tune.report(dict(latest))
            last_report[0] = time.monotonic()

    run_dir = train(config, str(log_folder), resume, progress=False, final_eval=final_eval,
                    args_record={"tune_trial": trial_id, "overrides": overrides}, on_metrics=report)
    eval_path = run_dir / "eval.json"
    if eval_path.exists():
        metrics = json.loads(eval_path.read_text()).get("metrics", {})
        latest.update({f"final_{k}": v["mean"] for k, v in metrics.items()
                       if isinstance(v, dict) and isinstance(v.get("mean"), (int, float))})
    latest["steps"] = max(int(latest.get("steps", 0)), int(config["n_timesteps"]))
    latest["finished"] = 1
    if tspec.metric not in latest:
        logged = [c for c in latest if c not in ("resumed_from_steps", "restarts", "finished")]
        raise RuntimeError(f"--metric {tspec.metric} was never logged by {run_dir}; its metrics.csv columns are "
                           f"{', '.join(logged)} (eval_* columns need --eval-freq > 0)")
    tune.report(dict(latest))


# -- the experiment ---------------------------------------------------------------------------
def param_space(spec: TuneSpec) -> dict[str, Any]:
    from ray import tune

    space: dict[str, Any] = {}
    for key, value in spec.space.items():
        if isinstance(value, dict) and "grid" in value:
            space[key] = tune.grid_search(value["grid"])
        elif isinstance(value, dict) and "distribution" in value:
            space[key] = parse_distribution(key, value["distribution"]).to_tune()
        else:
            space[key] = value
    if "seed" not in space:
        space["seed"] = tune.grid_search(spec.seeds) if len(spec.seeds) > 1 else spec.seeds[0]
    return space


def _trainable(spec: TuneSpec) -> Any:
    from ray import tune

    resources = {"cpu": spec.cpus_per_trial, "gpu": spec.gpus_per_trial}
    return tune.with_resources(tune.with_parameters(run_trial, spec=spec.__dict__), resources)


def _tuner(spec: TuneSpec) -> Any:
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    config = trial_config(spec, {}, spec.seeds[0] if spec.seeds else 0)
    searcher = None
    if spec.search == "optuna":
        from ray.tune.search.optuna import OptunaSearch
        searcher = OptunaSearch(seed=spec.seeds[0] if spec.seeds else 0)
    scheduler = FIFOScheduler()
    if spec.scheduler == "asha":
        # max_t past the budget: ASHA stops a trial at max_t, which would cut it before its final save
        scheduler = ASHAScheduler(time_attr="steps", max_t=config["n_timesteps"] + 1,
                                  grace_period=spec.grace_period or max(config["n_timesteps"] // 10, 1), reduction_factor=3)
    exp_dir = Path(spec.exp_dir)
    return tune.Tuner(
        _trainable(spec),
        param_space=param_space(spec),
        tune_config=tune.TuneConfig(metric=spec.metric, mode=spec.mode, search_alg=searcher, scheduler=scheduler,
                                    num_samples=spec.n_trials if spec.search != "grid" else 1,
                                    max_concurrent_trials=spec.max_concurrent or None, reuse_actors=False),
        run_config=tune.RunConfig(name=exp_dir.name, storage_path=str(exp_dir.parent), verbose=1,
                                  failure_config=tune.FailureConfig(max_failures=spec.max_failures)),
    )


def start_ray(address: str | None, num_cpus: int | None, num_gpus: float | None = None) -> None:
    """A local Ray on this machine's CPUs, or attach to ``address``; Ray's usage stats stay off."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    if address:
        check_address(address)
        # `ray start --head` turns on Ray's token authentication and keeps the token in
        # ~/.ray/auth_token; ray.init uses it by itself for "auto" but not for an explicit address
        # (Ray reads the mode when it is imported, so this comes first)
        token = os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH") or (Path.home() / ".ray" / "auth_token").exists()
        if token and "RAY_AUTH_MODE" not in os.environ:
            os.environ["RAY_AUTH_MODE"] = "token"
    import ray

    if ray.is_initialized():
        return
    if address:
        try:
            ray.init(address=address, log_to_driver=True)
        except ConnectionError as exc:
            raise TuneUserError(f"--address {address}: {exc} (a cluster started with `ray start --head` accepts "
                                "drivers holding its token: the same ~/.ray/auth_token, or RAY_AUTH_TOKEN)") from None
        return
    # Ray runs its workers at nice 15 by default: on a machine with any other work the trials would
    # get a fraction of their CPUs (measured: 2.5x slower beside two nice-15 jobs); the trials are
    # the work here, so they run at the driver's priority, as Ray's own job drivers do
    os.environ.setdefault("RAY_worker_niceness", "0")
    ray.init(num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False, object_store_memory=200 * 2**20)


def run_experiment(spec: TuneSpec, address: str | None = None, num_cpus: int | None = None,
                   resume: bool = False) -> list[dict[str, Any]]:
    """Run (or continue) the experiment; returns one row per trial (status, metric, run folder, error)."""
    exp_dir = Path(spec.exp_dir)
    start_ray(address, num_cpus)  # before Ray is imported: it may set Ray's auth mode
    from ray import tune

    if resume:
        tuner = tune.Tuner.restore(str(exp_dir), trainable=_trainable(spec), resume_unfinished=True,
                                   resume_errored=True, restart_errored=False)
    else:
        exp_dir.mkdir(parents=True, exist_ok=True)
        runs.atomic_write(exp_dir / SPEC_FILE, json.dumps(spec.__dict__, indent=1))
        tuner = _tuner(spec)
    grid = tuner.fit()
    return trial_rows(grid, spec)


def trial_rows(grid: Any, spec: TuneSpec) -> list[dict[str, Any]]:
    rows = []
    for result in grid:
        metrics = result.metrics or {}
        trial_id = metrics.get("trial_id") or Path(result.path).name
        folders = sorted((Path(spec.exp_dir) / "runs" / str(trial_id)).glob("*/*/config.yaml"))
        run_dir = folders[0].parent if folders else None
        run_state = None
        if run_dir is not None and (run_dir / "status.json").exists():
            run_state = json.loads((run_dir / "status.json").read_text()).get("state")
        state = "failed" if result.error else "finished" if metrics.get("finished") or run_state == "finished" else "stopped early"
        if run_dir is not None and state == "stopped early":  # Tune stopped it: say so where the run is read
            runs.write_status(run_dir, "stopped_early", num_timesteps=int(metrics.get("steps", 0)), by="tune scheduler")
        error = None
        if result.error:
            error = f"{type(result.error).__name__}: {' '.join(str(result.error).split())[-600:]}"
        rows.append({"trial": trial_id, "config": dict(result.config or {}), "state": state,
                     "steps": metrics.get("steps"), spec.metric: metrics.get(spec.metric),
                     "restarts": metrics.get("restarts", 0), "run": str(run_dir) if run_dir else None,
                     "trial_dir": str(result.path), "error": error})
    return rows


def format_trials(rows: list[dict[str, Any]], metric: str) -> str:
    lines = [f"| trial | config | state | steps | {metric} | run folder |", "|---|---|---|---|---|---|"]
    for row in rows:
        value = row[metric]
        cell = f"{value:.4g}" if isinstance(value, (int, float)) else "-"
        config = ", ".join(f"{k}={v}" for k, v in sorted(row["config"].items()))
        lines.append(f"| {row['trial']} | {config} | {row['state']} | {row['steps'] or '-'} | {cell} | {row['run'] or '-'} |")
    for row in rows:
        if row["error"]:
            lines.append(f"\ntrial {row['trial']} failed: {row['error']}\n  traceback: {row['trial_dir']}/error.txt")
    return "\n".join(lines)


def load_spec(exp_dir: str | Path) -> TuneSpec:
    """The spec of an experiment folder, for ``--resume``; a folder that is not one says so."""
    exp_dir = Path(exp_dir)
    path = exp_dir / SPEC_FILE
    if not exp_dir.is_dir() or not path.exists() or not any(exp_dir.glob("experiment_state*.json")):
        raise TuneUserError(f"--resume {exp_dir}: not a tune.py experiment (it has no {SPEC_FILE} and "
                            "experiment_state-*.json; give the folder tune.py printed at the start)")
    return TuneSpec(**json.loads(path.read_text()))


def default_exp_dir(agent: str, env: str) -> Path:
    return Path("logs") / "tune" / f"{agent}_{runs.env_folder_name(env)}_{time.strftime('%Y%m%d-%H%M%S')}"


# -- the command line (tune.py / selfgym-tune) -------------------------------------------------

def tune_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tune.py", allow_abbrev=False, formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Run many train.py runs as Ray Tune trials (seeds, grids, Optuna, ASHA), locally or on a cluster. "
                    "Every train.py flag is accepted (e.g. --env, --agent, -n, -params, --reward) except --seed, -i, -f "
                    "and -P; each trial is an ordinary run folder under the experiment folder.",
        epilog="examples: python tune.py --env CartPole-v1 --agent ppo -n 20000 --seeds 0 1 2 --grid learning_rate:3e-4,1e-3 | "
               "python tune.py --env CartPole-v1 --agent ppo --search optuna --space space.yml --n-trials 20 --scheduler asha | "
               "python tune.py --resume logs/tune/ppo_CartPole-v1_20261130-060000")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="one trial per seed for every configuration")
    p.add_argument("--grid", nargs="+", default=[], metavar="KEY:V1,V2", help="grid over hyperparameter values")
    p.add_argument("--space", default=None, metavar="YAML", help="search space: key: loguniform(1e-5, 1e-3), key: [a, b], ...")
    p.add_argument("--search", default="grid", choices=["grid", "random", "optuna"],
                   help="grid: every combination; random / optuna: --n-trials samples of --space")
    p.add_argument("--n-trials", type=int, default=10, help="samples for random / optuna")
    p.add_argument("--scheduler", default="fifo", choices=["fifo", "asha"], help="asha stops bad trials early")
    p.add_argument("--grace-period", type=int, default=0, help="ASHA: steps before a trial can be stopped (0: a tenth of -n)")
    p.add_argument("--metric", default=None,
                   help="metrics.csv column to optimise (default: eval_return_mean, or ep_return_mean with --eval-freq 0; "
                        "eval_success_rate for success)")
    p.add_argument("--mode", default="max", choices=["max", "min"])
    p.add_argument("--cpus-per-trial", type=float, default=1.0, help="also the trial's torch threads (unless --num-threads)")
    p.add_argument("--gpus-per-trial", type=float, default=0.0, help="fractional GPUs per trial (e.g. 0.25)")
    p.add_argument("--max-concurrent", type=int, default=0, help="at most this many trials at once (0: as resources allow)")
    p.add_argument("--report-every", type=float, default=5.0,
                   help="seconds between a trial's reports to Tune (also reported at each evaluation and at the end)")
    p.add_argument("--max-failures", type=int, default=2, help="restarts of a trial whose process died (it resumes from its checkpoint)")
    p.add_argument("--address", default=None, help="attach to a Ray cluster: auto, HOST:PORT or ray://HOST:PORT (default: start Ray here)")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all of this machine's)")
    p.add_argument("--exp-dir", default=None, help="experiment folder (default: logs/tune/<agent>_<env>_<time>)")
    p.add_argument("--resume", default=None, metavar="EXP_DIR", help="continue an interrupted experiment; finished trials are kept")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    return p


def main(argv: list[str] | None = None) -> int:
    """``tune.py`` / ``selfgym-tune``: flags -> ``TuneSpec`` -> Ray Tune."""
    parser = tune_parser()
    args, train_argv = parser.parse_known_args(argv)
    refused = [a for a in train_argv if a.split("=")[0] in ("--seed", "-i", "--resume", "-f", "--log-folder", "-P", "--progress", "--no-progress")]
    if refused:
        parser.error(f"{', '.join(refused)}: tune.py sets these per trial (use --seeds, --resume EXP_DIR, --exp-dir)")
    if args.resume and train_argv:
        parser.error(f"--resume continues the experiment as it was started and cannot honour {' '.join(train_argv)}")
    train_args = train_parser()
    train_args.prog = "tune.py"
    parsed = train_args.parse_args(train_argv)  # unknown flags end here, with train.py's usage
    def main() -> int:
        if args.resume:
            spec = load_spec(args.resume)
        else:
            spec = _tune_spec(args, train_argv, parsed)
            print(f"Experiment folder: {spec.exp_dir} (continue it with: python tune.py --resume {spec.exp_dir})")
        rows = run_experiment(spec, args.address, args.num_cpus, resume=bool(args.resume))
        print(format_trials(rows, spec.metric))
        _compare_trials(spec, rows)
        return 1 if any(row["state"] == "failed" for row in rows) else 0

    return _report_errors(args.debug, main)


def _tune_spec(args: argparse.Namespace, train_argv: list[str], parsed: argparse.Namespace) -> Any:
    """Check everything that can be checked before Ray starts; the experiment's plain-data spec."""
    from selfgym.train import UserError, _validate

    space: dict[str, Any] = {key: {"grid": values} for key, values in parse_grid(args.grid).items()}
    if args.space:
        for key, value in load_space(args.space).items():
            if key in space:
                raise TuneUserError(f"{key} is both in --grid and in --space {args.space}")
            space[key] = value
    searched = [k for k, v in space.items() if isinstance(v, dict) and "distribution" in v]
    if searched and args.search == "grid":
        raise TuneUserError(f"--space samples {', '.join(searched)}: add --search random or --search optuna")
    if args.search != "grid" and not searched:
        raise TuneUserError(f"--search {args.search} samples from a --space file with distributions; none was given")
    if args.search == "optuna" and (len(args.seeds) > 1 or len(space) > len(searched)):
        raise TuneUserError("--search optuna proposes one configuration per trial: give one seed and no --grid "
                                 "(repeat the best configuration over --seeds afterwards)")
    if args.n_trials < 1 or args.cpus_per_trial <= 0 or args.gpus_per_trial < 0 or args.max_failures < 0 \
            or not args.report_every >= 0:
        raise TuneUserError("--n-trials must be >= 1, --cpus-per-trial > 0, --gpus-per-trial, --max-failures and "
                            "--report-every >= 0")
    check_space_keys(parsed.agent, list(space))
    exp_dir = Path(args.exp_dir) if args.exp_dir else default_exp_dir(parsed.agent, parsed.env)
    if (exp_dir / SPEC_FILE).exists():
        raise TuneUserError(f"{exp_dir} already holds an experiment: continue it with --resume {exp_dir}, "
                                 "or choose another --exp-dir")
    spec = TuneSpec(train_argv=train_argv, cwd=str(Path.cwd()), exp_dir=str(exp_dir.resolve()),
                         cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial, mode=args.mode,
                         space=space, seeds=args.seeds, search=args.search, n_trials=args.n_trials,
                         scheduler=args.scheduler, grace_period=args.grace_period,
                         max_concurrent=args.max_concurrent, max_failures=args.max_failures,
                         report_every=args.report_every)
    # every grid point's config passes train.py's checks (names, numbers, rewards) before Ray starts
    first = {k: v["grid"][0] if isinstance(v, dict) and "grid" in v else v for k, v in space.items() if k not in searched}
    configs = [trial_config(spec, {k: v for k, v in first.items() if k != "seed"}, args.seeds[0])]
    for key, value in space.items():
        for alternative in (value["grid"][1:] if isinstance(value, dict) and "grid" in value else []):
            configs.append(trial_config(spec, {**{k: v for k, v in first.items() if k != "seed"}, key: alternative}, args.seeds[0]))
    try:
        for config in configs:
            _validate(config)
    except Exception as exc:
        raise UserError(str(exc)) from exc
    spec.metric = args.metric or ("eval_return_mean" if configs[0]["eval_freq"] > 0 else "ep_return_mean")
    return spec


def _compare_trials(spec: Any, rows: list[dict[str, Any]]) -> None:
    """compare.py's table over the trials' run folders (grouped by configuration, intervals across seeds)."""
    if not any(row["run"] for row in rows):
        return
    try:
        from selfgym.compare import compare
        result = compare([Path(spec.exp_dir) / "runs"], [spec.metric], Path(spec.exp_dir) / "compare")
    except ImportError as exc:
        print(f"(no comparison table: {exc}; pip install -e '.[compare]')")
        return
    except ValueError as exc:
        print(f"(no comparison table: {exc})")
        return
    print(result.text, end="")
    print("wrote " + ", ".join(map(str, result.files)))
