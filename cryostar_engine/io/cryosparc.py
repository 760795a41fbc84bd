"""cryoSPARC particle ``.cs`` files → :class:`~cryostar_engine.io.relion.ParticleMetadata`.

A ``.cs`` file is a NumPy structured array saved with ``np.save``: one row per particle, fields
named ``group/name``.  A job's own file often lacks groups that its *passthrough* file holds
(e.g. ``J24_particles.cs`` + ``J24_passthrough_particles.cs``); the passthrough's fields are
joined on ``uid``.  Conversions to the engine's RELION conventions (done here, nowhere else):

* ``alignments3D/pose``: rotation vector in radians → RELION (rot, tilt, psi) in degrees through
  :func:`cryostar_engine.geometry.poses.cryosparc_pose_to_euler` (``A = exp([v]×).T``);
* ``alignments3D/shift``: pixels, the same sign as ``rlnOriginX/Y`` → Å by × the pixel size of
  the alignment (``alignments3D/psize_A``, else ``blob/psize_A``);
* CTF ``ctf/df1_A``/``df2_A`` → defocus U/V (Å), ``ctf/df_angle_rad`` and ``ctf/phase_shift_rad``
  → degrees, ``ctf/accel_kv``, ``ctf/cs_mm``, ``ctf/amp_contrast``, ``ctf/bfactor`` (as
  ``rlnCtfBfactor``) and ``ctf/scale`` as they are, ``ctf/exp_group_id`` + 1 → optics group;
* ``blob/path`` (bytes, relative to the cryoSPARC project folder; a leading ``>`` marks an
  imported file and is stripped) and 0-based ``blob/idx``.

Rows are reported 1-based, in the order of the file given as ``--particles``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from ..geometry.poses import cryosparc_pose_to_euler
from ..validate.star import check_3d_poses, check_pixel_sizes
from .atomic import atomic_path
from .mrc import stack_shape
from .relion import DEFAULT_AMPLITUDE_CONTRAST, ParticleMetadata, find_stack

__all__ = ["read_cryosparc", "load_cs", "write_cs_subsets"]

POSE, SHIFT = "alignments3D/pose", "alignments3D/shift"
CTF_FIELDS = ("ctf/df1_A", "ctf/df2_A", "ctf/accel_kv", "ctf/cs_mm")


def load_cs(path) -> np.ndarray:
    """The structured array of a ``.cs`` file, refused in one line when it is not one."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: cryoSPARC .cs file not found")
    try:
        table = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise InputError(f"{path}: not a readable cryoSPARC .cs file ({err})") from None
    if not isinstance(table, np.ndarray) or table.dtype.names is None or table.ndim != 1:
        raise InputError(f"{path}: not a cryoSPARC .cs file (a .npy array without named fields)")
    if "uid" not in table.dtype.names:
        raise InputError(f"{path}: no 'uid' field; give the particles .cs file of a cryoSPARC job")
    if len(table) == 0:
        raise InputError(f"{path}: the .cs file holds no particles")
    return table


def _join(table: np.ndarray, path: Path, passthrough) -> dict:
    """Fields of ``table`` plus those only the passthrough file has, matched on ``uid``."""
    fields = {name: table[name] for name in table.dtype.names}
    if passthrough is None:
        return fields
    pt_path = Path(passthrough)
    extra = load_cs(pt_path)
    order = np.argsort(extra["uid"], kind="stable")
    pos = np.searchsorted(extra["uid"], table["uid"], sorter=order)
    pos = np.minimum(pos, len(extra) - 1)
    found = extra["uid"][order[pos]] == table["uid"]
    if not found.all():
        r = int(np.flatnonzero(~found)[0])
        raise InputError(f"{path} row {r + 1}: uid {table['uid'][r]} is not in the passthrough "
                         f"{pt_path}; give the passthrough .cs of the same job")
    rows = order[pos]
    for name in extra.dtype.names:
        fields.setdefault(name, extra[name][rows])
    return fields


def _numbers(fields: dict, name: str, path: Path, ncols: int | None = None) -> np.ndarray:
    """Field ``name`` as float64 (``(N,)`` or ``(N, ncols)``), refusing NaN/Inf with its row."""
    try:
        values = np.asarray(fields[name], dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{path}: field {name} is not numeric") from None
    if ncols is not None and values.shape[1:] != (ncols,):
        raise InputError(f"{path}: field {name} has shape {values.shape[1:]}, expected ({ncols},)")
    bad = ~np.isfinite(values)
    if bad.ndim > 1:
        bad = bad.any(axis=tuple(range(1, bad.ndim)))
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise InputError(f"{path} row {r + 1}: field {name} is not a finite number "
                         f"({values[r].tolist()})")
    return values


def _require(fields: dict, names, path: Path, hint: str) -> None:
    missing = [n for n in names if n not in fields]
    if missing:
        raise InputError(f"{path}: missing field(s) {', '.join(missing)}; {hint}")


def _images(fields: dict, path: Path, datadir) -> tuple[list, np.ndarray, int]:
    """Resolved stack paths, 0-based indices and the common box, checked against the stacks."""
    raw = fields["blob/path"]
    texts = [(t.decode() if isinstance(t, bytes) else str(t)).lstrip(">") for t in raw]
    indices = np.asarray(fields["blob/idx"], dtype=np.int64)
    resolved, paths, rows_of = {}, [], {}
    for row, text in enumerate(texts):
        if text not in resolved:      # a job folder sits one level below the project
            resolved[text] = find_stack(
                text, path, datadir, row, parents=1, field=" (blob/path)",
                looked="the .cs file's folder and its parent",
                hint="pass --datadir <the cryoSPARC project folder>")
        paths.append(resolved[text])
        rows_of.setdefault(resolved[text], []).append(row)
    boxes = set()
    for stack, rows in rows_of.items():
        n, ny, nx = stack_shape(stack)
        if ny != nx:
            raise InputError(f"{stack}: images must be square, got {nx}×{ny} px")
        boxes.add(nx)
        idx = indices[rows]
        bad = np.flatnonzero((idx < 0) | (idx >= n))
        if len(bad):
            r = rows[bad[0]]
            raise InputError(f"{path} row {r + 1}: blob/idx {indices[r]} is beyond the {n} images of "
                             f"{stack.name} (blob/idx counts from 0)")
    if len(boxes) > 1:
        raise InputError(f"{path}: stacks have different box sizes {sorted(boxes)} px; re-extract "
                         "the particles with one box size")
    box = boxes.pop()
    if "blob/shape" in fields:
        shapes = np.asarray(fields["blob/shape"]).reshape(len(indices), -1)
        wrong = np.flatnonzero((shapes != box).any(1))
        if len(wrong):
            r = int(wrong[0])
            raise InputError(f"{path} row {r + 1}: blob/shape {shapes[r].tolist()} differs from the "
                             f"stack's {box} px images")
    return paths, indices, box


def _pixel_sizes(fields: dict, path: Path, apix, n: int, box: int, notes: list) -> tuple[float, np.ndarray]:
    """The stacks' pixel size (Å) and the per-particle pixel size of the shifts."""
    if apix is not None:
        if not apix > 0:
            raise InputError(f"--apix must be a positive pixel size in Å, got {apix:g}")
        blob = np.full(n, float(apix))
    elif "blob/psize_A" in fields:
        blob = _numbers(fields, "blob/psize_A", path)
    else:
        raise InputError(f"{path}: no pixel size (field blob/psize_A); pass --apix")
    px, pixel_notes = check_pixel_sizes(blob, path, box)
    notes += pixel_notes
    if "alignments3D/psize_A" not in fields:
        return px, blob
    shift_px = _numbers(fields, "alignments3D/psize_A", path)
    if not np.allclose(shift_px, blob, rtol=1e-3):
        notes.append(f"alignments3D/psize_A ({shift_px[0]:g} Å) differs from the images' "
                     f"({blob[0]:g} Å): shifts are scaled by the alignment's pixel size")
    return px, shift_px


def _poses(fields: dict, path: Path, passthrough, require_poses: bool, n: int) -> np.ndarray:
    if not require_poses:
        return np.zeros((n, 3))
    if POSE not in fields:
        per_class = sorted(n for n in fields
                           if n.startswith("alignments_class_") and n.endswith("/pose"))
        hint = ("pass --passthrough <the job's passthrough .cs>" if passthrough is None else
                "neither file has them; give the particles of a 3-D refinement")
        if per_class:
            names = ", ".join(per_class[:2]) + (", ..." if len(per_class) > 2 else "")
            hint = (f"it has one pose per class ({names}: ab-initio or heterogeneous refinement); "
                    "refine the class you want (homogeneous or non-uniform refinement) and give "
                    "that job's particles")
        raise InputError(f"{path}: no 3-D poses (field {POSE}): {hint}")
    euler = cryosparc_pose_to_euler(_numbers(fields, POSE, path, 3))
    check_3d_poses(euler, path)
    return euler


def _ctf(fields: dict, path: Path, passthrough, amplitude_contrast, notes: list) -> dict:
    """CTF arrays in the engine's units, range-checked."""
    hint = ("pass --passthrough <the job's passthrough .cs>" if passthrough is None
            else "give particles with a CTF estimate (Patch CTF) from a 3-D refinement")
    _require(fields, CTF_FIELDS, path, hint)
    n = len(fields["uid"])
    get = {name: _numbers(fields, name, path) for name in CTF_FIELDS}
    for name in ("ctf/df1_A", "ctf/df2_A", "ctf/accel_kv"):
        bad = np.flatnonzero(get[name] <= 0)
        if len(bad):
            raise InputError(f"{path} row {bad[0] + 1}: {name} {get[name][bad[0]]:g} must be positive")
    if amplitude_contrast is not None:
        if not 0 <= amplitude_contrast < 1:
            raise InputError(f"--amplitude-contrast must lie in [0, 1), got {amplitude_contrast:g}")
        q0 = np.full(n, float(amplitude_contrast))
    elif "ctf/amp_contrast" in fields:
        q0 = _numbers(fields, "ctf/amp_contrast", path)
    else:
        q0 = np.full(n, DEFAULT_AMPLITUDE_CONTRAST)
        notes.append(f"no ctf/amp_contrast: {DEFAULT_AMPLITUDE_CONTRAST:g} assumed "
                     "(change it with --amplitude-contrast)")
    bad = np.flatnonzero((q0 < 0) | (q0 >= 1))
    if len(bad):
        raise InputError(f"{path} row {bad[0] + 1}: ctf/amp_contrast {q0[bad[0]]:g} must lie in [0, 1)")

    def optional(name, default, scale=1.0):
        return _numbers(fields, name, path) * scale if name in fields else np.full(n, default)

    return {"defocus_u_A": get["ctf/df1_A"], "defocus_v_A": get["ctf/df2_A"],
            "defocus_angle_deg": np.rad2deg(optional("ctf/df_angle_rad", 0.0)),
            "phase_shift_deg": np.rad2deg(optional("ctf/phase_shift_rad", 0.0)),
            "bfactor_A2": optional("ctf/bfactor", 0.0), "scale": optional("ctf/scale", 1.0),
            "voltage_kv": get["ctf/accel_kv"], "cs_mm": get["ctf/cs_mm"], "amplitude_contrast": q0,
            "optics_group": (np.asarray(fields["ctf/exp_group_id"], np.int64) + 1
                             if "ctf/exp_group_id" in fields else np.ones(n, np.int64))}


def read_cryosparc(cs_path, passthrough=None, datadir=None, apix=None, require_poses=True,
                   amplitude_contrast=None) -> ParticleMetadata:
    """Read a cryoSPARC particles ``.cs`` file (and its passthrough) like a RELION star file.

    Parameters
    ----------
    cs_path : the job's particles ``.cs`` file; its rows set the particle order.
    passthrough : the job's passthrough ``.cs`` (optional): fields the first file lacks
        (poses, CTF, image paths) are taken from it, matched on ``uid``.
    datadir : the cryoSPARC project folder that ``blob/path`` is relative to, or the folder
        holding the stacks themselves (default: the ``.cs`` file's folder and its parent, i.e.
        the project when the file is in its job folder).
    apix, require_poses, amplitude_contrast : as :func:`~cryostar_engine.io.relion.read_particles`.

    Raises
    ------
    InputError : one line naming the file, the field and the 1-based row.
    """
    path = Path(cs_path)
    fields = _join(load_cs(path), path, passthrough)
    n = len(fields["uid"])
    notes: list = []
    _require(fields, ("blob/path", "blob/idx"), path,
             "pass --passthrough <the job's passthrough .cs>" if passthrough is None
             else "give the particles of an extraction or refinement job")
    euler = _poses(fields, path, passthrough, require_poses, n)
    ctf = _ctf(fields, path, passthrough, amplitude_contrast, notes)
    paths, indices, box = _images(fields, path, datadir)
    px, shift_apix = _pixel_sizes(fields, path, apix, n, box, notes)
    if SHIFT in fields:
        shifts = _numbers(fields, SHIFT, path, 2) * shift_apix[:, None]
    else:
        shifts = np.zeros((n, 2))
        notes.append(f"no {SHIFT}: shifts taken as 0")
    if "blob/sign" in fields and np.any(np.asarray(fields["blob/sign"]) < 0):
        notes.append("blob/sign is -1 (cryoSPARC's dark-particle convention); RELION-extracted "
                     "particles are white: if check-inputs' back-projection anti-correlates with "
                     "the map, train with --invert-contrast")
    return ParticleMetadata(star_path=path, image_paths=paths, image_indices=indices,
                            euler_deg=euler, shifts_A=shifts, apix=px, box=box, notes=notes, **ctf)


def write_cs_subsets(cs_path, subsets: dict) -> list[tuple[Path, int, int]]:
    """Write one ``.cs`` per ``{out_path: mask (N,) bool}``: the selected rows of ``cs_path``,
    every field unchanged and in the original order (``blob/path`` stays relative to the
    cryoSPARC project folder).  All are checked before any is written; returns
    ``[(out, n_selected, n_total)]``.

    Raises
    ------
    InputError : an output that is not ``.cs`` or is the input, a mask of the wrong length, or
        an empty selection.
    """
    table = load_cs(cs_path)
    n, plans = len(table), []
    for out, mask in subsets.items():
        out, mask = Path(out), np.asarray(mask)
        if out.suffix.lower() != ".cs":
            raise InputError(f"{out}: a subset of a .cs input is written as .cs; name --out *.cs")
        if out.resolve() == Path(cs_path).resolve():
            raise InputError(f"{out}: is the input .cs file; choose another --out")
        if mask.shape != (n,) or mask.dtype != bool:
            raise InputError(f"{out}: selection has shape {mask.shape}, the .cs file {n} particles")
        if not mask.any():
            raise InputError(f"{out}: the selection is empty (0 of {n} particles); nothing written")
        plans.append((out, np.flatnonzero(mask)))
    for out, rows in plans:
        with atomic_path(out) as tmp, open(tmp, "wb") as f:     # np.save on a path adds '.npy'
            np.save(f, table[rows], allow_pickle=False)
    return [(out, len(rows), n) for out, rows in plans]
