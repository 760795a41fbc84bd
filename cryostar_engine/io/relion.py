"""RELION particle star files → :class:`ParticleMetadata` (RELION semantics live only here).

Reads RELION 3.0 star files (one particle table, optics values per row) and 3.1+ files
(``data_optics`` + ``data_particles``), with any number of optics groups.  Conventions kept as
RELION writes them (see :mod:`cryostar_engine.geometry.poses`, :mod:`..physics.ctf`):

* angles ``rlnAngleRot/Tilt/Psi`` in degrees;
* ``shifts_A`` = (``rlnOriginXAngst``, ``rlnOriginYAngst``) in Å, or ``rlnOriginX/Y`` × pixel size
  when only pixel origins are present.  The particle's content is centred by moving it by
  ``+shifts_A`` (``rlnOrigin* = -(offset of the particle from the box centre)``);
* ``rlnImageName`` = ``N@path`` with a 1-based N; stored here as 0-based ``image_indices``.
  Paths are resolved against ``--datadir`` first, then the star file's folder and its parents
  (a RELION job folder sits two levels below the project), then the current folder.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import starfile

from ..errors import InputError
from .mrc import stack_shape

__all__ = ["ParticleMetadata", "read_star_tables", "read_particles"]

POSE_COLUMNS = ("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi")
CTF_COLUMNS = ("rlnDefocusU", "rlnDefocusV")
OPTICS_VALUES = {"voltage_kv": "rlnVoltage", "cs_mm": "rlnSphericalAberration",
                 "amplitude_contrast": "rlnAmplitudeContrast"}


@dataclass
class ParticleMetadata:
    """Everything the engine needs per particle, as numpy arrays of length N (star-file order)."""

    star_path: Path
    image_paths: list            # N resolved Paths
    image_indices: np.ndarray    # (N,) int64, 0-based index in its stack
    euler_deg: np.ndarray        # (N, 3) rot, tilt, psi in degrees
    shifts_A: np.ndarray         # (N, 2) rlnOriginX/YAngst in Å
    defocus_u_A: np.ndarray
    defocus_v_A: np.ndarray
    defocus_angle_deg: np.ndarray
    phase_shift_deg: np.ndarray
    bfactor_A2: np.ndarray
    scale: np.ndarray
    voltage_kv: np.ndarray
    cs_mm: np.ndarray
    amplitude_contrast: np.ndarray
    optics_group: np.ndarray     # (N,) int
    apix: float                  # Å per pixel of the stacks
    box: int                     # stack side in pixels
    notes: list = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.image_indices)

    def subset(self, rows) -> "ParticleMetadata":
        """A new metadata object with only ``rows`` (indices or boolean mask), in that order."""
        rows = np.arange(len(self))[rows]
        arrays = {k: (v[rows] if isinstance(v, np.ndarray) else v) for k, v in self.__dict__.items()}
        arrays["image_paths"] = [self.image_paths[i] for i in rows]
        return ParticleMetadata(**arrays)


def read_star_tables(star_path) -> tuple[pd.DataFrame | None, pd.DataFrame]:
    """Return ``(optics, particles)`` tables of a RELION star (``optics`` is None for 3.0)."""
    star_path = Path(star_path)
    if not star_path.is_file():
        raise InputError(f"{star_path}: star file not found")
    try:
        blocks = starfile.read(star_path, always_dict=True)
    except Exception as err:  # starfile raises assorted parser errors
        raise InputError(f"{star_path}: not a readable STAR file ({err})") from None
    blocks = {k: v for k, v in blocks.items() if isinstance(v, pd.DataFrame)}
    if "particles" in blocks:
        particles = blocks["particles"]
    elif len(blocks) == 1 or "" in blocks:
        particles = blocks.get("", next(iter(blocks.values())) if blocks else pd.DataFrame())
    else:
        names = ", ".join(f"data_{k}" for k in blocks)
        raise InputError(f"{star_path}: no data_particles block (found {names})")
    if particles is None or len(particles) == 0:
        raise InputError(f"{star_path}: the star file holds no particles")
    return blocks.get("optics"), particles.reset_index(drop=True)


def _require(table: pd.DataFrame, columns, star_path, what: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise InputError(f"{star_path}: missing {what} column(s) {', '.join(missing)}; "
                         f"use particles from a 3-D refinement (e.g. RELION Refine3D run_data.star)")


def _per_particle(particles, optics, column, star_path, default=None) -> np.ndarray:
    """A value per particle from the particle table, else from its optics group, else default."""
    if column in particles.columns:
        return particles[column].to_numpy(dtype=np.float64)
    if optics is not None and column in optics.columns:
        groups = particles["rlnOpticsGroup"].to_numpy()
        lookup = dict(zip(optics["rlnOpticsGroup"].to_numpy(), optics[column].to_numpy(np.float64)))
        missing = sorted(set(groups) - set(lookup))
        if missing:
            raise InputError(f"{star_path}: optics group(s) {missing} used by particles are not in "
                             "data_optics")
        return np.array([lookup[g] for g in groups], dtype=np.float64)
    if default is None:
        raise InputError(f"{star_path}: no {column} in the particles or the optics table")
    return np.full(len(particles), float(default))


def _pixel_size(particles, optics, star_path, apix_override) -> np.ndarray:
    if apix_override:
        return np.full(len(particles), float(apix_override))
    for col in ("rlnImagePixelSize", "rlnPixelSize"):
        try:
            return _per_particle(particles, optics, col, star_path)
        except InputError:
            pass
    try:
        det = _per_particle(particles, optics, "rlnDetectorPixelSize", star_path)
        mag = _per_particle(particles, optics, "rlnMagnification", star_path)
        return det / mag * 1e4
    except InputError:
        raise InputError(f"{star_path}: no pixel size (rlnImagePixelSize, or rlnDetectorPixelSize "
                         "and rlnMagnification); pass --apix") from None


def _resolve(path_text: str, star_path: Path, datadir) -> Path | None:
    rel = Path(path_text)
    candidates = []
    if datadir is not None:
        candidates += [Path(datadir) / rel, Path(datadir) / rel.name]
    if rel.is_absolute():
        candidates.append(rel)
    base = star_path.resolve().parent
    candidates += [base / rel, base.parent / rel, base.parent.parent / rel, Path.cwd() / rel]
    return next((c for c in candidates if c.is_file()), None)


def _image_locations(particles, star_path, datadir):
    names = particles["rlnImageName"].astype(str).to_numpy()
    indices = np.empty(len(names), dtype=np.int64)
    paths, resolved = [], {}
    for row, name in enumerate(names):
        index_text, sep, path_text = name.partition("@")
        if not sep:
            index_text, path_text = "1", name
        try:
            indices[row] = int(index_text) - 1
        except ValueError:
            raise InputError(f"{star_path} row {row + 1}: rlnImageName '{name}' is not N@path") from None
        if path_text not in resolved:
            found = _resolve(path_text, star_path, datadir)
            if found is None:
                where = f"--datadir {datadir}, " if datadir else ""
                raise InputError(f"{star_path} row {row + 1}: image stack '{path_text}' not found "
                                 f"(looked in {where}the star file's folder and its parents); "
                                 "pass --datadir")
            resolved[path_text] = found
        paths.append(resolved[path_text])
    return paths, indices


def _check_stacks(paths, indices, star_path) -> int:
    """Check every stack's box and image count; return the common box."""
    rows_of: dict[Path, list[int]] = {}
    for row, p in enumerate(paths):
        rows_of.setdefault(p, []).append(row)
    sizes = set()
    for p, rows in rows_of.items():
        n, ny, nx = stack_shape(p)
        if ny != nx:
            raise InputError(f"{p}: images must be square, got {nx}×{ny} px")
        sizes.add(nx)
        idx = indices[rows]
        bad = np.flatnonzero(idx >= n)
        if len(bad):
            r = rows[bad[0]]
            raise InputError(f"{star_path} row {r + 1}: image {indices[r] + 1}@{p.name} is beyond "
                             f"the stack's {n} images")
        if (idx < 0).any():
            r = rows[int(np.flatnonzero(idx < 0)[0])]
            raise InputError(f"{star_path} row {r + 1}: image indices in rlnImageName start at 1")
    if len(sizes) > 1:
        raise InputError(f"{star_path}: stacks have different box sizes {sorted(sizes)} px; "
                         "re-extract the particles with one box size")
    return sizes.pop()


def read_particles(star_path, datadir=None, apix=None, require_poses=True) -> ParticleMetadata:
    """Read a RELION star file and check it against its image stacks.

    Parameters
    ----------
    star_path : path of the ``.star`` file.
    datadir : folder that image paths are relative to (optional).
    apix : pixel size in Å overriding the star file (optional).
    require_poses : fail when the angle columns are missing.

    Raises
    ------
    InputError : with a one-line message naming the file, row or column.
    """
    star_path = Path(star_path)
    optics, particles = read_star_tables(star_path)
    _require(particles, ["rlnImageName"], star_path, "image")
    _require(particles, CTF_COLUMNS, star_path, "CTF")
    if require_poses:
        _require(particles, POSE_COLUMNS, star_path, "pose")
    if optics is not None and "rlnOpticsGroup" not in particles.columns:
        raise InputError(f"{star_path}: data_optics is present but particles have no rlnOpticsGroup")
    if optics is not None:
        unknown = sorted(set(particles["rlnOpticsGroup"]) - set(optics.get("rlnOpticsGroup", [])))
        if unknown:
            raise InputError(f"{star_path}: optics group(s) {unknown} used by particles are not in "
                             "data_optics")
    notes = []
    apix_pp = _pixel_size(particles, optics, star_path, apix)
    if np.ptp(apix_pp) > 1e-4 * apix_pp.max():
        raise InputError(f"{star_path}: pixel size differs between optics groups "
                         f"({sorted(set(np.round(apix_pp, 4)))} Å); rescale to one pixel size first")
    px = float(apix_pp[0])
    n = len(particles)
    if {"rlnOriginXAngst", "rlnOriginYAngst"} <= set(particles.columns):
        shifts = particles[["rlnOriginXAngst", "rlnOriginYAngst"]].to_numpy(np.float64)
    elif {"rlnOriginX", "rlnOriginY"} <= set(particles.columns):
        shifts = particles[["rlnOriginX", "rlnOriginY"]].to_numpy(np.float64) * px
        notes.append("origins given in pixels (rlnOriginX/Y) were converted to Å")
    else:
        shifts = np.zeros((n, 2))
        notes.append("no rlnOrigin columns: shifts taken as 0")
    euler = (particles[list(POSE_COLUMNS)].to_numpy(np.float64) if require_poses
             else np.zeros((n, 3)))
    groups = (particles["rlnOpticsGroup"].to_numpy(np.int64) if "rlnOpticsGroup" in particles
              else np.ones(n, np.int64))
    paths, indices = _image_locations(particles, star_path, datadir)
    box = _check_stacks(paths, indices, star_path)
    if optics is not None and "rlnImageSize" in optics.columns:
        declared = sorted(set(optics["rlnImageSize"].astype(int)))
        if declared != [box]:
            raise InputError(f"{star_path}: data_optics rlnImageSize {declared} differs from the "
                             f"stacks' {box} px")
    ctf = {k: _per_particle(particles, optics, c, star_path) for k, c in OPTICS_VALUES.items()}
    defocus = particles[list(CTF_COLUMNS)].to_numpy(np.float64)
    bad = np.flatnonzero(~np.isfinite(defocus).all(1) | (defocus <= 0).any(1))
    if len(bad):
        raise InputError(f"{star_path} row {bad[0] + 1}: defocus must be positive Å "
                         f"(got {defocus[bad[0]].tolist()})")
    return ParticleMetadata(
        star_path=star_path, image_paths=paths, image_indices=indices, euler_deg=euler,
        shifts_A=shifts, defocus_u_A=defocus[:, 0], defocus_v_A=defocus[:, 1],
        defocus_angle_deg=_per_particle(particles, optics, "rlnDefocusAngle", star_path, 0.0),
        phase_shift_deg=_per_particle(particles, optics, "rlnPhaseShift", star_path, 0.0),
        bfactor_A2=_per_particle(particles, optics, "rlnCtfBfactor", star_path, 0.0),
        scale=_per_particle(particles, optics, "rlnCtfScalefactor", star_path, 1.0),
        optics_group=groups, apix=px, box=box, notes=notes, **ctf)
