"""persistent_ssl's decision threshold: chosen by the ROC rule on recent stereo-labelled frames,
recomputed at each switching check, checkpointed; and the distance flown per minute, by cue."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch

import selfgym  # noqa: F401  (registers the selfgym/ ids)
from selfgym.agents import get_agent_class
from selfgym.agents.persistent_ssl_log import FlightWindow
from selfgym.env_factory import make_vec_env
from selfgym.envs.drone.episode_stats import EpisodeStats
from selfgym.envs.drone.monocular import RocWindow, roc_threshold
from selfgym.metrics import make_logger, read_metrics

torch.set_num_threads(1)


class _Hooks:
    def on_step(self, num_timesteps: int) -> bool:
        return True


def test_roc_rule_picks_the_lowest_fpr_threshold_with_tpr_above_the_bound():
    # 20 positives (label > 2.8): TPR > 0.95 allows missing none of them (19/20 = 0.95 is not > 0.95)
    pos_scores = np.linspace(2.0, 4.0, 20)  # the lowest positive scores 2.0
    neg_scores = np.array([0.5, 1.0, 1.5, 1.9, 2.1, 2.5, 3.0, 3.5, 1.2, 0.8])  # 4 of 10 at or above 2.0
    scores = np.concatenate([pos_scores, neg_scores])
    labels = np.concatenate([np.full(20, 4.0), np.full(10, 1.0)])
    tau, tpr, fpr = roc_threshold(scores, labels, gt_threshold=2.8, tpr_min=0.95)
    assert tau == pytest.approx(2.0, abs=1e-5) and tau < 2.0  # "obstacle" iff score >= 2.0
    assert tpr == 1.0 and fpr == pytest.approx(0.4)
    # with 21 positives one may be missed (20/21 > 0.95); a negative between the two lowest
    # positives makes the lower threshold cost a false alarm more: the rule skips it
    scores = np.concatenate([[1.95, 1.97], scores])
    labels = np.concatenate([[4.0, 1.0], labels])
    tau, tpr, fpr = roc_threshold(scores, labels, gt_threshold=2.8, tpr_min=0.95)
    assert tau == pytest.approx(2.0, abs=1e-5) and tpr == pytest.approx(20 / 21) and fpr == pytest.approx(4 / 11)
    tau, tpr, fpr = roc_threshold(scores, labels, gt_threshold=2.8, tpr_min=0.99)  # all 21 needed: down to 1.95
    assert tau == pytest.approx(1.95, abs=1e-5) and tpr == 1.0 and fpr == pytest.approx(5 / 11)


def _agent(calibrate_on: str, logger=None, roc_positives: int = 30):
    venv = make_vec_env("selfgym/DroneRoom-v0", 1, 0, dict(n_textures=1, flight_time=10.0,
                                                           disparity_mode="fast_from_depth"))
    agent = get_agent_class("persistent_ssl")(venv, device="cpu", seed=0, logger=logger, reward_modules=[],
                                              calibrate_on=calibrate_on, min_samples=150, roc_window=150,
                                              roc_positives=roc_positives,
                                              switch_check_every=25, refit_every=50, log_interval=200)
    scored = [0]
    checks: list[tuple[int, int, bool, float]] = []  # (step, frames scored so far, on mono, threshold) per check
    add, check = agent.roc.add, agent._update_switch

    def count(estimate: float, label: float) -> None:
        scored[0] += 1
        add(estimate, label)

    def spy() -> None:
        check()
        checks.append((agent.num_timesteps, scored[0], agent.on_mono, agent.tau_est))

    agent.roc.add, agent._update_switch = count, spy
    return agent, venv, checks


def _scored_on_mono(checks: list[tuple[int, int, bool, float]]) -> tuple[int, int]:
    """(frames flown on mono, frames scored into the window meanwhile), from the first check on mono."""
    first = next(i for i, c in enumerate(checks) if c[2])
    return checks[-1][0] - checks[first][0], checks[-1][1] - checks[first][1]


def test_threshold_is_calibrated_on_the_flight_it_is_used_on_and_survives_a_resume(tmp_path):
    logger, _ = make_logger(tmp_path)
    agent, venv, checks = _agent("stereo", logger)
    agent.learn(900, _Hooks())
    assert agent.switch_steps, "the monocular cue never met the switching rule"
    assert all(c[2] for c in checks[-4:]), "not on the monocular cue at the end"
    # every stereo frame of the mono flight is scored, not only the override frames that are buffered
    flown, scored = _scored_on_mono(checks)
    assert flown >= 200 and scored >= 0.9 * flown
    assert len({c[3] for c in checks if c[2]}) > 1, "the threshold was not recomputed at the switching checks"
    tau, tpr, fpr = roc_threshold(*agent.roc.pairs(), agent.tau_gt, agent.tpr_min)
    assert (agent.tau_est, agent.tpr, agent.fpr) == (tau, tpr, fpr)  # the rule on the window, as checked last
    assert agent.tau_est != agent.tau_gt  # calibrated, not the stereo threshold it starts from
    rows = read_metrics(tmp_path / "metrics.csv")
    assert rows[-1]["ssl_tau_est"] == pytest.approx(agent.tau_est)
    for column in ("persistence_distance_per_min", "persistence_distance_per_min_mono"):
        assert all(r.get(column) is not None for r in rows), column
    assert rows[-1]["persistence_distance_per_min_mono"] > 0 and math.isnan(rows[-1]["persistence_distance_per_min_stereo"])
    # a resumed agent keeps the threshold and the window it was chosen on, and flies by it
    buf = io.BytesIO()
    torch.save(agent.state_dict(), buf)
    buf.seek(0)
    clone, clone_venv, _ = _agent("stereo")
    clone.load_state_dict(torch.load(buf, weights_only=True))
    assert (clone.tau_est, clone.tpr, clone.fpr, clone.on_mono) == (agent.tau_est, agent.tpr, agent.fpr, agent.on_mono)
    for mine, theirs in zip(clone.roc.pairs(), agent.roc.pairs()):
        assert mine == pytest.approx(theirs)
    obs = venv.reset()
    for _ in range(20):
        action, _ = agent.predict(obs)
        clone_action, _ = clone.predict(obs)
        assert np.array_equal(action, clone_action)
        obs, *_ = venv.step(action)
    venv.close()
    clone_venv.close()


def test_buffered_calibration_scores_only_the_buffered_frames():
    agent, venv, checks = _agent("buffered", roc_positives=0)
    agent.learn(900, _Hooks())
    venv.close()
    # after the switch only the override frames are buffered, and only they are scored
    flown, scored = _scored_on_mono(checks)
    assert flown >= 200 and scored <= agent.total_overrides < 0.5 * flown


def test_roc_window_keeps_obstacle_frames_apart():
    window = RocWindow(gt_threshold=2.8, size=4, positives=2)
    for estimate, label in [(3.0, 4.0), (1.0, 1.0), (3.1, 4.1), (3.2, 4.2), (1.1, 1.1), (1.2, 1.2)]:
        window.add(estimate, label)
    assert not window.ready(min_samples=4)  # 3 clear frames of the 4 needed, though 2 obstacle frames are there
    for estimate in (1.3, 1.4):
        window.add(estimate, 1.0)
    assert window.ready(min_samples=4)
    estimates, labels = window.pairs()
    assert estimates.tolist() == [3.1, 3.2, 1.1, 1.2, 1.3, 1.4]  # the last 2 obstacle and the last 4 clear frames
    mixed = RocWindow(gt_threshold=2.8, size=3)  # positives=0: one window of the last 3 frames
    for estimate, label in [(3.0, 4.0), (1.0, 1.0), (3.1, 4.1), (1.1, 1.1)]:
        mixed.add(estimate, label)
    assert mixed.pairs()[0].tolist() == [1.0, 3.1, 1.1] and mixed.ready(min_samples=3)
    restored = RocWindow(gt_threshold=2.8, size=4, positives=2)
    restored.load_state_dict(window.state_dict())
    assert restored.pairs()[0] == pytest.approx(estimates)
    with pytest.raises(ValueError, match="positives"):
        RocWindow(2.8, size=10, positives=-1)


@pytest.mark.parametrize("setting, message", [
    (dict(calibrate_on="recent"), "calibrate_on 'recent'.*stereo, buffered"),
    (dict(buffer_on_mono="errors"), "buffer_on_mono 'errors'.*overrides, mistakes, all"),
])
def test_unknown_setting_is_named_with_the_valid_ones(setting, message):
    venv = make_vec_env("selfgym/DroneRoom-v0", 1, 0, dict(n_textures=1, disparity_mode="fast_from_depth"))
    with pytest.raises(ValueError, match=message):
        get_agent_class("persistent_ssl")(venv, device="cpu", seed=0, logger=None, reward_modules=[], **setting)
    venv.close()


def test_distance_per_minute_split_by_the_cue_flown_on():
    stats = EpisodeStats(dt=0.1)
    plan = [(True, 0.05), (True, 0.05), (True, 0.0), (False, 0.05), (None, 0.05)]  # None: no report this frame
    for on_mono, metres in plan:
        if on_mono is not None:
            stats.pilot(1.0, 2.0, 2.8, 1.0, 3.33, on_mono=on_mono, override=False)
        stats.step(metres, collided=False)
    out = stats.summary()
    assert out["distance_flown"] == pytest.approx(0.2)
    assert out["distance_per_min"] == pytest.approx(0.2 / (0.5 / 60))
    assert out["distance_per_min_mono"] == pytest.approx(0.1 / (0.3 / 60))
    assert out["distance_per_min_stereo"] == pytest.approx(0.05 / (0.1 / 60))

    window = FlightWindow(dt=0.1)
    for on_mono, metres in ((True, 0.05), (True, 0.0), (False, 0.05), (False, float("nan"))):
        window.frame(False, False, on_mono, float("nan"))
        window.moved(metres, on_mono)
    row = window.row()
    assert row["persistence/distance_per_min"] == pytest.approx(0.1 / (0.3 / 60))  # the NaN move is not counted
    assert row["persistence/distance_per_min_mono"] == pytest.approx(0.05 / (0.2 / 60))
    assert row["persistence/distance_per_min_stereo"] == pytest.approx(0.05 / (0.1 / 60))


def test_a_collision_moves_the_drone_nowhere():
    import gymnasium as gym

    env = gym.make("selfgym/DroneRoom-v0", n_textures=1, disparity_mode="fast_from_depth", flight_time=20.0)
    env.reset(seed=0)
    done, info, collisions = False, {}, 0
    while not done:  # fly straight ahead: into a wall or an obstacle
        _, _, terminated, truncated, info = env.step(np.array([1.0, 0.0], np.float32))
        collisions += int(info["frame"]["collision"])
        done = terminated or truncated
    assert collisions >= 1
    assert info["distance_flown"] == pytest.approx(0.05 * (200 - collisions))
    env.close()


# -- switching hysteresis (SwitchRule) ------------------------------------------------------
PASS, MARGINAL, CLEAR_FAIL = (0.97, 0.30), (0.97, 0.45), (0.97, 0.55)  # (window TPR, FPR) of one check


def _replay(rule, checks: list[tuple[float, float]]) -> list[bool]:
    """The cue flown after each check, from stereo."""
    on_mono, failing, flown = False, 0, []
    for tpr, fpr in checks:
        on_mono, failing = rule.next(on_mono, failing, tpr, fpr)
        flown.append(on_mono)
    return flown


def test_paper_rule_flips_with_every_check_and_hysteresis_waits_for_clear_failure():
    from selfgym.agents.persistent_ssl import SwitchRule

    checks = [MARGINAL, PASS, MARGINAL, MARGINAL, PASS, MARGINAL, MARGINAL, MARGINAL, (0.85, 0.2), PASS, CLEAR_FAIL]
    paper = SwitchRule()  # exit_patience=1: memoryless, fly on mono iff this check passes
    assert _replay(paper, checks) == [False, True, False, False, True, False, False, False, False, True, False]
    # looser bounds change nothing while the patience is 1: a clear failure is a failure
    assert _replay(SwitchRule(exit_tpr_min=0.9, exit_fpr_max=0.5, exit_patience=1), checks) == _replay(paper, checks)
    hysteresis = SwitchRule(exit_tpr_min=0.9, exit_fpr_max=0.5, exit_patience=3)
    # never onto mono without passing (the first marginal check); a pass resets the count; the third
    # marginal check in a row goes back; a TPR of 0.85 (< 0.9) or an FPR of 0.55 (> 0.5) at once
    assert _replay(hysteresis, checks) == [False, True, True, True, True, True, True, False, False, True, False]
    assert _replay(hysteresis, [PASS, (0.85, 0.2)]) == [True, False]
    assert _replay(hysteresis, [PASS, (float("nan"), 0.1), (0.97, float("nan")), (0.97, float("nan"))]) == [
        True, True, True, False]  # a class missing from the window fails the rule, but not clearly
    on_mono, failing = hysteresis.next(True, 2, *PASS)
    assert (on_mono, failing) == (True, 0)
    assert hysteresis.next(True, 1, *MARGINAL) == (True, 2)


def test_hysteresis_settings_are_checked_with_the_bad_value_named():
    from selfgym.agents.persistent_ssl import SwitchRule

    with pytest.raises(ValueError, match="exit_patience must be an integer >= 1.*got 0"):
        SwitchRule(exit_patience=0)
    with pytest.raises(ValueError, match="exit_fpr_max 0.3 must be >= fpr_max 0.4"):
        SwitchRule(exit_fpr_max=0.3)
    with pytest.raises(ValueError, match="exit_tpr_min 0.97 must be <= tpr_min 0.95"):
        SwitchRule(exit_tpr_min=0.97)


def test_failing_checks_are_checkpointed_and_the_restored_agent_leaves_mono_at_the_same_check():
    venv = make_vec_env("selfgym/DroneRoom-v0", 1, 0, dict(n_textures=1, disparity_mode="fast_from_depth"))
    make = get_agent_class("persistent_ssl")
    settings = dict(device="cpu", seed=0, logger=None, reward_modules=[], exit_tpr_min=0.9, exit_fpr_max=0.5,
                    exit_patience=3)
    agent = make(venv, **settings)
    for tpr, fpr in (PASS, MARGINAL, MARGINAL):
        agent.on_mono, agent.failing_checks = agent.switch_rule.next(agent.on_mono, agent.failing_checks, tpr, fpr)
    assert (agent.on_mono, agent.failing_checks) == (True, 2)
    buf = io.BytesIO()
    torch.save(agent.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    clone = make(venv, **settings)
    clone.load_state_dict(state)
    assert (clone.on_mono, clone.failing_checks) == (True, 2)
    assert clone.switch_rule.next(clone.on_mono, clone.failing_checks, *MARGINAL) == (False, 0)  # the third in a row
    del state["failing_checks"]  # a checkpoint from before hysteresis: no failing check counted
    old = make(venv, **settings)
    old.load_state_dict(state)
    assert (old.on_mono, old.failing_checks) == (True, 0)
    venv.close()


def test_hysteresis_keeps_the_cue_through_marginal_checks_in_training(monkeypatch):
    """_update_switch follows the rule on the window's own TPR/FPR, and records each switch."""
    import selfgym.agents.persistent_ssl as pssl

    venv = make_vec_env("selfgym/DroneRoom-v0", 1, 0, dict(n_textures=1, disparity_mode="fast_from_depth"))
    results = iter([(2.0, *PASS), (2.1, *MARGINAL), (2.2, *MARGINAL), (2.3, *PASS), (2.4, *CLEAR_FAIL)])
    monkeypatch.setattr(pssl, "roc_threshold", lambda *args: next(results))
    agent = get_agent_class("persistent_ssl")(venv, device="cpu", seed=0, logger=None, reward_modules=[],
                                              exit_tpr_min=0.9, exit_fpr_max=0.5, exit_patience=3)
    monkeypatch.setattr(agent.roc, "ready", lambda min_samples: True)
    monkeypatch.setattr(type(agent.estimator), "n_samples", property(lambda self: 10**6))  # as if it had learned
    flown = []
    for step in range(5):
        agent.num_timesteps = 50 * step
        agent._update_switch()
        flown.append((agent.on_mono, agent.tau_est))
    venv.close()
    assert flown == [(True, 2.0), (True, 2.1), (True, 2.2), (True, 2.3), (False, 2.4)]
    assert agent.switch_steps == [0, 200]


def test_flight_benchmark_reuses_only_runs_flown_with_todays_settings_and_appends(tmp_path, monkeypatch):
    import json
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import drone_flight_distance as bench

    hp, env_kwargs, steps = bench.default_job()
    # a record from before the exit keys and swept_path, when the job's learner was the texton kNN
    old_hp = {k: v for k, v in hp.items() if not k.startswith("exit_") and k != "swept_path"} | {"learner": "knn"}
    runs = [{"arm": arm, "seed": 0, "flights": []} for arm in ("stereo_only", "before", "after")]
    record = {"steps": steps, "episodes": 3, "env_kwargs": env_kwargs, "hyperparameters": old_hp, "time": "then",
              "arms": {"before": {"calibrate_on": "buffered", "roc_positives": 0}, "after": {}}, "runs": runs}
    stored = bench.reusable(record, hp, env_kwargs, env_kwargs, steps, 3)
    assert set(stored) == {("stereo_only", 0), ("before", 0), ("after", 0)}  # a missing key was the agent's default
    # another default for what is buffered on mono: the arms pin theirs, and stereo-only never flies on mono
    assert set(bench.reusable(record, {**hp, "buffer_on_mono": "mistakes"}, env_kwargs, env_kwargs, steps, 3)) == set(stored)
    assert not bench.reusable(record, hp, env_kwargs, {**env_kwargs, "texture_split": "test"}, steps, 3)  # other rooms
    record["hyperparameters"] = {**old_hp, "k": 7}
    assert not bench.reusable(record, hp, env_kwargs, env_kwargs, steps, 3)  # another kNN: nothing is reused
    assert not bench.reusable(record, hp, env_kwargs, env_kwargs, steps, 1)  # other flights
    assert bench.fpr_drift([(False, float("nan")), (False, 0.5), (True, 0.4), (True, 0.45), (False, 0.35)]) == {
        "fpr_change_per_check_mono": pytest.approx(-0.025), "fpr_change_per_check_stereo": pytest.approx(-0.1)}

    out = tmp_path / "flight"
    out.with_suffix(".json").write_text(json.dumps({"time": "first", "runs": []}))
    out.with_suffix(".md").write_text("# the earlier table\n")
    monkeypatch.setattr(bench, "report", lambda rec: f"# table of {rec['time']}\n")  # its contents: not tested here
    bench.write({"time": "second"}, out, append=True)
    bench.write({"time": "third"}, out, append=True)
    assert json.loads(out.with_suffix(".json").read_text()) == {"time": "first", "runs": [],
                                                                "appended": [{"time": "second"}, {"time": "third"}]}
    assert out.with_suffix(".md").read_text() == "# the earlier table\n\n# table of second\n\n# table of third\n"


# -- what is buffered while flying on the monocular cue (buffer_on_mono) -------------------------
# (smoothed monocular estimate, stereo cue, nearest strip): tau_est 2.0, obstacle_disparity 2.8, stop_disparity 5.0
SCRIPT = [(1.0, 1.0, 1.0),   # 0 right: clear and called clear
          (3.0, 1.0, 1.0),   # 1 false positive
          (1.0, 3.5, 3.5),   # 2 false negative, not imminent
          (1.0, 6.0, 6.0),   # 3 false negative, imminent: stereo overrides
          (3.0, 3.5, 3.5),   # 4 right: an obstacle called an obstacle
          (1.0, -1.0, 1.0),  # 5 no valid stereo cue: never labelled
          (1.0, 1.0, 6.0)]   # 6 a strip is imminent though the corridor is clear: an override


def _buffered(buffer_on_mono: str, on_mono: bool = True, strategy: str = "training_wheels") -> list[int]:
    """The script's frames (by index) that reach the learner's buffer, with their labels checked."""
    venv = make_vec_env("selfgym/DroneRoom-v0", 1, 0, dict(n_textures=1, disparity_mode="fast_from_depth"))
    agent = get_agent_class("persistent_ssl")(venv, device="cpu", seed=0, logger=None, reward_modules=[],
                                              buffer_on_mono=buffer_on_mono, strategy=strategy, smoothing=1,
                                              switch_check_every=10**6)
    agent.on_mono, agent.tau_est = on_mono, 2.0
    image = venv.reset()["image"]
    added: list[tuple[int, float]] = []
    frame = [0]
    agent.estimator.predict = lambda inputs: SCRIPT[frame[0]][0]
    agent.estimator.add = lambda inputs, label: added.append((frame[0], label))
    for frame[0], (_, cue, strip) in enumerate(SCRIPT):
        stereo = np.full((1, 8), 0.5, np.float32)
        stereo[0, 0], stereo[0, 3:] = cue, strip
        agent._act({"image": image, "stereo": stereo}, learn=True)
    venv.close()
    assert all(label == SCRIPT[i][1] for i, label in added)  # stereo's cue is the label
    return [i for i, _ in added]


def test_frames_buffered_on_the_monocular_cue_by_setting():
    assert _buffered("overrides") == [3, 6]  # imminent collisions only
    assert _buffered("mistakes") == [1, 2, 3, 6]  # and the false positive and the false negative
    assert _buffered("all") == [0, 1, 2, 3, 4, 6]  # every frame with a valid stereo cue
    for setting in ("overrides", "mistakes", "all"):  # on stereo every valid frame, whatever the setting
        assert _buffered(setting, on_mono=False) == [0, 1, 2, 3, 4, 6]
    assert _buffered("all", strategy="naive") == []  # no stereo after the switch: nothing to label with


