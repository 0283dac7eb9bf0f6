"""compare.py: runs grouped by configuration, rliable's statistics, the pictures, and the refusals.

One fixture trains real runs through train.py's entry point (2 learning rates x 2 seeds of PPO on
CartPole, a few seconds), so the reader is checked against the format the trainer writes; the
hand examples use small synthetic run folders in that same format.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("rliable")  # the optional extra "compare"
pytestmark = pytest.mark.filterwarnings("ignore:random_state is deprecated:FutureWarning")  # arch, called by rliable
from rliable import library as rly  # noqa: E402
from rliable import metrics as rly_metrics  # noqa: E402

from selfgym.cli import compare_main, train_main  # noqa: E402
from selfgym.compare import CompareError, compare, wilson  # noqa: E402
from selfgym.metrics import CORE_COLUMNS  # noqa: E402

REPS = 500
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def real_logs(tmp_path_factory) -> Path:
    """logs/ppo/CartPole-v1_{1..4}: learning rates 0.001 and 0.0003, seeds 0 and 1, evaluated every 512 steps."""
    logs = tmp_path_factory.mktemp("real") / "logs"
    for lr in ("0.001", "0.0003"):
        for seed in ("0", "1"):
            argv = ["--env", "CartPole-v1", "--agent", "ppo", "-n", "1024", "--seed", seed, "--eval-freq", "512",
                    "--eval-episodes", "2", "--no-final-eval", "--no-progress", "-f", str(logs),
                    "-params", f"learning_rate:{lr}"]
            assert train_main(argv) == 0
    return logs


def write_run(folder: Path, finals: list[float], *, env: str = "CartPole-v1", seed: int = 0,
              column: str = "eval_return_mean", **config: object) -> Path:
    """A run folder as train.py leaves it (config.yaml, metrics.csv, status.json), ending at ``finals[-1]``."""
    folder.mkdir(parents=True)
    resolved = {"env": env, "agent": "ppo", "n_timesteps": 2048, "seed": seed, "device": "auto", "num_threads": 1,
                "n_envs": 8, "vec_env": "dummy", "env_kwargs": {}, "normalize": False, "env_wrapper": None,
                "rewards": [], "hyperparams": {"policy": "MlpPolicy", "learning_rate": 0.001}, "eval_freq": 1024,
                "eval_episodes": 10, "save_freq": 204, "keep_checkpoints": 3, "gym_packages": [], **config}
    (folder / "config.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))
    columns = list(dict.fromkeys(CORE_COLUMNS.values())) + ["train_value_loss", "eval_success_rate"]
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, lineterminator="\n")
    writer.writeheader()
    for i, value in enumerate(finals):
        writer.writerow({"steps": 1024 * (i + 1), "wall_time": i + 1.0, "ep_return_mean": 9.5, column: value})
    (folder / "metrics.csv").write_text(out.getvalue())
    (folder / "status.json").write_text(json.dumps({"state": "finished", "num_timesteps": 1024 * len(finals)}))
    return folder


def rliable_estimates(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What rliable itself gives for these scores, with compare's default bootstrap seed (0).

    rliable 1.2 resamples with numpy's global RNG (its random_state only feeds arch), so it is seeded too.
    """
    func = lambda x: np.array([rly_metrics.aggregate_mean(x), rly_metrics.aggregate_iqm(x)])  # noqa: E731
    np.random.seed(0)
    point, interval = rly.get_interval_estimates({"x": scores}, func, reps=REPS, random_state=np.random.RandomState(0))
    return point["x"], interval["x"]


def test_real_runs_two_configurations_by_two_seeds_give_two_groups_and_one_table(real_logs, tmp_path):
    out = tmp_path / "out"
    result = compare([real_logs], ["eval_return_mean", "ep_return_mean"], out, reps=REPS)
    rows = result.summary["metrics"]["eval_return_mean"]["rows"]
    assert sorted(row["label"] for row in rows) == ["ppo learning_rate=0.0003", "ppo learning_rate=0.001"]
    assert [row["seeds"] for row in rows] == [[0, 1], [0, 1]]
    for row in rows:  # each score is its run's last logged eval_return_mean, read here with the csv module
        for run, score, steps in zip(row["runs"], row["scores"], row["steps"]):
            with open(Path(run) / "metrics.csv", newline="") as f:
                logged = [r for r in csv.DictReader(f) if r["eval_return_mean"]]
            assert (score, steps) == (float(logged[-1]["eval_return_mean"]), int(logged[-1]["steps"]))
        (mean, iqm), ci = rliable_estimates(np.array(row["scores"])[:, None])
        assert (row["mean"], row["iqm"], row["mean_ci"], row["iqm_ci"]) == (mean, iqm, list(ci[:, 0]), list(ci[:, 1]))
    table = result.text.split("### ")[1]
    assert table.startswith("eval_return_mean") and table.count("| ppo learning_rate=") == 2
    for name in ("curves_eval_return_mean.png", "curves_ep_return_mean.png"):  # one picture per metric
        assert (out / name).read_bytes()[:8] == PNG
    assert not (out / "profile_eval_return_mean.png").exists()  # one env: no performance profile
    assert (out / "table.md").read_text() == result.text
    assert json.loads((out / "summary.json").read_text()) == result.summary


def test_the_command_line_prints_the_table_and_names_an_unknown_column(real_logs, run_cli, tmp_path, capsys):
    result = run_cli("compare.py", str(real_logs), "--out", "cmp", "--reps", "200")
    assert result.returncode == 0, result.stderr
    assert "| ppo learning_rate=0.001 | CartPole-v1 | 2 (0, 1) | 1024 |" in result.stdout
    assert (tmp_path / "cmp" / "curves_eval_return_mean.png").read_bytes()[:8] == PNG

    assert compare_main([str(real_logs), "--metric", "eval_retrun_mean", "--out", str(tmp_path / "x")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: unknown metric 'eval_retrun_mean'")
    assert "'eval_return_mean'" in error and "'train_value_loss'" in error


def test_iqm_and_interval_on_a_hand_example(tmp_path):
    """Four seeds end at 10, 20, 30, 1000: mean 265, IQM (middle half) 25. Run numbers, device and threads differ."""
    finals = [10.0, 20.0, 30.0, 1000.0]
    for seed, (number, device) in enumerate([(1, "cpu"), (2, "auto"), (5, "cuda"), (9, "cpu")]):
        write_run(tmp_path / "logs" / "ppo" / f"CartPole-v1_{number}", [0.0, finals[seed]], seed=seed,
                  device=device, num_threads=seed + 1)
    result = compare([tmp_path / "logs"], out=tmp_path / "out", reps=REPS)
    (row,) = result.summary["metrics"]["eval_return_mean"]["rows"]
    assert (row["mean"], row["iqm"], row["seeds"], row["label"]) == (265.0, 25.0, [0, 1, 2, 3], "ppo")
    (mean, iqm), ci = rliable_estimates(np.array(finals)[:, None])
    assert (row["mean_ci"], row["iqm_ci"]) == ([ci[0, 0], ci[1, 0]], [ci[0, 1], ci[1, 1]])
    assert 10.0 <= row["iqm_ci"][0] <= 25.0 <= row["iqm_ci"][1] <= 1000.0
    assert "| ppo | CartPole-v1 | 4 (0, 1, 2, 3) | 2048 | 265 [" in result.text


def test_what_splits_a_configuration(tmp_path):
    """Rewards, budget or a hyperparameter make another configuration; the label names what differs."""
    logs = tmp_path / "logs"
    write_run(logs / "a", [1.0], seed=0)
    write_run(logs / "b", [2.0], seed=1)
    write_run(logs / "c", [3.0], rewards=["rnd:coef=0.01"])
    write_run(logs / "d", [4.0], n_timesteps=4096)
    rows = compare([logs], out=tmp_path / "out", reps=REPS).summary["metrics"]["eval_return_mean"]["rows"]
    labels = {row["label"]: row["scores"] for row in rows}
    assert labels == {'ppo n_timesteps=2048 rewards=[]': [1.0, 2.0], 'ppo n_timesteps=2048 rewards=["rnd:coef=0.01"]': [3.0],
                      "ppo n_timesteps=4096 rewards=[]": [4.0]}


def test_success_rates_default_and_get_a_wilson_interval(tmp_path):
    logs = tmp_path / "logs"
    write_run(logs / "a", [0.2, 0.8], seed=0, column="eval_success_rate")
    write_run(logs / "b", [0.1, 0.6], seed=1, column="eval_success_rate")
    result = compare([logs], out=tmp_path / "out", reps=REPS)
    (row,) = result.summary["metrics"]["eval_success_rate"]["rows"]  # chosen over eval_return_mean by default
    successes, trials, z = 14, 20, 1.959963984540054  # 8 + 6 of 10 + 10 evaluation episodes
    p, center_shift = successes / trials, z * z / (2 * trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    expected = [(p + center_shift - half) / (1 + z * z / trials), (p + center_shift + half) / (1 + z * z / trials)]
    assert row["wilson_ci"] == pytest.approx(expected, abs=1e-9)
    assert wilson(14, 20) == pytest.approx(expected, abs=1e-9)
    assert "| Wilson 95% |" in result.text and "| [0.481, 0.8545] |" in result.text


def test_different_envs_are_refused_unless_mixed(tmp_path):
    logs = tmp_path / "logs"
    write_run(logs / "ppo" / "CartPole-v1_1", [100.0], seed=0)
    write_run(logs / "ppo" / "CartPole-v1_2", [200.0], seed=1)
    write_run(logs / "ppo" / "Acrobot-v1_1", [-500.0], env="Acrobot-v1", seed=0)
    write_run(logs / "ppo" / "Acrobot-v1_2", [-100.0], env="Acrobot-v1", seed=1)
    with pytest.raises(CompareError, match=r"2 envs \(Acrobot-v1, CartPole-v1\).*--mix-envs"):
        compare([logs], out=tmp_path / "out", reps=REPS)
    assert not (tmp_path / "out").exists()

    result = compare([logs], out=tmp_path / "out", mix_envs=True, reps=REPS)
    entry = result.summary["metrics"]["eval_return_mean"]
    assert [row["env"] for row in entry["rows"]] == ["Acrobot-v1", "CartPole-v1"]
    (across,) = entry["across_envs"]  # min-max per env: seed 0 scores 0 on both, seed 1 scores 1
    assert (across["label"], across["scores"], across["mean"]) == ("ppo", [0.0, 0.0, 1.0, 1.0], 0.5)
    assert (tmp_path / "out" / "profile_eval_return_mean.png").read_bytes()[:8] == PNG


def test_folders_without_runs_are_clear_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CompareError, match="empty holds no run folders"):
        compare([tmp_path / "empty"], out=tmp_path / "out")
    with pytest.raises(CompareError, match="missing is not a folder"):
        compare([tmp_path / "missing"], out=tmp_path / "out")
    (tmp_path / "started" / "run").mkdir(parents=True)
    (tmp_path / "started" / "run" / "config.yaml").write_text("env: CartPole-v1\nagent: ppo\n")
    with pytest.raises(CompareError, match="no metrics.csv"):
        compare([tmp_path / "started"], out=tmp_path / "out")


def test_a_run_folder_is_read_as_data(tmp_path, monkeypatch):
    """Modules a config.yaml names are never imported, not even when they are importable."""
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "named_by_run.py").write_text("import pathlib\npathlib.Path(__file__).with_name('IMPORTED').touch()\n")
    monkeypatch.syspath_prepend(str(tmp_path / "code"))
    write_run(tmp_path / "logs" / "run", [1.0], agent="named_by_run:Agent", gym_packages=["named_by_run"],
              env_wrapper="named_by_run:Wrapper", rewards=["named_by_run:Reward"])
    compare([tmp_path / "logs"], out=tmp_path / "out", reps=REPS)
    assert "named_by_run" not in sys.modules and not (tmp_path / "code" / "IMPORTED").exists()
