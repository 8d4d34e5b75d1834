"""Robot poses and the actions between them: the conventions of the references, in numpy.

Three kinds of action rows, named in a clip record's `meta["action_kind"]` (data_pipelines/tools/rlds.py
writes them; sources/clips.py resamples them with `compose`):

  ee_delta  DROID end-effector deltas, as V-JEPA 2-AC's DROID loader (vjepa2 app/vjepa_droid/droid.py,
            `poses_to_diffs`) and jepa-wms (app/plan_common/datasets/droid_dset.py) define them: from states
            [xyz, extrinsic euler "xyz", gripper], a_t = [xyz_{t+1} - xyz_t (base frame),
            euler_xyz(R_{t+1} R_t^T) (the rotation in the base frame), gripper_{t+1} - gripper_t].
            Over several steps: the xyz and gripper deltas add up, the rotations compose (later ones on the
            left), so the composed row is exactly the delta between the first and the last state.
  se2       RECON robot-frame motion (x forward, y left, radians): a_t = [the displacement from pose t to
            pose t + 1 in the frame of pose t, yaw_{t+1} - yaw_t wrapped to (-pi, pi]] (NWM's
            to_local_coords). Over several steps the poses compose: the composed row is the displacement
            in the first pose's frame and the sum of the yaw steps (not wrapped: a full turn stays one).
  additive  anything else (pixel displacements of the synthetic world, ...): rows add up.

Extrinsic "xyz" Euler angles (a, b, c) are the rotation Rz(c) Ry(b) Rx(a), SciPy's
`Rotation.from_euler("xyz", ...)`; `matrix_to_euler_xyz` returns b in [-pi/2, pi/2], a and c in (-pi, pi].

Dimension keys: T steps, A action dim.
"""

from __future__ import annotations

import numpy as np

KINDS = ("additive", "ee_delta", "se2")


def wrap_angles(angles):
    """Angles in radians mapped to (-pi, pi]."""
    return np.pi - np.mod(np.pi - np.asarray(angles, np.float64), 2 * np.pi)


def euler_xyz_to_matrix(angles_N3) -> np.ndarray:
    """Extrinsic "xyz" Euler angles (..., 3) -> rotation matrices (..., 3, 3) = Rz(c) Ry(b) Rx(a)."""
    a, b, c = np.moveaxis(np.asarray(angles_N3, np.float64), -1, 0)
    ca, sa, cb, sb, cc, sc = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(c), np.sin(c)
    rows = [
        [cc * cb, cc * sb * sa - sc * ca, cc * sb * ca + sc * sa],
        [sc * cb, sc * sb * sa + cc * ca, sc * sb * ca - cc * sa],
        [-sb, cb * sa, cb * ca],
    ]
    return np.stack([np.stack(row, axis=-1) for row in rows], axis=-2)


def matrix_to_euler_xyz(matrix_N33) -> np.ndarray:
    """Rotation matrices (..., 3, 3) -> extrinsic "xyz" Euler angles (..., 3) (gimbal lock: a = 0)."""
    m = np.asarray(matrix_N33, np.float64)
    b = -np.arcsin(np.clip(m[..., 2, 0], -1.0, 1.0))
    locked = np.abs(m[..., 2, 0]) > 1 - 1e-12  # cos b = 0: only a - c (or a + c) is defined
    a = np.where(locked, 0.0, np.arctan2(m[..., 2, 1], m[..., 2, 2]))
    c = np.where(locked, np.arctan2(-m[..., 0, 1], m[..., 1, 1]), np.arctan2(m[..., 1, 0], m[..., 0, 0]))
    return np.stack([a, b, c], axis=-1)


def relative_rotations(euler_T3) -> np.ndarray:
    """Per-step rotation deltas (T-1, 3): extrinsic "xyz" Euler angles of R_{t+1} R_t^T."""
    rotations = euler_xyz_to_matrix(euler_T3)
    return matrix_to_euler_xyz(rotations[1:] @ np.swapaxes(rotations[:-1], -1, -2))


def se2_steps(xy_T2, yaw_T) -> np.ndarray:
    """Poses (T, 2) + (T,) in a world frame -> robot-frame steps (T-1, 3): (dx, dy) in pose t's frame,
    dyaw wrapped."""
    xy, yaw = np.asarray(xy_T2, np.float64), np.asarray(yaw_T, np.float64)
    world = np.diff(xy, axis=0)
    cos, sin = np.cos(yaw[:-1]), np.sin(yaw[:-1])
    local = [cos * world[:, 0] + sin * world[:, 1], -sin * world[:, 0] + cos * world[:, 1]]
    return np.stack([*local, wrap_angles(np.diff(yaw))], axis=1)


def se2_poses(steps_T3) -> np.ndarray:
    """Robot-frame steps (T, 3) -> the poses (T+1, 3) they visit from the origin (x, y, summed yaw)."""
    pose, poses = np.zeros(3), [np.zeros(3)]
    for dx, dy, dyaw in np.asarray(steps_T3, np.float64)[:, :3]:
        c, s = np.cos(pose[2]), np.sin(pose[2])
        pose = pose + [c * dx - s * dy, s * dx + c * dy, dyaw]
        poses.append(pose)
    return np.stack(poses)


def compose(actions_TA, kind: str) -> np.ndarray:
    """Consecutive action rows (T, A), T >= 0, -> the one row (A,) that takes the first state to the last."""
    actions = np.asarray(actions_TA, np.float64)
    if kind not in KINDS:
        raise ValueError(f"action_kind must be one of {', '.join(KINDS)}, got {kind!r}")
    total = actions.sum(axis=0) if len(actions) else np.zeros(actions.shape[1:])
    if kind == "ee_delta" and len(actions):
        if actions.shape[1] < 6:
            raise ValueError(f"action_kind 'ee_delta' needs rows of >= 6 values, got {actions.shape[1]}")
        rotation = np.eye(3)
        for step in euler_xyz_to_matrix(actions[:, 3:6]):
            rotation = step @ rotation  # R_b R_a^T = (R_b R_{b-1}^T) ... (R_{a+1} R_a^T)
        total[3:6] = matrix_to_euler_xyz(rotation)
    elif kind == "se2" and len(actions):
        if actions.shape[1] != 3:
            raise ValueError(f"action_kind 'se2' needs rows of 3 values, got {actions.shape[1]}")
        total = se2_poses(actions)[-1]
    return total
