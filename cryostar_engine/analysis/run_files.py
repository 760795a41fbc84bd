"""Where a training run keeps what the analysis reads (the one place that knows the layout).

* ``RUN/z.npy``: ``(N, zdim)`` posterior means, row i ↔ star row i (written by training; the
  run's ``RUN/manifest.json`` may name another file under its ``"z"`` key);
* ``RUN/losses.csv``: the training log (:class:`cryostar_engine.train.Progress`);
* ``RUN/analysis/``: this package's outputs, listed in ``RUN/analysis/manifest.json``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..geometry.frames import Frame
from ..validate import load_latent_file
from .pca import check_latent
from .report import read_manifest

__all__ = ["run_latent_path", "analysis_dir", "load_latent", "load_pc_scores", "load_analysis_scores",
           "RunInfo", "run_info"]

Z_NAME = "z.npy"
ANALYSIS = "analysis"


def run_latent_path(run_dir, z_path=None) -> Path:
    """``z_path`` if given, else ``RUN/z.npy``; :class:`InputError` when it does not exist."""
    if z_path is not None:
        p = Path(z_path)
        if not p.is_file():
            raise InputError(f"{p}: latent file not found")
        return p
    run = Path(run_dir)
    if not run.is_dir():
        raise InputError(f"{run}: run folder not found")
    name = (read_manifest(run) or {}).get("z")
    name = name if isinstance(name, str) and name else Z_NAME
    p = run / name
    if not p.is_file():
        raise InputError(f"{run}: holds no {name} (has training written one yet?); pass --z")
    return p


@dataclass(frozen=True)
class RunInfo:
    """What the analysis takes from a training run's manifest: the user frame of its models
    (:class:`~cryostar_engine.geometry.frames.Frame`), its box (px) and pixel size (Å)."""

    frame: Frame = Frame()
    box_px: int | None = None
    apix_A: float | None = None
    zdim: int | None = None


def run_info(run_dir) -> RunInfo:
    """:class:`RunInfo` from ``RUN/manifest.json``; the identity frame when there is none."""
    man = read_manifest(run_dir) or {}
    return RunInfo(frame=Frame.from_json(man.get("frame")), box_px=man.get("box_px"),
                   apix_A=man.get("apix_A"), zdim=man.get("zdim"))


def analysis_dir(run_dir) -> Path:
    return Path(run_dir) / ANALYSIS


def load_latent(path) -> np.ndarray:
    """Read ``(N, zdim)`` latents from a ``.npy`` (or whitespace ``.txt``) file, checked."""
    return check_latent(load_latent_file(path), str(path))


def load_pc_scores(run_dir=None, z_path=None, decode=None) -> tuple[np.ndarray, str]:
    """PC scores ``(N, C)`` of a run and where they came from.

    The scores ``analyze`` wrote (``RUN/analysis/pc_scores.npy``, the axes of its figures) when
    its manifest refers to the same z file; otherwise a fresh PCA (deterministic, so the same
    numbers as ``analyze``'s): of the decoded structures with ``decode`` (the run's decoder),
    else of the latents.
    """
    from .pca import fit_pca, fit_structure_pca

    zp = run_latent_path(run_dir, z_path)
    if run_dir is not None:
        folder = analysis_dir(run_dir)
        man = read_manifest(folder)
        if man and man.get("z", {}).get("source") == str(zp.resolve()):
            try:
                return load_analysis_scores(folder, man)
            except InputError:
                pass
    if decode is not None:
        return fit_structure_pca(load_latent(zp), decode).scores, f"PCA of the structures of {zp}"
    return fit_pca(load_latent(zp)).scores, f"PCA of {zp}"


def load_analysis_scores(folder, manifest: dict | None = None) -> tuple[np.ndarray, str]:
    """The PC scores ``(N, C)`` an ``analyze`` output folder wrote (the axes of its figures,
    float64) and their file; :class:`InputError` when the folder holds none.  ``manifest``: the
    folder's manifest when the caller has already read it."""
    folder = Path(folder)
    man = (manifest if manifest is not None else read_manifest(folder)) or {}
    name = (man.get("pca") or {}).get("scores")
    scores_file = folder / name if isinstance(name, str) and name else None
    if scores_file is None or not scores_file.is_file():
        raise InputError(f"{folder}: holds no PC scores of an analysis (run analyze first, or "
                         "pass --run)")
    return np.load(scores_file).astype(np.float64), str(scores_file)
