"""Checks of RELION STAR tables, made once when a particle file is read.

Rows are reported 1-based, counted in the ``data_particles`` loop (as a text editor shows them
after the header).  Only columns the engine reads are type-checked; others pass through.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError

__all__ = ["NUMERIC_COLUMNS", "refuse_foreign_format", "check_table", "check_3d_poses",
           "check_pixel_sizes", "optics_disagreement"]

#: RELION columns the engine reads as numbers (particles and optics tables).
NUMERIC_COLUMNS = (
    "rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi", "rlnOriginXAngst", "rlnOriginYAngst",
    "rlnOriginX", "rlnOriginY", "rlnDefocusU", "rlnDefocusV", "rlnDefocusAngle", "rlnPhaseShift",
    "rlnCtfBfactor", "rlnCtfScalefactor", "rlnVoltage", "rlnSphericalAberration",
    "rlnAmplitudeContrast", "rlnImagePixelSize", "rlnPixelSize", "rlnDetectorPixelSize",
    "rlnMagnification", "rlnImageSize", "rlnOpticsGroup",
)

INTEGER_COLUMNS = ("rlnOpticsGroup", "rlnImageSize")

#: a difference of pixel size between optics groups accepted (relative), see check_pixel_sizes
PIXEL_SIZE_TOLERANCE = 0.01

_NUMPY_MAGIC = b"\x93NUMPY"


def refuse_foreign_format(path: Path) -> None:
    """Refuse, in one line, metadata files of other programs given where a STAR file is needed
    (``read_particles`` reads ``.cs`` files itself, before this)."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as err:
        raise InputError(f"{path}: cannot read the file ({err.strerror})") from None
    if path.suffix.lower() == ".cs":
        raise InputError(f"{path}: this is a cryoSPARC .cs file and this input needs a RELION STAR "
                         "file; export it (e.g. pyem's csparc2star.py)")
    if head.startswith(_NUMPY_MAGIC):
        raise InputError(f"{path}: this is a NumPy array (a cryoSPARC .cs file?), not a STAR file; "
                         "give a cryoSPARC particles file with its .cs suffix, or a RELION STAR file")
    if head.startswith(b"\x80"):
        raise InputError(f"{path}: this is a Python pickle (e.g. cryoDRGN poses), not a STAR "
                         "file; give the RELION STAR file of the particles")


def _first_text_row(values: pd.Series) -> int | None:
    """0-based index of the first entry that is not a number (``nan``/``inf`` count as numbers)."""
    as_num = pd.to_numeric(values, errors="coerce")
    text = values.astype(str).str.strip().str.lower()
    spelled = text.isin(["nan", "-nan", "inf", "-inf", "+inf", "infinity", "-infinity"])
    bad = np.flatnonzero(as_num.isna().to_numpy() & ~spelled.to_numpy())
    return int(bad[0]) if len(bad) else None


def check_table(table: pd.DataFrame, path: Path, block: str) -> pd.DataFrame:
    """Refuse duplicated columns, text in numeric columns and NaN/Inf in them; return the table
    with those columns as float64.  ``block`` names the table in messages (``data_particles``)."""
    names = list(table.columns)
    dup = next((c for i, c in enumerate(names) if c in names[:i]), None)
    if dup is not None:
        where = [i + 1 for i, c in enumerate(names) if c == dup]
        raise InputError(f"{path}: {block} has column _{dup} twice (#{where[0]} and #{where[1]}); "
                         "remove the extra column (values would be read from the wrong one)")
    table = table.copy()
    for col in NUMERIC_COLUMNS:
        if col not in table.columns:
            continue
        values = table[col]
        if not pd.api.types.is_numeric_dtype(values):
            row = _first_text_row(values)
            if row is not None:
                raise InputError(f"{path}: {block} row {row + 1} column _{col}: '{values.iloc[row]}' "
                                 "is not a number; fix or remove that row")
            values = pd.to_numeric(values, errors="coerce")
        values = values.to_numpy(np.float64)
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            raise InputError(f"{path}: {block} row {bad[0] + 1} column _{col}: {values[bad[0]]} is "
                             f"not a finite number ({len(bad)} such rows); fix or remove them")
        if col in INTEGER_COLUMNS:
            frac = np.flatnonzero(values != np.round(values))
            if len(frac):
                raise InputError(f"{path}: {block} row {frac[0] + 1} column _{col}: "
                                 f"{values[frac[0]]:g} is not a whole number")
            values = values.astype(np.int64)
        table[col] = values
    return table


def check_3d_poses(euler_deg: np.ndarray, path: Path) -> None:
    """Refuse poses with rot = tilt = 0 for every particle: a 2-D classification's in-plane
    angles only, which would be taken as views along z."""
    if len(euler_deg) > 1 and not np.any(euler_deg[:, :2]):
        raise InputError(f"{path}: _rlnAngleRot and _rlnAngleTilt are 0 for every particle, so these "
                         "are 2-D (in-plane) poses, e.g. from a 2-D classification; give particles "
                         "with 3-D poses (RELION Refine3D run_data.star)")


def check_pixel_sizes(apix_pp: np.ndarray, path: Path, box: int | None = None) -> tuple[float, list]:
    """One working pixel size for all particles, and notes.

    Refuses a non-positive pixel size.  Optics groups whose pixel sizes differ by at most
    :data:`PIXEL_SIZE_TOLERANCE` (e.g. 1.24 and 1.25 Å, a calibration difference) are treated at
    their particle-weighted mean with a note giving the largest misplacement this causes at the
    box edge; larger differences are refused (the engine does not resample images).
    """
    bad = np.flatnonzero(~(apix_pp > 0))
    if len(bad):
        raise InputError(f"{path}: pixel size {apix_pp[bad[0]]:g} Å (particle row {bad[0] + 1}) must "
                         "be positive; fix _rlnImagePixelSize in data_optics or pass --apix")
    lo, hi = float(apix_pp.min()), float(apix_pp.max())
    mean = float(apix_pp.mean())
    if hi - lo <= 1e-4 * hi:
        return float(apix_pp[0]), []
    sizes = ", ".join(f"{s:g}" for s in np.unique(np.round(apix_pp, 4)))
    spread = (hi - lo) / mean
    if spread > PIXEL_SIZE_TOLERANCE:
        raise InputError(f"{path}: optics groups have pixel sizes {sizes} Å ({100 * spread:.1f}% "
                         f"apart, more than the {100 * PIXEL_SIZE_TOLERANCE:g}% the engine treats as "
                         "one size); rescale the particles to one pixel size (e.g. relion_image_"
                         "handler --rescale_angpix) and re-extract, or train one group at a time")
    note = (f"optics groups have pixel sizes {sizes} Å ({100 * spread:.2f}% apart): all particles "
            f"are treated at their mean, {mean:.4f} Å")
    if box:
        note += (f"; this misplaces density by at most {(hi - lo) * box / 2:.2f} Å "
                 "at the box edge")
    return mean, [note]


def optics_disagreement(particles: pd.DataFrame, from_optics: np.ndarray, column: str,
                        path: Path) -> str | None:
    """A note when a per-particle ``column`` disagrees with the optics table's value (RELION 3.1+
    uses the optics table, and so does the engine); None when they agree or it is absent."""
    if column not in particles.columns:
        return None
    own = particles[column].to_numpy(np.float64)
    diff = np.flatnonzero(~np.isclose(own, from_optics, rtol=1e-4, atol=1e-6))
    if not len(diff):
        return None
    r = diff[0]
    return (f"_{column} in data_particles ({own[r]:g} at row {r + 1}, {len(diff)} rows) disagrees "
            f"with data_optics ({from_optics[r]:g}); the data_optics value is used, as RELION 3.1+ does")
