"""The one place that defines the pose convention: RELION ZYZ Euler angles.

Convention (RELION, and CryoSTAR's spec §2.1)
--------------------------------------------
Angles ``(rot, tilt, psi)`` are in **degrees** in star files (``rlnAngleRot``, ``rlnAngleTilt``,
``rlnAnglePsi``) and in radians only inside :func:`euler_to_matrix`.  The rotation matrix ``R``
is RELION's "A matrix" (``Euler_angles2matrix``)::

    R = Rz(psi) @ Ry(tilt) @ Rz(rot)        with   Rz(a) = [[ c, s, 0], [-s, c, 0], [0, 0, 1]]
                                                   Ry(a) = [[ c, 0,-s], [ 0, 1, 0], [s, 0, c]]

which equals ``scipy.spatial.transform.Rotation.from_euler("ZYZ", [rot, tilt, psi],
degrees=True).as_matrix().T``.

It acts on column vectors of model coordinates ``x`` (Å, box-centred, ordered x, y, z): the
particle image shows the model rotated to ``y = R @ x`` and projected along ``y_z``; image column
= ``y_x``, image row = ``y_y``.  By the projection-slice theorem the 2-D transform of that image
at frequency ``k2 = (kx, ky, 0)`` is the 3-D transform of the model at ``R.T @ k2``.

For batches of beads stored as row vectors ``X`` of shape ``(N, 3)`` the rotated coordinates are
``X @ R.T``.

cryoSPARC poses (``.cs`` field ``alignments3D/pose``) are rotation vectors ``v`` (axis × angle,
radians).  Their matrix ``exp([v]×)`` (Rodrigues) maps the particle's view (image) coordinates
back to model coordinates, so RELION's A matrix is its transpose: ``A = exp([v]×).T``, see
:func:`cryosparc_pose_to_matrix`.
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["euler_to_matrix", "matrix_to_euler", "rotate_points", "cryosparc_pose_to_matrix",
           "cryosparc_pose_to_euler"]


def euler_to_matrix(angles_deg):
    """RELION (rot, tilt, psi) in degrees → rotation matrices.

    Parameters
    ----------
    angles_deg : array or tensor, shape ``(..., 3)``, degrees.

    Returns
    -------
    Same type as the input, shape ``(..., 3, 3)``: RELION's A matrix (see module docstring).
    """
    is_torch = isinstance(angles_deg, torch.Tensor)
    xp = torch if is_torch else np
    a = xp.deg2rad(angles_deg) if is_torch else np.deg2rad(np.asarray(angles_deg, dtype=np.float64))
    rot, tilt, psi = a[..., 0], a[..., 1], a[..., 2]
    ca, sa = xp.cos(rot), xp.sin(rot)
    cb, sb = xp.cos(tilt), xp.sin(tilt)
    cg, sg = xp.cos(psi), xp.sin(psi)
    cc, cs, sc, ss = cb * ca, cb * sa, sb * ca, sb * sa
    rows = [
        [cg * cc - sg * sa, cg * cs + sg * ca, -cg * sb],
        [-sg * cc - cg * sa, -sg * cs + cg * ca, sg * sb],
        [sc, ss, cb],
    ]
    return xp.stack([xp.stack(r, -1) for r in rows], -2)


def matrix_to_euler(matrix) -> np.ndarray:
    """Rotation matrices ``(..., 3, 3)`` → RELION (rot, tilt, psi) in degrees, ``(..., 3)``.

    The inverse of :func:`euler_to_matrix`, with ``tilt`` in [0, 180] and, at the gimbal lock
    (tilt = 0 or 180), ``psi = 0``.
    """
    m = np.asarray(matrix, dtype=np.float64)
    tilt = np.arccos(np.clip(m[..., 2, 2], -1.0, 1.0))
    locked = np.abs(np.sin(tilt)) < 1e-6
    flip = np.where(m[..., 2, 2] < 0, -1.0, 1.0)  # tilt = 180: R = Ry(pi) Rz(rot) when psi = 0
    rot = np.where(locked, np.arctan2(flip * m[..., 0, 1], flip * m[..., 0, 0]),
                   np.arctan2(m[..., 2, 1], m[..., 2, 0]))
    psi = np.where(locked, 0.0, np.arctan2(m[..., 1, 2], -m[..., 0, 2]))
    return np.rad2deg(np.stack([rot, tilt, psi], -1))


def rotate_points(points: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
    """Rotate bead coordinates into each particle's view.

    Parameters
    ----------
    points : ``(N, 3)`` or ``(B, N, 3)`` tensor, Å, box-centred, ordered (x, y, z).
    rotations : ``(B, 3, 3)`` RELION A matrices.

    Returns
    -------
    ``(B, N, 3)``: ``R @ x`` for every bead, i.e. ``points @ R.T``.
    """
    if points.dim() == 2:
        points = points.unsqueeze(0).expand(rotations.shape[0], -1, -1)
    return torch.bmm(points, rotations.transpose(1, 2))


def cryosparc_pose_to_matrix(rotvec) -> np.ndarray:
    """cryoSPARC rotation vectors → RELION A matrices (see the module docstring).

    Parameters
    ----------
    rotvec : array, shape ``(..., 3)``: ``alignments3D/pose``, axis × angle in radians.

    Returns
    -------
    ``(..., 3, 3)`` float64: ``A = exp([v]×).T``, the matrix that :func:`euler_to_matrix` gives for
    the same view.  Pinned against cryoDRGN's ``parse_pose_csparc`` output for a real cryoSPARC
    file (``tests/test_cryosparc.py``).
    """
    v = np.asarray(rotvec, dtype=np.float64)
    angle = np.linalg.norm(v, axis=-1)[..., None, None]
    axis = v / np.where(angle[..., 0] > 0, angle[..., 0], 1.0)
    x, y, z = axis[..., 0], axis[..., 1], axis[..., 2]
    zero = np.zeros_like(x)
    k = np.stack([np.stack([zero, -z, y], -1), np.stack([z, zero, -x], -1),
                  np.stack([-y, x, zero], -1)], -2)                       # [axis]×
    exp = np.eye(3) + np.sin(angle) * k + (1.0 - np.cos(angle)) * (k @ k)
    return np.swapaxes(exp, -1, -2)


def cryosparc_pose_to_euler(rotvec) -> np.ndarray:
    """cryoSPARC rotation vectors ``(..., 3)`` (radians) → RELION (rot, tilt, psi) in degrees."""
    return matrix_to_euler(cryosparc_pose_to_matrix(rotvec))
