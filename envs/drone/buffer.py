"""The bounded (input, stereo label) buffers that the drone's monocular learners learn from online.

``LabelledBuffer`` is the circular buffer and its part of a checkpoint, for every learner
(texton features for k-NN, images for the torch learners). ``ImageRegressorBuffer`` adds what
``CNNRegressor`` (monocular.py) and ``BarlowRegressor`` (barlow.py) share, which differ only in
their networks and losses: the training schedule (every ``train_every`` added frames,
``grad_steps`` updates once ``MIN_SAMPLES`` frames are held), the minibatch draw and the
uint8 -> [0, 1] tensor conversion.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import torch

MIN_SAMPLES = 32  # frames an image learner holds before its first update; it predicts NaN until then


class LabelledBuffer:
    """The last ``capacity`` inputs of one ``shape`` and ``dtype`` with their float labels."""

    def __init__(self, shape: tuple[int, ...], dtype: type, capacity: int) -> None:
        self.capacity = capacity
        self.x = np.zeros((capacity, *shape), dtype)
        self.y = np.zeros(capacity, np.float32)
        self.size = self.pos = 0

    def _push(self, x: np.ndarray, y: float) -> None:
        """Store one sample, overwriting the oldest once full."""
        self.x[self.pos], self.y[self.pos] = x.reshape(self.x.shape[1:]), y
        self.pos = (self.pos + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def _buffer_state(self) -> dict[str, Any]:
        return {"x": torch.from_numpy(self.x[: self.size].copy()), "y": torch.from_numpy(self.y[: self.size].copy()),
                "pos": self.pos}

    def _load_buffer(self, state: dict[str, Any]) -> None:
        n = len(state["y"])
        self.x[:n], self.y[:n] = state["x"].numpy(), state["y"].numpy()
        self.size, self.pos = n, int(state["pos"])


class ImageRegressorBuffer(LabelledBuffer, ABC):
    """(H, W) uint8 images with their labels, and the schedule that trains a torch regressor on them.

    Subclasses build their networks after calling ``__init__`` (it seeds torch first, so a
    seed gives the same initial weights) and define ``train(steps)`` and ``_estimate``.
    """

    def __init__(self, shape: tuple[int, int], capacity: int, batch_size: int, train_every: int, grad_steps: int,
                 seed: int, device: str) -> None:
        torch.manual_seed(seed)
        super().__init__(shape, np.uint8, capacity)
        self.device = torch.device(device)
        self.batch_size, self.train_every, self.grad_steps = batch_size, train_every, grad_steps
        self.since = 0
        self.rng = np.random.default_rng(seed)

    @abstractmethod
    def train(self, steps: int) -> Any:
        """``steps`` updates on minibatches from ``_batch()``; returns the last losses."""

    @abstractmethod
    def _estimate(self, images: torch.Tensor) -> torch.Tensor:
        """(B,) label estimates for a (B, 1, H, W) batch in [0, 1]."""

    def add(self, image: np.ndarray, y: float) -> None:
        self._push(image, y)
        self.since += 1
        if self.since >= self.train_every and self.size >= MIN_SAMPLES:
            self.since = 0
            self.train(self.grad_steps)

    def _tensor(self, images: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(images, dtype=torch.float32, device=self.device).unsqueeze(1) / 255.0

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """A minibatch drawn with replacement from the buffer: (B, 1, H, W) images, (B,) labels."""
        idx = self.rng.integers(0, self.size, min(self.batch_size, self.size))
        return self._tensor(self.x[idx]), torch.as_tensor(self.y[idx], device=self.device)

    @torch.no_grad()
    def predict(self, images: np.ndarray) -> np.ndarray:
        images = images.reshape(-1, *self.x.shape[1:])
        if self.size < MIN_SAMPLES:
            return np.full(len(images), np.nan, np.float32)
        return self._estimate(self._tensor(images)).cpu().numpy()

    def _buffer_state(self) -> dict[str, Any]:
        return {**super()._buffer_state(), "since": self.since}

    def _load_buffer(self, state: dict[str, Any]) -> None:
        super()._load_buffer(state)
        self.since = int(state["since"])
