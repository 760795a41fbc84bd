"""Put the reference model in the frame the engine expects (no Scipion import here).

Frames (plugin guide §8)
------------------------
* **Engine frame**: coordinates in Å relative to the particle box centre; particle pixel
  ``D//2`` (counting from 0) sits at 0 Å, in x, y and z.
* **Map frame**: a model docked against a map displayed with origin ``o`` (Å, the position of
  voxel 0, what ChimeraX's ``volume origin`` and Scipion's ``Volume.getOrigin().getShifts()``
  give).  The reconstruction centre is map voxel ``Dm//2``, at ``o + (Dm//2)·s_map`` Å, and it
  coincides with the particle box centre (RELION convention).  So the engine coordinates are
  ``x - (o + (Dm//2)·s_map)``.  Scipion's default origin ``-Dm/2·s_map`` gives no shift.
* A model docked against the *raw* MRC (header origin 0, e.g. in standalone ChimeraX or RELION)
  while Scipion shows the map centred sits half a box away: its centre lands near
  ``(D·apix/2, D·apix/2, D·apix/2)`` in the engine frame.  :func:`centre_model_for_engine` flags
  that (``looks_uncentred``) instead of guessing a correction.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["ModelFrameReport", "map_centre_A", "centre_model_for_engine", "read_atom_coords",
           "write_shifted_model"]

#: Fraction of atoms allowed outside the particle box before it is an error.
MAX_OUTSIDE_FRACTION = 0.01


@dataclass(frozen=True)
class ModelFrameReport:
    """What :func:`centre_model_for_engine` did and found.

    All vectors are (x, y, z) in Å.
    """

    output_path: str
    shift_A: tuple              # added to every atom: engine = input + shift
    frame: str                  # "map" (shift from the map's origin) or "as-is" (no map given)
    centre_in_A: tuple          # centre of geometry of all atoms, input file
    centre_out_A: tuple         # the same in the engine frame
    box: int                    # particle box, px
    apix: float                 # particle pixel size, Å
    n_atoms: int
    outside_fraction: float     # atoms beyond ±D·apix/2 on any axis (engine frame)
    looks_uncentred: bool       # centre near +D·apix/2 on every axis: docked on a raw MRC?
    notes: list = field(default_factory=list)

    @property
    def half_box_A(self) -> float:
        return self.box * self.apix / 2.0

    def errors(self) -> list:
        """Messages that should block a run (for a protocol's ``_validate``)."""
        errs = []
        if self.looks_uncentred:
            h = self.half_box_A
            c = ", ".join(f"{v:.1f}" for v in self.centre_out_A)
            errs.append(
                f"The reference model's centre is at ({c}) Å from the particle box centre, about "
                f"half a box ({h:.1f} Å) along every axis: it looks docked into the map with the "
                "map's origin at its corner (e.g. standalone ChimeraX/RELION with header origin "
                "0). Import the map with 'Set origin of coordinates' = yes and x=y=z=0 and link "
                f"the model to that map, or move the model by -{h:.1f} Å along x, y and z.")
        elif self.outside_fraction > MAX_OUTSIDE_FRACTION:
            errs.append(
                f"{100 * self.outside_fraction:.1f}% of the reference model's atoms lie outside "
                f"the {self.box}-px particle box ({2 * self.half_box_A:.1f} Å) once centred: "
                "check that the model is docked into the consensus map of these particles.")
        return errs


def map_centre_A(origin_A, dims, map_apix) -> np.ndarray:
    """Position in Å of the reconstruction centre (voxel ``dims//2``) of a map.

    Parameters
    ----------
    origin_A : (3,) position of voxel 0, Å, (x, y, z) (Scipion ``getOrigin().getShifts()``).
    dims : (3,) map size in voxels, (x, y, z).
    map_apix : voxel size, Å.
    """
    origin = np.asarray(origin_A, dtype=np.float64)
    half = np.asarray(dims, dtype=np.int64) // 2
    return origin + half * float(map_apix)


def _is_mmcif(path: Path) -> bool:
    return path.suffix.lower() in (".cif", ".mmcif")


def _parse(path: Path):
    from Bio.PDB import MMCIFParser, PDBParser
    from Bio.PDB.PDBExceptions import PDBConstructionWarning

    parser = MMCIFParser(QUIET=True) if _is_mmcif(path) else PDBParser(QUIET=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PDBConstructionWarning)
        structure = parser.get_structure("model", str(path))
    if not any(True for _ in structure.get_atoms()):
        raise ValueError(f"{path}: the model file holds no atoms")
    return structure


def read_atom_coords(path) -> np.ndarray:
    """All atom coordinates of the first model, ``(N, 3)`` float64 Å, (x, y, z), file order."""
    structure = _parse(Path(path))
    return np.array([a.coord for a in next(iter(structure)).get_atoms()], dtype=np.float64)


def write_shifted_model(path, out_path, shift_A) -> Path:
    """Write a copy of a PDB/mmCIF model with every atom moved by ``shift_A`` (Å, xyz).

    The output format follows ``out_path``'s extension (``.cif``/``.mmcif`` or PDB); it is
    written atomically.  Returns ``out_path``.
    """
    import os

    from Bio.PDB import MMCIFIO, PDBIO

    out_path = Path(out_path)
    structure = _parse(Path(path))
    shift = np.asarray(shift_A, dtype=np.float64)
    for atom in structure.get_atoms():
        atom.set_coord((atom.coord.astype(np.float64) + shift).astype(np.float32))
    writer = MMCIFIO() if _is_mmcif(out_path) else PDBIO()
    writer.set_structure(structure)
    tmp = out_path.with_name(f".{out_path.stem}.tmp{os.getpid()}{out_path.suffix}")
    writer.save(str(tmp))
    os.replace(tmp, out_path)
    return out_path


def centre_model_for_engine(model_path, out_path, box, apix, map_origin_A=None, map_dims=None,
                            map_apix=None) -> ModelFrameReport:
    """Write the model in the engine frame and report how it sits in the particle box.

    Parameters
    ----------
    model_path : PDB or mmCIF file of the reference model.
    out_path : where to write the box-centred copy (format from its extension).
    box, apix : particle box (px) and pixel size (Å) that the engine will use.
    map_origin_A, map_dims, map_apix : the consensus map the model is docked into: position of
        voxel 0 (Å, xyz), size (voxels, xyz) and voxel size (Å).  When None the model is taken
        to be in the centred frame already (Scipion's default display) and copied unshifted.

    Returns
    -------
    ModelFrameReport ; its :meth:`~ModelFrameReport.errors` are ready for ``_validate``.
    """
    box, apix = int(box), float(apix)
    coords = read_atom_coords(model_path)
    notes = []
    if map_origin_A is None:
        shift = np.zeros(3)
        frame = "as-is"
        notes.append("no consensus map given: the model is assumed to be centred on the box "
                     "centre already")
    else:
        if map_dims is None or map_apix is None:
            raise ValueError("map_dims and map_apix are needed together with map_origin_A")
        shift = -map_centre_A(map_origin_A, map_dims, map_apix)
        frame = "map"
        map_len = np.asarray(map_dims, dtype=np.float64) * float(map_apix)
        if np.any(np.abs(map_len - box * apix) > max(apix, float(map_apix))):
            notes.append(f"the map spans {np.round(map_len, 1).tolist()} Å but the particle box "
                         f"{box * apix:.1f} Å; their centres are taken to coincide")
    centre_in = coords.mean(0)
    centre_out = centre_in + shift
    half = box * apix / 2.0
    outside = np.any(np.abs(coords + shift) > half, axis=1).mean()
    looks_uncentred = bool(np.all(centre_out > half / 2.0))
    write_shifted_model(model_path, out_path, shift)
    return ModelFrameReport(
        output_path=str(Path(out_path).resolve()), shift_A=tuple(float(v) for v in shift),
        frame=frame, centre_in_A=tuple(float(v) for v in centre_in),
        centre_out_A=tuple(float(v) for v in centre_out), box=box, apix=apix,
        n_atoms=len(coords), outside_fraction=float(outside), looks_uncentred=looks_uncentred,
        notes=notes)
