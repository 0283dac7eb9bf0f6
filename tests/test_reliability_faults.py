"""Fault injection: a kill at every write point, a full disk, a read-only run, two trainers.

Kills are real: a forked child runs the write and ``os._exit``s just before its k-th file
system call (fsync, rename, torch.save, rmtree, mkdir) or just after its k-th open for writing
(when an in-place rewrite has emptied the file), for every k until the write completes;
the parent then checks what a resume would see. The audit of issue 13 did the same by hand.
"""

from __future__ import annotations

import builtins
import errno
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from selfgym import runs
from selfgym.cli import evaluate_main, train_main
from selfgym.metrics import MetricsCSV, read_metrics, truncate_metrics
from tests.conftest import REPO, cli_env

TINY = ["--env", "CartPole-v1", "--agent", "ppo", "--n-envs", "1", "--seed", "1", "--no-final-eval", "--eval-freq", "0",
        "-params", "n_steps:64", "batch_size:64", "n_epochs:1"]
WRITE_CALLS = [(os, "fsync"), (os, "replace"), (os, "rename"), (os, "mkdir"), (torch, "save"), (shutil, "rmtree")]


def killed_at(k: int, write: Callable[[], None]) -> bool:
    """Run ``write`` in a forked child killed just before its k-th file-system call; True if it finished."""
    pid = os.fork()
    if pid == 0:  # the child: count calls, die at the k-th as a SIGKILL would (no cleanup runs)
        count = [0]

        def fatal(original):
            def call(*args, **kwargs):
                count[0] += 1
                if count[0] == k:
                    os._exit(137)
                return original(*args, **kwargs)
            return call

        def fatal_after_open(original):  # die just after a file is opened for writing (truncated)
            def call(file, mode="r", *args, **kwargs):
                handle = original(file, mode, *args, **kwargs)
                if any(c in mode for c in "wax+"):
                    count[0] += 1
                    if count[0] == k:
                        os._exit(137)
                return handle
            return call

        for owner, name in WRITE_CALLS:
            setattr(owner, name, fatal(getattr(owner, name)))
        io.open = builtins.open = fatal_after_open(io.open)
        try:
            write()
        except BaseException:
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    assert code in (0, 137), f"the write failed on its own (exit {code}) at kill point {k}"
    return code == 0


def every_kill_point(write: Callable[[], None], check: Callable[[int], None], reset: Callable[[], None]) -> int:
    """Kill ``write`` at each of its file-system calls in turn; ``check`` what is left each time."""
    for k in range(1, 200):
        reset()
        finished = killed_at(k, write)
        check(k)
        if finished:
            return k - 1
    raise AssertionError("the write never finished")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("trained")
    assert train_main([*TINY, "-n", "192", "--save-freq", "64", "--keep-checkpoints", "0", "-f", str(root / "logs")]) == 0
    return root / "logs" / "ppo" / "CartPole-v1_1"


# -- kills --------------------------------------------------------------------------------------


def test_a_kill_at_any_point_of_a_checkpoint_write_leaves_the_old_or_the_new(tmp_path):
    root = tmp_path / "checkpoints"
    old_state, new_state = {"w": torch.zeros(3)}, {"w": torch.ones(3)}

    def reset() -> None:
        shutil.rmtree(root, ignore_errors=True)
        runs.save_checkpoint(root / "step_1", old_state, {"num_timesteps": 1})

    def check(k: int) -> None:
        runs.remove_stale_temporaries(root)  # what -i does first
        state, _ = runs.load_checkpoint(root / "step_1")
        assert torch.equal(state["w"], old_state["w"]) or torch.equal(state["w"], new_state["w"]), k
        assert [p.name for p in root.iterdir()] == ["step_1"], k

    points = every_kill_point(lambda: runs.save_checkpoint(root / "step_1", new_state, {"num_timesteps": 1}), check, reset)
    assert points >= 6  # mkdir, torch.save, two fsyncs, two renames at least were each a kill point


def test_a_kill_at_any_point_of_a_metrics_write_leaves_a_whole_table(tmp_path):
    path = tmp_path / "metrics.csv"
    before = [{"steps": 64.0, "wall_time": 1.0, "x": 0.5}, {"steps": 128.0, "wall_time": 2.0, "x": 0.25}]

    def reset() -> None:
        path.unlink(missing_ok=True)
        writer = MetricsCSV(path)
        for row in before:
            writer.write({"x": row["x"]}, {}, int(row["steps"]))

    def shown(rows: list[dict]) -> list[tuple]:
        return [(r["steps"], r.get("x"), r.get("new_column")) for r in rows]

    def check(k: int) -> None:
        rows = shown(read_metrics(path))
        old, truncated = shown(before), shown(before[:1])
        appended = old + [(192.0, None, 7.0)]
        assert rows in (old, truncated, appended), (k, rows)

    def add_a_column() -> None:  # the rewrite the audit found could leave an empty file
        MetricsCSV(path).write({"new_column": 7.0}, {}, 192)

    assert every_kill_point(add_a_column, check, reset) >= 2
    assert every_kill_point(lambda: truncate_metrics(path, 64), check, reset) >= 2


def test_resume_clears_leftovers_of_killed_writes(trained_run, tmp_path, capsys):
    run = shutil.copytree(trained_run, tmp_path / "run")
    ckpts = run / runs.CHECKPOINT_DIR
    shutil.copytree(ckpts / "step_0000000192", ckpts / ".tmp-step_0000000256-4242")  # a killed save
    (run / ".tmp-4242-metrics.csv").write_text("steps\n1")
    os.replace(run / "model", run / ".old-model-4242")  # killed between the two renames of a swap
    probe = shutil.copytree(run, tmp_path / "probe")
    assert runs.remove_stale_temporaries(probe) == [".tmp-4242-metrics.csv"]
    assert runs.load_checkpoint(probe / "model")[1]["num_timesteps"] == 192  # the swap's old side is back
    assert train_main(["-i", str(run), "-n", "256"]) == 0
    assert "Removed leftovers of an interrupted write" in capsys.readouterr().out
    assert not [p for p in [*run.iterdir(), *ckpts.iterdir()] if p.name.startswith((".tmp-", ".old-"))]
    assert runs.load_checkpoint(run / "model")[1]["num_timesteps"] == 256


# -- a full disk --------------------------------------------------------------------------------


def disk_full_after(n_writes: int, monkeypatch, only: Callable[[], object] | None = None) -> None:
    """Every fsync after the first ``n_writes`` fails with ENOSPC (all run files are fsynced)."""
    count = [0]
    original = os.fsync

    def fsync(fd: int) -> None:
        count[0] += 1
        if count[0] > n_writes:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        original(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def test_a_full_disk_fails_the_run_cleanly_and_keeps_the_last_checkpoint(tmp_path, monkeypatch, capsys):
    logs = tmp_path / "logs"
    original_save = torch.save
    saves = [0]

    def save(obj, f, *args, **kwargs):  # the third checkpoint does not fit on the disk
        saves[0] += 1
        if saves[0] == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return original_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    assert train_main([*TINY, "-n", "512", "--save-freq", "64", "--keep-checkpoints", "0", "-f", str(logs)]) == 1
    err = capsys.readouterr().err
    run = logs / "ppo" / "CartPole-v1_1"
    assert err.count("\n") == 1 and err.startswith("error: ") and "No space left on device" in err
    assert "step_0000000128" in err and f"python train.py -i {run}" in err and "marked failed in status.json" in err
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "failed" and "No space left" in status["error"]
    assert [s for s, _ in runs.list_checkpoints(run)] == [64, 128]
    runs.load_checkpoint(runs.checkpoint_dir(run, 128))
    assert not list((run / runs.CHECKPOINT_DIR).glob(".tmp-*"))
    monkeypatch.setattr(torch, "save", original_save)  # space freed: the run goes on
    assert train_main(["-i", str(run), "-n", "256"]) == 0
    assert json.loads((run / "status.json").read_text())["state"] == "finished"


def test_when_nothing_can_be_written_the_error_is_still_one_line(tmp_path, monkeypatch, capsys):
    logs = tmp_path / "logs"
    disk_full_after(12, monkeypatch)
    assert train_main([*TINY, "-n", "512", "--save-freq", "64", "-f", str(logs)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: training ") and err.count("\n") == 1 and "No space left on device" in err
    assert "status.json could not be updated either" in err  # it says so rather than claim it
    run = logs / "ppo" / "CartPole-v1_1"
    steps = [s for s, _ in runs.list_checkpoints(run)]
    assert steps and runs.load_checkpoint(runs.checkpoint_dir(run, steps[-1]))
    assert read_metrics(run / "metrics.csv")  # the last table written is whole
    assert not [p for p in run.rglob("*") if p.name.startswith(".tmp-")]


# -- a read-only run, and a run being trained --------------------------------------------------


def test_evaluating_a_read_only_run_prints_the_results_and_warns(trained_run, tmp_path, monkeypatch, capsys):
    run = shutil.copytree(trained_run, tmp_path / "run")
    real_open = io.open

    def read_only_open(file, mode="r", *args, **kwargs):  # as on a read-only mount (we run as root)
        if any(c in mode for c in "wax+") and str(run) in str(file):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(io, "open", read_only_open)
    monkeypatch.setattr("builtins.open", read_only_open)
    assert evaluate_main(["--run", str(run), "-n", "2"]) == 0
    out, err = capsys.readouterr()
    assert "return" in out and "episodes        2" in out
    assert err.startswith("warning: results not saved") and "Read-only file system" in err
    assert not (run / "eval.json").exists()


def test_evaluate_reads_a_run_while_its_trainer_holds_the_lock(trained_run, tmp_path, capsys):
    run = shutil.copytree(trained_run, tmp_path / "run")
    with runs.RunLock(run):
        assert evaluate_main(["--run", str(run), "-n", "1"]) == 0


def test_a_second_trainer_is_refused_and_the_lock_dies_with_its_holder(trained_run, tmp_path):
    run = shutil.copytree(trained_run, tmp_path / "run")
    first = subprocess.Popen([sys.executable, str(REPO / "train.py"), "-i", str(run), "-n", "1000000"], cwd=tmp_path,
                             env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not _holds_lock(run, first.pid):
            assert first.poll() is None and time.time() < deadline, first.communicate()
            time.sleep(0.2)
        second = subprocess.run([sys.executable, str(REPO / "train.py"), "-i", str(run), "-n", "256"], cwd=tmp_path,
                                env=cli_env(), capture_output=True, text=True, timeout=120)
        assert second.returncode == 2 and f"being trained by process {first.pid}" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    with runs.RunLock(run):  # the OS released the killed trainer's lock
        pass


def _holds_lock(run: Path, pid: int) -> bool:
    try:
        return (run / runs.LOCK_FILE).read_text().strip() == str(pid)
    except FileNotFoundError:
        return False
