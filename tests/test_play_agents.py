"""Learning from play (issue 15): the losses, the mixture head, the window sampler, the offline
agents' save/load and their dataset checks. Fast: small networks on synthetic logs."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml

from selfgym import agents
from selfgym.agents.base import Agent
from selfgym.agents.play.networks import RecurrentPolicy, kl_diag_gaussians
from selfgym.agents.play.offline import resolve_dataset
from selfgym.agents.play_lmp import PlayLMPAgent
from selfgym.envs.play_table.dataset import PlayDataset, observation_layout
from selfgym.envs.play_table.demos import collect_demos
from selfgym.envs.play_table.heldout import TestCases, evaluate_cases, leaked_cases, make_test_cases
from selfgym.envs.play_table.primitives import ScriptedExpert
from selfgym.envs.play_table.tasks import TASK_NAMES

OBS, GOAL, ACT = 37, 22, 7


def write_log(path: Path, episode_lengths: list[int], kind: str = "play", layout: str | None = None,
              seed: int = 0) -> Path:
    """A synthetic log in the collector's format: obs[:, 0] = episode id, obs[:, 1] = step in episode."""
    rng = np.random.default_rng(seed)
    steps = sum(episode_lengths)
    ids = np.repeat(np.arange(len(episode_lengths)), episode_lengths).astype(np.int32)
    obs = rng.normal(size=(steps, OBS)).astype(np.float32)
    obs[:, 0] = ids
    obs[:, 1] = np.concatenate([np.arange(n) for n in episode_lengths])
    actions = np.tanh(obs[:, 2:2 + ACT] + 0.1 * rng.normal(size=(steps, ACT))).astype(np.float32)
    meta = {"kind": kind, "obs_layout": layout or observation_layout()}
    np.savez_compressed(path, meta=json.dumps(meta), obs=obs, actions=actions, scene_states=obs[:, OBS - GOAL:].copy(),
                        episode_ids=ids)
    return path


class GoalSpaces:
    """What an offline agent reads of its env: PlayTableGoal-v0's spaces (no simulation needed)."""

    observation_space = gym.spaces.Dict({"observation": gym.spaces.Box(-10, 10, (OBS,), np.float32),
                                         "achieved_goal": gym.spaces.Box(-10, 10, (GOAL,), np.float32),
                                         "desired_goal": gym.spaces.Box(-10, 10, (GOAL,), np.float32)})
    action_space = gym.spaces.Box(-1, 1, (ACT,), np.float32)
    num_envs = 1


class NoStop:
    def on_step(self, num_timesteps: int) -> bool:
        return True


# -- losses -------------------------------------------------------------------------------------
def test_kl_is_nonnegative_zero_for_equal_gaussians_and_matches_torch():
    gen = torch.Generator().manual_seed(0)
    mu_q, mu_p = torch.randn(500, 8, generator=gen), torch.randn(500, 8, generator=gen)
    ls_q, ls_p = torch.randn(500, 8, generator=gen), torch.randn(500, 8, generator=gen)
    kl = kl_diag_gaussians(mu_q, ls_q, mu_p, ls_p)
    assert kl.shape == (500,) and bool((kl >= 0).all()) and float(kl.min()) > 0
    assert torch.allclose(kl_diag_gaussians(mu_q, ls_q, mu_q, ls_q), torch.zeros(500), atol=1e-6)
    q = torch.distributions.Normal(mu_q, ls_q.exp())
    p = torch.distributions.Normal(mu_p, ls_p.exp())
    torch.testing.assert_close(kl, torch.distributions.kl_divergence(q, p).sum(-1), rtol=1e-4, atol=1e-4)


def test_lmp_kl_term_is_zero_when_proposer_equals_recogniser(tmp_path):
    """The agent's own KL: a proposer that outputs the recogniser's Gaussian adds nothing."""
    agent = PlayLMPAgent(GoalSpaces(), seed=0, dataset=str(write_log(tmp_path / "p.npz", [100])), hidden=16,
                         latent_dim=4, batch_size=4)
    obs, actions, goal = agent.sample_batch()
    posterior = agent.model.recognizer(obs, actions)
    agent.model.proposer.forward = lambda obs0, g: posterior  # p(z|s0,sg) := q(z|tau)
    _, numbers = agent.loss(obs, actions, goal)
    assert numbers["kl"] == pytest.approx(0.0, abs=1e-6)
    # a proposer mean off by 1 in every dimension: KL = sum_d 1 / (2 sigma_d^2)
    agent.model.proposer.forward = lambda obs0, g: (posterior[0] + 1.0, posterior[1])
    expected = (0.5 * torch.exp(-2 * posterior[1])).sum(-1).mean().item()
    assert agent.loss(obs, actions, goal)[1]["kl"] == pytest.approx(expected, rel=1e-4)


def _fit_toy(n_mixtures: int) -> tuple[float, float, torch.Tensor]:
    """Train a policy on a bimodal toy: from the same state, half the windows act +0.7, half -0.7."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    policy = RecurrentPolicy(3, 2, 0, 2, 32, n_mixtures, 256)
    opt = torch.optim.Adam(policy.parameters(), lr=3e-3)
    obs, goal = torch.zeros(64, 4, 3), torch.zeros(64, 2)
    losses = []
    for _ in range(250):
        sign = torch.randint(0, 2, (64, 1, 1), generator=gen).float() * 2 - 1
        actions = (0.7 * sign + 0.03 * torch.randn(64, 4, 2, generator=gen)).expand(64, 4, 2)
        dist, _ = policy(obs, goal, None)
        loss = -dist.log_prob(actions).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    with torch.no_grad():
        mode = policy(obs[:1], goal[:1], None)[0].mode()
    return float(np.mean(losses[:10])), float(np.mean(losses[-20:])), mode


def test_mixture_head_fits_a_multimodal_toy_that_a_unimodal_head_averages_away():
    first, mixture_final, mixture_mode = _fit_toy(5)
    _, unimodal_final, unimodal_mode = _fit_toy(1)
    assert mixture_final < first - 3.0  # the loss falls
    # two action dims, each about log(1/0.5) + bin entropy for the mixture, a wide logistic for one component
    assert mixture_final < unimodal_final - 2.0, (mixture_final, unimodal_final)
    assert bool((mixture_mode.abs() > 0.55).all())  # a real mode: one of the demonstrated actions
    assert bool((unimodal_mode.abs() < 0.4).all())  # the average of the two: an action nobody took


# -- windows ------------------------------------------------------------------------------------
def test_windows_never_cross_an_episode_boundary(tmp_path):
    lengths = [5, 40, 33, 31, 70, 2, 50]
    data = PlayDataset(write_log(tmp_path / "p.npz", lengths))
    rng = np.random.default_rng(0)
    for window in (1, 8, 16, 32):
        for at_end in (False, True):
            batch = data.sample_windows(512, window, rng, goal_at_episode_end=at_end)
            episode = batch["obs"][:, :, 0]
            assert bool((episode == episode[:, :1]).all()), (window, at_end)
            assert bool((batch["goal_obs"][:, 0] == episode[:, 0]).all())  # the goal is in the same episode
            step = batch["obs"][:, :, 1]
            assert bool((np.diff(step, axis=1) == 1).all())  # consecutive steps of one episode
            if at_end:  # the episode's last state
                last = np.array(lengths)[episode[:, 0].astype(int)] - 1
                assert bool((batch["goal_obs"][:, 1] == last).all())
            else:
                assert bool((batch["goal_obs"][:, 1] == step[:, -1] + 1).all())
    # episodes shorter than the window are never sampled, and one that exactly fits is
    starts = data.valid_starts(32)
    assert set(np.unique(data.episode_ids[starts])) == {1, 2, 4, 6}


# -- save and load ------------------------------------------------------------------------------
def _rollout_actions(agent, observations, deterministic: bool = True) -> np.ndarray:
    state, actions = None, []
    for t, obs in enumerate(observations):
        action, state = agent.predict(obs, state, np.array([t == 0]), deterministic=deterministic)
        actions.append(action)
    return np.concatenate(actions)


@pytest.mark.parametrize("name", ["play_lmp", "play_gcbc", "bc"])
def test_offline_agent_saved_and_loaded_reproduces_its_actions(tmp_path, name):
    kind = "expert_demos" if name == "bc" else "play"
    log = write_log(tmp_path / "d.npz", [60, 45, 80], kind=kind)
    cls = agents.get_agent_class(name)
    small = dict(dataset=str(log), hidden=16, batch_size=8, window=8, replan_every=8)
    agent = cls(GoalSpaces(), seed=0, **small, **({"latent_dim": 4} if name == "play_lmp" else {}))
    assert isinstance(agent, Agent)
    agent.learn(5, NoStop())
    assert agent.num_timesteps == 5  # gradient steps
    torch.save(agent.state_dict(), tmp_path / "agent.pt")
    rng = np.random.default_rng(3)
    observations = [{"observation": rng.normal(size=(1, OBS)).astype(np.float32),
                     "desired_goal": rng.normal(size=(1, GOAL)).astype(np.float32)} for _ in range(20)]  # > 2 replans
    before = _rollout_actions(agent, observations)
    fresh = cls(GoalSpaces(), seed=1, **small, **({"latent_dim": 4} if name == "play_lmp" else {}))
    assert not np.allclose(_rollout_actions(fresh, observations), before)  # the weights matter
    fresh.load_state_dict(torch.load(tmp_path / "agent.pt", weights_only=True))
    np.testing.assert_array_equal(_rollout_actions(fresh, observations), before)
    assert fresh.num_timesteps == 5
    torch.manual_seed(7)
    sampled = _rollout_actions(agent, observations, deterministic=False)
    torch.manual_seed(7)
    np.testing.assert_array_equal(_rollout_actions(fresh, observations, deterministic=False), sampled)
    assert np.abs(sampled).max() <= 1.0 and not np.array_equal(sampled, before)
    assert before.shape == (20, ACT) and np.abs(before).max() <= 1.0
    # the sampler continues where it was: the next batch is the same for both
    np.testing.assert_array_equal(agent.sample_batch()[1].numpy(), fresh.sample_batch()[1].numpy())


# -- bad input ----------------------------------------------------------------------------------
def test_missing_dataset_names_the_file_and_how_to_make_it(tmp_path):
    missing = tmp_path / "nope.npz"
    with pytest.raises(FileNotFoundError, match=f"{missing}.*python -m selfgym.envs.play_table.collect"):
        resolve_dataset("play_lmp", "play", {"dataset": str(missing)})
    with pytest.raises(FileNotFoundError, match="python -m selfgym.envs.play_table.demos"):
        resolve_dataset("bc", "expert_demos", {"dataset": str(missing), "collect": 0})


def test_training_without_a_dataset_says_how_to_make_one():
    with pytest.raises(ValueError, match=r"no dataset is named.*collect --hours 1 --out data.npz.*-params dataset:"):
        resolve_dataset("play_lmp", "play", {"dataset": None})


def test_corrupt_dataset_is_refused_naming_it(tmp_path):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file at all" * 10)
    with pytest.raises(ValueError, match=f"{garbage}: not a readable .npz play log"):
        resolve_dataset("play_lmp", "play", {"dataset": str(garbage)})
    good = write_log(tmp_path / "good.npz", [300])
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match=f"{truncated}: not a readable .npz play log"):
        resolve_dataset("play_lmp", "play", {"dataset": str(truncated)})


def test_dataset_with_another_observation_layout_is_refused_naming_both(tmp_path):
    swapped = observation_layout().replace("drawer:1,door:1", "door:1,drawer:1")
    log = write_log(tmp_path / "old.npz", [100], layout=swapped)
    with pytest.raises(ValueError) as err:
        resolve_dataset("play_lmp", "play", {"dataset": str(log)})
    assert swapped in str(err.value) and observation_layout() in str(err.value) and str(log) in str(err.value)
    with pytest.raises(ValueError, match="holds 'play' data; this agent learns from 'expert_demos'"):
        resolve_dataset("bc", "expert_demos", {"dataset": str(write_log(tmp_path / "p.npz", [100]))})


def test_a_dataset_changed_since_the_run_recorded_it_is_refused(tmp_path):
    log = write_log(tmp_path / "p.npz", [100])
    resolved = resolve_dataset("play_lmp", "play", {"dataset": str(log)})
    assert resolved["dataset"] == str(log.resolve()) and len(resolved["dataset_sha256"]) == 64
    assert resolve_dataset("play_lmp", "play", resolved) == resolved  # a resume of an unchanged file passes
    write_log(log, [100], seed=1)
    with pytest.raises(ValueError, match="changed since this run recorded it"):
        resolve_dataset("play_lmp", "play", resolved)
    log.unlink()  # gone: refused, never silently collected again (it could not have the recorded hash)
    with pytest.raises(FileNotFoundError, match=f"dataset {log} of this run is missing"):
        resolve_dataset("play_lmp", "play", {**resolved, "collect": 0.01})
    assert not log.exists()


# -- through train.py -----------------------------------------------------------------------------
def test_train_py_records_the_dataset_counts_gradient_steps_and_resumes(run_cli, tmp_path):
    log = write_log(tmp_path / "play.npz", [120, 90])
    common = ["--env", "selfgym/PlayTableGoal-v0", "--agent", "play_gcbc", "--seed", "0", "--eval-freq", "0",
              "--no-final-eval", "--save-freq", "10"]
    small = ["-params", "dataset:play.npz", "hidden:16", "batch_size:8", "window:8", "log_interval:5",
             "suite_log_every:20", "suite_log_cases:1"]
    done = run_cli("train.py", *common, "-n", "10", *small)
    assert done.returncode == 0, done.stderr
    run = tmp_path / "logs" / "play_gcbc" / "selfgym-PlayTableGoal-v0_1"
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["hyperparams"]["dataset"] == str(log.resolve())
    assert config["hyperparams"]["dataset_sha256"] == resolve_dataset("x", "play", {"dataset": str(log)})["dataset_sha256"]
    header, *rows = (run / "metrics.csv").read_text().splitlines()
    assert "train_nll" in header.split(",") and [r.split(",")[0] for r in rows] == ["5", "10"]
    resumed = run_cli("train.py", "-i", str(run), "-n", "20", "--no-final-eval")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((run / "status.json").read_text())["num_timesteps"] == 20
    header, *rows = (run / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows] == ["5", "10", "15", "20"]
    columns = dict(zip(header.split(","), rows[-1].split(",")))  # per-task success on held-out cases at step 20
    assert {f"suite_{task}" for task in TASK_NAMES} <= set(columns) and 0.0 <= float(columns["suite_mean_success"]) <= 1.0
    write_log(log, [120, 90], seed=5)  # the dataset changes under the run
    refused = run_cli("train.py", "-i", str(run), "-n", "30", "--no-final-eval")
    assert refused.returncode == 2 and "changed since this run recorded it" in refused.stderr
    missing = run_cli("train.py", *common, "-n", "10", "-params", "dataset:gone.npz", "collect:0")
    assert missing.returncode == 2 and "gone.npz not found. Make it with: python -m selfgym.envs.play_table.collect" in missing.stderr
    assert not (tmp_path / "logs" / "play_gcbc" / "selfgym-PlayTableGoal-v0_2").exists()


# -- the 18-task protocol -------------------------------------------------------------------------
class ExpertPolicy:
    """The scripted expert behind SB3's predict signature: replans at an episode's start."""

    def __init__(self, task: str) -> None:
        self.task = task

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        if episode_start is not None and bool(episode_start[0]):
            state = ScriptedExpert(self.task)
        return state.act(observation["observation"][0])[None], state


class StillPolicy:
    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        return np.zeros((1, ACT), np.float32), state


def test_heldout_cases_are_fixed_by_seed_reproducible_and_never_in_training_data(tmp_path):
    tasks = ("open_drawer", "push_blue_button", "sweep_left")
    cases = make_test_cases(2, tasks=tasks)
    assert len(cases) == 6 and make_test_cases(2, tasks=tasks).digest() == cases.digest()
    cases.save(tmp_path / "cases.npz")
    assert TestCases.load(tmp_path / "cases.npz").digest() == cases.digest()
    demos = collect_demos(2, tasks=tasks, progress=False)  # BC's training data, made the same way
    assert leaked_cases(cases, demos["scene_states"]) == []
    leaked = np.concatenate([demos["scene_states"], cases.starts[3:4]])
    assert leaked_cases(cases, leaked) == [3]  # the check finds a case that did leak
    # the task's detector decides: the expert from the stored start solves its cases, standing still does not
    for task in tasks:
        mine = TestCases(*(a[cases.task_ids == TASK_NAMES.index(task)] for a in
                           (cases.task_ids, cases.seeds, cases.starts, cases.goals)))
        assert evaluate_cases(ExpertPolicy(task), mine)["mean"] == 1.0
        assert evaluate_cases(StillPolicy(), mine, max_steps=30)["mean"] == 0.0
    moved = evaluate_cases(ExpertPolicy("push_blue_button"), cases, perturbation=0.15, max_steps=30)
    assert moved["perturbation_m"] == 0.15 and set(moved["per_task"]) == set(tasks)


def test_play_lmp_reports_its_plan_space_for_the_test_cases(tmp_path):
    agent = PlayLMPAgent(GoalSpaces(), seed=0, dataset=str(write_log(tmp_path / "p.npz", [100])), hidden=16,
                         latent_dim=4, batch_size=4)
    cases = make_test_cases(2, tasks=("open_drawer", "push_blue_button"))
    pca = agent.describe_cases(cases)["plan_pca"]
    assert pca["tasks"] == ["open_drawer"] * 2 + ["push_blue_button"] * 2
    xy = np.array(pca["xy"])
    assert xy.shape == (4, 2) and np.allclose(xy.mean(0), 0, atol=1e-3) and xy.std() > 0
    assert 0 < sum(pca["explained_variance"]) <= 1.0 + 1e-6


def test_a_missing_dataset_is_collected_when_the_hyperparameters_say_how_much(tmp_path):
    play = resolve_dataset("play_lmp", "play", {"dataset": str(tmp_path / "new" / "play.npz"), "collect": 0.002})
    data = PlayDataset(play["dataset"])
    assert len(data) == 216 and data.meta["kind"] == "play" and data.layout == observation_layout()
    assert not list((tmp_path / "new").glob("*.collecting*"))  # written under a temporary name, then renamed
    demos = resolve_dataset("bc", "expert_demos", {"dataset": str(tmp_path / "demos.npz"), "collect": 1})
    data = PlayDataset(demos["dataset"])
    assert data.meta["kind"] == "expert_demos" and int(data.episode_ids[-1]) + 1 == len(TASK_NAMES)
