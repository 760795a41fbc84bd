"""RELION Euler angles ↔ rotation matrices (cryostar-spec §2.1)."""
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from cryostar_engine.geometry import euler_to_matrix, matrix_to_euler, rotate_points


def random_angles(n, seed=0):
    rng = np.random.default_rng(seed)
    return np.stack([rng.uniform(-180, 180, n), np.rad2deg(np.arccos(rng.uniform(-1, 1, n))),
                     rng.uniform(-180, 180, n)], -1)


def test_matches_spec_convention_scipy_zyz_transposed():
    angles = random_angles(200)
    expected = Rotation.from_euler("ZYZ", angles, degrees=True).as_matrix().transpose(0, 2, 1)
    np.testing.assert_allclose(euler_to_matrix(angles), expected, atol=1e-12)


def test_not_the_untransposed_convention():
    """The check above can fail: the plain (active ZYZ) matrix is a different convention."""
    angles = random_angles(50)
    plain = Rotation.from_euler("ZYZ", angles, degrees=True).as_matrix()
    assert np.abs(euler_to_matrix(angles) - plain).max() > 0.5


def test_relion_matrix_golden_values():
    # rot = 90°, tilt = 0, psi = 0: RELION's A = Rz(rot) with A[0,1] = sin(rot) = +1.
    np.testing.assert_allclose(euler_to_matrix([90.0, 0.0, 0.0]),
                               [[0, 1, 0], [-1, 0, 0], [0, 0, 1]], atol=1e-12)
    # tilt = 90°: A[0,2] = -sin(tilt), A[2,0] = sin(tilt) (rot = psi = 0).
    np.testing.assert_allclose(euler_to_matrix([0.0, 90.0, 0.0]),
                               [[0, 0, -1], [0, 1, 0], [1, 0, 0]], atol=1e-12)


def test_round_trip_matrix_euler_matrix():
    angles = random_angles(500, seed=1)
    mats = euler_to_matrix(angles)
    np.testing.assert_allclose(euler_to_matrix(matrix_to_euler(mats)), mats, atol=1e-9)
    inner = angles[:, 1] > 1e-3
    np.testing.assert_allclose(matrix_to_euler(mats)[inner], angles[inner], atol=1e-7)


@pytest.mark.parametrize("tilt", [0.0, 180.0])
def test_round_trip_at_gimbal_lock(tilt):
    mats = euler_to_matrix([[30.0, tilt, 40.0], [-120.0, tilt, 10.0]])
    np.testing.assert_allclose(euler_to_matrix(matrix_to_euler(mats)), mats, atol=1e-9)


def test_torch_and_numpy_agree_and_rotate_points_is_R_x():
    angles = random_angles(8, seed=2)
    mats_np = euler_to_matrix(angles)
    mats_t = euler_to_matrix(torch.tensor(angles))
    np.testing.assert_allclose(mats_t.numpy(), mats_np, atol=1e-12)
    pts = torch.randn(5, 3, dtype=torch.float64)
    out = rotate_points(pts, mats_t)
    np.testing.assert_allclose(out[3].numpy(), (mats_np[3] @ pts.numpy().T).T, atol=1e-12)
