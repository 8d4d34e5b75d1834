"""Planning error metrics (paper §8.6-8.7): pure numpy, one episode per call (average episodes outside).

  delta_xyz             DROID, Eq. 3: ‖Σ_i a_i^plan - Σ_i a_i^true‖₁ over the xyz action dims, in metres
                        (the [JWM] code: L1 norm of the difference of the summed actions).
  ate                   RECON (NWM protocol, Sturm et al. 2012): RMSE of the position errors, with NO
                        alignment and no scale correction (as NWM's evo call), so both trajectories must be
                        in the same frame and start from the same pose.
  rpe                   RECON's main metric: RMSE of the relative translation errors between consecutive
                        poses (delta = 1 step). With yaws given, each step's displacement is expressed in
                        its own pose's frame (evo's SE(2)/SE(3) definition); without, in the world frame.
  final_position_error  the synthetic world: Euclidean distance between the final positions.

Whether a trajectory includes its (shared) start pose is the caller's choice; it adds a zero error term to
ATE's mean, so report which.

Dimension keys: T steps, A action dim, X position dims (2 or 3).
"""

from __future__ import annotations

import numpy as np


def _pair(pred, true, name):
    pred, true = np.asarray(pred, np.float64), np.asarray(true, np.float64)
    if pred.shape != true.shape or pred.ndim != 2:
        raise ValueError(f"{name}: need two (T, X) arrays of one shape, got {pred.shape} and {true.shape}")
    return pred, true


def delta_xyz(planned_actions_TA, true_actions_TA, xyz=slice(0, 3)) -> float:
    """Δxyz = Σ_{d in xyz} |Σ_t planned[t, d] - Σ_t true[t, d]|, in the units of the actions."""
    planned, true = _pair(planned_actions_TA, true_actions_TA, "delta_xyz")
    return float(np.abs(planned[:, xyz].sum(0) - true[:, xyz].sum(0)).sum())


def ate(pred_xy_TX, true_xy_TX) -> float:
    """ATE = sqrt(mean_t ‖pred_t - true_t‖₂²): RMSE of absolute position errors, no alignment."""
    pred, true = _pair(pred_xy_TX, true_xy_TX, "ate")
    return float(np.sqrt(np.mean(np.sum(np.square(pred - true), axis=-1))))


def _rotate(yaw_T, v_T2):
    """v expressed in the frame of a pose with heading yaw: R(yaw)^T v, for 2-D v."""
    c, s = np.cos(yaw_T), np.sin(yaw_T)
    return np.stack([c * v_T2[:, 0] + s * v_T2[:, 1], -s * v_T2[:, 0] + c * v_T2[:, 1]], axis=-1)


def rpe(pred_TX, true_TX, pred_yaw_T=None, true_yaw_T=None) -> float:
    """RPE = sqrt(mean_t ‖Δpred_t - Δtrue_t‖₂²) over t = 0..T-2, delta = 1 step.

    Without yaws, Δx_t = x_{t+1} - x_t (world frame). With yaws (both, 2-D positions), Δx_t is that
    displacement in the frame of pose t, R(yaw_t)^T (x_{t+1} - x_t): the translation part of
    (Q_t^-1 Q_{t+1})^-1 (P_t^-1 P_{t+1}) of Sturm et al., whose norm only depends on the two local
    displacements.
    """
    pred, true = _pair(pred_TX, true_TX, "rpe")
    if pred.shape[0] < 2:
        raise ValueError(f"rpe needs at least 2 poses, got {pred.shape[0]}")
    d_pred, d_true = np.diff(pred, axis=0), np.diff(true, axis=0)
    if (pred_yaw_T is None) != (true_yaw_T is None):
        raise ValueError("rpe: give both yaws or neither")
    if pred_yaw_T is not None:
        if pred.shape[1] != 2:
            raise ValueError("rpe: yaws need 2-D positions")
        pred_yaw, true_yaw = np.asarray(pred_yaw_T, np.float64), np.asarray(true_yaw_T, np.float64)
        if pred_yaw.shape != (pred.shape[0],) or true_yaw.shape != (pred.shape[0],):
            raise ValueError(f"rpe: yaws must have shape ({pred.shape[0]},)")
        d_pred, d_true = _rotate(pred_yaw[:-1], d_pred), _rotate(true_yaw[:-1], d_true)
    return float(np.sqrt(np.mean(np.sum(np.square(d_pred - d_true), axis=-1))))


def final_position_error(pred_positions, true_positions) -> float:
    """‖pred[-1] - true[-1]‖₂ of (T, X) trajectories, or of single (X,) positions."""
    pred, true = np.asarray(pred_positions, np.float64), np.asarray(true_positions, np.float64)
    if pred.shape != true.shape or pred.ndim not in (1, 2):
        raise ValueError(f"need (X,) or (T, X) positions of one shape, got {pred.shape} and {true.shape}")
    if pred.ndim == 2:
        pred, true = pred[-1], true[-1]
    return float(np.linalg.norm(pred - true))
