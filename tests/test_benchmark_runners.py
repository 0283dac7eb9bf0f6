"""The pre-registered runners' bookkeeping, without training: each run's line is kept as it finishes, a
restart skips what finished, a crashed run is recorded and the others go on, and the tables come out
of partial results (a 2-hour run that crashes at its end, or a session that ends mid-table, keeps what it did)."""

from __future__ import annotations

import json
import sys

import pytest

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))  # the runners import their sibling tune_bench
import tune_bench  # noqa: E402


# -- tune_bench: the runs .jsonl ------------------------------------------------------------------------
def test_recorded_runs_keeps_the_latest_line_per_key_and_skips_a_torn_line(tmp_path) -> None:
    record = tmp_path / "runs.jsonl"
    record.write_text('{"arm": "a", "seed": 0, "returncode": 1, "error": "boom"}\n'
                      '{"arm": "b", "seed": 0, "returncode": 0}\n'
                      '{"arm": "a", "seed": 0, "returncode": 0, "x": 2}\n'
                      '{"arm": "c", "seed": 0, "retur')  # killed mid-line
    runs = tune_bench.recorded_runs(record, ("arm", "seed"))
    assert runs[("a", 0)] == {"arm": "a", "seed": 0, "returncode": 0, "x": 2}
    assert ("c", 0) not in runs
    assert tune_bench.finished_keys(record, ("arm", "seed")) == {("a", 0), ("b", 0)}
    tune_bench.record_run(record, {"arm": "c", "seed": 0, "returncode": 0})  # after the torn line: on a line of its own
    assert ("c", 0) in tune_bench.finished_keys(record, ("arm", "seed"))


def test_run_recorded_records_a_crash_goes_on_and_a_restart_reruns_only_what_did_not_finish(tmp_path) -> None:
    record, calls = tmp_path / "runs.jsonl", []

    def job(arm: str, crash: bool):
        def run() -> dict:
            calls.append(arm)
            if crash:
                raise RuntimeError(f"{arm} crashed")
            return {"score": len(arm)}
        return run

    jobs = {("ok", 0): job("ok", False), ("bad", 0): job("bad", True), ("fine", 0): job("fine", False)}
    rows = tune_bench.run_recorded(jobs, ("arm", "seed"), record, workers=2)
    assert sorted(calls) == ["bad", "fine", "ok"]
    assert [r["arm"] for r in rows] == ["ok", "fine"] and rows[0]["score"] == 2
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    assert {(line["arm"], line["returncode"]) for line in lines} == {("ok", 0), ("bad", 1), ("fine", 0)}
    assert "bad crashed" in next(line["error"] for line in lines if line["arm"] == "bad")

    calls.clear()
    jobs[("bad", 0)] = job("bad", False)
    rows = tune_bench.run_recorded(jobs, ("arm", "seed"), record, workers=2)
    assert calls == ["bad"] and [r["arm"] for r in rows] == ["ok", "bad", "fine"]


def test_run_recorded_keeps_a_job_that_returns_its_own_failing_code(tmp_path, capsys) -> None:
    """A job may report failure by its return code (train.py's exit code) instead of raising."""
    record = tmp_path / "runs.jsonl"
    jobs = {("ok", 0): lambda: {"score": 1}, ("bad", 0): lambda: {"returncode": 2}}
    rows = tune_bench.run_recorded(jobs, ("arm", "seed"), record, workers=2)
    assert [r["arm"] for r in rows] == ["ok"]
    assert tune_bench.recorded_runs(record, ("arm", "seed"))[("bad", 0)]["returncode"] == 2
    assert "FAILED (return code 2)" in capsys.readouterr().out


# -- slim_hrl -----------------------------------------------------------------------------------------------
def test_slim_hrl_tables_a_partial_result(tmp_path, monkeypatch) -> None:
    pytest.importorskip("rliable")
    import slim_hrl

    rows = [{"arm": "ppo", "seed": s, "success_rate": 0.1 * s, "return_mean": float(s)} for s in (0, 1)]
    cells = slim_hrl.table(rows)  # skill_hrl has no finished run yet
    assert set(cells) == {"ppo/success_rate", "ppo/return_mean"} and cells["ppo/success_rate"]["seeds"] == [0.0, 0.1]
    args = type("Args", (), {"out": "t", "budget": 8, "seeds": [0, 1]})()
    monkeypatch.setattr(sys, "argv", ["slim_hrl.py"])
    slim_hrl.write_tables(rows, [], ["skill_hrl seed 0", "skill_hrl seed 1"], args, tmp_path)
    md = (tmp_path / "t.md").read_text()
    assert "| ppo |" in md and "| skill_hrl |" not in md and "no finished run for skill_hrl seed 0" in md


def test_slim_hrl_success_curve_skips_rows_without_an_evaluation_and_the_flush_row(tmp_path) -> None:
    pytest.importorskip("rliable")
    import slim_hrl

    metrics = tmp_path / "metrics.csv"
    metrics.write_text("steps,wall_time,steps_per_s,eval_success_rate\n4096,10.0,243.1,\n8192,20.0,240.2,0.3\n"
                       "8192,21.0,,\n")  # the last: the trainer's final flush row, its rate and evaluation empty
    assert slim_hrl.success_curve(metrics) == [(8192, 0.3)]


def test_slim_hrl_restart_skips_finished_runs_and_records_a_crash(tmp_path, monkeypatch) -> None:
    pytest.importorskip("rliable")
    import slim_hrl

    skills = tmp_path / "skills" / "slim_seed0" / "slim" / "selfgym-PlayTable-v0_1"
    skills.mkdir(parents=True)
    (skills / "config.yaml").write_text("seed: 0\n")
    calls = []

    def fake(arm, seed, budget, logs, skills_run):
        calls.append(arm)
        if arm == "ppo" and len(calls) < 3:
            raise RuntimeError("train.py exited 1")
        return {"arm": arm, "seed": seed, "success_rate": 0.5, "return_mean": 1.0}

    monkeypatch.setattr(slim_hrl, "run_one", fake)
    monkeypatch.setattr(slim_hrl, "RESULTS", tmp_path / "results")
    argv = ["slim_hrl.py", "--seeds", "0", "--skills-logs", str(tmp_path / "skills"), "--out", "t"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit, match="1 of 2 runs failed"):
        slim_hrl.main()
    assert "| skill_hrl |" in (tmp_path / "results" / "t.md").read_text()
    slim_hrl.main()  # the restart: only the crashed run again
    assert sorted(calls) == ["ppo", "ppo", "skill_hrl"]
    assert "| ppo |" in (tmp_path / "results" / "t.md").read_text()


# -- lma3 ---------------------------------------------------------------------------------------------------
def test_lma3_keeps_the_other_arms_when_one_crashes_and_a_restart_runs_only_that_one(tmp_path, monkeypatch) -> None:
    import lma3

    calls = []

    def fake(arm, seed, logs, lm_steps, oracle_steps, model):
        calls.append(arm)
        if arm == "hand_coded" and calls.count(arm) == 1:
            raise RuntimeError("evaluate.py failed (1)")
        return {"arm": arm, "seed": seed, "run": str(tmp_path / "nowhere"), "episodes": 2,
                **{m: 1.0 for m in lma3.MEASURES}}

    monkeypatch.setattr(lma3, "run_one", fake)
    monkeypatch.setattr(lma3, "RESULTS", tmp_path)
    monkeypatch.setattr(sys, "argv", ["lma3.py", "--arms", "oracle", "hand_coded", "--seeds", "0", "--out", "t"])
    with pytest.raises(SystemExit, match="1 of 2 runs failed"):
        lma3.main()
    md = (tmp_path / "t.md").read_text()
    assert "| oracle | 2 |" in md and "no finished run for hand_coded seed 0" in md
    lma3.main()
    assert calls.count("oracle") == 1 and calls.count("hand_coded") == 2
    assert "| hand_coded | 2 |" in (tmp_path / "t.md").read_text()


def test_lma3_decision_follows_the_protocol_rule() -> None:
    import lma3

    def arms(a: tuple, b: tuple) -> dict:  # (mean, low, high) for discovered and for mastered per the oracle
        est = lambda m, lo, hi: {"mean": m, "mean_ci": [lo, hi]}  # noqa: E731
        return {"x": {"goals_discovered": est(*a[0]), "goals_mastered_oracle": est(*a[1])},
                "y": {"goals_discovered": est(*b[0]), "goals_mastered_oracle": est(*b[1])}}

    assert "**supported**" in lma3.decide(arms(((40, 35, 45), (3, 2, 4)), ((30, 25, 33), (2, 1, 5))), "x", "y")
    # higher on both but every interval overlaps: inconclusive
    assert "**inconclusive**" in lma3.decide(arms(((31, 25, 36), (3, 2, 4)), ((30, 25, 33), (2, 1, 5))), "x", "y")
    # equal runs (a generator that never produced a goal) are inconclusive, not supported
    assert "**inconclusive**" in lma3.decide(arms(((30, 25, 33), (2, 1, 5)), ((30, 25, 33), (2, 1, 5))), "x", "y")
    assert "**contradicted**" in lma3.decide(arms(((20, 15, 25), (1, 0, 2)), ((30, 25, 33), (2, 1, 5))), "x", "y")
    assert "not decided" in lma3.decide({"x": {}}, "x", "y")


# -- self_rewarding -----------------------------------------------------------------------------------------
def test_self_rewarding_records_a_crash_and_resumes_the_same_out(tmp_path, monkeypatch) -> None:
    pytest.importorskip("rliable")
    import self_rewarding

    calls = []

    def fake(args, signal, family, level, seed, before):
        calls.append(signal)
        if signal == "likelihood" and calls.count(signal) == 1:
            raise RuntimeError("out of memory")
        before.setdefault(f"{family}:{level}", {"greedy": 0.1, "seconds": 1.0})
        return {"signal": signal, "family": f"{family}:{level}", "seed": seed, "uses_labels": False,
                "greedy_before": 0.1, "greedy_after": 0.2, "sampled_before": None, "sampled_after": None,
                "s_per_iteration": [1.0], "cpu_s_per_iteration": [1.0], "eval_s": 1.0, "eval_cpu_s": 1.0,
                "loadavg": [0.0, 0.0, 0.0]}

    monkeypatch.setattr(self_rewarding, "run_one", fake)
    out = tmp_path / "s.json"
    argv = ["--signals", "verifier", "likelihood", "majority_vote", "--families", "arithmetic:1", "--seeds", "301",
            "--iterations", "1", "--heldout", "2", "--reps", "50", "--out", str(out)]
    with pytest.raises(SystemExit, match="1 runs failed"):
        self_rewarding.main(argv)
    result = json.loads(out.read_text())
    assert [r["signal"] for r in result["runs"]] == ["verifier", "majority_vote"]
    assert result["failed"][0]["signal"] == "likelihood" and "out of memory" in result["failed"][0]["error"]
    assert "Failed runs" in out.with_suffix(".md").read_text()
    self_rewarding.main(argv)  # the same command again: only the crashed row runs
    assert calls == ["verifier", "likelihood", "majority_vote", "likelihood"]
    result = json.loads(out.read_text())
    assert sorted(r["signal"] for r in result["runs"]) == ["likelihood", "majority_vote", "verifier"]
    assert not result["failed"] and "likelihood" in result["summary"]
    with pytest.raises(SystemExit, match="iterations"):  # another study in the same file is refused, not mixed in
        self_rewarding.main([*argv[:-4], "--iterations", "2", "--out", str(out)])


# -- play_lmp -----------------------------------------------------------------------------------------------
def test_play_lmp_records_other_test_cases_as_a_failed_run_not_the_end_of_the_table(tmp_path) -> None:
    pytest.importorskip("pybullet")
    import play_lmp

    run = {"agent": "bc", "seed": 0, "dataset": tmp_path / "d.npz"}
    folder = tmp_path / "logs" / "bc_s0" / "bc" / "selfgym-PlayTableGoal-v0_1"
    folder.mkdir(parents=True)
    suite = {"results": {"start pose": {"mean": 0.5, "per_task": {"t": 0.5}, "cases_sha256": "abc"}}}
    (folder / "eval.json").write_text(json.dumps({"task_suite": suite}))
    good = play_lmp.finish_run("bc_s0", run, 0, 60.0, tmp_path, "abc")
    assert good["returncode"] == 0 and good["results"]["start pose"]["mean"] == 0.5
    bad = play_lmp.finish_run("bc_s0", run, 0, 60.0, tmp_path, "other")
    assert bad["returncode"] == 1 and "not the stored other" in bad["error"]
    assert play_lmp.finish_run("bc_s0", run, 2, 60.0, tmp_path, "abc")["returncode"] == 2

    record = tmp_path / "runs.jsonl"
    tune_bench.record_run(record, bad)
    tune_bench.record_run(record, {**good, "tag": "play_gcbc_s0", "agent": "play_gcbc"})
    results = play_lmp.tabulate({"protocol_commit": "x", "data": {}, "runs": {}}, record)
    assert set(results["runs"]) == {"bc_s0", "play_gcbc_s0"}
    assert list(results["summary"]["start pose"]["agents"]) == ["play_gcbc"]  # the failed run is not summarised
    assert [r["tag"] for r in play_lmp.planned_runs(tmp_path, (0,))] == [
        "bc_s0", "play_gcbc_s0", "play_lmp_s0", "play_lmp_0.25h_s0", "play_lmp_0.5h_s0", "play_lmp_2h_s0"]


def test_play_lmp_protocol_commands_are_unchanged_by_the_smoke_option(tmp_path) -> None:
    pytest.importorskip("pybullet")
    import play_lmp

    run = play_lmp.planned_runs(tmp_path)[0]
    assert play_lmp.train_command(run, tmp_path)[-3:] == ["dataset:" + str(tmp_path / "expert_demos_100.npz"),
                                                          "collect:0", "hidden:128"]
    assert "10000" in play_lmp.train_command(run, tmp_path)
    assert play_lmp.train_command(run, tmp_path, play_lmp.SMOKE)[-1] == "suite_cases_per_task:1"


# -- calendar_pearl -----------------------------------------------------------------------------------------
def test_calendar_pearl_partial_report_compares_only_rows_that_exist(tmp_path) -> None:
    pytest.importorskip("rliable")
    import calendar_pearl

    def row(aer: float) -> dict:
        ci = {"mean": aer, "mean_ci": [aer, aer]}
        return {"aer": aer, "ord": 0.5, "err": 0.0, "format_failures": 0, "decisions": 4,
                "per_user": {"0": {"aer": aer, "ord": 0.5, "err": 0.0}, "11": {"aer": aer, "ord": 0.5, "err": 0.0}},
                "aer_per_user_ci": ci, "ord_per_user_ci": ci, "err_per_user_ci": ci}

    rows = {"SFT": row(0.5)}
    report = {"command": "c", "device": "cpu", "model": "m", "users": [0, 11], "eval_rounds": 4, "pilot": True,
              "rows": rows, "training": {"SFT": {"s_per_step": 1.0, "train_s": 2.0}},
              "failed": {"PEARL (SFT then GRPO)": "RuntimeError: no SFT run"}}
    calendar_pearl.write_report(report, tmp_path, "t")
    rows["zero-shot LLM"] = row(1.0)  # the next row lands in the same dict and the next report shows both
    calendar_pearl.write_report(report, tmp_path, "t")
    assert list(report["rows"]) == ["zero-shot LLM", "SFT"]  # the protocol's order
    assert list(report["comparisons"]) == ["aer: SFT - zero-shot LLM"]
    assert report["comparisons"]["aer: SFT - zero-shot LLM"]["mean"] == pytest.approx(-0.5)
    md = (tmp_path / "t.md").read_text()
    assert "Partial table" in md and "PEARL (SFT then GRPO) failed" in md


def test_calendar_pearl_lanes_share_rows_and_sft_training_through_the_record(tmp_path) -> None:
    """Two lanes write one jsonl: each lane's tables hold the other's rows, and SFT's training (its own
    line, no table row) reaches the lane that evaluates SFT or trains PEARL from it."""
    import calendar_pearl
    from tune_bench import record_run

    record = tmp_path / "t_rows.jsonl"
    record_run(record, {"row": "SFT training", "returncode": 0, "result": None,
                        "training": {"run": "/runs/llm_sft_1", "train_s": 10.0, "steps": 5, "s_per_step": 2.0}})
    record_run(record, {"row": "PPO", "returncode": 0, "result": {"aer": 0.7}, "training": {"train_s": 3.0}})
    record_run(record, {"row": "random", "returncode": 1, "error": "boom"})  # failed: not merged
    report = {"rows": {}, "training": {}, "failed": {"PPO": "an earlier error"}, "device": None, "model": "m"}
    calendar_pearl.merge_finished(report, calendar_pearl.finished_lines(record))
    assert report["rows"] == {"PPO": {"aer": 0.7}}
    assert report["training"]["SFT"]["run"] == "/runs/llm_sft_1" and report["training"]["PPO"]["train_s"] == 3.0
    assert report["failed"] == {}  # a row another lane finished is no longer failed
    assert list(calendar_pearl.ROW_KEYS.values())[3] == "SFT training"
    with pytest.raises(SystemExit):  # unknown lane keys are named with the valid ones before any work
        calendar_pearl.main(["--rows", "random,nope", "--tables-only"])


def test_calendar_pearl_report_carries_the_pearl_runs_sampling_speed(tmp_path) -> None:
    pytest.importorskip("rliable")
    import calendar_pearl

    run = tmp_path / "pearl_run"
    run.mkdir()
    (run / "metrics.csv").write_text("steps,time_tokens_per_s,rollout_decision_accuracy,rollout_format_failure_rate\n"
                                     "160,10.3,0.19,0.006\n")
    report = {"command": "c", "device": "cpu", "model": "m", "users": [0], "eval_rounds": 4, "pilot": False, "rows": {},
              "failed": {}, "training": {"PEARL": {"run": str(run), "train_s": 1430.0, "steps": 160, "s_per_step": 1430.0},
                                         "SFT": {"run": str(tmp_path / "gone"), "train_s": 1.0, "steps": 1, "s_per_step": 1.0}}}
    calendar_pearl.write_report(report, tmp_path, "t")
    assert report["training"]["PEARL"]["sampled_tokens_per_s"] == 10.3
    assert "sampled_tokens_per_s" not in report["training"]["SFT"]  # no folder: nothing made up
    assert "10.3 sampled tokens/s" in (tmp_path / "t.md").read_text()
