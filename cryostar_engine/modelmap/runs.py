"""A stage-1 run and a stage-2 run that belong together, and the latent points to compare at.

:func:`load_run_pair` checks everything before any work is done and raises
:class:`~cryostar_engine.errors.InputError` with one line naming the option:

* ``--atom-run`` is a stage-1 run with a checkpoint and ``z.npy``; ``--density-run`` is a
  *finished* stage-2 run (its manifest lists the latent points it wrote volumes for);
* the density run was trained on this atom run's z: every row of its own copy ``RUN2/z.npy``
  is a row of ``RUN/z.npy`` (to :data:`Z_TOLERANCE`: the same particles, possibly reordered or a
  subset, as the Scipion plugin writes them) — a density run trained on another run's z, or on
  a z that changed since (a resumed stage-1 run), is refused;
* both runs write outputs in the same user frame and the same physical box.

The latent points are the density run's k-means states and PC trajectory points, read from its
manifest (``latents``: star rows, z tables), so model and map are compared at exactly the z the
density run wrote volumes for.  Names follow the validation layout: ``state_00`` (series
``kmeans``) and ``pc1_03`` (series ``pc1``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atom.config import read_run_config as read_atom_config
from ..density.config import read_run_config as read_density_config
from ..errors import InputError
from ..geometry.frames import Frame
from ..train.manifest import read_manifest

__all__ = ["LatentPoint", "RunPair", "load_run_pair", "FRAME_TOLERANCE_A"]

FRAME_TOLERANCE_A = 0.01     # the two runs' frame shifts must agree to this (Å)
Z_TOLERANCE = 1e-5           # a density z row matches an atom z row to this (max abs; float64 text)


@dataclass(frozen=True)
class LatentPoint:
    """One point: ``name`` (``state_00``, ``pc1_03``), ``series`` (``kmeans``, ``pc1``), its
    ``index`` in the series, the particle (density run's star row) it is snapped to, the row of
    the atom run's z that particle has (``atom_row``), and its latent ``z``."""

    name: str
    series: str
    index: int
    star_row: int
    atom_row: int
    z: np.ndarray


@dataclass
class RunPair:
    """Two checked runs: folders, the stage-1 latents ``z`` ``(N, zdim)`` (the atom run's star
    order), the shared user :class:`Frame`, and the latent points."""

    atom_run: Path
    density_run: Path
    z: np.ndarray
    frame: Frame
    points: list


def _series_label(series: str) -> tuple[str, str]:
    """(point-name prefix, series label) of a density-run series: kmeans → state, pca_K → pcK."""
    if series == "kmeans":
        return "state", "kmeans"
    return f"pc{series.split('_')[1]}", f"pc{series.split('_')[1]}"


def _load_z(path: Path, flag: str) -> np.ndarray:
    try:
        z = np.load(path)
    except (OSError, ValueError) as err:
        raise InputError(f"{flag} {path.parent}: cannot read {path.name} ({err})") from None
    return np.asarray(z, dtype=np.float32).reshape(len(z), -1)


def match_rows(z_dens: np.ndarray, z_atom: np.ndarray) -> np.ndarray:
    """``(M,)`` the atom row of each density row (same z to :data:`Z_TOLERANCE`), -1 for none."""
    from scipy.spatial import cKDTree

    if z_dens.shape[1] != z_atom.shape[1]:
        return np.full(len(z_dens), -1)
    dist, idx = cKDTree(z_atom.astype(np.float64)).query(z_dens.astype(np.float64), p=np.inf)
    return np.where(dist <= Z_TOLERANCE, idx, -1)


def _points(density_run: Path, manifest: dict, z: np.ndarray, rows: np.ndarray) -> list[LatentPoint]:
    latents = manifest.get("latents") or {}
    if not latents:
        raise InputError(f"--density-run {density_run}: its manifest lists no latent points; "
                         "rerun train-density with --k ≥ 1 or --pcs ≥ 1")
    points = []
    for series, info in latents.items():
        prefix, label = _series_label(series)
        for i, row in enumerate(info.get("star_rows", [])):
            if not 0 <= int(row) < len(z):
                raise InputError(f"--density-run {density_run}: manifest star row {row} is outside "
                                 f"its {len(z)} particles; the run folder is damaged")
            points.append(LatentPoint(f"{prefix}_{i:02d}", label, i, int(row), int(rows[int(row)]),
                                      z[int(row)].copy()))
    return points


def load_run_pair(atom_run, density_run) -> RunPair:
    """Check that the two runs belong together (see the module docstring) and list the points."""
    atom_run, density_run = Path(atom_run), Path(density_run)
    for flag, run in (("--atom-run", atom_run), ("--density-run", density_run)):
        if not run.is_dir():
            raise InputError(f"{flag} {run}: run folder not found")
    read_atom_config(atom_run, hint="--atom-run takes a train-atom run")
    read_density_config(density_run, hint="--density-run takes a train-density run")
    atom_man = read_manifest(atom_run) or {}
    dens_man = read_manifest(density_run) or {}
    if dens_man.get("status") != "finished":
        raise InputError(f"--density-run {density_run}: not finished (status "
                         f"{dens_man.get('status', 'unknown')}); finish it with train-density --resume")
    z_atom_path = atom_run / (atom_man.get("z") or "z.npy")
    if not z_atom_path.is_file():
        raise InputError(f"--atom-run {atom_run}: holds no {z_atom_path.name}; let the stage-1 run "
                         "finish (or reach its first evaluation)")
    z_dens_path = density_run / (dens_man.get("outputs", {}).get("z") or "z.npy")
    if not z_dens_path.is_file():
        raise InputError(f"--density-run {density_run}: holds no {z_dens_path.name}; the run "
                         "folder is incomplete")
    z_atom, z_dens = _load_z(z_atom_path, "--atom-run"), _load_z(z_dens_path, "--density-run")
    rows = match_rows(z_dens, z_atom)
    if (rows < 0).any():
        bad = int(np.flatnonzero(rows < 0)[0])
        what = (f"z_dim {z_dens.shape[1]} vs {z_atom.shape[1]}" if z_dens.shape[1] != z_atom.shape[1]
                else f"{int((rows < 0).sum())} of its {len(z_dens)} z rows, the first row {bad}, "
                     "are not in it")
        raise InputError(f"--density-run {density_run} was not trained on the z of --atom-run "
                         f"{atom_run} ({what}); pass the density run trained on "
                         f"{z_atom_path} (train-density --z {z_atom_path})")
    frame_a = Frame.from_json(atom_man.get("frame"))
    frame_d = Frame.from_json(dens_man.get("frame"))
    if np.abs(np.subtract(frame_a.shift_A, frame_d.shift_A)).max() > FRAME_TOLERANCE_A:
        raise InputError(f"--density-run {density_run}: its volumes are in another frame (shift "
                         f"{frame_d.shift_A} Å) than the models of --atom-run (shift "
                         f"{frame_a.shift_A} Å); retrain it with the map the atom run was docked "
                         "into (train-density --map) or without --map")
    size_a = (atom_man.get("original_box_px") or 0) * (atom_man.get("original_apix_A") or 0)
    size_d = (dens_man.get("box_px") or 0) * (dens_man.get("apix_A") or 0)
    if size_a and size_d and abs(size_a - size_d) > 0.01 * size_a:
        raise InputError(f"--density-run {density_run}: box {size_d:g} Å across, but the particles "
                         f"of --atom-run are {size_a:g} Å; the runs are of different particles")
    return RunPair(atom_run, density_run, z_atom, frame_a,
                   _points(density_run, dens_man, z_dens, rows))
