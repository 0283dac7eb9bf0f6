"""The seed benchmarks on tune.py (issue 19 item 4): their tune.py trials are the runs they claim
to run, and their tables come from selfgym.compare. No training here: the trial configs are
resolved as tune.py resolves them before Ray starts, and the tables are made from run folders
written by hand."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))  # the benchmark scripts import their sibling tune_bench

import exploration  # noqa: E402
import slim  # noqa: E402
import tune_bench  # noqa: E402
from selfgym import runs, tune  # noqa: E402
from selfgym.cli import resolve_config, train_parser  # noqa: E402


def tune_spec(flags: list[str], tmp_path: Path) -> tune.TuneSpec:
    """The spec tune.py builds from these flags (every grid point checked), without starting Ray."""
    args, train_argv = tune.tune_parser().parse_known_args([*flags, "--exp-dir", str(tmp_path / "exp")])
    return tune._tune_spec(args, train_argv, train_parser().parse_args(train_argv))


def test_slim_trials_are_the_protocols_train_commands(tmp_path):
    """Each arm and seed: the tune.py trial's config equals the pre-registered train.py command's."""
    for name, (_, arms) in slim.EXPERIMENTS.items():
        spec = tune_spec(slim.tune_command(name, [0, 1], 40_000, 2), tmp_path / name)
        values = spec.space.get("weights", {}).get("grid", [None])
        assert len(values) == len(arms)
        for value in values:
            trial = tune.trial_config(spec, {} if value is None else {"weights": value}, 1)
            arm = slim.arm_of(name, trial)
            protocol = train_parser().parse_args(["--env", slim.ENV, *slim.ARMS[arm], "-n", "40000", "--seed", "1",
                                                  "--num-threads", "1", "--eval-freq", "0", "--no-final-eval"])
            expected = resolve_config(protocol)
            assert trial == expected, arm
            # the streams' order is the weights' order (agents/slim.py): the same as the protocol's too
            assert list(trial["hyperparams"]["weights"]) == list(expected["hyperparams"]["weights"]), arm
    assert {slim.arm_of(n, {"hyperparams": {"weights": w}}) for n, w in
            [("slim", {"diayn": 1.0}), ("slim", {"diayn": 1.0, "object_reach": 1.0, "safety": 1.0}), ("summed", {})]} \
        == set(slim.ARMS)


def test_exploration_methods_are_reward_grid_values_with_the_fade_out(tmp_path):
    args = argparse.Namespace(env="selfgym/SparseGridShuffled-v0", steps=20_000, seeds=[0, 1], n_envs=8,
                              eval_every=5000, eval_episodes=5, workers=2, methods=["ppo", "rnd", "simhash"])
    methods = {m: exploration.reward_specs(exploration.METHODS[m], args.steps) for m in args.methods}
    assert methods["simhash"] == ["simhash:k=48,coef=0.03,schedule=linear,decay_steps=12000"]  # 60% of 20k, to 0
    spec = tune_spec(exploration.tune_args(args, methods), tmp_path)
    assert spec.space["reward"]["grid"] == [None, *methods["rnd"], *methods["simhash"]]
    assert spec.seeds == [0, 1] and spec.max_concurrent == 2 and spec.cpus_per_trial == 1
    for value, name in zip(spec.space["reward"]["grid"], args.methods):
        config = tune.trial_config(spec, {"reward": value}, 0)
        assert config["rewards"] == methods[name]
        assert config["hyperparams"]["n_steps"] == 128 and config["n_envs"] == 8 and config["eval_freq"] == 5000
    module = tune.trial_config(spec, {"reward": methods["rnd"][0]}, 0)["rewards"][0]
    from selfgym.train import checked_reward

    rnd = checked_reward(module)
    assert (rnd.schedule, rnd.decay_steps, rnd.final_ratio) == ("linear", 12_000, 0.0)
    assert rnd.weight(12_000) == 0.0 and rnd.weight(6_000) == pytest.approx(0.025)
    assert exploration.grid_value(["a:x=1", "b"]) == '["a:x=1","b"]'  # several modules: a list
    assert tune.parse_grid([f"reward:{exploration.grid_value(['a:x=1,y=2', 'b'])}"])["reward"] == [["a:x=1,y=2", "b"]]


def fake_run(folder: Path, seed: int, success: float) -> Path:
    config = resolve_config(train_parser().parse_args(["--env", "CartPole-v1", "--agent", "ppo", "--seed", str(seed),
                                                       "-n", "1000", "--eval-episodes", "10"]))
    run = folder / "runs" / f"trial{seed}" / "ppo" / "CartPole-v1_1"
    run.mkdir(parents=True)
    runs.write_yaml(run / "config.yaml", config)
    (run / "metrics.csv").write_text(f"steps,eval_success_rate,eval_return_mean\n500,0.0,10\n1000,{success},20\n")
    runs.write_status(run, "finished", num_timesteps=1000, train_seconds=10.0)
    return run


def test_final_evaluation_table_pools_episodes_and_compare_tables_the_curves(tmp_path):
    pytest.importorskip("rliable")
    exp = tmp_path / "exp"
    first, second = fake_run(exp, 0, 0.6), fake_run(exp, 1, 1.0)
    assert [r[0] for r in tune_bench.trial_runs(exp)] == [first, second]
    evaluations = {"deterministic": {str(first): {"success_rate": 0.5, "return_mean": 10.0, "episodes": 10},
                                     str(second): {"success_rate": 1.0, "return_mean": 30.0, "episodes": 10}}}
    text, rows = tune_bench.final_eval_table(exp, evaluations, reps=200)
    (row,) = rows
    assert row["seeds"] == [0, 1] and row["success"]["pooled"] == "15/20"
    assert row["success"]["mean"] == pytest.approx(0.75) and row["return"]["mean"] == pytest.approx(20.0)
    low, high = row["success"]["wilson_ci"]
    assert 0.5 < low < 0.75 < high < 0.95  # Wilson 95% of 15/20: [0.531, 0.888]
    assert "15/20" in text and "| ppo | deterministic | 0, 1 |" in text
    comparison = tune_bench.compare_runs([exp / "runs"], ["eval_success_rate", "success_rate"], tmp_path / "cmp", reps=200)
    assert list(comparison.summary["metrics"]) == ["eval_success_rate"]  # a metric no run logged is left out
    assert comparison.summary["metrics"]["eval_success_rate"]["rows"][0]["scores"] == [0.6, 1.0]
    assert (tmp_path / "cmp" / "curves_eval_success_rate.png").exists()


def test_recorded_commands_can_be_pasted_into_a_shell():
    import shlex

    flags = slim.tune_command("slim", [0], 2048, 2) + ["--grid", 'reward:none,"rnd:hidden=[64,64],coef=0.1"', "a b"]
    assert shlex.split(" ".join(tune_bench._quote(a) for a in flags)) == flags


def test_results_recorded_before_tune_are_not_overwritten(monkeypatch, tmp_path):
    (tmp_path / "old.json").write_text('{"runs": []}')  # as the pre-tune.py scripts wrote them
    (tmp_path / "new.json").write_text('{"tune": {}, "runs": []}')
    monkeypatch.setattr(tune_bench, "RESULTS", tmp_path)
    with pytest.raises(SystemExit, match="old.json holds results recorded before"):
        tune_bench.check_out("old")
    tune_bench.check_out("new")  # a tune.py result may be rewritten
    tune_bench.check_out("absent")
    for name in ("exploration_sparsegrid_shuffled", "play_table_sac_drawer"):  # the recorded history itself
        assert "tune" not in json.loads((REPO / "benchmarks" / "results" / f"{name}.json").read_text())


def test_slim_hrl_finds_the_slim_arms_skills_in_either_layout(tmp_path):
    import slim_hrl

    env = slim.ENV.replace("/", "-")
    for trial, weights in (("t0", {"diayn": 1.0}), ("t1", {"diayn": 1.0, "object_reach": 1.0, "safety": 1.0})):
        run = tmp_path / "slim" / "runs" / trial / "slim" / f"{env}_1"  # benchmarks/slim.py on tune.py
        run.mkdir(parents=True)
        runs.write_yaml(run / "config.yaml", {"seed": 0, "hyperparams": {"weights": weights}})
    args = argparse.Namespace(skills_run=None, skills_logs=str(tmp_path))
    assert slim_hrl.skills_for(0, args) == (tmp_path / "slim" / "runs" / "t1" / "slim" / f"{env}_1").resolve()
    assert not slim_hrl.skills_for(1, args).exists()  # no such seed: the path the error message names
    before = tmp_path / "slim_seed0" / "slim" / f"{env}_1"  # the runner's own loop (the pre-registered run)
    before.mkdir(parents=True)
    assert slim_hrl.skills_for(0, args) == before.resolve()
