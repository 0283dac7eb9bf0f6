"""Aggregate run folders by configuration: a final-metric table with intervals, learning curves, profiles.

``compare(paths)`` is the importable core; ``selfgym.cli.compare_main`` (``compare.py`` /
``selfgym-compare``) is the thin CLI over it. Run folders are read as data: config.yaml, metrics.csv
and status.json are parsed, and no code a config names is imported.

A *configuration* is a run's config.yaml without the keys in ``EXECUTION_KEYS``: the seed, and the
settings that say where and how a run executes, not what it learns (device, threads, the vec-env
backend, checkpointing, which modules registered the env). Runs with equal configurations are
seeds of one configuration; everything else (agent, env, env_kwargs, hyperparams, rewards,
normalize, env_wrapper, n_timesteps, n_envs, eval_freq, eval_episodes) must match. The run number
(``<env>_<N>``) is not in config.yaml, so it never splits a group.

The statistics are rliable's (Agarwal et al., 2021): a run's score is the last logged value of the
metric; mean and IQM with 95% stratified-bootstrap intervals (percentile method, runs resampled
within each env). Few seeds give wide, honest intervals. Evaluation success rates also get a
Wilson interval over the pooled episodes, which counts episode noise but not seed-to-seed spread.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from selfgym.metrics import pyplot, read_metrics, save_figure
from selfgym.runs import atomic_write, read_yaml

EXECUTION_KEYS = ("seed", "device", "num_threads", "vec_env", "save_freq", "keep_checkpoints", "gym_packages")
# The default metric: the first of these columns that any run logged.
DEFAULT_METRICS = ("eval_success_rate", "eval_return_mean", "success_rate", "ep_return_mean")
CURVE_REPS = 2000  # bootstrap replicates per learning-curve band (one interval per logged step)


class CompareError(ValueError):
    """A comparison that cannot be made as asked (no runs, unknown metric, mixed envs)."""


@dataclass
class Run:
    """One run folder, read as data."""

    path: Path
    config: dict[str, Any]
    rows: list[dict[str, float | None]]
    state: str  # status.json's state: running, finished, interrupted, failed (or unknown)

    def series(self, metric: str) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) where ``metric`` was logged (empty and NaN cells dropped)."""
        points = [(r["steps"], r[metric]) for r in self.rows
                  if r.get(metric) is not None and r.get("steps") is not None and not math.isnan(r[metric])]
        steps, values = zip(*points) if points else ((), ())
        return np.asarray(steps, dtype=float), np.asarray(values, dtype=float)


@dataclass
class Group:
    """The runs of one configuration; ``label`` names it by what differs from its neighbours."""

    configuration: dict[str, Any]
    runs: list[Run]
    label: str = ""

    @property
    def env(self) -> str:
        return str(self.configuration.get("env"))


@dataclass
class Comparison:
    """What ``compare`` made: the markdown text, the numbers behind it, and the files written."""

    text: str
    summary: dict[str, Any]
    files: list[Path] = field(default_factory=list)


def configuration(config: dict[str, Any]) -> dict[str, Any]:
    """What a run learns with: its config without the seed and the execution settings (the grouping key)."""
    return {k: v for k, v in config.items() if k not in EXECUTION_KEYS}


def find_runs(paths: list[str | Path]) -> tuple[list[Run], list[str]]:
    """Every run folder (a folder with config.yaml) at or below ``paths``; (runs, notes on skipped ones)."""
    found: dict[Path, Path] = {}  # resolved -> as given (a run reached by two paths counts once)
    for path in map(Path, paths):
        if not path.is_dir():
            raise CompareError(f"{path} is not a folder (give run folders or folders that hold them)")
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            if "config.yaml" in files:
                found.setdefault(Path(root).resolve(), Path(root))
                dirs.clear()  # a run folder holds no runs
        if not any(p.is_relative_to(path.resolve()) for p in found):
            raise CompareError(f"{path} holds no run folders (a run folder has config.yaml and metrics.csv, "
                               "as train.py writes under logs/<agent>/<env>_<N>/)")
    runs, notes = [], []
    for folder in found.values():
        if not (folder / "metrics.csv").exists():
            notes.append(f"skipped {folder}: no metrics.csv (it logged nothing yet)")
            continue
        try:  # status.json is a note on the run; its absence or damage does not hide the run's data
            state = str(json.loads((folder / "status.json").read_text()).get("state", "unknown"))
        except (OSError, ValueError, AttributeError):
            state = "unknown"
        runs.append(Run(folder, read_yaml(folder / "config.yaml"), read_metrics(folder / "metrics.csv"), state))
    if not runs:
        raise CompareError(f"no run under {', '.join(map(str, paths))} has a metrics.csv; " + "; ".join(notes))
    return runs, notes


def _flat(data: Any, prefix: str = "") -> dict[str, str]:
    """Nested mappings -> {"hyperparams.learning_rate": "0.001", ...} (strings as they are, the rest as JSON)."""
    if isinstance(data, dict) and data:
        return {k: v for key, value in data.items() for k, v in _flat(value, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): data if isinstance(data, str) else json.dumps(data, sort_keys=True, default=str)}


def group_runs(runs: list[Run]) -> list[Group]:
    """Runs grouped by configuration, labelled "<agent> <keys that differ among that env and agent's groups>"."""
    groups: dict[str, Group] = {}
    for run in runs:
        conf = configuration(run.config)
        groups.setdefault(json.dumps(conf, sort_keys=True, default=str), Group(conf, [])).runs.append(run)
    ordered = [groups[k] for k in sorted(groups, key=lambda k: (groups[k].env, str(groups[k].configuration.get("agent")), k))]
    for group in ordered:
        agent = group.configuration.get("agent")
        peers = [_flat(g.configuration) for g in ordered if (g.env, g.configuration.get("agent")) == (group.env, agent)]
        mine = _flat(group.configuration)
        differing = [k for k in sorted(set().union(*peers)) if len({p.get(k) for p in peers}) > 1]
        group.label = " ".join([str(agent)] + [f"{k.split('.', 1)[-1]}={mine.get(k, '-')}" for k in differing])
        group.runs.sort(key=lambda r: (str(r.config.get("seed")).zfill(12), str(r.path)))
    return ordered


def pick_metrics(runs: list[Run], requested: list[str] | None) -> list[str]:
    """The metrics to compare: the requested columns (checked), else the first default one logged."""
    columns = sorted({c for run in runs for row in run.rows for c in row})
    logged = {c for run in runs for row in run.rows for c, v in row.items() if v is not None}
    if not requested:
        default = next((m for m in DEFAULT_METRICS if m in logged), None)
        if default is None:
            raise CompareError(f"none of the default metrics {list(DEFAULT_METRICS)} was logged; pick one of "
                               f"{columns} with --metric")
        return [default]
    for metric in requested:
        if metric not in columns:
            raise CompareError(f"unknown metric {metric!r}: metrics.csv has the columns {columns}")
        if metric not in logged:
            raise CompareError(f"metric {metric!r} has no values in any run; columns with values: {sorted(logged)}")
    return list(dict.fromkeys(requested))


def interval_estimates(scores: np.ndarray, reps: int, seed: int) -> dict[str, float]:
    """Mean and IQM of a (runs x envs) score matrix with rliable's 95% stratified-bootstrap intervals."""
    rly, rly_metrics = _rliable()
    aggregate = lambda x: np.array([rly_metrics.aggregate_mean(x), rly_metrics.aggregate_iqm(x)])  # noqa: E731
    with _bootstrap_rng(seed) as rng:
        point, interval = rly.get_interval_estimates({"x": scores}, aggregate, reps=reps, random_state=rng)
    (mean, iqm), ((mean_lo, iqm_lo), (mean_hi, iqm_hi)) = point["x"], interval["x"]
    return {"mean": float(mean), "mean_ci": [float(mean_lo), float(mean_hi)],
            "iqm": float(iqm), "iqm_ci": [float(iqm_lo), float(iqm_hi)]}


def wilson(successes: int, trials: int) -> list[float]:
    """95% Wilson score interval of a binomial proportion (scipy's)."""
    from scipy.stats import binomtest  # scipy comes with rliable

    ci = binomtest(successes, trials).proportion_ci(0.95, method="wilson")
    return [float(ci.low), float(ci.high)]


def summarize(group: Group, metric: str, reps: int, seed: int) -> tuple[dict[str, Any] | None, list[str]]:
    """One table row: the group's final scores and their intervals; notes on runs left out."""
    finals, notes = [], []
    for run in group.runs:
        steps, values = run.series(metric)
        if len(values):
            finals.append((run, int(steps[-1]), float(values[-1])))
        else:
            notes.append(f"{run.path} logged no {metric} (left out)")
    if not finals:
        return None, notes
    scores = np.array([[value] for _, _, value in finals])
    row = {"label": group.label, "env": group.env, "runs": [str(r.path) for r, _, _ in finals],
           "seeds": [r.config.get("seed") for r, _, _ in finals], "steps": [s for _, s, _ in finals],
           "scores": scores[:, 0].tolist(), **interval_estimates(scores, reps, seed), "wilson_ci": None}
    if metric == "eval_success_rate":  # the trainer's evaluation: eval_episodes episodes per run
        episodes = int(group.configuration.get("eval_episodes") or 0)
        if episodes > 0:
            successes = sum(round(value * episodes) for _, _, value in finals)
            row["wilson_ci"] = wilson(successes, episodes * len(finals))
    notes += [f"{r.path} is {r.state}: its score is at step {s}" for r, s, _ in finals if r.state != "finished"]
    return row, notes


def normalised_matrices(rows: list[dict[str, Any]], metric: str) -> tuple[dict[str, np.ndarray], list[str]]:
    """Per label (a method), a (runs x envs) matrix of final scores across envs; notes on what was left out.

    Success rates stay as they are; any other metric is min-max normalised per env over all the
    runs compared, so envs of different scales share one axis. A method must have run on every
    env, and each env keeps as many runs as the method's smallest env has (rliable needs a matrix).
    """
    envs = sorted({row["env"] for row in rows})
    per_env: dict[str, list[float]] = {env: [v for row in rows if row["env"] == env for v in row["scores"]] for env in envs}
    methods: dict[str, dict[str, list[float]]] = {}
    for row in rows:
        methods.setdefault(row["label"], {})[row["env"]] = row["scores"]
    matrices, notes = {}, []
    for label, scores in methods.items():
        if set(scores) != set(envs):
            notes.append(f"profile leaves out {label!r}: it ran on {sorted(scores)}, not on all of {envs}")
            continue
        n = min(len(v) for v in scores.values())
        if any(len(v) != n for v in scores.values()):
            notes.append(f"profile uses the first {n} runs per env of {label!r} (unequal run counts)")
        columns = []
        for env in envs:
            values, low, high = np.array(scores[env][:n]), min(per_env[env]), max(per_env[env])
            columns.append(values if not _scale(metric) else (values - low) / ((high - low) or 1.0))
        matrices[label] = np.stack(columns, axis=1)
    return matrices, notes


def mean_curve(runs: list[Run], metric: str, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int] | None:
    """(steps, mean, 95% band, runs) over the steps every run covers; each run interpolated linearly onto them.

    Seeds of one configuration log at the same steps, so the interpolation only matters for
    resumed or unevenly logged runs. The band is rliable's bootstrap interval of the mean per step.
    """
    series = [s for s in (run.series(metric) for run in runs) if len(s[0])]
    if not series:
        return None
    start, stop = max(s[0][0] for s in series), min(s[0][-1] for s in series)
    grid = np.unique(np.concatenate([s[0] for s in series]))
    grid = grid[(grid >= start) & (grid <= stop)]
    if not len(grid):
        return None
    values = np.stack([np.interp(grid, steps, vals) for steps, vals in series])[:, None, :]  # runs x 1 env x steps
    rly, _ = _rliable()
    with _bootstrap_rng(seed) as rng:
        point, interval = rly.get_interval_estimates({"x": values}, lambda x: x.mean(axis=0)[0], reps=CURVE_REPS,
                                                     random_state=rng)
    return grid, point["x"], interval["x"], len(series)


def plot_curves(groups: list[Group], metric: str, path: Path, seed: int) -> Path:
    """One PNG: an axis per env, a line per configuration (mean over seeds) with its 95% band."""
    plt = pyplot()
    envs = sorted({g.env for g in groups})
    most = max(sum(g.env == env for g in groups) for env in envs)
    # beyond 10 lines tab10 repeats its colours; the legend goes below the axes so it hides no curve
    colours = plt.get_cmap("tab20" if most > 10 else "tab10").colors
    fig, axes = plt.subplots(1, len(envs), figsize=(6.5 * len(envs), 4.2 + 0.2 * most), dpi=100, squeeze=False)
    for ax, env in zip(axes[0], envs):
        for colour, group in zip(colours, (g for g in groups if g.env == env)):
            if (curve := mean_curve(group.runs, metric, seed)) is not None:
                steps, mean, (low, high), n = curve
                ax.plot(steps, mean, color=colour, label=f"{group.label} (n={n})")
                ax.fill_between(steps, low, high, color=colour, alpha=0.15, linewidth=0)
        ax.set(title=env, xlabel="environment steps", ylabel=metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.14), frameon=False)
    fig.suptitle(f"{metric}: mean over seeds, 95% bootstrap band", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, bbox_inches="tight")


def plot_profile(matrices: dict[str, np.ndarray], metric: str, path: Path, reps: int, seed: int) -> Path:
    """rliable's performance profile (fraction of runs above each score, over all envs) with 95% bands."""
    plt = pyplot()
    rly, _ = _rliable()
    from rliable import plot_utils

    taus = np.linspace(0.0, 1.0, 101)
    with _bootstrap_rng(seed):
        profiles, cis = rly.create_performance_profile(matrices, taus, reps=min(reps, CURVE_REPS))
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=100)
    plot_utils.plot_performance_profiles(profiles, taus, performance_profile_cis=cis, ax=ax, ylabel="fraction of runs "
                                         f"with score > τ", xlabel=f"final {metric}{_scale(metric)} (τ)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, bbox_inches="tight")


def _num(x: float) -> str:
    return f"{x:.4g}"


def _scale(metric: str) -> str:
    """How a metric is put on one scale across envs: success rates already are; the rest are min-max normalised."""
    return "" if metric.endswith("success_rate") else ", min-max normalised per env"


def format_table(title: str, rows: list[dict[str, Any]], with_wilson: bool) -> str:
    """A markdown table, one row per configuration."""
    header = ["configuration", "env", "runs (seeds)", "at step", "mean [95% CI]", "IQM [95% CI]"]
    lines = [f"### {title}", "", "| " + " | ".join(header + ["Wilson 95%"] * with_wilson) + " |",
             "|" + "---|" * (len(header) + with_wilson)]
    for row in rows:
        steps, seeds = sorted(set(row["steps"])), ", ".join(map(str, row["seeds"]))
        cells = [row["label"], row["env"], f"{len(row['scores'])}" + (f" ({seeds})" if seeds else ""),
                 "–" if not steps else str(steps[0]) + (f"–{steps[-1]}" if len(steps) > 1 else ""),
                 f"{_num(row['mean'])} [{_num(row['mean_ci'][0])}, {_num(row['mean_ci'][1])}]",
                 f"{_num(row['iqm'])} [{_num(row['iqm_ci'][0])}, {_num(row['iqm_ci'][1])}]"]
        if with_wilson:
            ci = row.get("wilson_ci")
            cells.append(f"[{_num(ci[0])}, {_num(ci[1])}]" if ci else "–")
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


def compare(paths: list[str | Path], metrics: list[str] | None = None, out: str | Path = "compare",
            mix_envs: bool = False, reps: int = 10_000, seed: int = 0) -> Comparison:
    """Group the runs under ``paths`` by configuration and write table.md, summary.json and PNGs to ``out``.

    Runs on different envs are refused unless ``mix_envs``: their returns are not on one scale,
    and a table that silently pools them invites wrong conclusions. With several envs the
    configurations are also aggregated across envs (normalised scores, runs stratified by env)
    and drawn as a performance profile.
    """
    if reps < 1:
        raise CompareError(f"reps must be >= 1, got {reps}")
    runs, notes = find_runs(paths)
    groups = group_runs(runs)
    envs = sorted({g.env for g in groups})
    if len(envs) > 1 and not mix_envs:
        raise CompareError(f"the runs are on {len(envs)} envs ({', '.join(envs)}); their scores are not on one "
                           "scale: compare one env at a time, or pass --mix-envs to put them side by side")
    chosen = pick_metrics(runs, metrics)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sections = [f"Score: a run's last logged value. Intervals: 95% stratified bootstrap (rliable, {reps} reps, "
                f"seed {seed}). A configuration is config.yaml without {', '.join(EXECUTION_KEYS)}."]
    summary: dict[str, Any] = {"reps": reps, "seed": seed, "excluded_keys": list(EXECUTION_KEYS), "metrics": {}}
    files: list[Path] = []
    for metric in chosen:
        rows = []
        for group in groups:
            row, group_notes = summarize(group, metric, reps, seed)
            notes += group_notes
            rows += [row] if row else []
        sections.append(format_table(f"{metric} (final value per run)", rows, metric == "eval_success_rate"))
        if any(len(row["scores"]) < 4 for row in rows):
            notes.append("with fewer than 4 runs the IQM is the mean (scipy's trim_mean cuts int(n/4) runs per end)")
        summary["metrics"][metric] = {"rows": rows}
        name = re.sub(r"[^\w.-]", "_", metric)
        files.append(plot_curves(groups, metric, out / f"curves_{name}.png", seed))
        if len(envs) > 1:
            matrices, profile_notes = normalised_matrices(rows, metric)
            notes += profile_notes
            aggregate = [{"label": label, "env": f"{len(envs)} envs", "seeds": [], "steps": [],
                          "scores": m.ravel().tolist(), **interval_estimates(m, reps, seed)} for label, m in matrices.items()]
            if aggregate:
                sections.append(format_table(f"{metric} across envs{_scale(metric)}, runs stratified by env", aggregate, False))
                summary["metrics"][metric]["across_envs"] = aggregate
                files.append(plot_profile(matrices, metric, out / f"profile_{name}.png", reps, seed))
    if notes:
        sections.append("Notes:\n" + "\n".join(f"- {note}" for note in dict.fromkeys(notes)))
    text = "\n\n".join(sections) + "\n"
    atomic_write(out / "table.md", text)
    atomic_write(out / "summary.json", json.dumps(summary, indent=1))
    return Comparison(text, summary, [out / "table.md", out / "summary.json", *files])


@contextlib.contextmanager
def _bootstrap_rng(seed: int) -> Iterator[np.random.RandomState]:
    """A seeded RandomState for rliable, with numpy's global RNG seeded too and restored after.

    rliable 1.2's StratifiedBootstrap draws its resamples from ``np.random.choice`` and ignores
    the ``random_state`` it is given, so only the global seed makes an interval reproducible.
    arch's note that ``random_state`` is deprecated is silenced here.
    """
    saved = np.random.get_state()
    np.random.seed(seed)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield np.random.RandomState(seed)
    finally:
        np.random.set_state(saved)


def _rliable() -> tuple[Any, Any]:
    try:
        from rliable import library, metrics  # optional extra: only compare.py needs it
    except ImportError as exc:
        raise CompareError(f"compare.py needs rliable ({exc}); install it with: pip install -e '.[compare]'") from exc
    return library, metrics


