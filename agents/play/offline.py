"""What every offline play agent does the same way: its dataset, normalisation, the training
loop on the Agent protocol, and acting with a recurrent policy that replans every kappa steps.

Steps. An offline agent never steps an env while it learns, so ``num_timesteps`` counts
*gradient steps* (one batch of ``batch_size`` windows each): ``-n``, ``--save-freq``,
``--eval-freq``, metrics.csv's ``steps`` column and checkpoints are all in gradient steps.

Datasets. The hyperparameter ``dataset`` names an .npz log; ``resolve_dataset`` (called by
train.py before any run folder exists) makes the path absolute, collects the log when it is
missing and ``collect`` says how much, checks it can be read and has the env's observation
layout, and adds its ``dataset_sha256``, so config.yaml records path and hash. On resume the
recorded hash must match the file. Evaluation never opens the dataset: the normaliser's
statistics are part of the agent's state.

Pixels. On ``PlayTablePixelsGoal-v0`` the same agents read the camera image and proprioception
through a CNN encoder trained with them (``agents/play/pixels.py``), from a pixel log whose
layout names the image size; a state log is refused there, and a pixel log on the state env.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from selfgym import runs
from selfgym.agents.base import TrainingHooks
from selfgym.agents.play import pixels as px
from selfgym.envs.play_table.collect import save_play
from selfgym.envs.play_table.dataset import PlayDataset, observation_layout, pixel_observation_layout
from selfgym.envs.play_table.demos import save_demos
from selfgym.envs.play_table.heldout import (TestCases, evaluate_cases, format_suite, make_test_cases,
                                             start_observations, start_pixel_observations)
from selfgym.envs.play_table.env import PlayTableGoalEnv
from selfgym.envs.play_table.pixels import PlayTablePixelsGoalEnv

# dataset kind -> (what it is, the command that makes one)
HOW_TO_MAKE = {
    "play": ("a play log", "python -m selfgym.envs.play_table.collect --hours 1 --out {path}",
             "-params collect:1.0 collects that many hours when the file is missing"),
    "expert_demos": ("expert demonstrations", "python -m selfgym.envs.play_table.demos --per-task 50 --out {path}",
                     "-params collect:50 collects that many demonstrations per task when the file is missing"),
}


def resolve_dataset(agent: str, kind: str, hyperparams: dict[str, Any], image_size: int | None = None) -> dict[str, Any]:
    """The hyperparameters with ``dataset`` absolute and ``dataset_sha256`` filled in (see module doc);
    ``image_size``: the env is the pixel goal env at that camera size (a pixel log is needed)."""
    what, command, auto = HOW_TO_MAKE[kind]
    if image_size is not None:
        what, command = f"{what} with {image_size} px images", f"{command} --pixels {image_size}"
    name = hyperparams.get("dataset")
    if not name:
        raise ValueError(f"{agent} learns offline from {what} and no dataset is named. Make one with: "
                         f"{command.format(path='data.npz')} and train with -params dataset:data.npz ({auto})")
    path = Path(str(name)).expanduser().resolve()
    recorded = hyperparams.get("dataset_sha256")
    if not path.exists() and recorded:  # a resumed run: a new collection could not have its recorded hash
        raise FileNotFoundError(f"dataset {path} of this run is missing (recorded sha256 {recorded}); put it back")
    if not path.exists():
        amount = hyperparams.get("collect")
        if not amount:
            raise FileNotFoundError(f"dataset {path} not found. Make it with: {command.format(path=path)} "
                                    f"(or {auto})")
        path.parent.mkdir(parents=True, exist_ok=True)
        print(f"dataset {path} not found: collecting {what} ({amount})", flush=True)
        tmp = path.with_name(path.stem + ".collecting.npz")
        if kind == "play":
            save_play(str(tmp), float(amount), pixels=image_size)
        else:
            save_demos(str(tmp), int(amount), pixels=image_size)
        tmp.replace(path)
    digest = runs.sha256_file(path)
    if recorded and recorded != digest:
        raise ValueError(f"dataset {path} changed since this run recorded it: sha256 {digest}, recorded {recorded}")
    data = PlayDataset(path)
    # any image size here: --env-kwargs image_size:N is not known yet; the agent checks the size
    check_layout(data, kind, None if image_size is None else pixel_observation_layout(image_size), any_image_size=True)
    return {**hyperparams, "dataset": str(path), "dataset_sha256": digest}


def check_layout(data: PlayDataset, kind: str, pixel_layout: str | None = None, any_image_size: bool = False) -> None:
    """Refuse a log whose observations are laid out unlike this PlayTable's (both named);
    ``pixel_layout``: the pixel env's layout, for a pixel agent (default: the state layout);
    ``any_image_size``: a pixel log of another image size passes (its size is checked later)."""
    found = data.layout if data.layout is not None else f"{data.obs.shape[1]} floats (layout not recorded)"
    if pixel_layout is not None:
        same = data.layout == pixel_layout or (any_image_size and str(data.layout).startswith("image:")
                                               and str(data.layout).split("|")[1:] == pixel_layout.split("|")[1:])
        if not same or data.images is None:
            raise ValueError(f"dataset {data.path} was collected with observation layout {found}; this env "
                             f"observes {pixel_layout}. Collect a pixel log with --pixels {pixel_layout[6:].split('x')[0]}")
    else:
        expected = observation_layout()
        dim = sum(int(item.rsplit(":", 1)[1]) for part in expected.split("|") for item in part.split(","))
        if data.obs.shape[1] != dim or (data.layout is not None and data.layout != expected):
            raise ValueError(f"dataset {data.path} was collected with observation layout {found}; "
                             f"this env observes {expected} ({dim} floats). Collect it again with this version")
    recorded_kind = data.meta.get("kind")
    if recorded_kind is not None and recorded_kind != kind:
        raise ValueError(f"dataset {data.path} holds {recorded_kind!r} data; this agent learns from {kind!r} "
                         f"({HOW_TO_MAKE[kind][0]})")


class Normalizer(nn.Module):
    """Per-float mean/std of the dataset's observations (a buffer, so it is saved with the weights)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def fit(self, values: np.ndarray) -> None:
        self.mean.copy_(torch.as_tensor(values.mean(0)))
        self.std.copy_(torch.as_tensor(np.maximum(values.std(0), 1e-2)))  # constant floats (a stuck light) stay finite

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        return (values - self.mean) / self.std


class OfflinePlayAgent:
    """The offline-agent machinery; a subclass sets ``dataset_kind`` and defines ``build``,
    ``loss`` and ``propose`` (the plan for a new window, or None for a plan-free policy).

    Args (hyperparameters, ``hyperparams/<agent>.yml`` or ``-params``):
        dataset: the .npz log to learn from (a play log, or expert demonstrations for ``bc``).
        dataset_sha256: the log's hash; filled in by train.py, checked on resume.
        collect: when ``dataset`` is missing, collect it: hours of play, or demonstrations per task.
        window: training window length kappa (steps); the paper's 32.
        goal: what the policy is conditioned on: ``"scene"`` (the env's 22-float desired goal) or
            ``"observation"`` (the whole goal observation, hand + scene: the paper's s_g = s_{k+kappa};
            in training the window-end observation, at test the demonstration's last observation,
            which ``heldout.run_case`` passes as ``goal_observation``; where only a scene goal is
            given, as in PlayTableGoal-v0's own episodes, the hand part is the current hand's).
            Why: with a scene goal 82% of play windows end with the scene unchanged and carry no
            goal information; benchmarks/results/play_lmp_diagnosis.md (0.29 vs 0.04 in a pilot).
        goal_horizon: 0 (the paper's relabelling): a window's goal is the state right after it.
            N >= window: the goal is the state a uniform window..N steps after the window's start
            (still in the same episode), so goals further away than one window, as a held-out
            task's goal from the start pose is, are in the training distribution. Play only.
        replan_every: at test time the recurrent policy restarts (and Play-LMP draws a new plan
            from the proposer) every this many steps; kappa, as trained.
        batch_size: windows per gradient step.
        learning_rate: Adam's.
        hidden: width of every recurrent and MLP layer.
        n_mixtures: logistic components per action dimension (1 = a unimodal head).
        bins: discretisation of each action dimension over [-1, 1] (the paper's 256).
        grad_clip: global gradient-norm clip.
        log_interval: gradient steps per metrics.csv row.
        suite_cases_per_task: held-out test cases per task in evaluate.py's 18-task table
            (``envs/play_table/heldout.py``); 0 leaves the table out.
        suite_perturbation: metres the hand is pushed from its start pose in the table's
            robustness column (0: no such column).
        suite_log_every: every this many gradient steps, score the policy on
            ``suite_log_cases`` held-out cases per task (start pose) and log per-task success
            in metrics.csv (``suite_<task>``, ``suite_mean_success``); 0 never.
        suite_log_cases: cases per task for ``suite_log_every`` (the first of the held-out set).
        image_features: pixel envs only: width of the CNN encoder's output per image (64 if
            not given); on pixels ``goal`` is ``"image"`` (the goal frame, the paper's) or
            ``"observation"`` (the goal frame and the goal's proprioception).
    """

    dataset_kind = "play"
    goal_at_episode_end = False

    def __init__(self, env: Any, *, device: str = "auto", seed: int | None = None, logger: Any = None,
                 reward_modules: list | None = None, dataset: str | None = None, dataset_sha256: str | None = None,
                 collect: float | None = None, window: int = 32, goal: str = "scene", goal_horizon: int = 0,
                 replan_every: int = 32,
                 batch_size: int = 64,
                 learning_rate: float = 1e-3, hidden: int = 256, n_mixtures: int = 5, bins: int = 256,
                 grad_clip: float = 1.0, log_interval: int = 100, suite_cases_per_task: int = 20,
                 suite_perturbation: float = 0.15, suite_log_every: int = 0, suite_log_cases: int = 3,
                 image_features: int | None = None) -> None:
        space = env.observation_space
        self.pixels = px.pixel_spec(space, goal, image_features)  # None: state observations
        if self.pixels is None and not (isinstance(space, gym.spaces.Dict) and {"observation", "desired_goal"} <= set(space.spaces)):
            raise ValueError(f"{type(self).__name__} acts in a goal env (Dict with 'observation' and 'desired_goal', "
                             f"e.g. selfgym/PlayTableGoal-v0, or selfgym/PlayTablePixelsGoal-v0), got {space}")
        if not isinstance(env.action_space, gym.spaces.Box):
            raise ValueError(f"{type(self).__name__} needs continuous (Box) actions, got {env.action_space}")
        if reward_modules:
            raise ValueError(f"{type(self).__name__} learns offline by imitation: it takes no --reward modules")
        for name, value in (("window", window), ("replan_every", replan_every), ("batch_size", batch_size),
                            ("n_mixtures", n_mixtures), ("hidden", hidden), ("log_interval", log_interval)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
        if isinstance(goal_horizon, bool) or not isinstance(goal_horizon, int) or not (goal_horizon == 0 or goal_horizon >= window):
            raise ValueError(f"goal_horizon must be 0 (the goal right after the window) or a whole number >= window "
                             f"({window}), got {goal_horizon!r}")
        if goal_horizon and self.goal_at_episode_end:
            raise ValueError(f"{type(self).__name__} takes each demonstration's last state as its goal; "
                             f"goal_horizon ({goal_horizon}) is for play logs")
        self.goal_horizon = goal_horizon or None
        if self.pixels is None and goal not in ("scene", "observation"):
            raise ValueError(f"goal must be 'scene' or 'observation', got {goal!r}")
        self.goal = goal
        if isinstance(suite_cases_per_task, bool) or not isinstance(suite_cases_per_task, int) or suite_cases_per_task < 0:
            raise ValueError(f"suite_cases_per_task must be a whole number >= 0, got {suite_cases_per_task!r}")
        if not (isinstance(suite_perturbation, (int, float)) and 0.0 <= suite_perturbation <= 0.5):
            raise ValueError(f"suite_perturbation must be in [0, 0.5] metres, got {suite_perturbation!r}")
        self.suite_cases_per_task, self.suite_perturbation = suite_cases_per_task, float(suite_perturbation)
        for name, value in (("suite_log_every", suite_log_every), ("suite_log_cases", suite_log_cases)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")
        self.suite_log_every, self.suite_log_cases = suite_log_every, suite_log_cases
        self._log_cases: TestCases | None = None
        if not isinstance(bins, int) or bins < 2:
            raise ValueError(f"bins must be a whole number >= 2, got {bins!r}")
        self.dataset, self.dataset_sha256, self.window, self.replan_every = dataset, dataset_sha256, window, replan_every
        self.batch_size, self.grad_clip, self.log_interval, self.logger = batch_size, grad_clip, log_interval, logger
        self.device = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                                   "cpu" if device == "auto" else device)
        self.scene_dim = int(space["desired_goal"].shape[0])
        if self.pixels is not None:  # the networks read encoded images + proprioception
            self.obs_dim, self.goal_dim = self.pixels.obs_dim, self.pixels.goal_dim
        else:
            self.obs_dim = int(space["observation"].shape[0])
            self.goal_dim = self.obs_dim if goal == "observation" else self.scene_dim
        self.action_dim = int(env.action_space.shape[0])
        self.goal_slice = slice(self.obs_dim - self.goal_dim, self.obs_dim)  # the scene part, or all of it
        self.hidden, self.n_mixtures, self.bins = hidden, n_mixtures, bins
        if seed is not None:
            torch.manual_seed(seed)
        self.sampler_rng = np.random.default_rng(seed)
        self.normalizer = Normalizer(self.pixels.proprio_dim if self.pixels else self.obs_dim).to(self.device)
        model = self.build()
        if self.pixels is not None:
            model.encoder = px.PixelEncoder(self.pixels.image_size, self.pixels.features)
        self.model = model.to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=learning_rate)
        self.num_timesteps = 0
        self.fitted = False  # the normaliser has the dataset's statistics
        self._data: PlayDataset | None = None

    # -- to define in a subclass -------------------------------------------------------------
    def build(self) -> nn.Module:
        raise NotImplementedError

    def loss(self, obs: torch.Tensor, actions: torch.Tensor, goal: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """The training loss of a batch of normalised windows, and the numbers to log."""
        raise NotImplementedError

    def propose(self, obs: torch.Tensor, goal: torch.Tensor, deterministic: bool) -> torch.Tensor | None:
        """The plan for a window starting at ``obs`` (B, D) toward ``goal`` (B, G); None if plan-free."""
        raise NotImplementedError

    @classmethod
    def resolve_hyperparams(cls, hyperparams: dict[str, Any], env_id: str) -> dict[str, Any]:
        """train.py's hook, before any run folder exists: find, check and hash the dataset."""
        return resolve_dataset(getattr(cls, "agent_name", cls.__name__), cls.dataset_kind, hyperparams,
                               px.env_image_size(env_id))

    # -- data --------------------------------------------------------------------------------
    def normalize_goal(self, goal: torch.Tensor) -> torch.Tensor:
        return (goal - self.normalizer.mean[self.goal_slice]) / self.normalizer.std[self.goal_slice]

    def _load_data(self) -> PlayDataset:
        if self._data is None:
            if not self.dataset:
                resolve_dataset(type(self).__name__, self.dataset_kind, {})  # raises, saying how to make one
            data = PlayDataset(str(self.dataset))
            check_layout(data, self.dataset_kind, self.pixels.layout if self.pixels else None)
            obs_dim = self.pixels.proprio_dim if self.pixels else self.obs_dim
            if data.obs.shape[1] != obs_dim or data.actions.shape[1] != self.action_dim:
                raise ValueError(f"dataset {self.dataset}: observations {data.obs.shape[1]} / actions "
                                 f"{data.actions.shape[1]} floats, the env has {obs_dim} / {self.action_dim}")
            if not self.fitted:
                self.normalizer.fit(data.obs)
                self.fitted = True
            self._data = data
        return self._data

    def sample_batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch = self._load_data().sample_windows(self.batch_size, self.window, self.sampler_rng,
                                                 goal_at_episode_end=self.goal_at_episode_end,
                                                 goal_horizon=self.goal_horizon, images=self.pixels is not None)
        to = lambda a: torch.as_tensor(a, dtype=torch.float32, device=self.device)  # noqa: E731
        if self.pixels is not None:  # uint8 to the device, encoded there (inside the graph: trained end to end)
            frames = lambda a: torch.as_tensor(a, device=self.device)  # noqa: E731
            obs, goal = px.encode(self.model, self.normalizer, self.pixels, frames(batch["images"]), to(batch["obs"]),
                                  frames(batch["goal_images"]), to(batch["goal_obs"]))
            return obs, to(batch["actions"]), goal
        goal = batch["goal_obs"] if self.goal == "observation" else batch["goal"]
        return self.normalizer(to(batch["obs"])), to(batch["actions"]), self.normalize_goal(to(goal))

    # -- Agent protocol ----------------------------------------------------------------------
    def learn(self, total_timesteps: int, hooks: TrainingHooks) -> None:
        """Gradient steps until ``num_timesteps`` (gradient steps) reaches ``total_timesteps``."""
        self._load_data()
        self.model.train()
        sums: dict[str, float] = {}
        start, steps_at_start = time.time(), self.num_timesteps
        while self.num_timesteps < total_timesteps:
            loss, numbers = self.loss(*self.sample_batch())
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            numbers["grad_norm"] = float(nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip))
            self.optimizer.step()
            self.num_timesteps += 1
            for key, value in numbers.items():
                sums[key] = sums.get(key, 0.0) + value
            if self.suite_log_every and self.num_timesteps % self.suite_log_every == 0:
                self._log_suite()
            if self.num_timesteps % self.log_interval == 0:
                self._log(sums, (self.num_timesteps - steps_at_start) / max(time.time() - start, 1e-9))
                sums = {}
            if not hooks.on_step(self.num_timesteps):
                break

    def _log_suite(self) -> None:
        """Per-task success on a few held-out cases, into the next metrics.csv row."""
        if self.logger is None or self.suite_log_cases == 0:
            return
        if self._log_cases is None:
            self._log_cases = self.test_cases(self.suite_log_cases)
        result = evaluate_cases(self, self._log_cases, deterministic=True, make_env=self.case_env)
        for task, rate in result["per_task"].items():
            self.logger.record(f"suite/{task}", rate)
        self.logger.record("suite/mean_success", result["mean"])
        self.model.train()

    def _log(self, sums: dict[str, float], steps_per_s: float) -> None:
        if self.logger is None:
            return
        self.logger.record("time/total_timesteps", self.num_timesteps)
        self.logger.record("time/fps", steps_per_s)
        self.logger.record("train/windows_per_s", steps_per_s * self.batch_size)
        for key, total in sums.items():
            self.logger.record(f"train/{key}", total / self.log_interval)
        self.logger.dump(self.num_timesteps)

    @torch.no_grad()
    def predict(self, observation: Any, state: Any = None, episode_start: np.ndarray | None = None,
                deterministic: bool = False) -> tuple[np.ndarray, Any]:
        """Actions for a batch of goal-env observations; ``state`` carries the recurrent policy's
        memory and plan between calls (pass back what was returned, as SB3's recurrent agents do)."""
        if self.pixels is not None:
            obs, goal = px.encode(self.model, self.normalizer, self.pixels,
                                  *px.observation_inputs(observation, self.pixels, self.device))
        else:
            if not isinstance(observation, dict) or "observation" not in observation or "desired_goal" not in observation:
                raise ValueError("predict needs goal-env observations: a dict with 'observation' and 'desired_goal'")
            obs = torch.as_tensor(np.asarray(observation["observation"], np.float32), device=self.device).reshape(-1, self.obs_dim)
            obs, goal = self.normalizer(obs), self.normalize_goal(self.goal_input(observation))
        n = obs.shape[0]
        if state is None or state["step"].shape[0] != n:
            state = {"step": np.zeros(n, np.int64), "hidden": None, "plan": None}
        if episode_start is not None:
            state["step"][np.asarray(episode_start, bool).reshape(-1)] = 0
        new_window = state["step"] % self.replan_every == 0
        if new_window.any():  # a fresh window: restart the recurrent policy (as trained) and replan
            rows = torch.as_tensor(np.flatnonzero(new_window), device=self.device)
            if state["hidden"] is not None:
                state["hidden"][:, rows] = 0.0
            plan = self.propose(obs[rows], goal[rows], deterministic)
            if plan is not None:
                if state["plan"] is None:
                    state["plan"] = torch.zeros(n, plan.shape[-1], device=self.device)
                state["plan"][rows] = plan
        self.model.eval()
        dist, state["hidden"] = self.model.policy(obs.unsqueeze(1), goal, state["plan"], state["hidden"])
        action = dist.mode() if deterministic else dist.sample()
        state["step"] += 1
        return action[:, 0].cpu().numpy().astype(np.float32), state

    def goal_input(self, observation: dict) -> torch.Tensor:
        """The goal the policy is conditioned on (B, goal_dim), unnormalised (see ``goal``)."""
        as_tensor = lambda a, dim: torch.as_tensor(np.asarray(a, np.float32), device=self.device).reshape(-1, dim)  # noqa: E731
        if self.goal == "scene":
            return as_tensor(observation["desired_goal"], self.scene_dim)
        if "goal_observation" in observation:
            return as_tensor(observation["goal_observation"], self.obs_dim)
        current = as_tensor(observation["observation"], self.obs_dim).clone()  # a scene goal only: keep the hand
        current[:, self.obs_dim - self.scene_dim:] = as_tensor(observation["desired_goal"], self.scene_dim)
        return current

    def evaluate_task_suite(self, deterministic: bool = True) -> dict[str, Any] | None:
        """Lynch et al.'s protocol: per-task success on held-out expert test cases, from the start
        pose and with the hand perturbed (evaluate.py prints the table, eval.json keeps it)."""
        if self.suite_cases_per_task == 0:
            return None
        cases = self.test_cases(self.suite_cases_per_task)
        results = {"start pose": evaluate_cases(self, cases, deterministic, make_env=self.case_env)}
        if self.suite_perturbation > 0:
            results[f"perturbed {self.suite_perturbation:g} m"] = evaluate_cases(
                self, cases, deterministic, perturbation=self.suite_perturbation, make_env=self.case_env)
        return {"results": results, "table": format_suite(results), **self.describe_cases(cases)}

    def test_cases(self, per_task: int) -> TestCases:
        """The held-out cases (with goal images for a pixel agent)."""
        return make_test_cases(per_task, image_size=self.pixels.image_size if self.pixels else None)

    def case_env(self, task: str) -> Any:
        """The env a held-out case of ``task`` is rolled out in: the state goal env or the pixel one."""
        if self.pixels is not None:
            return PlayTablePixelsGoalEnv(task=task, image_size=self.pixels.image_size)
        return PlayTableGoalEnv(task=task)

    @torch.no_grad()
    def case_inputs(self, cases: TestCases) -> tuple[torch.Tensor, torch.Tensor]:
        """(start observation, goal) of every case as the networks read them (normalised or encoded)."""
        if self.pixels is not None:
            if cases.goal_images is None or cases.goal_observations is None:
                raise ValueError("these test cases have no goal images: make them with image_size")
            images, proprio = start_pixel_observations(cases, self.pixels.image_size)
            as_tensor = lambda a: torch.as_tensor(a, device=self.device)  # noqa: E731
            return px.encode(self.model, self.normalizer, self.pixels, as_tensor(images), as_tensor(proprio),
                             as_tensor(cases.goal_images), as_tensor(cases.goal_observations[:, :self.pixels.proprio_dim]))
        obs = self.normalizer(torch.as_tensor(start_observations(cases), device=self.device))
        if self.goal == "observation" and cases.goal_observations is None:
            raise ValueError("these test cases have no goal observations (made before they were stored): make them again")
        goals = cases.goal_observations if self.goal == "observation" else cases.goals
        return obs, self.normalize_goal(torch.as_tensor(goals, device=self.device))

    def describe_cases(self, cases: TestCases) -> dict[str, Any]:
        """More about the test cases for eval.json (Play-LMP: its plan space); nothing by default."""
        return {}

    def state_dict(self, include_buffers: bool = True) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "normalizer": self.normalizer.state_dict(),
                "optimizer": self.optimizer.state_dict(), "num_timesteps": self.num_timesteps, "fitted": self.fitted,
                "sampler_rng": json.dumps(self.sampler_rng.bit_generator.state),
                "dataset_sha256": self.dataset_sha256 or ""}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.normalizer.load_state_dict(state["normalizer"])
        if "optimizer" in state:
            self.optimizer.load_state_dict(state["optimizer"])
        self.num_timesteps, self.fitted = int(state["num_timesteps"]), bool(state["fitted"])
        self.sampler_rng.bit_generator.state = json.loads(state["sampler_rng"])
