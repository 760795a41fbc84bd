"""Where the reference model sits relative to the particle box.

The engine's frame is *box-centred*: pixel/voxel ``D//2`` of the particle box is at 0 Å (see
:mod:`cryostar_engine.physics.fourier`).  A model docked into a consensus map lives in that
map's frame, in which voxel ``i`` is at ``origin + i·apix`` (MRC header origin, Å).  So

``x_box = x_model - (origin + (D//2)·apix)``

which is the identity for a map written with origin ``-(D//2)·apix`` (Scipion's default and
this engine's outputs) and a shift of ``-(D//2)·apix`` for a map with origin 0 (RELION's and
most programs' raw output).  Without a map the model must already be box-centred.
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError

__all__ = ["map_frame_offset", "check_model_centre"]


def map_frame_offset(map_origin_A, map_box: int, map_apix: float) -> np.ndarray:
    """``(3,)`` vector (Å) to *subtract* from model coordinates docked into that map."""
    return np.asarray(map_origin_A, dtype=np.float64) + (map_box // 2) * map_apix


def check_model_centre(coords_A: np.ndarray, box: int, apix: float, model_name: str = "model",
                       max_fraction: float = 0.25) -> np.ndarray:
    """Raise :class:`InputError` when the model's centre is far from the box centre.

    Parameters
    ----------
    coords_A : ``(N, 3)`` box-centred bead coordinates, Å.
    box, apix : particle box (px) and pixel size (Å).
    max_fraction : largest allowed |centre| per axis, as a fraction of the box side.

    Returns
    -------
    The centre ``(3,)`` in Å when it is acceptable.
    """
    centre = coords_A.mean(0)
    side = box * apix
    if np.abs(centre).max() <= max_fraction * side:
        return centre
    corner = np.allclose(centre, (box // 2) * apix, atol=max_fraction * side)
    where = "near the box corner" if corner else (
        "outside the box" if np.abs(centre).max() > side / 2 else "far from the box centre")
    hint = (f"it looks docked against a map whose origin was 0; shift it by {-(box // 2) * apix:g} Å "
            "on every axis or pass the map it was docked into with --map" if corner else
            "dock it into the consensus map of these particles and pass that map with --map")
    raise InputError(f"{model_name}: model centre ({centre[0]:.1f}, {centre[1]:.1f}, "
                     f"{centre[2]:.1f}) Å is {where} (box {side:g} Å, centre at 0); {hint} "
                     f"(shift by ({-centre[0]:.1f}, {-centre[1]:.1f}, {-centre[2]:.1f}) Å to centre it)")
