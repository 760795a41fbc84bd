"""Where the reference model sits relative to the particle box, and the user's frame of outputs.

The engine computes in a *box-centred* frame: pixel/voxel ``D//2`` of the particle box is at 0 Å
(see :mod:`cryostar_engine.physics.fourier`).  A model docked into a consensus map lives in that
map's frame, in which voxel ``i`` is at ``origin + i·apix`` (MRC header origin, Å).  So

``x_box = x_model + shift_A``  with  ``shift_A = -(origin + (Dm//2)·apix_map)``

which is 0 for a map written with origin ``-(Dm//2)·apix`` (Scipion's default and the engine's
own box-frame maps) and ``-(Dm//2)·apix`` for a map with origin 0 (RELION's and most programs'
raw output).  Without a map the model must already be box-centred
(``shift_A`` = 0, source ``"as-is"``).

Every model, volume and ChimeraX script the engine writes is in the **user frame**, the frame of
the input model and map: ``x_user = x_box - shift_A``.  A volume of ``D′`` voxels of ``apix′`` Å
whose voxel ``D′//2`` is at box 0 therefore carries the header origin
``-(D′//2)·apix′ - shift_A`` (:meth:`Frame.volume_origin_A`) and overlays the input map.

The checks on a placed model (:func:`frame_problem`) are the one place that decides whether a
model fits the box: its centre near the box centre (a model docked against a corner-origin map
sits half a box off, with the shift to apply named), and at most :data:`MAX_OUTSIDE_FRACTION` of
its beads outside the box.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError

__all__ = ["Frame", "map_frame_offset", "check_model_centre", "frame_problem", "map_size_problem",
           "MAX_CENTRE_FRACTION", "MAX_OUTSIDE_FRACTION"]

#: Largest allowed |centre| per axis, as a fraction of the box side.
MAX_CENTRE_FRACTION = 0.25
#: Largest allowed fraction of beads outside the particle box (any axis).
MAX_OUTSIDE_FRACTION = 0.01


@dataclass(frozen=True)
class Frame:
    """How the input model's frame relates to the engine's box frame.

    shift_A : ``(3,)`` Å, added to the model file's coordinates to put them in the box frame.
    source : ``"map"`` (from the map's header origin) or ``"as-is"`` (no map: shift 0).
    map : absolute path of that map, or None.
    map_origin_A : ``(3,)`` header origin of that map (x, y, z, Å), or None.
    """

    shift_A: tuple = (0.0, 0.0, 0.0)
    source: str = "as-is"
    map: str | None = None
    map_origin_A: tuple | None = None

    def to_user(self, coords_box_A) -> np.ndarray:
        """``(..., 3)`` box-frame coordinates (Å) → the input model's frame."""
        return np.asarray(coords_box_A, dtype=np.float64) - np.asarray(self.shift_A, np.float64)

    def volume_origin_A(self, box: int, apix: float) -> list[float]:
        """Header origin (x, y, z, Å) of a ``box``³ volume of ``apix`` Å whose voxel ``box//2``
        is at box-frame 0, so that it overlays the input map in the user frame."""
        return [float(-(box // 2) * apix - s) for s in self.shift_A]

    def to_json(self) -> dict:
        return {"shift_A": [round(float(v), 6) + 0.0 for v in self.shift_A], "source": self.source,
                "map": self.map,
                "map_origin_A": None if self.map_origin_A is None else
                [float(v) for v in self.map_origin_A]}

    @classmethod
    def from_map(cls, map_data, map_path=None) -> "Frame":
        """The frame of a model docked into ``map_data`` (a :class:`~cryostar_engine.io.MapData`,
        read from ``map_path``): ``shift_A = -(origin + (Dm//2)·apix)``."""
        shift = -map_frame_offset(map_data.origin_A, map_data.data.shape[-1], map_data.voxel_size_A)
        return cls(shift_A=tuple(float(v) for v in shift), source="map",
                   map=str(Path(map_path).resolve()) if map_path else None,
                   map_origin_A=tuple(float(v) for v in map_data.origin_A))

    @classmethod
    def from_json(cls, data: dict | None) -> "Frame":
        """Inverse of :meth:`to_json`; None or ``{}`` (a run without a recorded frame) → identity."""
        if not data:
            return cls()
        origin = data.get("map_origin_A")
        return cls(shift_A=tuple(float(v) for v in data.get("shift_A", (0, 0, 0))),
                   source=str(data.get("source", "as-is")), map=data.get("map"),
                   map_origin_A=None if origin is None else tuple(float(v) for v in origin))


def map_frame_offset(map_origin_A, map_box: int, map_apix: float) -> np.ndarray:
    """``(3,)`` vector (Å) to *subtract* from model coordinates docked into that map."""
    return np.asarray(map_origin_A, dtype=np.float64) + (map_box // 2) * map_apix


def map_size_problem(map_box: int, map_apix: float, box: int, apix: float) -> str | None:
    """One line when the map and the particles differ by more than 1 % in physical size."""
    if abs(map_box * map_apix - box * apix) <= 0.01 * box * apix:
        return None
    return (f"map is {map_box} px × {map_apix:g} Å = {map_box * map_apix:g} Å across but the "
            f"particles are {box} px × {apix:g} Å = {box * apix:g} Å; give the consensus map of "
            "these particles (same box and pixel size)")


def frame_problem(coords_A: np.ndarray, box: int, apix: float, model_name: str = "model",
                  with_map: bool = False) -> str | None:
    """One line saying why box-frame coordinates ``(N, 3)`` Å cannot be trained on, or None.

    * centre beyond :data:`MAX_CENTRE_FRACTION` of the box side on an axis; when it is beyond
      that on *every* axis in the + direction the model looks docked against a map whose origin
      was at its corner (origin 0), and the message names the shift of ``-(D//2)·apix``;
    * more than :data:`MAX_OUTSIDE_FRACTION` of the beads outside the box.
    """
    centre = coords_A.mean(0)
    side = box * apix
    if np.abs(centre).max() > MAX_CENTRE_FRACTION * side:
        corner = bool(np.all(centre > MAX_CENTRE_FRACTION * side))
        where = "near the box corner" if corner else (
            "outside the box" if np.abs(centre).max() > side / 2 else "far from the box centre")
        if corner and with_map:
            hint = (f"it looks docked against this map with its origin at the corner (0); give the map "
                    f"with the header origin the model was docked with, or shift the model by "
                    f"{-(box // 2) * apix:g} Å on every axis")
        elif corner:
            hint = (f"it looks docked against a map whose origin was 0; shift it by "
                    f"{-(box // 2) * apix:g} Å on every axis or pass the map it was docked into "
                    "with --map")
        else:
            hint = "dock it into the consensus map of these particles and pass that map with --map"
        return (f"{model_name}: model centre ({centre[0]:.1f}, {centre[1]:.1f}, {centre[2]:.1f}) Å "
                f"is {where} (box {side:g} Å, centre at 0); {hint} (shift by ({-centre[0]:.1f}, "
                f"{-centre[1]:.1f}, {-centre[2]:.1f}) Å to centre it)")
    outside = float(np.any(np.abs(coords_A) > side / 2, axis=1).mean())
    if outside > MAX_OUTSIDE_FRACTION:
        return (f"{model_name}: {100 * outside:.1f}% of the model's beads lie outside the {box}-px "
                f"particle box ({side:g} Å) once placed; check that the model is docked into the "
                "consensus map of these particles and that the particles' box holds the whole "
                "molecule")
    return None


def check_model_centre(coords_A: np.ndarray, box: int, apix: float, model_name: str = "model",
                       with_map: bool = False) -> np.ndarray:
    """Raise :class:`InputError` with :func:`frame_problem`'s line; else return the ``(3,)``
    centre (Å) of the box-frame coordinates ``(N, 3)``."""
    problem = frame_problem(coords_A, box, apix, model_name, with_map)
    if problem:
        raise InputError(problem)
    return coords_A.mean(0)
