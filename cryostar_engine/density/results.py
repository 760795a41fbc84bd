"""The outputs of a finished density run, and volumes for arbitrary latents (``eval-density``)."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..train import write_json
from .latents import latent_points
from .model import TrainedDensity, autocast_dtype, save_weights
from .outputs import UNITS, series_names, write_chimerax_script, write_latent_tables, write_npy
from .volumes import VolumeRenderer

__all__ = ["renderer_for", "write_outputs", "write_eval_volumes"]


def renderer_for(trained: TrainedDensity) -> VolumeRenderer:
    """A :class:`VolumeRenderer` with the run's ball radius, chunk size and precision."""
    cfg = trained.config
    device = next(trained.model.parameters()).device
    return VolumeRenderer(trained.model, trained.box, cfg.mask_radius * (trained.box // 2),
                          chunk_points=cfg.volume_chunk_points,
                          autocast_dtype=autocast_dtype(cfg, device))


def _geometry(trained: TrainedDensity) -> dict:
    return {"box": trained.box, "apix": trained.apix,
            "origin_A": [-(trained.box // 2) * trained.apix] * 3, "f_std": trained.f_std,
            "units": UNITS, "z_dim": trained.z_dim}


def write_outputs(run_dir, trained: TrainedDensity, z: np.ndarray, state, log) -> Path:
    """Weights, z copy, latent tables, k-means/PC volumes, ``volumes.cxc`` and ``manifest.json``.

    Parameters
    ----------
    run_dir : the run folder.
    trained : the trained field with box, apix and f_std.
    z : ``(N, z_dim)`` latents of the particles (star order).
    state : the run's counters (``step``, ``images_seen``).
    log : logger.
    """
    run_dir = Path(run_dir)
    cfg = trained.config
    save_weights(run_dir / "weights.pt", trained)
    write_npy(run_dir / "z.npy", z)
    renderer = renderer_for(trained)
    points = latent_points(z, n_clusters=cfg.n_clusters, n_pcs=cfg.n_pcs,
                           n_points=cfg.n_pc_points, seed=cfg.seed)
    series = {}
    t0 = time.perf_counter()
    for name, pts in points.items():
        names = series_names(name, len(pts.z))
        write_latent_tables(run_dir, names, pts)
        renderer.write(pts.z, [run_dir / f for f in names["volumes"]], trained.apix)
        series[name] = {**names, "star_rows": pts.indices.tolist()}
    n_vol = sum(len(s["volumes"]) for s in series.values())
    log.info("wrote %d volumes of %d³ in %.1f s", n_vol, trained.box, time.perf_counter() - t0)
    write_chimerax_script(run_dir / "volumes.cxc", {k: v["volumes"] for k, v in series.items()})
    manifest = {"kind": "density", "engine_version": __version__, **_geometry(trained),
                "n_particles": int(len(z)), "step": state.step, "images_seen": state.images_seen,
                "files": {"weights": "weights.pt", "config": "config.json", "z": "z.npy",
                          "losses": "losses.csv", "log": "run.log", "chimerax": "volumes.cxc"},
                "series": series, "config": cfg.to_dict()}
    write_json(run_dir / "manifest.json", manifest)
    return run_dir / "manifest.json"


def write_eval_volumes(out_dir, trained: TrainedDensity, z: np.ndarray, source: str) -> Path:
    """``vol_000.mrc …`` (one per row of ``z``, in row order) and ``manifest.json`` in ``out_dir``."""
    out_dir = Path(out_dir)
    names = [f"vol_{i:03d}.mrc" for i in range(len(z))]
    with torch.no_grad():
        renderer_for(trained).write(z, [out_dir / n for n in names], trained.apix)
    write_json(out_dir / "manifest.json", {"kind": "density-eval", "engine_version": __version__,
                                           "run": source, **_geometry(trained), "volumes": names,
                                           "z": z.tolist()})
    return out_dir / "manifest.json"
