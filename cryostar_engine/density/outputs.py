"""Files of a density run: latent tables, volume series, the ChimeraX script and the manifest.

Layout of ``RUN/`` (all written atomically)::

    config.json  weights.pt  z.npy  losses.csv  run.log  checkpoints/
    z_kmeans.txt  z_kmeans_ind.txt  vol_kmeans_000.mrc …
    z_pca_1.txt   z_pca_ind_1.txt   vol_pca_1_000.mrc …   (PCs 1…3)
    volumes.cxc   manifest.json
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

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


def chimerax_script(series_files: dict[str, list[str]]) -> str:
    """A ``.cxc`` that opens each series as a volume series (``vseries true``).

    ChimeraX runs a ``.cxc`` from its own folder, so the relative patterns work wherever the run
    folder is moved.  The maps carry origin ``-(D′//2)·apix′`` and overlay the reference model
    and the consensus map without any move.
    """
    lines = ["# CryoSTAR density generator: each series opens as one volume series;",
             "# play it with the slider or 'vseries play #N'.  Maps are in the box-centred frame",
             "# of the reference model and the consensus map (origin -(D//2)*apix)."]
    for name, files in series_files.items():
        if files:
            lines.append(f"open vol_{name}_*.mrc vseries true")
    return "\n".join(lines) + "\n"


def write_chimerax_script(path, series_files: dict[str, list[str]]) -> None:
    write_text_atomic(path, chimerax_script(series_files))
