"""The run's metrics: metrics.csv (one row per log interval), TensorBoard, the learning curve."""

from __future__ import annotations

import csv
import io
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stable_baselines3.common.logger import KVWriter, Logger, TensorBoardOutputFormat

from selfgym.runs import atomic_output, atomic_write

# SB3 logger keys -> metrics.csv columns; these columns come first, in this order.
CORE_COLUMNS = {
    "time/total_timesteps": "steps",
    "wall_time": "wall_time",
    "time/fps": "steps_per_s",
    "rollout/ep_rew_mean": "ep_return_mean",
    "rollout/ep_len_mean": "ep_length_mean",
    "rollout/success_rate": "success_rate",
    "eval/mean_reward": "eval_return_mean",
}


def column_name(key: str) -> str:
    """``train/policy_gradient_loss`` -> ``train_policy_gradient_loss`` (known keys renamed)."""
    return CORE_COLUMNS.get(key, key.replace("/", "_"))


class MetricsCSV(KVWriter):
    """metrics.csv, rewritten whole and atomically at every row.

    An append can be torn by a kill and an in-place rewrite (a new column) can be cut to an
    empty file; a replaced file is always the old table or the new one. Rows are kept in memory
    with their rendered CSV lines, re-rendered only when a column is added, so a write costs
    one copy of the file (2,000 rows: about 3 ms a row, mostly fsync).
    """

    def __init__(self, path: Path, wall_time_offset: float = 0.0) -> None:
        self.path = Path(path)
        self.start = time.time() - wall_time_offset
        self.last_row: dict[str, float] = {}
        # called with each row once it is on disk: how tune.py's trials report to Ray Tune
        self.on_row: Callable[[dict[str, float]], None] | None = None
        self.columns: list[str] = list(dict.fromkeys(CORE_COLUMNS.values()))
        header, self.rows = _read_table(self.path) if self.path.exists() else ([], [])
        self.columns += [c for c in header if c not in self.columns]
        self._lines = [_render_row(self.columns, r) for r in self.rows]

    @property
    def wall_time(self) -> float:
        return time.time() - self.start

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, Any], step: int = 0) -> None:
        row: dict[str, Any] = {"steps": step, "wall_time": round(self.wall_time, 3)}
        for key, value in key_values.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) or hasattr(value, "item"):
                try:
                    row[column_name(key)] = float(value)
                except (TypeError, ValueError):
                    continue
        row["steps"] = int(step)
        self.last_row = row
        self.rows.append({k: str(v) for k, v in row.items()})
        if new := [c for c in row if c not in self.columns]:
            self.columns += new
            self._lines = [_render_row(self.columns, r) for r in self.rows]
        else:
            self._lines.append(_render_row(self.columns, self.rows[-1]))
        atomic_write(self.path, _render_row(self.columns, dict(zip(self.columns, self.columns))) + "".join(self._lines))
        if self.on_row is not None:
            self.on_row(dict(row))

    def close(self) -> None:
        pass


def _read_table(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def _render_row(columns: list[str], row: dict[str, str]) -> str:
    """One CSV line of ``row`` in ``columns`` order (missing cells empty)."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(["" if row.get(c) is None else row[c] for c in columns])
    return out.getvalue()


def _render_table(columns: list[str], rows: list[dict[str, str]]) -> str:
    return "".join(_render_row(columns, r) for r in [dict(zip(columns, columns)), *rows])


def read_metrics(path: Path) -> list[dict[str, float | None]]:
    """metrics.csv as a list of rows; empty cells become None."""
    return [{k: (float(v) if v not in ("", None) else None) for k, v in row.items()} for row in _read_table(path)[1]]


def truncate_metrics(path: Path, max_steps: int) -> None:
    """Drop rows logged after ``max_steps`` (a resumed run repeats them from its checkpoint); atomic."""
    if not path.exists():
        return
    columns, rows = _read_table(path)
    kept = [r for r in rows if r.get("steps") and float(r["steps"]) <= max_steps]
    atomic_write(path, _render_table(columns, kept))


def make_logger(run_dir: Path, wall_time_offset: float = 0.0) -> tuple[Logger, MetricsCSV]:
    csv_writer = MetricsCSV(run_dir / "metrics.csv", wall_time_offset)
    tb = TensorBoardOutputFormat(str(run_dir / "tb"))
    return Logger(folder=str(run_dir), output_formats=[csv_writer, tb]), csv_writer


def pyplot() -> Any:
    """matplotlib.pyplot on the file-only Agg backend (no display on servers); imported on first use."""
    import matplotlib  # optional heavy dependency, only where a picture is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Path, **savefig_kwargs: Any) -> Path:
    """Write ``fig`` to ``path`` atomically (a reader never sees half a PNG) and close it, even on error."""
    path = Path(path)
    try:
        with atomic_output(path) as tmp:
            fig.savefig(tmp, **savefig_kwargs)
    finally:
        pyplot().close(fig)
    return path


def draw_from_metrics(run_dir: Path, picture: str, draw: Callable[[list[dict[str, float | None]], Any], None],
                      nrows: int = 1, figsize: tuple[float, float] = (6, 4)) -> Path | None:
    """``run_dir/picture`` drawn by ``draw(rows, axes)`` from the run's metrics.csv (see ``save_figure``);
    None when there is no metrics.csv yet.

    ``axes`` is one matplotlib Axes, or ``nrows`` of them stacked with a shared x axis.
    """
    path = Path(run_dir) / "metrics.csv"
    if not path.exists():
        return None
    rows = read_metrics(path)
    fig, axes = pyplot().subplots(nrows, 1, figsize=figsize, dpi=100, sharex=True)
    try:
        draw(rows, axes)
        fig.tight_layout()
    except BaseException:
        pyplot().close(fig)
        raise
    return save_figure(fig, Path(run_dir) / picture)


#: What learning_curve.png shows when a run logs no episode return (an LLM agent that trains on
#: pairs or on rounds): the first of these columns with values, and its axis label.
FALLBACK_CURVES = (("rollout_round_reward", "mean round reward (training rollouts)"), ("train_loss", "training loss"))


def plot_learning_curve(run_dir: Path, title: str = "") -> Path | None:
    """learning_curve.png: training and evaluation return against steps; for a run without
    episodes, its round reward or its training loss (never an empty plot)."""

    def points(rows: list[dict[str, float | None]], column: str) -> list[tuple[float, float]]:
        return [(r["steps"], r[column]) for r in rows if r.get(column) is not None and not math.isnan(r[column])]

    def draw(rows: list[dict[str, float | None]], ax: Any) -> None:
        curves = [(label, pts) for column, label in (("ep_return_mean", "training episodes (mean)"),
                                                     ("eval_return_mean", "evaluation (mean)")) if (pts := points(rows, column))]
        ylabel = "episode return"
        if not curves:
            for column, label in FALLBACK_CURVES:
                if pts := points(rows, column):
                    curves, ylabel = [(label, pts)], label
                    break
        for label, pts in curves:
            xs, ys = zip(*pts)
            ax.plot(xs, ys, marker="." if len(pts) < 50 else None, label=label)
        ax.set_xlabel("environment steps" if ylabel == "episode return" else "steps (as the agent counts them)")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if curves:
            ax.legend()

    return draw_from_metrics(run_dir, "learning_curve.png", draw)
