"""Geometry of the PlayTable scene, in one place, and the URDFs written from it.

The desk (table, rims, cabinet with a drawer below and a sliding door above, a raised shelf,
three spring-loaded buttons and three lights) is one fixed-base articulated URDF; the two
blocks are free bodies. Every number the success detectors use comes from here, so the URDFs
and the detectors cannot disagree. World frame: robot base at the origin, x away from the
robot, y to its left, the table top at z = 0. Lengths in metres.
"""

from __future__ import annotations

import hashlib
import os
import tempfile

# --- table -------------------------------------------------------------------------------
TABLE_X = (-0.20, 0.85)
TABLE_Y = (-0.55, 0.55)
RIM_HEIGHT = 0.04
# Where block centres may be put at reset (the open play area in front of the furniture).
PLAY_X = (0.32, 0.47)
PLAY_Y = (-0.10, 0.15)
# The end effector target is clipped into this box (keeps the arm above the table).
EE_LOW = (0.20, -0.45, 0.015)
EE_HIGH = (0.70, 0.45, 0.40)

# --- cabinet: drawer (z 0..0.10) and sliding-door compartment (z 0.115..0.30) -------------
CAB_X = (0.465, 0.80)
CAB_Y = (-0.45, -0.17)
DRAWER_RANGE = (0.0, 0.16)  # joint value: how far the drawer is pulled out (toward -x)
DRAWER_FRONT_X = 0.445  # front face of the closed drawer
DRAWER_HANDLE = (0.4075, -0.31, 0.05)  # centre of the handle bar when closed
DOOR_RANGE = (0.0, 0.16)  # joint value: how far the door slid toward -y
DOOR_CLOSED_Y = -0.24  # door centre when closed
DOOR_HANDLE = (0.4825, -0.24, 0.205)  # centre of the vertical handle bar when closed

# --- shelf (raised board with a back and side rims, open toward the robot) ----------------
SHELF_X = (0.55, 0.75)
SHELF_Y = (0.15, 0.40)
SHELF_TOP = 0.05

# --- buttons (red, green, blue) and their lights ------------------------------------------
BUTTON_COLORS = ("red", "green", "blue")
BUTTON_XY = ((0.30, 0.32), (0.38, 0.32), (0.46, 0.32))
BUTTON_TOP = 0.04  # cap top when released
BUTTON_TRAVEL = 0.02  # = the physical stop (cap on the table top)
BUTTON_PRESSED = 0.008  # joint value beyond which a press toggles the light
LIGHT_XYZ = ((0.70, -0.40, 0.325), (0.70, -0.31, 0.325), (0.70, -0.22, 0.325))
LIGHT_ON_RGBA = ((1.0, 0.1, 0.1, 1.0), (0.1, 1.0, 0.1, 1.0), (0.2, 0.3, 1.0, 1.0))
LIGHT_OFF_RGBA = (0.15, 0.15, 0.15, 1.0)

# --- blocks -------------------------------------------------------------------------------
BLOCK_NAMES = ("long", "cube")
LONG_SIZE = (0.10, 0.04, 0.04)  # lying flat, long axis along its local x
CUBE_SIZE = (0.045, 0.045, 0.045)
BLOCK_MASS = 0.1

# --- the marked target region of the downstream task push_to_target (a disc on the desk) ---
TARGET_XY = (0.40, 0.0)  # in the play area, with room for the hand on the far side (shelf, cabinet apart)
TARGET_RADIUS = 0.05  # the cube's centre must come to rest inside this circle
TARGET_RGBA = (0.1, 0.7, 0.2, 1.0)


def _box(size, xyz, rgba=None, collide=True) -> str:
    s = " ".join(f"{v:.4f}" for v in size)
    o = " ".join(f"{v:.4f}" for v in xyz)
    geom = f'<origin xyz="{o}"/><geometry><box size="{s}"/></geometry>'
    out = ""
    if rgba is not None:
        c = " ".join(f"{v:.3f}" for v in rgba)
        out += f'<visual>{geom}<material name="c{abs(hash(c)) % 10**8}"><color rgba="{c}"/></material></visual>'
    if collide:
        out += f"<collision>{geom}</collision>"
    return out


def _span(lo_hi):
    return lo_hi[1] - lo_hi[0], (lo_hi[0] + lo_hi[1]) / 2


def _slab(xr, yr, zr, rgba, collide=True) -> str:
    (sx, cx), (sy, cy), (sz, cz) = _span(xr), _span(yr), _span(zr)
    return _box((sx, sy, sz), (cx, cy, cz), rgba, collide)


def _link(name: str, body: str, mass: float = 0.0) -> str:
    inertia = '<inertia ixx="1e-3" ixy="0" ixz="0" iyy="1e-3" iyz="0" izz="1e-3"/>'
    return f'<link name="{name}">\n<inertial><mass value="{mass}"/>{inertia}</inertial>\n{body}\n</link>'


def _joint(name, kind, child, xyz=(0, 0, 0), axis=(1, 0, 0), limits=None) -> str:
    o = " ".join(f"{v:.4f}" for v in xyz)
    a = " ".join(f"{v:.1f}" for v in axis)
    lim = ""
    if limits is not None:
        lim = f'<limit lower="{limits[0]}" upper="{limits[1]}" effort="100" velocity="1"/>'
    return (f'<joint name="{name}" type="{kind}"><parent link="desk"/><child link="{child}"/>'
            f'<origin xyz="{o}"/><axis xyz="{a}"/>{lim}</joint>')


WOOD, DARK, GREY = (0.72, 0.58, 0.42, 1), (0.35, 0.25, 0.18, 1), (0.6, 0.6, 0.62, 1)


def static_urdf() -> str:
    """Everything of the desk that never moves, loaded as one static rigid body (cheap contacts)."""
    return _robot("play_desk_static", [_link("desk", "".join(_static_boxes()))], [])


def _robot(name: str, links: list[str], joints: list[str]) -> str:
    return f'<?xml version="1.0"?><robot name="{name}">' + "\n".join(links + joints) + "\n</robot>"


def _static_boxes() -> list[str]:
    t, x0, x1, y0, y1 = 0.03, CAB_X[0], CAB_X[1], CAB_Y[0], CAB_Y[1]
    base = [
        _slab(TABLE_X, TABLE_Y, (-0.05, 0.0), WOOD),
        _slab(TABLE_X, (TABLE_Y[0], TABLE_Y[0] + t), (0, RIM_HEIGHT), DARK),
        _slab(TABLE_X, (TABLE_Y[1] - t, TABLE_Y[1]), (0, RIM_HEIGHT), DARK),
        _slab((TABLE_X[1] - t, TABLE_X[1]), TABLE_Y, (0, RIM_HEIGHT), DARK),
        _slab((TABLE_X[0], TABLE_X[0] + t), TABLE_Y, (0, RIM_HEIGHT), DARK),
        # cabinet: sides, back, middle board, top
        _slab((x0, x1), (y0 - 0.02, y0), (0, 0.115), GREY),
        _slab((x0, x1), (y1, y1 + 0.02), (0, 0.115), GREY),
        _slab((0.54, x1), (y0 - 0.02, y0), (0.115, 0.30), GREY),  # upper part sits behind the door
        _slab((0.54, x1), (y1, y1 + 0.02), (0.115, 0.30), GREY),
        _slab((x1 - 0.02, x1), (y0, y1), (0, 0.30), GREY),
        _slab((x0, x1), (y0, y1), (0.10, 0.115), GREY),
        _slab((0.54, x1), (y0 - 0.02, y1 + 0.02), (0.30, 0.315), GREY),
        # shelf: board, back rim, side rims
        _slab(SHELF_X, SHELF_Y, (0.0, SHELF_TOP), DARK),
        _slab((SHELF_X[1] - 0.02, SHELF_X[1]), SHELF_Y, (SHELF_TOP, SHELF_TOP + 0.04), DARK),
        _slab(SHELF_X, (SHELF_Y[0], SHELF_Y[0] + 0.015), (SHELF_TOP, SHELF_TOP + 0.03), DARK),
        _slab(SHELF_X, (SHELF_Y[1] - 0.015, SHELF_Y[1]), (SHELF_TOP, SHELF_TOP + 0.03), DARK),
    ]
    for bx, by in BUTTON_XY:  # button housings
        # visual only: the cap's physical stop is the table top (reached at 0.02 of travel)
        base.append(_slab((bx - 0.035, bx + 0.035), (by - 0.035, by + 0.035), (0, 0.019), GREY, collide=False))
    return base


def desk_urdf() -> str:
    """The articulated parts on a collision-free fixed base. Links: drawer, door, 3 button caps."""
    x0, x1, y0, y1 = CAB_X[0], CAB_X[1], CAB_Y[0], CAB_Y[1]
    links, joints = [_link("desk", "")], []
    # drawer: a tray whose front sits at DRAWER_FRONT_X; joint moves it toward -x
    hx, hy, hz = DRAWER_HANDLE
    front = DRAWER_FRONT_X
    drawer = [
        _slab((front + 0.02, x1 - 0.03), (y0 + 0.01, y1 - 0.01), (0.005, 0.015), WOOD),
        _slab((front, front + 0.02), (y0 + 0.005, y1 - 0.005), (0.005, 0.085), WOOD),
        _slab((x1 - 0.05, x1 - 0.03), (y0 + 0.01, y1 - 0.01), (0.005, 0.05), WOOD),
        _slab((front + 0.02, x1 - 0.03), (y0 + 0.01, y0 + 0.02), (0.005, 0.05), WOOD),
        _slab((front + 0.02, x1 - 0.03), (y1 - 0.02, y1 - 0.01), (0.005, 0.05), WOOD),
        _slab((hx - 0.0075, hx + 0.0075), (hy - 0.07, hy + 0.07), (hz - 0.0075, hz + 0.0075), DARK),
        _slab((hx - 0.0075, front), (hy - 0.07, hy - 0.055), (hz - 0.0075, hz + 0.0075), DARK),
        _slab((hx - 0.0075, front), (hy + 0.055, hy + 0.07), (hz - 0.0075, hz + 0.0075), DARK),
    ]
    links.append(_link("drawer", "".join(drawer), 0.5))
    joints.append(_joint("drawer_joint", "prismatic", "drawer", axis=(-1, 0, 0), limits=DRAWER_RANGE))
    # sliding door: a panel in front of the upper compartment, with a vertical handle bar
    dx, dy, dz = DOOR_HANDLE
    door = [
        _slab((0.525, 0.54), (DOOR_CLOSED_Y - 0.07, DOOR_CLOSED_Y + 0.07), (0.12, 0.29), (0.5, 0.7, 0.8, 1)),
        _slab((dx - 0.0075, dx + 0.0075), (dy - 0.0075, dy + 0.0075), (dz - 0.05, dz + 0.05), DARK),
        _slab((dx - 0.0075, 0.525), (dy - 0.0075, dy + 0.0075), (dz - 0.05, dz - 0.035), DARK),
        _slab((dx - 0.0075, 0.525), (dy - 0.0075, dy + 0.0075), (dz + 0.035, dz + 0.05), DARK),
    ]
    links.append(_link("door", "".join(door), 0.5))
    joints.append(_joint("door_joint", "prismatic", "door", axis=(0, -1, 0), limits=DOOR_RANGE))
    for color, (bx, by), rgba in zip(BUTTON_COLORS, BUTTON_XY, LIGHT_ON_RGBA):
        cap = _slab((bx - 0.022, bx + 0.022), (by - 0.022, by + 0.022), (0.02, BUTTON_TOP), rgba)
        links.append(_link(f"button_{color}", cap, 0.05))
        joints.append(_joint(f"button_{color}_joint", "prismatic", f"button_{color}",
                             axis=(0, 0, -1), limits=(0.0, BUTTON_TRAVEL)))
    return _robot("play_desk", links, joints)


def block_urdf(size, rgba) -> str:
    body = _box(size, (0, 0, 0), rgba)
    inertia = (f'<inertia ixx="{BLOCK_MASS * (size[1]**2 + size[2]**2) / 12:.3e}" ixy="0" ixz="0" '
               f'iyy="{BLOCK_MASS * (size[0]**2 + size[2]**2) / 12:.3e}" iyz="0" '
               f'izz="{BLOCK_MASS * (size[0]**2 + size[1]**2) / 12:.3e}"/>')
    return (f'<?xml version="1.0"?><robot name="block"><link name="block"><inertial>'
            f'<mass value="{BLOCK_MASS}"/>{inertia}</inertial>{body}</link></robot>')


def write_urdf(text: str) -> str:
    """Write a URDF into the temp dir under a content hash (idempotent) and return its path."""
    name = "selfgym_play_" + hashlib.sha1(text.encode()).hexdigest()[:16] + ".urdf"
    path = os.path.join(tempfile.gettempdir(), name)
    if not os.path.exists(path):
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    return path
