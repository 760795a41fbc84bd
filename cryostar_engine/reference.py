"""The reference model in the particles' frame: read, coarse-grain, place in the box, check.

:func:`place_model` places a model and *reports* what is wrong (for ``inspect-model``, whose
JSON the Scipion plugin shows); :func:`load_reference` does the same and raises
:class:`~cryostar_engine.errors.InputError` with that one line (for training and check-inputs).
The frame conventions are in :mod:`cryostar_engine.geometry.frames`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import InputError
from .geometry.frames import Frame, frame_problem, map_size_problem
from .io.mrc import MapData
from .io.pdb import Beads, read_beads

__all__ = ["Reference", "Placement", "place_model", "load_reference", "inspect_model"]


@dataclass
class Reference:
    """Beads in box-centred coordinates, and how they were put there."""

    beads: Beads              # coords_A are box-centred (Å)
    shift_A: np.ndarray       # (3,) what was added to the file's coordinates
    centre_A: np.ndarray      # (3,) bead centroid in the box frame
    frame: Frame = field(default_factory=Frame)   # the user frame of every output


@dataclass
class Placement:
    """A placed model and what stops it from being trained on (``error``, one line, or None)."""

    reference: Reference
    error: str | None
    notes: list[str]


def place_model(model_path, box: int, apix: float, map_data: MapData | None = None,
                map_path=None) -> Placement:
    """Read the model and move it into the box frame (by the map's origin when a map is given).

    Parameters
    ----------
    model_path : PDB/mmCIF file.
    box, apix : the particles' (original) box (px) and pixel size (Å).
    map_data : the consensus map the model is docked into, or None (model box-centred already).
    map_path : that map's file, recorded in the frame.

    Raises
    ------
    InputError : only for an unreadable model (frame problems are returned in ``error``).
    """
    beads = read_beads(model_path)
    frame = Frame() if map_data is None else Frame.from_map(map_data, map_path)
    notes = []
    error = None
    if map_data is None:
        notes.append("no map given: the model is taken to be centred on the box centre already")
    else:
        error = map_size_problem(map_data.data.shape[-1], map_data.voxel_size_A, box, apix)
    coords = beads.coords_A + np.asarray(frame.shift_A)
    error = error or frame_problem(coords, box, apix, model_name=str(model_path),
                                   with_map=map_data is not None)
    if beads.dropped:
        notes.append("residues without a bead were ignored: "
                     + ", ".join(f"{k}×{v}" for k, v in beads.dropped.items()))
    ref = Reference(beads=beads.with_coords(coords), shift_A=np.asarray(frame.shift_A),
                    centre_A=coords.mean(0), frame=frame)
    return Placement(reference=ref, error=error, notes=notes)


def load_reference(model_path, box: int, apix: float, map_data: MapData | None = None,
                   map_path=None) -> Reference:
    """:func:`place_model`, raising :class:`InputError` with its error line."""
    placed = place_model(model_path, box, apix, map_data, map_path)
    if placed.error:
        raise InputError(placed.error)
    return placed.reference


def _count_atoms(model_path) -> int:
    """Atoms of the first model of a PDB/mmCIF file (the file is known to be readable)."""
    import warnings

    from Bio.PDB import MMCIFParser, PDBParser
    from Bio.PDB.PDBExceptions import PDBConstructionWarning

    path = Path(model_path)
    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix == ".gz" else path.suffix.lower()
    cif = suffix in (".cif", ".mmcif", ".cif.gz", ".mmcif.gz")
    parser = MMCIFParser(QUIET=True) if cif else PDBParser(QUIET=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PDBConstructionWarning)
        structure = parser.get_structure("m", str(path))
    return sum(1 for _ in next(iter(structure)).get_atoms())


def inspect_model(model_path, box: int, apix: float, map_path=None,
                  train_box: int | None = None) -> dict:
    """The ``cryostar-inspect/1`` report of ``inspect-model`` (see that command).

    ``frame.error`` is one line when training would refuse the model (or the map), else None;
    ``low_pass`` is :func:`~cryostar_engine.lowpass.suggest_low_pass` when a map of the
    particles' size is given, else None; ``default_low_pass_A`` and ``default_box`` are the
    low-pass and box train-atom uses when neither is set.
    """
    from . import __version__
    from .atom.config import AtomConfig
    from .atom.inputs import default_box
    from .io.mrc import read_map
    from .lowpass import resolve_low_pass, suggest_low_pass

    if int(box) < 2 or not float(apix) > 0:
        raise InputError(f"--box must be ≥ 2 px and --apix > 0 Å, got {box} px, {apix} Å")
    map_data = read_map(map_path) if map_path else None
    placed = place_model(model_path, int(box), float(apix), map_data, map_path)
    ref, beads = placed.reference, placed.reference.beads
    size_ok = map_data is not None and map_size_problem(
        map_data.data.shape[-1], map_data.voxel_size_A, box, apix) is None
    low_pass = suggest_low_pass(beads, map_data, box, apix, train_box) if size_ok else None
    # train-atom's default low-pass, resolved as a run without --low-pass resolves it
    resolved, _ = resolve_low_pass(AtomConfig.low_pass_A, beads, map_data if size_ok else None,
                                   box, apix)
    return {
        "schema": "cryostar-inspect/1", "engine_version": __version__,
        "model": {"atoms": _count_atoms(model_path), "beads": len(beads),
                  "chains": sorted(set(map(str, beads.chain_ids)))},
        "frame": {"shift_A": [round(float(v), 4) + 0.0 for v in ref.frame.shift_A],
                  "centre_A": [round(float(v), 3) + 0.0 for v in ref.centre_A],
                  "source": ref.frame.source, "error": placed.error, "notes": placed.notes},
        "low_pass": None if low_pass is None else {
            "fsc05_A": low_pass.fsc05_A, "floor_A": low_pass.floor_A,
            "suggested_A": low_pass.suggested_A},
        "default_low_pass_A": resolved,
        "default_box": default_box(int(box), float(apix), resolved),
    }
