"""The outputs of a finished density run, and volumes for arbitrary latents (``eval-density``).

Volumes are written in the user frame (the input model's and map's, see
:mod:`cryostar_engine.geometry.frames`) and listed, with everything else, in the folder's
manifest (:mod:`cryostar_engine.train.manifest`).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from ..geometry.frames import Frame, map_size_problem
from ..io.mrc import read_map
from ..train.manifest import read_manifest, write_manifest
from ..atom.run_decoder import run_decoder
from .latents import latent_points
from .model import TrainedDensity, autocast_dtype, save_weights
from .outputs import UNITS, series_names, write_chimerax_script, write_latent_tables, write_npy
from .volumes import VolumeRenderer

__all__ = ["renderer_for", "density_frame", "eval_frame", "write_outputs", "write_eval_volumes"]


def renderer_for(trained: TrainedDensity) -> VolumeRenderer:
    """A :class:`VolumeRenderer` with the run's ball radius, chunk size and precision."""
    cfg = trained.config
    device = next(trained.model.parameters()).device
    return VolumeRenderer(trained.model, trained.box, cfg.mask_radius * (trained.box // 2),
                          chunk_points=cfg.volume_chunk_points,
                          autocast_dtype=autocast_dtype(cfg, device))


def density_frame(config, particle_box: int | None = None, particle_apix: float | None = None) -> Frame:
    """The user frame of a density run's volumes (see :mod:`cryostar_engine.geometry.frames`):

    * ``config.map`` given: the frame of that map (a model docked into it overlays the volumes);
      with ``particle_box``/``particle_apix`` its physical size is checked against the particles;
    * else the ``frame`` of the stage-1 run whose ``manifest.json`` sits next to ``config.z_path``;
    * else the box frame (origin ``-(D′//2)·apix′``).

    Raises
    ------
    InputError : the map is unreadable or not the particles' size.
    """
    map_path = getattr(config, "map", None)
    if map_path:
        m = read_map(map_path)
        if particle_box is not None:
            problem = map_size_problem(m.data.shape[-1], m.voxel_size_A, particle_box, particle_apix)
            if problem:
                raise InputError(f"--map {map_path}: {problem}")
        return Frame.from_map(m, map_path)
    stage1 = read_manifest(Path(config.z_path).parent)
    if stage1 and stage1.get("kind") == "atom":
        return Frame.from_json(stage1.get("frame"))
    return Frame()


def _geometry(trained: TrainedDensity, frame: Frame) -> dict:
    return {"origin_A": frame.volume_origin_A(trained.box, trained.apix), "f_std": trained.f_std,
            "units": UNITS, "z_dim": trained.z_dim}


def write_outputs(run_dir, trained: TrainedDensity, z: np.ndarray, state, log,
                  frame: Frame | None = None) -> Path:
    """Weights, z copy, latent tables, k-means/PC volumes, ``volumes.cxc`` and ``manifest.json``.

    Parameters
    ----------
    run_dir : the run folder.
    trained : the trained field with box, apix and f_std.
    z : ``(N, z_dim)`` latents of the particles (star order).
    state : the run's counters (``step``, ``images_seen``).
    log : logger.
    frame : the user frame of the volumes (default :func:`density_frame` of the config).
    """
    run_dir = Path(run_dir)
    cfg = trained.config
    frame = frame or density_frame(cfg)
    origin = frame.volume_origin_A(trained.box, trained.apix)
    save_weights(run_dir / "weights.pt", trained)
    write_npy(run_dir / "z.npy", z)
    renderer = renderer_for(trained)
    decode = run_decoder(Path(cfg.z_path).parent)
    log.info("PC volumes follow the PCA of %s", "the stage-1 run's decoded structures (as its "
             "analysis)" if decode is not None else "z (no stage-1 run next to --z)")
    points = latent_points(z, n_clusters=cfg.n_clusters, n_pcs=cfg.n_pcs,
                           n_points=cfg.n_pc_points, seed=cfg.seed, decode=decode)
    series, latents = {}, {}
    t0 = time.perf_counter()
    for name, pts in points.items():
        names = series_names(name, len(pts.z))
        write_latent_tables(run_dir, names, pts)
        renderer.write(pts.z, [run_dir / f for f in names["volumes"]], trained.apix, origin)
        series[name] = names["volumes"]
        latents[name] = {"z": names["z"], "indices": names["indices"],
                         "star_rows": pts.indices.tolist()}
    log.info("wrote %d volumes of %d³ in %.1f s", sum(map(len, series.values())), trained.box,
             time.perf_counter() - t0)
    write_chimerax_script(run_dir / "volumes.cxc", series, frame.map)
    write_manifest(run_dir, "density", "finished", trained.box, trained.apix, frame=frame,
                   series=series, cxc={"volumes": "volumes.cxc"}, **_geometry(trained, frame),
                   n_particles=int(len(z)), step=state.step, images_seen=state.images_seen,
                   outputs={"weights": "weights.pt", "config": "config.json", "z": "z.npy",
                            "losses": "losses.csv", "log": "run.log"},
                   latents=latents, config=cfg.to_dict())
    return run_dir / "manifest.json"


def eval_frame(run_dir, trained: TrainedDensity) -> Frame:
    """The frame of a density run: its manifest's, else (unfinished run) its config's."""
    man = read_manifest(run_dir)
    return Frame.from_json(man["frame"]) if man and "frame" in man else density_frame(trained.config)


def write_eval_volumes(out_dir, trained: TrainedDensity, z: np.ndarray, source: str,
                       frame: Frame | None = None) -> Path:
    """``vol_000.mrc …`` (one per row of ``z``, in row order), ``volumes.cxc`` and
    ``manifest.json`` in ``out_dir``; volumes in ``frame`` (default: the box frame)."""
    out_dir = Path(out_dir)
    frame = frame or Frame()
    names = [f"vol_{i:03d}.mrc" for i in range(len(z))]
    with torch.no_grad():
        renderer_for(trained).write(z, [out_dir / n for n in names], trained.apix,
                                    frame.volume_origin_A(trained.box, trained.apix))
    write_chimerax_script(out_dir / "volumes.cxc", {"eval": names}, frame.map)
    write_manifest(out_dir, "density-eval", "finished", trained.box, trained.apix, frame=frame,
                   series={"eval": names}, cxc={"volumes": "volumes.cxc"},
                   **_geometry(trained, frame), run=source, volumes=names, z=z.tolist())
    return out_dir / "manifest.json"
