"""A learned visual encoder for the monocular cue, self-supervised twice over.

* The encoder (a small CNN) learns from images alone, with Barlow Twins (Zbontar et al. 2021):
  two augmentations of the same frame go through encoder and projector, and the loss pushes
  the cross-correlation matrix of the two (batch-standardised) embeddings towards the
  identity: ``sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2``. The on-diagonal term makes
  the features invariant to the augmentations, the off-diagonal term makes them
  non-redundant (no collapse, no negatives needed, works with small batches).
* The head (a small MLP) regresses the stereo disparity, the trusted cue's label, from the
  encoder's features. By default its gradient stops at the features (``head_trains_encoder=False``),
  so the encoder's only objective is image-only; with True the label loss shapes it as well.

Augmentations keep what the cue is made of: the apparent scale of texture grows as a
surface comes closer, so there is no zoom or resized crop (that would teach the encoder to
ignore distance). They are small shifts (up to ``max_shift`` px), brightness and contrast
jitter, pixel noise and a left-right flip (the central corridor's disparity does not change
under a flip).

``lambda`` defaults to 1 / projector dimension: the paper's 5e-3 was tuned for an 8,192-d
projector; with 64-d embeddings the off-diagonal sum has ~64x fewer terms, and 1/d keeps the
two terms of comparable size (an argued choice, not the paper's number).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from selfgym.envs.drone.buffer import ImageRegressorBuffer


def barlow_twins_loss(z1: torch.Tensor, z2: torch.Tensor, lambd: float) -> torch.Tensor:
    """Barlow Twins' redundancy-reduction loss for two (batch, dim) embeddings of the same images."""
    if z1.shape != z2.shape or z1.ndim != 2 or len(z1) < 2:
        raise ValueError(f"need two (batch >= 2, dim) embeddings of one shape, got {tuple(z1.shape)}, {tuple(z2.shape)}")
    z1 = (z1 - z1.mean(0)) / (z1.std(0, unbiased=False) + 1e-5)
    z2 = (z2 - z2.mean(0)) / (z2.std(0, unbiased=False) + 1e-5)
    c = z1.T @ z2 / len(z1)
    on_diag = (1.0 - torch.diagonal(c)).pow(2).sum()
    off_diag = c.pow(2).sum() - torch.diagonal(c).pow(2).sum()
    return on_diag + lambd * off_diag


def augment(x: torch.Tensor, generator: torch.Generator, max_shift: int = 3, flip: bool = True) -> torch.Tensor:
    """A random view of each (B, 1, H, W) image in [0, 1]: shift, flip, brightness, contrast, noise."""
    b, _, h, w = x.shape
    dev = x.device

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator, device="cpu").to(dev)

    padded = nn.functional.pad(x, (max_shift,) * 4, mode="replicate")
    dy = (rand(b) * (2 * max_shift + 1)).long()
    dx = (rand(b) * (2 * max_shift + 1)).long()
    rows = (dy[:, None] + torch.arange(h, device=dev)[None, :])  # (B, H)
    cols = (dx[:, None] + torch.arange(w, device=dev)[None, :])  # (B, W)
    out = padded[torch.arange(b, device=dev)[:, None, None], 0, rows[:, :, None], cols[:, None, :]].unsqueeze(1)
    flipped = (rand(b) < 0.5) & flip
    out = torch.where(flipped[:, None, None, None], out.flip(-1), out)
    brightness = 0.15 * (rand(b, 1, 1, 1) - 0.5)
    noise = torch.randn(out.shape, generator=generator, device="cpu").to(dev) * 0.02
    return (out + brightness + noise).clamp(0.0, 1.0)


class Encoder(nn.Module):
    def __init__(self, feature_dim: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 16, 5, stride=2, padding=2), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d((2, 2)), nn.Flatten(), nn.Linear(256, feature_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class BarlowRegressor(ImageRegressorBuffer):
    """Encoder (Barlow Twins) + disparity head (stereo labels), trained online from a bounded
    image buffer: every ``train_every`` added frames, ``grad_steps`` Adam steps on minibatches."""

    def __init__(self, shape: tuple[int, int], capacity: int = 2000, lr: float = 1e-3, batch_size: int = 64,
                 train_every: int = 20, grad_steps: int = 4, feature_dim: int = 64, proj_dim: int = 64,
                 lambd: float | None = None, head_trains_encoder: bool = False, ssl_weight: float = 1.0, max_shift: int = 3,
                 flip: bool = True, seed: int = 0,
                 device: str = "cpu") -> None:
        if batch_size < 8:
            raise ValueError(f"Barlow Twins standardises over the batch: batch_size must be >= 8, got {batch_size}")
        super().__init__(shape, capacity, batch_size, train_every, grad_steps, seed, device)
        self.encoder = Encoder(feature_dim).to(self.device)
        self.projector = nn.Sequential(nn.Linear(feature_dim, 128), nn.BatchNorm1d(128), nn.ReLU(),
                                       nn.Linear(128, proj_dim)).to(self.device)
        self.head = nn.Sequential(nn.Linear(feature_dim, 64), nn.ReLU(), nn.Linear(64, 1)).to(self.device)
        params = [*self.encoder.parameters(), *self.projector.parameters(), *self.head.parameters()]
        self.opt = torch.optim.Adam(params, lr=lr)
        self.lambd = 1.0 / proj_dim if lambd is None else float(lambd)
        self.head_trains_encoder, self.ssl_weight, self.max_shift, self.flip = head_trains_encoder, ssl_weight, max_shift, flip
        self.gen = torch.Generator().manual_seed(seed)
        self.last_losses = {"barlow": float("nan"), "head": float("nan")}

    def ssl_loss(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Barlow Twins on two augmentations of each image in the (B, 1, H, W) batch."""
        z1 = self.projector(self.encoder(augment(images, generator, self.max_shift, self.flip)))
        z2 = self.projector(self.encoder(augment(images, generator, self.max_shift, self.flip)))
        return barlow_twins_loss(z1, z2, self.lambd)

    def train(self, steps: int) -> dict[str, float]:
        for _ in range(steps):
            images, labels = self._batch()
            ssl = self.ssl_loss(images, self.gen)
            features = self.encoder(images)
            if not self.head_trains_encoder:
                features = features.detach()
            head = nn.functional.smooth_l1_loss(self.head(features).squeeze(-1), labels)
            self.opt.zero_grad()
            (self.ssl_weight * ssl + head).backward()
            self.opt.step()
            self.last_losses = {"barlow": float(ssl.detach()), "head": float(head.detach())}
        return self.last_losses

    def _estimate(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(images)).squeeze(-1)

    def state_dict(self) -> dict[str, Any]:
        return {"encoder": self.encoder.state_dict(), "projector": self.projector.state_dict(),
                "head": self.head.state_dict(), "opt": self.opt.state_dict(), **self._buffer_state()}

    def load_state_dict(self, s: dict[str, Any]) -> None:
        self.encoder.load_state_dict(s["encoder"])
        self.projector.load_state_dict(s["projector"])
        self.head.load_state_dict(s["head"])
        self.opt.load_state_dict(s["opt"])
        self._load_buffer(s)
