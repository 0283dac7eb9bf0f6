"""tune.py: the search-space parser, the checks made before Ray starts, and real Ray runs.

The Ray tests start a local Ray (or a head node with ``ray start``) in a subprocess, as a user
would; they are skipped where the ``ray`` extra is not installed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from selfgym import tune
from tests.conftest import REPO, cli_env


FAST = ["--env", "CartPole-v1", "--agent", "ppo", "--eval-freq", "0", "--no-final-eval", "--num-cpus", "2"]


# -- parsing, no Ray ---------------------------------------------------------------------------
def test_distributions_parse_and_unknown_ones_are_refused():
    assert tune.parse_distribution("lr", "loguniform(1e-5, 1e-3)") == tune.Distribution("loguniform", (1e-5, 1e-3))
    assert tune.parse_distribution("n", "choice([64, 128])").args == (64, 128)
    assert tune.parse_distribution("n", "choice('tanh', 'relu')").args == ("tanh", "relu")
    with pytest.raises(tune.TuneUserError, match="unknown distribution 'lognormal'.*loguniform"):
        tune.parse_distribution("lr", "lognormal(0, 1)")
    with pytest.raises(tune.TuneUserError, match="takes 2 numbers"):
        tune.parse_distribution("lr", "uniform(1)")
    with pytest.raises(tune.TuneUserError, match="low < high"):
        tune.parse_distribution("lr", "uniform(2, 1)")
    with pytest.raises(tune.TuneUserError, match="low > 0"):
        tune.parse_distribution("lr", "loguniform(0, 1)")
    with pytest.raises(tune.TuneUserError, match="not name"):
        tune.parse_distribution("lr", "1e-3 to 1e-2")


def test_space_file_and_grid_values(tmp_path):
    path = tmp_path / "space.yml"
    path.write_text("learning_rate: loguniform(1e-5, 1e-3)\nn_steps: [64, 128]\ngamma: 0.99\n")
    space = tune.load_space(path)
    assert space == {"learning_rate": {"distribution": "loguniform(1e-5, 1e-3)"},
                     "n_steps": {"distribution": "choice([64, 128])"}, "gamma": 0.99}
    grid = tune.parse_grid(["learning_rate:1e-3,3e-4", "policy_kwargs:dict(net_arch=[64,64]),dict(net_arch=[32])"])
    assert grid["learning_rate"] == [1e-3, 3e-4]
    assert grid["policy_kwargs"] == ["dict(net_arch=[64,64])", "dict(net_arch=[32])"]  # kept whole, parsed like -params
    with pytest.raises(tune.TuneUserError, match="KEY:V1,V2"):
        tune.parse_grid(["learning_rate"])


def test_unknown_search_key_is_named_with_the_valid_ones_before_ray_starts(tmp_path, capsys):
    exp = tmp_path / "exp"
    code = tune.main([*FAST, "-n", "256", "--grid", "learnin_rate:1e-3,3e-4", "--exp-dir", str(exp)])
    err = capsys.readouterr().err
    assert code == 2
    assert "learnin_rate" in err and "learning_rate" in err and "n_timesteps" in err
    assert not exp.exists()


def test_flags_that_tune_sets_itself_are_refused(capsys):
    with pytest.raises(SystemExit):
        tune.main([*FAST, "--seed", "3"])
    assert "--seeds" in capsys.readouterr().err


def test_train_flags_pass_through_unchanged():
    """-n is train.py's step count, not a prefix of another flag (argparse matches single-dash prefixes)."""
    args, rest = tune.tune_parser().parse_known_args(["-n", "2048", "--seeds", "1", "2", "--env", "CartPole-v1"])
    assert rest == ["-n", "2048", "--env", "CartPole-v1"] and args.seeds == [1, 2]
    spec = tune.TuneSpec(train_argv=rest + ["--agent", "ppo"], cwd=".", exp_dir="x", cpus_per_trial=2)
    config = tune.trial_config(spec, {"learning_rate": 1e-3, "n_envs": 2}, seed=5)
    assert (config["n_timesteps"], config["seed"], config["n_envs"], config["num_threads"]) == (2048, 5, 2, 2)
    assert config["hyperparams"]["learning_rate"] == 1e-3
    # --reward as a searched key: none, one spec, or several (a spec with commas is quoted in --grid)
    grid = tune.parse_grid(['reward:none,simhash,"rnd:coef=0.1,final_ratio=0"'])
    assert grid == {"reward": [None, "simhash", "rnd:coef=0.1,final_ratio=0"]}  # "none" reads as None, like -params
    assert [tune.trial_config(spec, {"reward": r}, 0)["rewards"] for r in grid["reward"]] == [[], ["simhash"], ["rnd:coef=0.1,final_ratio=0"]]


def test_resume_of_a_folder_that_is_not_an_experiment(tmp_path, capsys):
    assert tune.main(["--resume", str(tmp_path)]) == 2
    assert "not a tune.py experiment" in capsys.readouterr().err


def test_a_restarted_trial_resumes_its_first_run_with_a_checkpoint(tmp_path):
    """What run_trial resumes: the first earlier run (in folder order) that has a checkpoint, from
    its newest; a run killed before its first checkpoint is passed over; none: a fresh run."""
    from selfgym import runs

    log_folder = tmp_path / "runs" / "trial_1"
    assert tune.resume_point(log_folder) == (None, 0)
    empty, kept = log_folder / "ppo" / "CartPole-v1_1", log_folder / "ppo" / "CartPole-v1_2"
    for run in (empty, kept):
        run.mkdir(parents=True)
        (run / "config.yaml").write_text("seed: 0\n")
    assert tune.resume_point(log_folder) == (None, 0)
    for steps in (1000, 3000, 2000):
        runs.checkpoint_dir(kept, steps).mkdir(parents=True)
    assert tune.resume_point(log_folder) == (kept, 3000)


def test_unreachable_address_fails_fast_naming_it():
    start = time.time()
    with pytest.raises(tune.TuneUserError, match="127.0.0.1:9"):
        tune.check_address("127.0.0.1:9", timeout=2)
    assert time.time() - start < 5


def test_train_and_evaluate_never_import_ray(tmp_path):
    code = (
        "import sys\n"
        "from selfgym.cli import train_main, evaluate_main\n"
        "assert train_main(['--env', 'CartPole-v1', '--agent', 'ppo', '-n', '64', '--seed', '0', '-f', 'logs',"
        " '--eval-freq', '0', '--no-final-eval']) == 0\n"
        "assert evaluate_main(['--run', 'logs/ppo/CartPole-v1_1', '-n', '1']) == 0\n"
        "leaked = sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.') or m == 'optuna')\n"
        "assert not leaked, leaked\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


# -- real Ray runs -----------------------------------------------------------------------------
def _tune(args: list[str], cwd: Path, timeout: float = 400) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "tune.py"), *args], cwd=cwd, env=cli_env(),
                          capture_output=True, text=True, timeout=timeout)


def _run_folders(exp: Path) -> list[Path]:
    return sorted(p.parent for p in (exp / "runs").glob("*/*/*/config.yaml"))


def test_grid_of_two_values_by_two_seeds_makes_four_runs_and_one_table(tmp_path):
    pytest.importorskip("ray")
    exp = tmp_path / "exp"
    result = _tune([*FAST, "-n", "512", "--seeds", "0", "1", "--grid", "learning_rate:1e-3,3e-4",
                    "--exp-dir", str(exp)], tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    folders = _run_folders(exp)
    assert len(folders) == 4
    configs = [json.loads(json.dumps(__import__("yaml").safe_load((f / "config.yaml").read_text()))) for f in folders]
    assert sorted((c["seed"], c["hyperparams"]["learning_rate"]) for c in configs) == [(0, 3e-4), (0, 1e-3), (1, 3e-4), (1, 1e-3)]
    assert all(json.loads((f / "status.json").read_text())["state"] == "finished" for f in folders)
    assert (exp / "compare" / "table.md").exists()
    table = (exp / "compare" / "table.md").read_text()
    assert "learning_rate=0.001" in table and "learning_rate=0.0003" in table and "2 (0, 1)" in table


def test_cluster_head_node_and_a_failing_trial(tmp_path):
    """``ray start --head``, then tune.py --address: a trial that raises is reported with its traceback; the other finishes."""
    pytest.importorskip("ray")
    ray_bin = Path(sys.executable).parent / "ray"
    port = "63791"
    env = cli_env()
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    started = subprocess.run([str(ray_bin), "start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
                              "--disable-usage-stats"], env=env, capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, started.stderr[-2000:]
    try:
        exp = tmp_path / "exp"
        result = _tune(["--env", "CartPole-v1", "--agent", "ppo", "--eval-freq", "0", "--no-final-eval", "-n", "512",
                        "--grid", "batch_size:64,0", "--max-failures", "0", "--address", f"127.0.0.1:{port}",
                        "--exp-dir", str(exp)], tmp_path)
    finally:
        subprocess.run([str(ray_bin), "stop", "--force"], env=env, capture_output=True, timeout=120)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out[-3000:]
    assert "| finished |" in result.stdout and "| failed |" in result.stdout
    assert "failed:" in result.stdout and "error.txt" in result.stdout and "batch_size" in out
    assert len(_run_folders(exp)) == 1  # the failed run had no checkpoint: its folder is removed


def _wait_for(predicate, timeout: float, what: str) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _checkpointed(exp: Path, n: int) -> list[Path]:
    return [f for f in _run_folders(exp) if list((f / "checkpoints").glob("step_*"))][:n] if (exp / "runs").exists() else []


def test_killed_trial_resumes_and_interrupted_experiment_resumes_without_redoing_finished_trials(tmp_path):
    pytest.importorskip("ray")
    exp = tmp_path / "exp"
    args = [*FAST, "-n", "40000", "--save-freq", "1000", "--seeds", "0", "1", "--max-concurrent", "1",
            "--max-failures", "1", "--exp-dir", str(exp)]
    log = open(tmp_path / "first.log", "w")
    driver = subprocess.Popen([sys.executable, str(REPO / "tune.py"), *args], cwd=tmp_path, env=cli_env(),
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        # 1. kill -9 the first trial's process once it has a checkpoint: Tune restarts it, it resumes
        #    (waits are generous: on a starved shared CPU the 40,000 steps alone took over 240 s)
        _wait_for(lambda: _checkpointed(exp, 1), 240, "the first trial's first checkpoint")
        first = _checkpointed(exp, 1)[0]
        pid = int((first / "trainer.lock").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
        _wait_for(lambda: (first / "status.json").exists() and
                  json.loads((first / "status.json").read_text())["state"] == "finished", 600, "the first trial to finish")
        finished_at = (first / "status.json").stat().st_mtime
        # 2. interrupt the whole experiment once the second trial has a checkpoint
        _wait_for(lambda: len(_checkpointed(exp, 2)) == 2, 240, "the second trial's first checkpoint")
        driver.send_signal(signal.SIGINT)
        driver.wait(timeout=120)
    finally:
        if driver.poll() is None:
            driver.kill()
        log.close()
    first_log = (tmp_path / "first.log").read_text()
    assert f"Resuming {first}" in first_log, first_log[-3000:]
    second = next(f for f in _run_folders(exp) if f != first)
    assert json.loads((second / "status.json").read_text())["state"] != "finished"
    # 3. --resume: the interrupted trial continues from its checkpoint, the finished one is left alone
    result = _tune(["--resume", str(exp), "--num-cpus", "2"], tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert f"Resuming {second}" in out
    assert f"Resuming {first}" not in out
    assert (first / "status.json").stat().st_mtime == finished_at
    for folder in (first, second):
        status = json.loads((folder / "status.json").read_text())
        assert status["state"] == "finished" and status["num_timesteps"] >= 40000


def test_optuna_search_with_asha_samples_inside_the_space(tmp_path):
    pytest.importorskip("ray")
    pytest.importorskip("optuna")
    (tmp_path / "space.yml").write_text("learning_rate: loguniform(1e-4, 1e-2)\nn_epochs: choice([2, 4])\n")
    exp = tmp_path / "exp"
    result = _tune([*FAST, "-n", "1024", "--search", "optuna", "--space", "space.yml", "--n-trials", "3",
                    "--scheduler", "asha", "--grace-period", "256", "--exp-dir", str(exp)], tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    import yaml
    configs = [yaml.safe_load((f / "config.yaml").read_text()) for f in _run_folders(exp)]
    assert len(configs) == 3
    assert all(1e-4 <= c["hyperparams"]["learning_rate"] <= 1e-2 and c["hyperparams"]["n_epochs"] in (2, 4) for c in configs)
    assert len({c["hyperparams"]["learning_rate"] for c in configs}) == 3  # Optuna proposed three configurations
    assert "ep_return_mean" in result.stdout and "| finished |" in result.stdout, result.stdout[-3000:]
