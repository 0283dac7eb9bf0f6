"""The room: pybullet bodies for rendering, and the same layout as 2-D shapes for exact,
cheap collision checks and ray casts.

Bodies are built once; a reset only moves them and swaps their textures (no URDF loading,
no new shapes), which keeps resets as cheap as steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pybullet as p

from selfgym.envs.drone.textures import TexturelessSceneError, texture_files

PARKED = (50.0, 50.0, -20.0)  # where unused obstacles wait, out of every view
TEXTURE_SPLITS = ("all", "train", "test")
HELD_OUT_EVERY = 4  # texture i of the pool is held out for evaluation iff i % 4 == 3


def texture_split_indices(n_textures: int, split: str) -> list[int]:
    """Indices into the texture pool that rooms of ``split`` may use. ``test`` holds out every
    fourth texture (3, 7, 11 of the default 12: one unseen instance each of three kinds), ``train``
    the rest, ``all`` the whole pool; train and test never share a texture."""
    if split not in TEXTURE_SPLITS:
        raise ValueError(f"unknown texture_split {split!r}; choose one of {', '.join(TEXTURE_SPLITS)}")
    if split == "all":
        return list(range(n_textures))
    if n_textures < HELD_OUT_EVERY:
        raise ValueError(f"texture_split={split!r} needs n_textures >= {HELD_OUT_EVERY} (a texture held out and others "
                         f"to train on), got {n_textures}")
    held_out = [i for i in range(n_textures) if i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1]
    return held_out if split == "test" else [i for i in range(n_textures) if i not in held_out]


@dataclass
class RoomConfig:
    """Room geometry and randomisation; all lengths in metres."""

    half_size: float = 2.5  # the room is (2 * half_size) m square: 5 x 5 m by default
    wall_height: float = 2.0
    min_obstacles: int = 2
    max_obstacles: int = 6
    n_poles: int = 4  # size of the pole pool (radii fixed per env, placement per reset)
    n_boxes: int = 4
    n_textures: int = 12
    texture_contrast: float = 1.0
    textures: str = "procedural"
    texture_split: str = "all"  # "train" / "test": disjoint parts of the pool (see texture_split_indices)
    drone_radius: float = 0.25
    min_gap: float = 0.7  # free space kept between obstacles so the drone can pass
    start_clearance: float = 0.8

    def validate(self) -> None:
        if self.textures != "procedural":
            raise TexturelessSceneError(
                f"textures={self.textures!r}: only 'procedural' is supported; a textureless room gives"
                " stereo matching and textons nothing to work on")
        if not 0.0 < self.texture_contrast <= 1.0:
            raise TexturelessSceneError(f"texture_contrast must be in (0, 1], got {self.texture_contrast!r}")
        if self.n_textures < 1:
            raise TexturelessSceneError(f"n_textures must be >= 1, got {self.n_textures}")
        texture_split_indices(self.n_textures, self.texture_split)
        if not 0 <= self.min_obstacles <= self.max_obstacles <= self.n_poles + self.n_boxes:
            raise ValueError(f"need 0 <= min_obstacles <= max_obstacles <= n_poles + n_boxes, got "
                             f"{self.min_obstacles}, {self.max_obstacles}, {self.n_poles + self.n_boxes}")
        if self.half_size <= 2 * self.drone_radius:
            raise ValueError(f"half_size {self.half_size} leaves no room for a drone of radius {self.drone_radius}")


@dataclass
class Layout:
    """Active obstacles in 2-D: poles as circles, boxes as rotated rectangles."""

    poles: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # (n, [x, y, r])
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 5)))  # (n, [x, y, yaw, hx, hy])

    @cached_property
    def rows(self) -> tuple[list[tuple[float, ...]], list[tuple[float, ...]]]:
        """The obstacles as tuples of Python floats, boxes with their yaw's cos and sin, for
        ``clearance``: a handful of obstacles is checked faster one by one than as arrays. The
        cos and sin are the vectorised ones the array version used, so every value is the same."""
        b = self.boxes
        c, s = np.cos(b[:, 2]), np.sin(b[:, 2])
        poles = [tuple(map(float, row)) for row in self.poles]
        boxes = [(float(r[0]), float(r[1]), float(ci), float(si), float(r[3]), float(r[4])) for r, ci, si in zip(b, c, s)]
        return poles, boxes


def clearance(layout: Layout, half_size: float, x: float, y: float) -> float:
    """Distance from point (x, y) to the nearest surface (negative inside an obstacle).

    Runs every step: scalar arithmetic in the same order as the array form it replaced
    (``np.hypot`` kept, as ``math.hypot`` may differ in the last bit), so seeded flights are unchanged."""
    d = half_size - max(abs(x), abs(y))
    poles, boxes = layout.rows
    for cx, cy, r in poles:
        d = min(d, float(np.hypot(cx - x, cy - y) - r))
    for cx, cy, c, s, hx, hy in boxes:
        dx, dy = x - cx, y - cy
        lx, ly = abs(c * dx + s * dy) - hx, abs(-s * dx + c * dy) - hy
        d = min(d, float(np.hypot(max(lx, 0.0), max(ly, 0.0)) + min(max(lx, ly), 0.0)))
    return float(d)


def ray_distance(layout: Layout, half_size: float, x: float, y: float, theta: float, max_range: float = 20.0) -> float:
    """Distance along heading ``theta`` from (x, y) to the first surface.

    Runs every step (the ground-truth distance): Python floats throughout, as numpy scalars
    cost far more per operation; every operation is the same IEEE double one in the same
    order (``np.cos``/``np.sin`` kept, as ``math``'s may differ in the last bit)."""
    x, y = float(x), float(y)
    ux, uy = float(np.cos(theta)), float(np.sin(theta))
    best = max_range
    for u, q in ((ux, x), (uy, y)):  # walls
        if abs(u) > 1e-9:
            t = ((half_size if u > 0 else -half_size) - q) / u
            if t >= 0:
                best = min(best, t)
    poles, _ = layout.rows
    for cx, cy, r in poles:
        ox, oy = x - cx, y - cy
        bq = ox * ux + oy * uy
        disc = bq * bq - (ox * ox + oy * oy - r * r)
        if disc >= 0:
            t = -bq - math.sqrt(disc)
            if t >= 0:
                best = min(best, t)
    for cx, cy, yaw, hx, hy in layout.boxes.tolist():  # slab test in the box frame
        c, s = float(np.cos(yaw)), float(np.sin(yaw))
        ox, oy = c * (x - cx) + s * (y - cy), -s * (x - cx) + c * (y - cy)
        dx, dy = c * ux + s * uy, -s * ux + c * uy
        t0, t1 = -math.inf, math.inf
        hit = True
        for o, dd, h in ((ox, dx, hx), (oy, dy, hy)):
            if abs(dd) < 1e-12:
                if abs(o) > h:
                    hit = False
                continue
            a, b2 = (-h - o) / dd, (h - o) / dd
            t0, t1 = max(t0, min(a, b2)), min(t1, max(a, b2))
        if hit and t0 <= t1 and t1 >= 0:
            best = min(best, max(t0, 0.0))
    return float(best)


TILE = 2.0  # metres per texture repeat: keeps texture detail at every viewing distance


def _quad(corners: tuple, inside: tuple) -> tuple[list, list, list, list]:
    """Two triangles over 4 corners, wound to face ``inside``, UVs in metres / TILE."""
    v = np.asarray(corners, dtype=np.float64)
    e1, e2 = v[1] - v[0], v[3] - v[0]
    n = np.cross(e1, e2)
    n /= np.linalg.norm(n)
    idx = [0, 1, 2, 0, 2, 3]
    if np.dot(n, np.asarray(inside) - v[0]) < 0:  # the visible side is the counter-clockwise one
        idx, n = [0, 2, 1, 0, 3, 2], -n
    a, b = np.linalg.norm(e1) / TILE, np.linalg.norm(e2) / TILE
    uvs = [[0.0, 0.0], [a, 0.0], [a, b], [0.0, b]]
    return v.tolist(), idx, uvs, [n.tolist()] * 4


def _mesh(quads: list) -> dict:
    verts, idx, uvs, normals = [], [], [], []
    for qv, qi, qu, qn in quads:
        idx += [i + len(verts) for i in qi]
        verts += qv
        uvs += qu
        normals += qn
    return dict(vertices=verts, indices=idx, uvs=uvs, normals=normals)


def _circle(r: float, n: int) -> list[tuple[float, float]]:
    return [(r * np.cos(a), r * np.sin(a)) for a in np.linspace(0, 2 * np.pi, n, endpoint=False)]


def _prism(outline: list, h: float) -> dict:
    """Side walls of a vertical prism over a counter-clockwise outline (no caps: it spans
    floor to ceiling), facing outwards."""
    quads = []
    for (x0, y0), (x1, y1) in zip(outline, outline[1:] + outline[:1]):
        mid = np.array([(x0 + x1) / 2, (y0 + y1) / 2, h / 2])
        outside = tuple(mid + np.array([mid[0], mid[1], 0.0]) * 10)
        quads.append(_quad(((x0, y0, 0.0), (x1, y1, 0.0), (x1, y1, h), (x0, y0, h)), outside))
    return _mesh(quads)


class Room:
    """The pybullet scene of one env (its own DIRECT client)."""

    def __init__(self, client: int, config: RoomConfig, primitives: bool = False) -> None:
        """``primitives``: build from boxes and cylinders instead of textured meshes, for the EGL
        renderer, whose plugin cannot load meshes given as vertex arrays."""
        config.validate()
        self.client, self.cfg = client, config
        c, L, h = client, config.half_size, config.wall_height
        pool = texture_files(config.n_textures, config.texture_contrast)
        self.texture_pool = [pool[i] for i in texture_split_indices(config.n_textures, config.texture_split)]
        self.texture_ids = [p.loadTexture(str(f), physicsClientId=c) for f in self.texture_pool]
        self.shown_textures: list = []  # the texture file on each surface since the last randomise
        wall = [((L, -L, 0), (L, L, 0), (L, L, h), (L, -L, h)), ((-L, L, 0), (-L, -L, 0), (-L, -L, h), (-L, L, h)),
                ((L, L, 0), (-L, L, 0), (-L, L, h), (L, L, h)), ((-L, -L, 0), (L, -L, 0), (L, -L, h), (-L, -L, h))]
        floor = ((-L, -L, 0), (L, -L, 0), (L, L, 0), (-L, L, 0))
        ceiling = ((-L, -L, h), (-L, L, h), (L, L, h), (L, -L, h))
        self.primitives = primitives
        self.z_offset = h / 2 if primitives else 0.0
        sizes = np.random.default_rng(1234)  # pool sizes: fixed, so every env instance is alike
        self.pole_radius = sizes.uniform(0.08, 0.2, config.n_poles)
        self.box_half = sizes.uniform(0.15, 0.4, (config.n_boxes, 2))
        # Obstacles are made before the room's surfaces: TinyRenderer draws bodies in the order
        # they were made, with a depth test before shading, so the wall pixels an obstacle
        # hides are never shaded (the drone is inside the room, so an obstacle is always in
        # front of the surface behind it). Same images, cheaper renders (benchmarks/drone_speed.py).
        if primitives:
            self.poles = [self._prim(p.GEOM_CYLINDER, PARKED, radius=float(r), length=h) for r in self.pole_radius]
            self.boxes = [self._prim(p.GEOM_BOX, PARKED, halfExtents=[float(hx), float(hy), h / 2])
                          for hx, hy in self.box_half]
        else:
            self.poles = [self._body(_prism(_circle(float(r), 12), h), PARKED) for r in self.pole_radius]
            self.boxes = [self._body(_prism([(hx, -hy), (hx, hy), (-hx, hy), (-hx, -hy)], h), PARKED)
                          for hx, hy in self.box_half]
        # every surface is seen from the room's inside (the origin at half height)
        if primitives:
            self.surfaces = self._primitive_surfaces()
        else:
            self.surfaces = [self._body(_mesh([_quad(q, (0.0, 0.0, h / 2))]), (0, 0, 0)) for q in wall + [floor, ceiling]]
        self.layout = Layout()

    def _body(self, mesh: dict, pos: tuple) -> int:
        vis = p.createVisualShape(p.GEOM_MESH, rgbaColor=[1, 1, 1, 1], physicsClientId=self.client, **mesh)
        return p.createMultiBody(0, -1, vis, list(pos), physicsClientId=self.client)

    def _prim(self, shape: int, pos: tuple, **kw: Any) -> int:
        vis = p.createVisualShape(shape, rgbaColor=[1, 1, 1, 1], physicsClientId=self.client, **kw)
        return p.createMultiBody(0, -1, vis, list(pos), physicsClientId=self.client)

    def _primitive_surfaces(self) -> list[int]:
        """Walls, floor and ceiling as thin box tiles about TILE / 2 wide, so that each tile
        carries a whole texture (a box face stretches its texture over the face)."""
        L, h, t = self.cfg.half_size, self.cfg.wall_height, 0.02
        n = max(int(round(2 * L / (TILE / 2))), 1)
        w = 2 * L / n
        out = []
        for i in range(n):
            u = -L + (i + 0.5) * w
            for pos, half in (((L + t, u, h / 2), (t, w / 2, h / 2)), ((-L - t, u, h / 2), (t, w / 2, h / 2)),
                              ((u, L + t, h / 2), (w / 2, t, h / 2)), ((u, -L - t, h / 2), (w / 2, t, h / 2))):
                out.append(self._prim(p.GEOM_BOX, pos, halfExtents=list(half)))
            for j in range(n):
                v = -L + (j + 0.5) * w
                out.append(self._prim(p.GEOM_BOX, (u, v, -t), halfExtents=[w / 2, w / 2, t]))
                out.append(self._prim(p.GEOM_BOX, (u, v, h + t), halfExtents=[w / 2, w / 2, t]))
        return out

    def randomise(self, rng: np.random.Generator) -> tuple[float, float, float]:
        """New obstacle count, placement and textures; returns a free start pose (x, y, yaw)."""
        cfg, c, L = self.cfg, self.client, self.cfg.half_size
        n = int(rng.integers(cfg.min_obstacles, cfg.max_obstacles + 1))
        chosen = rng.permutation(cfg.n_poles + cfg.n_boxes)[:n]
        poles, boxes = [], []
        placed: list[tuple[float, float, float]] = []  # (x, y, bounding radius)
        active_poles: set[int] = set()
        active_boxes: set[int] = set()
        for k in chosen:
            radius = self.pole_radius[k] if k < cfg.n_poles else float(np.hypot(*self.box_half[k - cfg.n_poles]))
            for _ in range(100):
                x, y = rng.uniform(-L + radius + 0.3, L - radius - 0.3, 2)
                if all(np.hypot(x - px, y - py) > radius + pr + cfg.min_gap for px, py, pr in placed):
                    break
            else:
                continue  # no room left for this one
            placed.append((x, y, radius))
            if k < cfg.n_poles:
                active_poles.add(int(k))
                poles.append((x, y, self.pole_radius[k]))
                p.resetBasePositionAndOrientation(self.poles[k], [x, y, self.z_offset], [0, 0, 0, 1], physicsClientId=c)
            else:
                j = int(k - cfg.n_poles)
                active_boxes.add(j)
                yaw = float(rng.uniform(0, np.pi))
                boxes.append((x, y, yaw, *self.box_half[j]))
                p.resetBasePositionAndOrientation(self.boxes[j], [x, y, self.z_offset],
                                                  p.getQuaternionFromEuler([0, 0, yaw]), physicsClientId=c)
        for k, body in enumerate(self.poles):
            if k not in active_poles:
                p.resetBasePositionAndOrientation(body, PARKED, [0, 0, 0, 1], physicsClientId=c)
            self._show(body, k in active_poles)
        for k, body in enumerate(self.boxes):
            if k not in active_boxes:
                p.resetBasePositionAndOrientation(body, PARKED, [0, 0, 0, 1], physicsClientId=c)
            self._show(body, k in active_boxes)
        self.layout = Layout(np.array(poles, dtype=np.float64).reshape(-1, 3),
                             np.array(boxes, dtype=np.float64).reshape(-1, 5))
        self.shown_textures = []
        for body in self.surfaces + self.poles + self.boxes:
            k = int(rng.integers(len(self.texture_ids)))
            p.changeVisualShape(body, -1, textureUniqueId=self.texture_ids[k], physicsClientId=c)
            self.shown_textures.append(self.texture_pool[k])
        return self.free_pose(rng)

    def _show(self, body: int, shown: bool) -> None:
        """A parked obstacle is made fully transparent, which TinyRenderer skips before any
        per-triangle work (parked, it is out of every view anyway). Meshes only: the EGL
        scene's primitives keep their colour."""
        if not self.primitives:
            p.changeVisualShape(body, -1, rgbaColor=[1, 1, 1, 1 if shown else 0], physicsClientId=self.client)

    def free_pose(self, rng: np.random.Generator) -> tuple[float, float, float]:
        """A random pose at least ``start_clearance`` from every surface."""
        cfg = self.cfg
        for _ in range(1000):
            x, y = rng.uniform(-cfg.half_size, cfg.half_size, 2)
            if self.clearance(x, y) > cfg.start_clearance:
                return float(x), float(y), float(rng.uniform(-np.pi, np.pi))
        raise RuntimeError("no free start pose in the room: too many or too large obstacles")

    def clearance(self, x: float, y: float) -> float:
        return clearance(self.layout, self.cfg.half_size, x, y)

    def ray(self, x: float, y: float, theta: float) -> float:
        return ray_distance(self.layout, self.cfg.half_size, x, y, theta)
