"""Files of a density run: latent tables, volume series, the ChimeraX script and the manifest.

Layout of ``RUN/`` (all written atomically)::

    config.json  weights.pt  z.npy  losses.csv  run.log  checkpoints/
    z_kmeans.txt  z_kmeans_ind.txt  vol_kmeans_000.mrc …
    z_pca_1.txt   z_pca_ind_1.txt   vol_pca_1_000.mrc …   (PCs 1…3)
    volumes.cxc   manifest.json

Volumes carry the header origin of the user frame (:mod:`cryostar_engine.geometry.frames`), so
they overlay the input model and map; ``volumes.cxc`` shows one series at a time.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..analysis.chimerax import quote
from ..io.atomic import atomic_path, write_text_atomic
from .latents import LatentSeries

__all__ = ["UNITS", "series_names", "write_latent_tables", "write_npy", "chimerax_script",
           "write_chimerax_script"]

UNITS = ("normalised image units: the volume's projection (voxel sum along a ray), filtered by "
         "the CTF, models the centred particle image divided by f_std; multiply by f_std for the "
         "input images' intensity units")


def series_names(series: str, n: int) -> dict[str, list[str] | str]:
    """File names of one series (``"kmeans"`` or ``"pca_K"``): volumes and the two z tables."""
    if series == "kmeans":
        z_name, ind_name = "z_kmeans.txt", "z_kmeans_ind.txt"
    else:
        k = series.split("_")[1]
        z_name, ind_name = f"z_pca_{k}.txt", f"z_pca_ind_{k}.txt"
    return {"volumes": [f"vol_{series}_{i:03d}.mrc" for i in range(n)], "z": z_name,
            "indices": ind_name}


def write_latent_tables(run_dir, names: dict, series: LatentSeries) -> None:
    """``z_*.txt`` (``%.5f``, one point per line) and ``z_*_ind.txt`` (star rows, 0-based)."""
    write_text_atomic(Path(run_dir) / names["z"],
                      "".join(" ".join(f"{v:.5f}" for v in row) + "\n" for row in series.z))
    write_text_atomic(Path(run_dir) / names["indices"],
                      "".join(f"{int(i)}\n" for i in series.indices))


def write_npy(path, array: np.ndarray) -> None:
    """``np.save`` atomically."""
    with atomic_path(path, suffix=".npy") as tmp, open(tmp, "wb") as fh:
        np.save(fh, array)     # a file object: np.save would append ".npy" to a bare name


def _pattern(files: list[str]) -> str:
    """A wildcard that matches the series' files (their common prefix + ``*`` + extension)."""
    if len(files) == 1:
        return files[0]
    suffix = Path(files[0]).suffix
    return os.path.commonprefix([f[:-len(suffix)] if suffix else f for f in files]) + "*" + suffix


def chimerax_script(series_files: dict[str, list[str]], map_path: str | None = None) -> str:
    """A ``.cxc`` that opens each series as one volume series (``vseries true``), model #1, #2, …
    in the order of ``series_files``, and shows only the first.

    ChimeraX runs a ``.cxc`` from its own folder, so the relative patterns work wherever the run
    folder is moved.  The maps carry the header origin of the user frame and overlay the input
    model and map without any move.  Only commands valid in ``chimerax --nogui`` are used; the
    GUI-only slider is offered as a comment.
    """
    names = [name for name, files in series_files.items() if files]
    lines = ["# CryoSTAR density generator: one volume series per set of latent points",
             "# (" + ", ".join(f"#{i} {n}" for i, n in enumerate(names, start=1)) + ").",
             "# Only #1 is shown; to see another, e.g. #2:  hide #1 models; show #2 models",
             "# Play the shown series with:  vseries play #1 loop true",
             "# (in the ChimeraX window also:  vseries slider #1)",
             "# The volumes are in the frame of the input model and map (they overlay both)."]
    if map_path:
        lines.append(f"# The input map:  open {quote(map_path)}")
    lines += [f"open {quote(_pattern(series_files[name]))} vseries true" for name in names]
    if len(names) > 1:
        lines.append("hide #2 models" if len(names) == 2 else f"hide #2-{len(names)} models")
    lines.append("view")
    return "\n".join(lines) + "\n"


def write_chimerax_script(path, series_files: dict[str, list[str]], map_path: str | None = None) -> None:
    write_text_atomic(path, chimerax_script(series_files, map_path))
