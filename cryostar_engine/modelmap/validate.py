"""``validate_runs``: the model–map validation of a stage-1 run by a stage-2 run, end to end.

Library entry point of ``cryostar-engine validate``.  Two arguments exist for tests and studies
only (the command never sets them): ``atom_z`` replaces the stage-1 latents that are decoded
(e.g. z shuffled across particles), and ``model_transform`` changes the decoded models before
they are compared (e.g. an extra rigid turn of a domain).  Both make the models wrong on purpose;
the validation must then flag them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from ..atom.config import read_run_config as read_atom_config
from ..atom.evaluate import load_decoder
from ..density.model import load_trained
from ..density.results import renderer_for
from ..errors import InputError
from .compare import compare_point, point_maps, render_model
from .flags import local_radius_for, mask_edge_for, thresholds_for
from .report import write_report
from .runs import load_run_pair

__all__ = ["validate_runs", "decode_points"]


def decode_points(decode, z_atom: np.ndarray, points) -> np.ndarray:
    """``(P, N, 3)`` models (box frame, Å) decoded from the stage-1 latents ``z_atom`` (the atom
    run's rows) of the points' particles."""
    rows = np.array([p.atom_row for p in points], dtype=np.int64)
    return decode(np.asarray(z_atom, dtype=np.float32)[rows])


def validate_runs(atom_run, density_run, out, device="cpu", atom_z: np.ndarray | None = None,
                  model_transform: Callable | None = None, log=None) -> dict:
    """Compare the models of ``atom_run`` with the maps of ``density_run`` at the density run's
    latent points; write the validation folder ``out`` (see :mod:`.report`); return the report.

    Parameters
    ----------
    atom_run, density_run : run folders (checked by :func:`.runs.load_run_pair` first).
    out : an output folder already prepared by the caller (empty, or a previous validation).
    device : where decoder and density generator run.
    atom_z : ``(N, zdim)`` latents to decode instead of the atom run's ``z.npy`` (tests).
    model_transform : ``f(coords (P, N, 3) Å box frame, beads) -> coords`` applied to the
        decoded models (tests).
    log : ``f(str)`` for progress lines, or None.
    """
    say = log or (lambda msg: None)
    pair = load_run_pair(atom_run, density_run)
    if atom_z is not None and np.shape(atom_z) != pair.z.shape:
        raise InputError(f"atom_z has shape {np.shape(atom_z)}, the atom run's z {pair.z.shape}")
    atom_cfg = read_atom_config(pair.atom_run)
    decode, beads = load_decoder(pair.atom_run, device)
    trained = load_trained(pair.density_run, device)
    renderer = renderer_for(trained)
    box, apix = trained.box, trained.apix
    coords = decode_points(decode, pair.z if atom_z is None else atom_z, pair.points)
    if model_transform is not None:
        coords = np.asarray(model_transform(coords, beads), dtype=np.float64)
    say(f"{len(pair.points)} latent points; models of {len(beads)} beads on maps of {box}³ at "
        f"{apix:.4g} Å/px")
    radius = local_radius_for(apix)
    amps, sigma = np.asarray(beads.amplitudes), float(atom_cfg.bead_sigma_A)
    maps = []
    for point, xyz in zip(pair.points, coords):
        volume = renderer.volume(point.z)
        maps.append(point_maps(point, xyz, volume, amps, sigma, apix, radius,
                               mask_edge_for(apix)))
    resolution = float(np.median([m.resolution_A for m in maps]))
    chain_ids = np.asarray([str(c) for c in beads.chain_ids])
    t = thresholds_for(resolution, apix, len(maps), len(dict.fromkeys(chain_ids.tolist())))
    say(f"median model–map FSC 0.5: {resolution:.2f} Å; minimum displacement "
        f"{t.min_displacement_A:.2f} Å; local-CC ball {t.local_radius_A:.1f} Å")
    reference = np.asarray(beads.coords_A, dtype=np.float64)
    reference_map = render_model(reference, amps, sigma, box, apix)
    mean_coords = coords.mean(0)
    mean_model = np.mean([m.model_map for m in maps], axis=0)
    mean_map = np.mean([m.map for m in maps], axis=0)
    results = [compare_point(m, reference, reference_map, mean_coords, mean_model, mean_map,
                             chain_ids, t, apix) for m in maps]
    return write_report(Path(out), pair, beads, results, t, trained, box, apix)
