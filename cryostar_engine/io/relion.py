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
from ..validate.star import (check_3d_poses, check_pixel_sizes, check_table, optics_disagreement,
                             refuse_foreign_format)
from .mrc import stack_shape

__all__ = ["ParticleMetadata", "read_star_tables", "read_particles"]

POSE_COLUMNS = ("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi")
CTF_COLUMNS = ("rlnDefocusU", "rlnDefocusV")
OPTICS_VALUES = {"voltage_kv": "rlnVoltage", "cs_mm": "rlnSphericalAberration",
                 "amplitude_contrast": "rlnAmplitudeContrast"}
DEFAULT_AMPLITUDE_CONTRAST = 0.1     # what RELION assumes when the column is absent


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
    """Return ``(optics, particles)`` tables of a RELION star (``optics`` is None for 3.0).

    The columns the engine reads are checked (:func:`~cryostar_engine.validate.star.check_table`:
    no duplicated column, no text, NaN or Inf) and returned as float64.
    """
    star_path = Path(star_path)
    if not star_path.is_file():
        raise InputError(f"{star_path}: star file not found")
    refuse_foreign_format(star_path)
    try:
        blocks = starfile.read(star_path, always_dict=True)
    except Exception as err:  # starfile raises assorted parser errors
        raise InputError(f"{star_path}: not a readable STAR file ({err})") from None
    blocks = {k: v for k, v in blocks.items() if isinstance(v, pd.DataFrame)}
    if not blocks:
        raise InputError(f"{star_path}: not a STAR file with a table (no data_ block with a loop_); "
                         "give the RELION particle STAR file (e.g. Refine3D run_data.star)")
    if "particles" in blocks:
        particles = blocks["particles"]
    elif len(blocks) == 1 or "" in blocks:
        particles = blocks.get("", next(iter(blocks.values())) if blocks else pd.DataFrame())
    else:
        names = ", ".join(f"data_{k}" for k in blocks)
        raise InputError(f"{star_path}: no data_particles block (found {names})")
    if particles is None or len(particles) == 0:
        raise InputError(f"{star_path}: the star file holds no particles")
    optics = blocks.get("optics")
    if optics is not None:
        optics = check_table(optics, star_path, "data_optics")
    return optics, check_table(particles.reset_index(drop=True), star_path, "data_particles")


def _require(table: pd.DataFrame, columns, star_path, what: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise InputError(f"{star_path}: missing {what} column(s) {', '.join(missing)}; "
                         f"use particles from a 3-D refinement (e.g. RELION Refine3D run_data.star)")


def _per_particle(particles, optics, column, star_path, default=None, notes=None) -> np.ndarray:
    """A value per particle from its optics group (RELION 3.1+), else from the particle table
    (RELION 3.0), else ``default``.  A per-particle value that disagrees with the optics table
    adds a note to ``notes``."""
    if column in particles.columns and (optics is None or column not in optics.columns):
        return particles[column].to_numpy(dtype=np.float64)
    if optics is not None and column in optics.columns:
        groups = particles["rlnOpticsGroup"].to_numpy()
        lookup = dict(zip(optics["rlnOpticsGroup"].to_numpy(), optics[column].to_numpy(np.float64)))
        missing = sorted(set(groups) - set(lookup))
        if missing:
            raise InputError(f"{star_path}: optics group(s) {missing} used by particles are not in "
                             "data_optics")
        values = np.array([lookup[g] for g in groups], dtype=np.float64)
        note = optics_disagreement(particles, values, column, star_path)
        if note and notes is not None:
            notes.append(note)
        return values
    if default is None:
        raise InputError(f"{star_path}: no _{column} in data_particles or data_optics; add it "
                         "(RELION 3.1+: to data_optics)")
    return np.full(len(particles), float(default))


def _pixel_size(particles, optics, star_path, apix_override, notes) -> np.ndarray:
    if apix_override is not None:
        if not apix_override > 0:
            raise InputError(f"--apix must be a positive pixel size in Å, got {apix_override:g}")
        return np.full(len(particles), float(apix_override))
    for col in ("rlnImagePixelSize", "rlnPixelSize"):
        try:
            return _per_particle(particles, optics, col, star_path, notes=notes)
        except InputError:
            pass
    try:
        det = _per_particle(particles, optics, "rlnDetectorPixelSize", star_path)
        mag = _per_particle(particles, optics, "rlnMagnification", star_path)
        return det / mag * 1e4
    except InputError:
        raise InputError(f"{star_path}: no pixel size (rlnImagePixelSize, or rlnDetectorPixelSize "
                         "and rlnMagnification); pass --apix") from None


def find_stack(path_text: str, source: Path, datadir, row: int, parents: int = 2,
               field: str = "", looked: str = "the star file's folder and its parents",
               hint: str = "pass --datadir") -> Path:
    """The image stack a metadata row names: looked for under ``datadir`` (as written, then by
    file name), as an absolute path, next to ``source`` and up to ``parents`` folders above it,
    and in the working folder.  :class:`InputError` naming ``source``, the 1-based row and the
    ``field`` when none exists."""
    rel = Path(path_text)
    candidates = [Path(datadir) / rel, Path(datadir) / rel.name] if datadir is not None else []
    if rel.is_absolute():
        candidates.append(rel)
    base = source.resolve().parent
    candidates += [base / rel] + [base.parents[i] / rel
                                  for i in range(min(parents, len(base.parents)))]
    candidates.append(Path.cwd() / rel)
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        where = f"--datadir {datadir}, " if datadir else ""
        raise InputError(f"{source} row {row + 1}: image stack '{path_text}'{field} not found "
                         f"(looked in {where}{looked}); {hint}")
    return found


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
            resolved[path_text] = find_stack(path_text, star_path, datadir, row)
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


def _optics_values(particles, optics, star_path, amplitude_contrast, notes) -> dict:
    """Voltage, Cs and amplitude contrast per particle, checked for range."""
    has_q0 = "rlnAmplitudeContrast" in particles.columns or (
        optics is not None and "rlnAmplitudeContrast" in optics.columns)
    if amplitude_contrast is not None:
        if not 0 <= amplitude_contrast < 1:
            raise InputError(f"--amplitude-contrast must lie in [0, 1), got {amplitude_contrast:g}")
        if has_q0:
            notes.append(f"amplitude contrast {amplitude_contrast:g} (--amplitude-contrast) replaces "
                         "the star file's _rlnAmplitudeContrast")
    elif not has_q0:
        notes.append(f"no _rlnAmplitudeContrast: {DEFAULT_AMPLITUDE_CONTRAST:g} assumed, as RELION does "
                     "(change it with --amplitude-contrast)")
    default_q0 = DEFAULT_AMPLITUDE_CONTRAST if amplitude_contrast is None else amplitude_contrast
    values = {k: _per_particle(particles, optics, c, star_path,
                               default=default_q0 if k == "amplitude_contrast" else None, notes=notes)
              for k, c in OPTICS_VALUES.items()}
    if amplitude_contrast is not None:
        values["amplitude_contrast"] = np.full(len(particles), float(amplitude_contrast))
    limits = {"voltage_kv": (0, np.inf, "kV"), "cs_mm": (-np.inf, np.inf, "mm"),
              "amplitude_contrast": (0, 1, "")}
    for key, (lo, hi, unit) in limits.items():
        v = values[key]
        bad = np.flatnonzero(~((v >= lo) & (v < hi)) | ((v == 0) & (key == "voltage_kv")))
        if len(bad):
            raise InputError(f"{star_path} row {bad[0] + 1}: _{OPTICS_VALUES[key]} {v[bad[0]]:g}{unit} "
                             f"is out of range (must be {'> 0' if key == 'voltage_kv' else 'in [0, 1)'}); "
                             "fix data_optics")
    return values


def read_particles(star_path, datadir=None, apix=None, require_poses=True,
                   amplitude_contrast=None, passthrough=None) -> ParticleMetadata:
    """Read a RELION star file and check it against its image stacks.

    Parameters
    ----------
    star_path : path of the ``.star`` file.
    datadir : folder that image paths are relative to (optional).
    apix : pixel size in Å overriding the star file (optional).
    require_poses : fail when the angle columns are missing (or hold 2-D poses only).
    amplitude_contrast : overrides the star file's ``rlnAmplitudeContrast`` (optional); when the
        file has none, RELION's 0.1 is used with a note.
    passthrough : a cryoSPARC job's passthrough ``.cs`` (only with a ``.cs`` particles file, which
        is read by :func:`cryostar_engine.io.cryosparc.read_cryosparc`).

    Raises
    ------
    InputError : with a one-line message naming the file, row or column.
    """
    star_path = Path(star_path)
    if star_path.suffix.lower() == ".cs":
        from .cryosparc import read_cryosparc
        return read_cryosparc(star_path, passthrough, datadir=datadir, apix=apix,
                              require_poses=require_poses, amplitude_contrast=amplitude_contrast)
    if passthrough is not None:
        raise InputError(f"--passthrough goes with a cryoSPARC .cs --particles file, not {star_path.name}")
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
    apix_pp = _pixel_size(particles, optics, star_path, apix, notes)
    declared_box = (int(optics["rlnImageSize"].max()) if optics is not None
                    and "rlnImageSize" in optics.columns else None)
    px, pixel_notes = check_pixel_sizes(apix_pp, star_path, declared_box)
    notes += pixel_notes
    n = len(particles)
    if {"rlnOriginXAngst", "rlnOriginYAngst"} <= set(particles.columns):
        shifts = particles[["rlnOriginXAngst", "rlnOriginYAngst"]].to_numpy(np.float64)
    elif {"rlnOriginX", "rlnOriginY"} <= set(particles.columns):
        shifts = particles[["rlnOriginX", "rlnOriginY"]].to_numpy(np.float64) * apix_pp[:, None]
        notes.append("origins given in pixels (rlnOriginX/Y) were converted to Å")
    else:
        shifts = np.zeros((n, 2))
        notes.append("no rlnOrigin columns: shifts taken as 0")
    euler = (particles[list(POSE_COLUMNS)].to_numpy(np.float64) if require_poses
             else np.zeros((n, 3)))
    if require_poses:
        check_3d_poses(euler, star_path)
    groups = (particles["rlnOpticsGroup"].to_numpy(np.int64) if "rlnOpticsGroup" in particles
              else np.ones(n, np.int64))
    paths, indices = _image_locations(particles, star_path, datadir)
    box = _check_stacks(paths, indices, star_path)
    if optics is not None and "rlnImageSize" in optics.columns:
        declared = sorted(set(optics["rlnImageSize"].astype(int)))
        if declared != [box]:
            raise InputError(f"{star_path}: data_optics rlnImageSize {declared} differs from the "
                             f"stacks' {box} px")
    ctf = _optics_values(particles, optics, star_path, amplitude_contrast, notes)
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
