"""Quaternion helpers (x, y, z, w, as scipy and pybullet), for the env's per-step hot path.

scipy's Rotation is the reference and is used for everything that is not per step (sampling,
Euler angles). On the per-step path a Rotation object costs ~10-20 us per construction; these
few numpy functions do the same products in ~2 us, which matters when a 64 px render takes
~400 us. tests/test_rotations.py checks each one against scipy.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.spatial.transform import Rotation

IDENTITY = np.array([0.0, 0.0, 0.0, 1.0])


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a * b (the rotation b, then a), as scipy's ``R(a) * R(b)``."""
    ax, ay, az, aw = a.tolist()  # Python floats: ~3x faster arithmetic than numpy scalars
    bx, by, bz, bw = b.tolist()
    return np.array(
        [
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
            aw * bw - ax * bx - ay * by - az * bz,
        ]
    )


def quat_inv(q: np.ndarray) -> np.ndarray:
    """Inverse of a unit quaternion (its conjugate)."""
    return np.array([-q[0], -q[1], -q[2], q[3]])


def canonical(q: np.ndarray) -> np.ndarray:
    """Unit length and sign w >= 0 (q and -q are the same rotation; CONVENTIONS.md)."""
    q = np.asarray(q, dtype=np.float64)
    norm = math.sqrt(q @ q)
    return q / (-norm if q[3] < 0 else norm)


def conjugate_by(rotation: np.ndarray, q: np.ndarray) -> np.ndarray:
    """The quaternion of M D M^-1 for D = q and M the 3x3 matrix ``rotation``: the same turn,
    expressed in the frame M maps into (its axis is M @ axis, its angle unchanged)."""
    return np.concatenate([rotation @ q[:3], q[3:]])


def rotvec_to_quat(v: np.ndarray) -> np.ndarray:
    """The quaternion of a rotation vector (axis * angle in radians), as scipy's from_rotvec."""
    v = np.asarray(v, dtype=np.float64)
    angle = math.sqrt(v @ v)
    if angle < 1e-12:
        return IDENTITY.copy()
    return np.append(v * (math.sin(angle / 2) / angle), math.cos(angle / 2))


def euler_xyz(q: np.ndarray) -> np.ndarray:
    """Extrinsic "xyz" Euler angles in radians (3DIEBench's latent convention), as scipy's
    ``as_euler("xyz")``; at gimbal lock (|sin pitch| within 1e-12 of 1) it defers to scipy."""
    x, y, z, w = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    # R = Rz(c) Ry(b) Rx(a): read a, b, c off the rotation matrix's third row and first column.
    r20 = 2 * (x * z - w * y)
    if abs(r20) > 1 - 1e-12:
        with warnings.catch_warnings():  # scipy warns that the third angle is set to 0: fine here
            warnings.simplefilter("ignore", UserWarning)
            return Rotation.from_quat([x, y, z, w]).as_euler("xyz")
    return np.array(
        [
            np.arctan2(2 * (y * z + w * x), 1 - 2 * (x * x + y * y)),
            -np.arcsin(r20),
            np.arctan2(2 * (x * y + w * z), 1 - 2 * (y * y + z * z)),
        ]
    )


def geodesic_deg(a: np.ndarray, b: np.ndarray) -> float:
    """Angle in degrees of the rotation between unit quaternions a and b (CONVENTIONS.md)."""
    a = np.asarray(a, float) / np.linalg.norm(a)
    return float(np.degrees(2 * np.arccos(np.clip(abs(np.dot(a, b)), 0.0, 1.0))))


def sample_3diebench(rng: np.random.Generator, ood: bool = False) -> np.ndarray:
    """An orientation (xyzw) from 3DIEBench's view distribution: extrinsic xyz Euler angles each
    uniform in [-pi/2, pi/2].

    ``ood``: a rotation outside that set, uniform on SO(3) otherwise. Not seq-JEPA's recipe
    (each angle from +-[pi/2, pi]): (a, b, c) and (a + pi, pi - b, c + pi) are the same
    rotation, which maps that box onto the training box measure for measure, so the recipe
    draws the training distribution itself (measured: the mean angle from the identity is
    83.3 degrees for both, and scipy decomposes every such draw into [-pi/2, pi/2]^3). A
    rotation is in the training set exactly when scipy's xyz decomposition (middle angle in
    [-pi/2, pi/2]) has |first| and |last| <= pi/2; ``ood`` rejects those (about 1 in 4 draws).
    """
    if not ood:
        angles = rng.uniform(-np.pi / 2, np.pi / 2, 3)
        return Rotation.from_euler("xyz", angles).as_quat()
    while True:
        rotation = Rotation.random(random_state=rng)
        first, _, last = rotation.as_euler("xyz")
        if max(abs(first), abs(last)) > np.pi / 2:
            return rotation.as_quat()
