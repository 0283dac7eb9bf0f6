"""Pixel inputs of the offline play agents: one small CNN shared by policy, recogniser and proposer.

Lynch et al. (2019, section 5) also learn from the camera image and proprioception, conditioned
on a goal *image*. Here every image of a batch (the window's frames and its goal frame) goes
through one encoder: the Nature-CNN trunk of ``rewards/intrinsic/encoders.py`` (Mnih et al.
2015), a linear layer to ``image_features`` floats and a ReLU. The state networks then read,
per step, (image features, normalised proprioception) where they read the 37 state floats, and
the goal is the goal image's features (``goal: image``, the paper's) or those and the goal's
proprioception (``goal: observation``). The encoder is a submodule of the agent's model: the
policy's NLL (and Play-LMP's KL) train it end to end, and it is saved with the weights.

Observations come from ``PlayTablePixelsGoal-v0`` (``envs/play_table/pixels.py``); logs from
``collect --pixels SIZE`` / ``demos --pixels SIZE``, whose layout names the image size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from selfgym.envs.play_table.dataset import pixel_observation_layout
from selfgym.envs.play_table.pixels import DEFAULT_IMAGE_SIZE, PlayTablePixelsGoalEnv
from selfgym.rewards.intrinsic.encoders import cnn_trunk

PIXEL_KEYS = {"image", "proprio", "goal_image", "desired_goal"}
PIXEL_GOALS = ("image", "observation")


class PixelEncoder(nn.Module):
    """uint8 images (..., S, S, 3) -> (..., features): Nature-CNN trunk, linear, ReLU."""

    def __init__(self, image_size: int, features: int) -> None:
        super().__init__()
        self.trunk, flat = cnn_trunk((3, image_size, image_size), "nature")
        self.head = nn.Linear(flat, features)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        lead = images.shape[:-3]
        x = images.reshape(-1, *images.shape[-3:]).permute(0, 3, 1, 2).float().div(255.0)
        return torch.relu(self.head(self.trunk(x.reshape(x.shape[0], -1)))).reshape(*lead, -1)


@dataclass(frozen=True)
class PixelSpec:
    """What a pixel agent reads: the image size, proprioception floats, encoder width, goal kind."""

    image_size: int
    proprio_dim: int
    features: int
    goal: str

    @property
    def layout(self) -> str:
        return pixel_observation_layout(self.image_size)

    @property
    def obs_dim(self) -> int:
        """Width of a step's input to the state networks: image features + proprioception."""
        return self.features + self.proprio_dim

    @property
    def goal_dim(self) -> int:
        return self.features + (self.proprio_dim if self.goal == "observation" else 0)


def pixel_spec(space: gym.Space, goal: str, image_features: int | None) -> PixelSpec | None:
    """The spec for a pixel goal env's observation space; None for any other space."""
    if not (isinstance(space, gym.spaces.Dict) and PIXEL_KEYS <= set(space.spaces)):
        if image_features is not None:
            raise ValueError(f"image_features={image_features!r} is for pixel observations "
                             f"(selfgym/PlayTablePixelsGoal-v0); this env observes {space}")
        return None
    if goal not in PIXEL_GOALS:
        raise ValueError(f"goal must be one of {PIXEL_GOALS} for pixel observations, got {goal!r}")
    features = 64 if image_features is None else image_features
    if isinstance(features, bool) or not isinstance(features, int) or features < 1:
        raise ValueError(f"image_features must be a whole number >= 1, got {image_features!r}")
    image = space["image"].shape
    return PixelSpec(int(image[0]), int(space["proprio"].shape[0]), features, goal)


def env_image_size(env_id: str) -> int | None:
    """The camera size a registered pixel goal env id observes; None for a state env."""
    spec = gym.spec(env_id)
    entry = spec.entry_point
    name = entry.rsplit(":", 1)[-1] if isinstance(entry, str) else getattr(entry, "__name__", "")
    if name != PlayTablePixelsGoalEnv.__name__:
        return None
    return int(spec.kwargs.get("image_size", DEFAULT_IMAGE_SIZE))


def encode(model: nn.Module, normalizer: nn.Module, spec: PixelSpec, images: torch.Tensor, proprio: torch.Tensor,
           goal_images: torch.Tensor, goal_proprio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(obs (..., obs_dim), goal (B, goal_dim)) from uint8 frames (..., S, S, 3) and goal frames
    (B, S, S, 3): one encoder call over all of them."""
    frames = images.reshape(-1, *images.shape[-3:])
    features = model.encoder(torch.cat([frames, goal_images], dim=0))
    obs_features = features[:len(frames)].reshape(*images.shape[:-3], -1)
    obs = torch.cat([obs_features, normalizer(proprio)], dim=-1)
    goal = features[len(frames):]
    if spec.goal == "observation":
        goal = torch.cat([goal, normalizer(goal_proprio)], dim=-1)
    return obs, goal


def observation_inputs(observation: Any, spec: PixelSpec, device: torch.device) -> tuple[torch.Tensor, ...]:
    """(images, proprio, goal images, goal proprio) tensors from a batch of env observations; the
    goal's proprioception is ``goal_observation``'s (held-out cases give it), else the current one."""
    if not (isinstance(observation, dict) and {"image", "proprio", "goal_image"} <= set(observation)):
        keys = sorted(observation) if isinstance(observation, dict) else type(observation).__name__
        raise ValueError(f"a pixel play agent acts on PlayTablePixelsGoal-v0 observations (a dict with 'image', "
                         f"'proprio' and 'goal_image'), got {keys}")
    size = spec.image_size
    as_images = lambda a: torch.as_tensor(np.asarray(a, np.uint8), device=device).reshape(-1, size, size, 3)  # noqa: E731
    as_floats = lambda a: torch.as_tensor(np.asarray(a, np.float32), device=device)  # noqa: E731
    proprio = as_floats(observation["proprio"]).reshape(-1, spec.proprio_dim)
    if "goal_observation" in observation:
        goal_proprio = as_floats(observation["goal_observation"]).reshape(len(proprio), -1)[:, :spec.proprio_dim]
    else:
        goal_proprio = proprio
    return as_images(observation["image"]), proprio, as_images(observation["goal_image"]), goal_proprio
