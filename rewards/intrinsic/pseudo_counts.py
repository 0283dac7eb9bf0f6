"""Episodic pseudo-counts: NGU's episodic novelty (Badia et al., ICLR 2020, "Never Give Up",
arXiv:2002.06038), the method RLeXplore ships as ``PseudoCounts``.

Within an episode, each state's embedding f(s) joins a memory M; its k nearest neighbours in
M give a soft visit count through the inverse kernel

    K(x, y) = eps / (max(d^2(x, y) / d_m^2 - xi, 0) + eps),   n(s) ~ sum_{k-NN} K(f(s), f(s_j)),

with d_m^2 the running mean of the k-NN squared distances, and the bonus is
``1 / (sqrt(n(s)) + c)``, or 0 once ``sqrt(n(s)) > s_m``. The paper's values: k = 10,
eps = 1e-4, xi = 0.008, c = 0.001, s_m = 8, a 32-d embedding trained by inverse dynamics,
memory of 30,000. A state seen n times (n <= k) in an episode gets about 1/sqrt(n).

Why this pseudo-count and not another: exact (hashed) counts are honest only where states
repeat exactly (a 7x7 MiniGrid view does; a camera image or a float vector almost never
does), and density-model counts (Bellemare et al. 2016's CTS, Ostrovski et al. 2017's
PixelCNN) are defined on pixels only and need a density model trained alongside the agent.
The kernel count works the same on images and vectors, because it lives in a learned
embedding of what the agent controls; and it is what the reference library calls
PseudoCounts, so the side-by-side comparison compares like with like. SimHash (``simhash``)
remains the life-long hashed count.

Details the paper leaves open, chosen here: the current state is in M when its bonus is
computed (RLeXplore does the same; a first visit earns about 1, not 1/c), and d_m^2 is kept
per env and restarted with the memory at each episode end, so an env's bonuses do not depend
on the other envs in the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from selfgym.rewards.base import TransitionBatch
from selfgym.rewards.intrinsic._torch import action_dim, mlp
from selfgym.rewards.intrinsic.episodic import EpisodicReward


class PseudoCounts(EpisodicReward):
    """``1 / (sqrt(n_ep(s')) + c)`` from a k-NN kernel count in the episode's embedding memory.

    Needs time-ordered batches (on-policy agents); each env's memory carries over rollouts
    until its episode ends.

    Args:
        feature_dim: size of the embedding f(s) (the paper's 32).
        hidden: hidden widths of the encoder (its MLP head after the CNN on images) and of the
            inverse-dynamics model that trains it.
        k, kernel_epsilon, cluster_distance, c, max_similarity: k, eps, xi, c and s_m above.
        capacity: the most embeddings kept per env and episode (oldest overwritten).
        epochs, batch_size: inverse-dynamics training per ``update`` call.
        obs_key, cnn: which Dict entry to read and which CNN for images (``EncodedReward``).
    """

    def __init__(
        self,
        feature_dim: int = 32,
        hidden: Sequence[int] = (256,),
        k: int = 10,
        kernel_epsilon: float = 1e-4,
        cluster_distance: float = 0.008,
        c: float = 1e-3,
        max_similarity: float = 8.0,
        capacity: int = 30_000,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if k < 1 or capacity < k:
            raise ValueError(f"reward module {self.name!r}: need k >= 1 and capacity >= k, got k={k}, capacity={capacity}")
        if kernel_epsilon <= 0 or c <= 0 or max_similarity <= 0 or cluster_distance < 0:
            raise ValueError(f"reward module {self.name!r}: kernel_epsilon, c and max_similarity must be > 0 and "
                             f"cluster_distance >= 0, got {kernel_epsilon}, {c}, {max_similarity}, {cluster_distance}")
        self.feature_dim, self.hidden, self.k = int(feature_dim), [int(h) for h in hidden], int(k)
        self.kernel_epsilon, self.cluster_distance = float(kernel_epsilon), float(cluster_distance)
        self.c, self.max_similarity, self.capacity = float(c), float(max_similarity), int(capacity)

    def build(self) -> nn.ModuleDict:
        assert self.action_space is not None
        return nn.ModuleDict({
            "encoder": self.encoder(self.hidden, self.feature_dim),
            "inverse_model": mlp(2 * self.feature_dim, self.hidden, action_dim(self.action_space)),
        })

    def new_memory(self, n_envs: int) -> dict[str, Any]:
        size = min(self.capacity, max(64, self.k))  # grown on demand up to capacity
        return {
            "n_envs": n_envs,
            "embeddings": torch.zeros(n_envs, size, self.feature_dim, device=self.device),
            "count": torch.zeros(n_envs, dtype=torch.int64, device=self.device),  # insertions this episode
            "distance_sum": torch.zeros(n_envs, dtype=torch.float64, device=self.device),  # for d_m^2
            "distance_n": torch.zeros(n_envs, dtype=torch.float64, device=self.device),
        }

    def embed(self, obs: Any) -> torch.Tensor:
        assert self.nets is not None
        with torch.no_grad():
            return self.nets["encoder"](self.tensor(self.obs_features(obs)))

    def _grow(self, memory: dict[str, Any]) -> None:
        embeddings = memory["embeddings"]
        size = embeddings.shape[1]
        if size < self.capacity and int(memory["count"].max()) >= size:
            extra = min(self.capacity, 2 * size) - size
            memory["embeddings"] = torch.cat([embeddings, embeddings.new_zeros(embeddings.shape[0], extra, embeddings.shape[2])], 1)

    def episodic_step(self, memory: dict[str, Any], phi: torch.Tensor, done: torch.Tensor) -> torch.Tensor:
        """Insert one embedding per env (n_envs, d), return each env's bonus, reset ended episodes."""
        self._grow(memory)
        embeddings, count = memory["embeddings"], memory["count"]
        envs = torch.arange(len(phi), device=self.device)
        embeddings[envs, count % embeddings.shape[1]] = phi
        count += 1
        filled = torch.arange(embeddings.shape[1], device=self.device)[None] < count.clamp(max=embeddings.shape[1])[:, None]
        squared = ((embeddings - phi[:, None]) ** 2).sum(dim=2).masked_fill(~filled, float("inf"))
        nearest = squared.topk(self.k, dim=1, largest=False).values  # (n_envs, k); inf where M has < k entries
        valid = torch.isfinite(nearest)
        memory["distance_sum"] += torch.where(valid, nearest, 0.0).sum(dim=1).double()
        memory["distance_n"] += valid.sum(dim=1).double()
        mean = (memory["distance_sum"] / memory["distance_n"].clamp(min=1.0)).float().clamp(min=1e-12)
        normalised = (torch.where(valid, nearest, 0.0) / mean[:, None] - self.cluster_distance).clamp(min=0.0)
        kernel = torch.where(valid, self.kernel_epsilon / (normalised + self.kernel_epsilon), 0.0)
        similarity = kernel.sum(dim=1).sqrt()
        bonus = torch.where(similarity > self.max_similarity, 0.0, 1.0 / (similarity + self.c))
        for key in ("count", "distance_sum", "distance_n"):
            memory[key].masked_fill_(done, 0)  # the episode ended: new memory
        return bonus

    def run_episodes(self, batch: TransitionBatch, memory: dict[str, Any], n_envs: int) -> torch.Tensor:
        phi = self.embed(batch.next_obs).reshape(-1, n_envs, self.feature_dim)
        dones = torch.as_tensor(self.dones(batch, n_envs), device=self.device)
        return torch.stack([self.episodic_step(memory, phi[t], dones[t]) for t in range(len(phi))])

    def update(self, batch: TransitionBatch) -> dict[str, float]:
        """Carry each env's memory past this batch, then train the embedding by inverse dynamics."""
        self.ensure_built(batch)
        self.commit(batch)
        return self.train_dynamics(batch)

    def memory_state(self, memory: dict[str, Any]) -> dict[str, Any]:
        state = super().memory_state(memory)
        used = int(memory["count"].clamp(max=memory["embeddings"].shape[1]).max()) if memory["n_envs"] else 0
        state["embeddings"] = state["embeddings"][:, : max(used, min(self.capacity, max(64, self.k)))].clone()
        return state
