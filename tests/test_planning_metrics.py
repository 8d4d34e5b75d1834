"""Planning metrics against values computed by hand."""

import numpy as np
import pytest

from lawm.planning.metrics import ate, delta_xyz, final_position_error, rpe

# Positions of a 4-step path: the prediction drifts off the diagonal and comes back.
PRED = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 1.0], [3.0, 3.0]])
TRUE = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])


def test_delta_xyz_is_the_l1_norm_of_the_summed_xyz_actions():
    # (x, y, z, gripper); summed xyz: planned (0.15, -0.01, 0.00), true (0.10, 0.03, 0.10).
    planned = np.array([[0.10, 0.00, -0.05, 1.0], [0.02, 0.01, 0.00, -1.0], [0.03, -0.02, 0.05, 0.5]])
    true = np.array([[0.05, 0.05, 0.00, 0.0], [0.05, 0.00, 0.00, 0.0], [0.00, -0.02, 0.10, 0.0]])
    assert delta_xyz(planned, true) == pytest.approx(0.05 + 0.04 + 0.10)
    assert delta_xyz(planned[::-1], true) == pytest.approx(0.19)  # only the sums count, not the order
    assert delta_xyz(planned, true, xyz=slice(0, 4)) == pytest.approx(0.19 + 0.5)  # the gripper too
    assert delta_xyz(true, true) == 0.0


def test_ate_is_the_rmse_of_position_errors_without_alignment():
    # Errors 0, 1, 1, 0 -> sqrt(2 / 4).
    assert ate(PRED, TRUE) == pytest.approx(np.sqrt(0.5))
    # Errors 0, 5, 1 -> sqrt(26 / 3): an RMSE, not a mean (2.0) or a final error (1.0).
    assert ate([[0, 0], [3, 4], [1, 1]], [[0, 0], [0, 0], [1, 2]]) == pytest.approx(np.sqrt(26 / 3))
    # No alignment: a constant offset is fully counted.
    assert ate(TRUE + [3.0, 4.0], TRUE) == pytest.approx(5.0)


def test_rpe_is_the_rmse_of_consecutive_displacement_errors():
    # Steps pred (1,0), (1,1), (1,2) vs true (1,1) x 3: errors 1, 0, 1 -> sqrt(2 / 3).
    assert rpe(PRED, TRUE) == pytest.approx(np.sqrt(2 / 3))
    # A constant offset changes no displacement.
    assert rpe(TRUE + [3.0, 4.0], TRUE) == pytest.approx(0.0)


def test_rpe_with_yaws_compares_displacements_in_each_pose_frame():
    # Forward 1 along x, turn left, forward 1 along y: in the robot's frame both steps are (1, 0).
    positions = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    true_yaw = np.array([0.0, np.pi / 2, np.pi / 2])
    # Same positions but a prediction that never turns: its second step is (0, 1) in its frame.
    pred_yaw = np.zeros(3)
    assert rpe(positions, positions, pred_yaw, true_yaw) == pytest.approx(1.0)  # errors 0, sqrt(2)
    assert rpe(positions, positions) == pytest.approx(0.0)  # world frame: identical
    with pytest.raises(ValueError, match="both"):
        rpe(positions, positions, pred_yaw)


def test_final_position_error():
    assert final_position_error([[0.0, 0.0], [3.0, 4.0]], [[1.0, 1.0], [0.0, 0.0]]) == pytest.approx(5.0)
    assert final_position_error([1.0, 2.0], [1.0, 0.5]) == pytest.approx(1.5)


def test_shape_mismatches_are_rejected():
    with pytest.raises(ValueError, match="shape"):
        ate(PRED, TRUE[:3])
    with pytest.raises(ValueError, match="at least 2"):
        rpe(PRED[:1], TRUE[:1])
