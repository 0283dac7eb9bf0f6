"""The observation encoder the intrinsic modules share, chosen from the observation space.

* an image ``Box`` (uint8, HWC or CHW, as SB3's ``is_image_space`` sees it) -> a small CNN
  (Nature-CNN, Mnih et al. 2015, for images of 36 px or more; three 3x3 stride-1 layers for
  small views such as MiniGrid's 7x7) and an MLP head;
* a vector ``Box`` -> an MLP on the flat floats (what RND and ICM always used);
* ``Discrete`` -> an MLP on the one-hot index;
* a ``Dict`` -> the sub-space named by ``obs_key=``; anything else (``Text``, a ``Dict`` with
  no key chosen) is refused with a message naming the space and the ``obs_key=`` option.

``ObsLayout`` turns a batch of observations into flat float32 rows in the order the encoder
reads them (images channels-first, scaled to [0, 1]), so modules keep working on (B, D)
tensors (RND's running normalisation included) and the CNN unflattens its input itself.
``EncodedReward`` is the ``TorchReward`` that carries a layout, ``obs_key`` and ``cnn``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first
from torch import nn

from selfgym.rewards.intrinsic._torch import TorchReward, mlp

#: CNN presets: (out_channels, kernel, stride) per conv layer.
CNN_PRESETS: dict[str, tuple[tuple[int, int, int], ...]] = {
    "nature": ((32, 8, 4), (64, 4, 2), (64, 3, 1)),  # Mnih et al. 2015; needs >= 36 px
    "small": ((32, 3, 1), (64, 3, 1), (64, 3, 1)),  # small views (MiniGrid 7x7); needs >= 7 px
}
_MIN_SIDE = {"nature": 36, "small": 7}


@dataclass(frozen=True)
class ObsLayout:
    """How one observation becomes a row of floats for the encoder.

    Attributes:
        kind: ``"image"``, ``"vector"`` or ``"discrete"``.
        shape: what the encoder sees per row: (C, H, W) for images, (D,) for vectors, (n,) one-hot.
        key: the ``Dict`` entry read (``obs_key=``), or None.
        channels_last: images arrive HWC and are transposed to CHW.
        start: ``Discrete.start``.
    """

    kind: str
    shape: tuple[int, ...]
    key: str | None = None
    channels_last: bool = False
    start: int = 0

    @property
    def flat_dim(self) -> int:
        return int(np.prod(self.shape))

    def features(self, obs: Any) -> np.ndarray:
        """(B, ...) observations (or a dict of them) -> (B, flat_dim) float32."""
        if isinstance(obs, dict):
            if self.key is None:
                raise ValueError(f"dict observations (keys {sorted(obs)}) need obs_key= to choose one entry")
            obs = obs[self.key]
        if isinstance(obs, torch.Tensor):
            obs = obs.detach().cpu().numpy()
        arr = np.asarray(obs)
        if self.kind == "discrete":
            idx = arr.reshape(-1).astype(np.int64) - self.start
            if idx.size and (idx.min() < 0 or idx.max() >= self.shape[0]):
                raise ValueError(f"observation index out of range for Discrete({self.shape[0]}): {idx.min()}..{idx.max()}")
            return np.eye(self.shape[0], dtype=np.float32)[idx]
        scale = np.float32(1.0 / 255.0) if arr.dtype == np.uint8 else np.float32(1.0)
        if self.kind == "image":
            if arr.ndim == 3:
                arr = arr[None]
            if self.channels_last:
                arr = arr.transpose(0, 3, 1, 2)
            if arr.shape[1:] != self.shape:
                raise ValueError(f"image observations of shape {arr.shape[1:]} (after channels-first); the encoder was built for {self.shape}")
        return arr.reshape(arr.shape[0], -1).astype(np.float32) * scale

    def to_plain(self) -> dict[str, Any]:
        plain = asdict(self)
        plain["shape"] = list(self.shape)
        return plain

    @classmethod
    def from_plain(cls, plain: dict[str, Any]) -> ObsLayout:
        return cls(plain["kind"], tuple(int(d) for d in plain["shape"]), plain.get("key"),
                   bool(plain.get("channels_last", False)), int(plain.get("start", 0)))


def layout_for(space: gym.Space, obs_key: str | None = None, owner: str = "reward module") -> ObsLayout:
    """The layout for an observation space; refuses spaces no encoder here can read."""
    key = None
    if isinstance(space, gym.spaces.Dict):
        if obs_key is None or obs_key not in space.spaces:
            what = "needs obs_key= to choose" if obs_key is None else f"has no key {obs_key!r}; choose with obs_key="
            raise ValueError(f"{owner}: cannot encode the observation space {space}: a Dict {what} one of its "
                             f"image or vector entries {sorted(space.spaces)} (e.g. obs_key={next(iter(space.spaces), 'image')})")
        key, space = obs_key, space.spaces[obs_key]
    elif obs_key is not None:
        raise ValueError(f"{owner}: obs_key={obs_key!r} was given but the observation space {space} is not a Dict")
    if isinstance(space, gym.spaces.Discrete):
        return ObsLayout("discrete", (int(space.n),), key, start=int(space.start))
    if isinstance(space, gym.spaces.Box):
        if len(space.shape) == 3 and is_image_space(space, check_channels=False):
            if is_image_space_channels_first(space):
                return ObsLayout("image", tuple(int(d) for d in space.shape), key)
            height, width, channels = space.shape
            return ObsLayout("image", (int(channels), int(height), int(width)), key, channels_last=True)
        return ObsLayout("vector", (int(np.prod(space.shape)),), key)
    raise ValueError(f"{owner}: cannot encode the observation space {space}: use an image Box (uint8, HWC or CHW), "
                     "a vector Box or Discrete; for a Dict, choose an image or vector entry with obs_key=")


def layout_from_array(obs: Any, obs_key: str | None = None, owner: str = "reward module") -> ObsLayout:
    """A layout guessed from a batch when no space was given: uint8 (B, H, W, C)/(B, C, H, W) is an image."""
    if isinstance(obs, dict):
        if obs_key is None or obs_key not in obs:
            return layout_for(gym.spaces.Dict({k: gym.spaces.Box(-np.inf, np.inf, (1,)) for k in obs}), obs_key, owner)
        arr = np.asarray(obs[obs_key])
    else:
        if obs_key is not None:
            raise ValueError(f"{owner}: obs_key={obs_key!r} was given but the observations are not a dict")
        arr = np.asarray(obs)
    if arr.dtype == np.uint8 and arr.ndim == 4:
        space = gym.spaces.Box(0, 255, arr.shape[1:], np.uint8)
    else:
        space = gym.spaces.Box(-np.inf, np.inf, (int(np.prod(arr.shape[1:])),), np.float32)
    layout = layout_for(space, None, owner)
    return ObsLayout(layout.kind, layout.shape, obs_key, layout.channels_last, layout.start)


def cnn_trunk(in_shape: tuple[int, ...], cnn: str = "auto") -> tuple[nn.Sequential, int]:
    """Conv layers (ReLU after each) and the size of their flat output, for a (C, H, W) input."""
    channels, height, width = in_shape
    if cnn == "auto":
        cnn = "nature" if min(height, width) >= _MIN_SIDE["nature"] else "small"
    if cnn not in CNN_PRESETS:
        raise ValueError(f"unknown cnn={cnn!r}; use auto, {', '.join(CNN_PRESETS)}")
    if min(height, width) < _MIN_SIDE[cnn]:
        raise ValueError(f"cnn={cnn!r} needs images of at least {_MIN_SIDE[cnn]} px a side; got {height}x{width}")
    layers: list[nn.Module] = [nn.Unflatten(1, tuple(in_shape))]
    for out_channels, kernel, stride in CNN_PRESETS[cnn]:
        layers += [nn.Conv2d(channels, out_channels, kernel, stride), nn.ReLU()]
        channels = out_channels
    layers.append(nn.Flatten())
    trunk = nn.Sequential(*layers)
    with torch.no_grad():
        n_flat = int(trunk(torch.zeros(1, int(np.prod(in_shape)))).shape[1])
    return trunk, n_flat


def build_encoder(layout: ObsLayout, hidden: Sequence[int], out_dim: int, cnn: str = "auto") -> nn.Module:
    """(B, flat_dim) -> (B, out_dim): the MLP for vectors (unchanged from before), CNN + MLP head for images."""
    if layout.kind != "image":
        return mlp(layout.flat_dim, hidden, out_dim)
    trunk, n_flat = cnn_trunk(layout.shape, cnn)
    return nn.Sequential(trunk, mlp(n_flat, hidden, out_dim))


class EncodedReward(TorchReward):
    """A ``TorchReward`` whose networks read observations through ``build_encoder``.

    Args:
        obs_key: the entry of a ``Dict`` observation to encode (required for Dict spaces).
        cnn: ``"auto"`` (Nature-CNN from 36 px, else ``"small"``), ``"nature"`` or ``"small"``;
            only used for image observations.
    """

    def __init__(self, obs_key: str | None = None, cnn: str = "auto", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if cnn != "auto" and cnn not in CNN_PRESETS:
            raise ValueError(f"reward module {self.name!r}: unknown cnn={cnn!r}; use auto, {', '.join(CNN_PRESETS)}")
        self.obs_key, self.cnn = obs_key, cnn
        self.layout: ObsLayout | None = None

    def setup(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        self.layout = layout_for(observation_space, self.obs_key, f"reward module {self.name!r}")
        super().setup(observation_space, action_space)

    def ensure_built(self, batch: Any) -> None:
        if self.layout is None:
            self.layout = layout_from_array(batch.obs, self.obs_key, f"reward module {self.name!r}")
        super().ensure_built(batch)

    def obs_features(self, obs: Any) -> np.ndarray:
        if self.layout is None:
            self.layout = layout_from_array(obs, self.obs_key, f"reward module {self.name!r}")
        return self.layout.features(obs)

    def encoder(self, hidden: Sequence[int], out_dim: int) -> nn.Module:
        if self.layout is None:  # a state saved before layouts existed: flat vectors
            assert self.obs_dim is not None
            self.layout = ObsLayout("vector", (self.obs_dim,))
        return build_encoder(self.layout, hidden, out_dim, self.cnn)

    def extra_state(self) -> dict[str, Any]:
        state = super().extra_state()
        if state and self.layout is not None:
            state["layout"] = self.layout.to_plain()
        return state

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if state and "layout" in state:
            self.layout = ObsLayout.from_plain(state["layout"])
        super().load_extra_state(state)
