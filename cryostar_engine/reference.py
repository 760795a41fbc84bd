"""The reference model in the particles' frame: read, coarse-grain, place in the box, check."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InputError
from .geometry.frames import check_model_centre, map_frame_offset
from .io.mrc import MapData
from .io.pdb import Beads, read_beads

__all__ = ["Reference", "load_reference"]


@dataclass
class Reference:
    """Beads in box-centred coordinates, and how they were put there."""

    beads: Beads              # coords_A are box-centred (Å)
    shift_A: np.ndarray       # (3,) what was added to the file's coordinates
    centre_A: np.ndarray      # (3,) bead centroid in the box frame


def load_reference(model_path, box: int, apix: float, map_data: MapData | None = None) -> Reference:
    """Read the model, move it into the box frame (using the map's origin when a map is given,
    see :mod:`cryostar_engine.geometry.frames`), and check that it sits inside the box.

    ``box``/``apix`` are the particles' (original) box and pixel size.
    """
    beads = read_beads(model_path)
    shift = np.zeros(3)
    if map_data is not None:
        map_box = map_data.data.shape[-1]
        if abs(map_box * map_data.voxel_size_A - box * apix) > 0.01 * box * apix:
            raise InputError(f"map is {map_box} px × {map_data.voxel_size_A:g} Å = "
                             f"{map_box * map_data.voxel_size_A:g} Å across but the particles are "
                             f"{box} px × {apix:g} Å = {box * apix:g} Å; give the consensus map of "
                             "these particles (same box and pixel size)")
        shift = -map_frame_offset(map_data.origin_A, map_box, map_data.voxel_size_A)
    coords = beads.coords_A + shift
    centre = check_model_centre(coords, box, apix, model_name=str(model_path))
    return Reference(beads=beads.with_coords(coords), shift_A=shift, centre_A=centre)
