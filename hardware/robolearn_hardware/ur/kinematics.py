"""UR e-Series kinematics from the published DH parameters: forward kinematics to the tool flange, the
geometric Jacobian and a damped least-squares inverse near a seed (what ``get_inverse_kin`` does on the
controller when ``servoL`` gives a pose). Poses are UR's ``p[x, y, z, rx, ry, rz]``: metres and a rotation
vector (axis * angle, radians) of the flange in the base frame.

Example::

    pose = forward(UR5E, q)                    # (6,)
    q2 = inverse(UR5E, pose, seed=q + 0.05)    # ~q
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["DH", "UR5E", "forward", "jacobian", "pose_and_jacobian", "inverse", "rotvec_to_matrix", "matrix_to_rotvec", "IKError"]


@dataclass(frozen=True)
class DH:
    """Standard DH parameters of a 6-joint UR arm (metres, radians)."""

    d: tuple[float, ...]
    a: tuple[float, ...]
    alpha: tuple[float, ...]


UR5E = DH(d=(0.1625, 0.0, 0.0, 0.1333, 0.0997, 0.0996), a=(0.0, -0.425, -0.3922, 0.0, 0.0, 0.0),
          alpha=(np.pi / 2, 0.0, 0.0, np.pi / 2, -np.pi / 2, 0.0))


class IKError(ValueError):
    """No joint solution reaches the pose from the seed (out of reach or at a singularity)."""


def rotvec_to_matrix(r: np.ndarray) -> np.ndarray:
    r = np.asarray(r, float)
    angle = float(np.linalg.norm(r))
    if angle < 1e-12:
        return np.eye(3)
    k = r / angle
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * kx + (1 - np.cos(angle)) * kx @ kx


def matrix_to_rotvec(m: np.ndarray) -> np.ndarray:
    cos = np.clip((np.trace(m) - 1) / 2, -1.0, 1.0)
    angle = float(np.arccos(cos))
    if angle < 1e-9:
        return np.zeros(3)
    if np.pi - angle < 1e-6:  # axis from the symmetric part near a half turn
        axis = np.sqrt(np.maximum((np.diag(m) + 1) / 2, 0))
        i = int(np.argmax(axis))
        axis = m[:, i] + (np.eye(3)[:, i])
        axis /= np.linalg.norm(axis)
        return axis * angle
    axis = np.array([m[2, 1] - m[1, 2], m[0, 2] - m[2, 0], m[1, 0] - m[0, 1]]) / (2 * np.sin(angle))
    return axis * angle


def _frames(dh: DH, q: np.ndarray) -> list[np.ndarray]:
    """Base-to-frame transforms T_0, T_1 .. T_6 (T_6 is the flange)."""
    out = [np.eye(4)]
    t = out[0]
    ct, st = np.cos(q), np.sin(q)
    ca, sa = np.cos(dh.alpha), np.sin(dh.alpha)
    for i in range(6):
        t = t @ np.array([[ct[i], -st[i] * ca[i], st[i] * sa[i], dh.a[i] * ct[i]],
                          [st[i], ct[i] * ca[i], -ct[i] * sa[i], dh.a[i] * st[i]], [0, sa[i], ca[i], dh.d[i]],
                          [0, 0, 0, 1.0]])
        out.append(t)
    return out


def forward_matrix(dh: DH, q: np.ndarray) -> np.ndarray:
    return _frames(dh, np.asarray(q, float))[-1]


def forward(dh: DH, q: np.ndarray) -> np.ndarray:
    """Flange pose ``[x, y, z, rx, ry, rz]`` at joint angles ``q`` (6,)."""
    t = forward_matrix(dh, q)
    return np.concatenate([t[:3, 3], matrix_to_rotvec(t[:3, :3])])


def jacobian(dh: DH, q: np.ndarray) -> np.ndarray:
    """Geometric Jacobian (6, 6): flange linear and angular velocity in the base frame per joint velocity."""
    return _jacobian(_frames(dh, np.asarray(q, float)))


def pose_and_jacobian(dh: DH, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`forward` and `jacobian` at once (one pass over the joints)."""
    frames = _frames(dh, np.asarray(q, float))
    t = frames[-1]
    return np.concatenate([t[:3, 3], matrix_to_rotvec(t[:3, :3])]), _jacobian(frames)


def _jacobian(all_frames: list[np.ndarray]) -> np.ndarray:
    frames = np.stack(all_frames[:6])  # (6, 4, 4): joint i turns about z of frame i
    z, r = frames[:, :3, 2], all_frames[-1][:3, 3] - frames[:, :3, 3]
    linear = np.stack([z[:, 1] * r[:, 2] - z[:, 2] * r[:, 1], z[:, 2] * r[:, 0] - z[:, 0] * r[:, 2],
                       z[:, 0] * r[:, 1] - z[:, 1] * r[:, 0]])
    return np.concatenate([linear, z.T])


def inverse(dh: DH, pose: np.ndarray, seed: np.ndarray, iterations: int = 50, tol: float = 1e-6,
            damping: float = 1e-3) -> np.ndarray:
    """Joint angles reaching ``pose`` nearest ``seed`` (damped least squares); raises `IKError` if none."""
    q = np.array(seed, float)
    target_p, target_r = np.asarray(pose[:3], float), rotvec_to_matrix(pose[3:])
    for _ in range(iterations):
        frames = _frames(dh, q)
        t = frames[-1]
        err = np.concatenate([target_p - t[:3, 3], matrix_to_rotvec(target_r @ t[:3, :3].T)])
        if np.linalg.norm(err) < tol:
            return q
        j = _jacobian(frames)
        q = q + j.T @ np.linalg.solve(j @ j.T + damping ** 2 * np.eye(6), err)
    raise IKError(f"no joint solution reaches pose {np.round(pose, 4).tolist()} from seed "
                  f"{np.round(seed, 3).tolist()} (residual {np.linalg.norm(err):.2e})")
