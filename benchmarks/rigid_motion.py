"""A second benchmark system: one chain of a crystal structure turning rigidly against the rest.

Used by ``simulate_adk.py --structure PDB --moving-chain B --twist DEG`` to make a particle
stack whose conformational change is not AdK's hinge: a multi-chain complex (e.g. the
progesterone-receptor ligand-binding-domain dimer 1A28 from the PyPI package
``MDAnalysisTests``) with crystallographic residue numbering, in which chain B twists about
the line joining the two chains' centres of mass.  Frame f of 98 turns chain B by
``twist * (f - 48) / 97`` degrees, so frame 48 is the crystal structure and frames 0 and 97
are the two ends.  Every frame is shifted by minus the all-atom centre of geometry of the
crystal structure, so the complex sits at the box centre.

Runs in the simulator's environment (MDAnalysis, numpy); no project import.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

N_FRAMES = 98
REFERENCE_FRAME = 48


def twist_angles_deg(twist_deg: float, n_frames: int = N_FRAMES) -> np.ndarray:
    """(F,) rotation of the moving chain in degrees: 0 at frame 48, ``twist`` from end to end."""
    return twist_deg * (np.arange(n_frames) - REFERENCE_FRAME) / (n_frames - 1)


def axis_rotation(axis: np.ndarray, angle_rad: float) -> np.ndarray:
    """(3, 3) right-handed rotation by ``angle_rad`` about the unit vector ``axis`` (Rodrigues)."""
    x, y, z = axis
    k = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    return np.eye(3) + np.sin(angle_rad) * k + (1.0 - np.cos(angle_rad)) * (k @ k)


def twist_frames(coords: np.ndarray, moving: np.ndarray, twist_deg: float) -> np.ndarray:
    """Every frame of the motion.

    Parameters
    ----------
    coords : (N, 3) Å, the crystal structure (all heavy atoms).
    moving : (N,) bool, the atoms of the chain that turns.
    twist_deg : total rotation from frame 0 to frame 97, degrees.

    Returns
    -------
    (98, N, 3) float64 Å, rounded to 0.001 Å (what a PDB file holds), centred on the crystal
    structure's centre of geometry.
    """
    coords = np.asarray(coords, np.float64) - np.asarray(coords, np.float64).mean(axis=0)
    pivot = coords[moving].mean(axis=0)
    axis = pivot - coords[~moving].mean(axis=0)
    axis /= np.linalg.norm(axis)
    frames = np.repeat(coords[None], N_FRAMES, axis=0)
    for f, angle in enumerate(np.radians(twist_angles_deg(twist_deg))):
        rot = axis_rotation(axis, angle)
        frames[f, moving] = (coords[moving] - pivot) @ rot.T + pivot
    return np.round(frames, 3)


def closest_contact_A(frames: np.ndarray, moving: np.ndarray) -> np.ndarray:
    """(F,) smallest distance in Å between a moving and a fixed heavy atom in each frame."""
    from scipy.spatial import cKDTree

    out = np.empty(len(frames))
    for f, xyz in enumerate(frames):
        dist, _ = cKDTree(xyz[~moving]).query(xyz[moving])
        out[f] = dist.min()
    return out


def load_protein_heavy_atoms(pdb: Path):
    """Protein heavy atoms of a PDB file (first alternate location, no waters or ligands).

    Returns (coords (N, 3) Å, names, resnames, resids, chains, elements), each an (N,) array.
    """
    import MDAnalysis as mda

    u = mda.Universe(str(pdb))
    atoms = u.select_atoms("protein and not name H*")
    atoms = atoms[np.isin([str(a).strip() for a in atoms.altLocs], ["", "A"])]
    elements = np.array([(e or n[0]).strip().upper()[:1] for e, n in zip(atoms.elements, atoms.names)])
    return (atoms.positions.astype(np.float64), np.asarray(atoms.names), np.asarray(atoms.resnames),
            np.asarray(atoms.resids), np.asarray(atoms.chainIDs), elements)
