"""``validate_runs``: the model–map validation of a stage-1 run by a stage-2 run, end to end.

Library entry point of ``cryostar-engine validate``.  Two arguments exist for tests and studies
only (the command never sets them): ``atom_z`` replaces the stage-1 latents that are decoded
(e.g. z shuffled across particles), and ``model_transform`` changes the decoded models before
they are compared (e.g. an extra rigid turn of a domain).  Both make the models wrong on purpose;
the validation must then flag them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..atom.config import read_run_config as read_atom_config, residue_bead_sigma
from ..atom.evaluate import load_decoder
from ..density.model import load_trained
from ..density.results import renderer_for
from ..errors import InputError
from ..io.mrc import write_mrc
from .compare import compare_point, point_maps, render_model
from .flags import local_radius_for, mask_edge_for, thresholds_for
from .report import write_report
from .runs import load_run_pair

__all__ = ["Comparison", "compare_runs", "validate_runs", "decode_points", "KEEP_MAPS_BYTES"]

KEEP_MAPS_BYTES = 512 * 2 ** 20    # keep all points' maps between the two passes up to this size


@dataclass
class Comparison:
    """Everything :func:`compare_runs` found: the checked :class:`~.runs.RunPair`, the
    reference beads, one :class:`~.compare.PointResult` per point, the thresholds, and the
    density run's working box (px) and pixel size (Å)."""

    pair: object
    beads: object
    results: list
    thresholds: object
    box: int
    apix: float


def decode_points(decode, z_atom: np.ndarray, points) -> np.ndarray:
    """``(P, N, 3)`` models (box frame, Å) decoded from the stage-1 latents ``z_atom`` (the atom
    run's rows) of the points' particles."""
    rows = np.array([p.atom_row for p in points], dtype=np.int64)
    return decode(np.asarray(z_atom, dtype=np.float32)[rows])


def validate_runs(atom_run, density_run, out, device="cpu", atom_z: np.ndarray | None = None,
                  model_transform: Callable | None = None, log=None) -> dict:
    """Compare the models of ``atom_run`` with the maps of ``density_run`` at the density run's
    latent points (:func:`compare_runs`); write the validation folder ``out`` (an output folder
    already prepared by the caller, see :mod:`.report`); return the report."""
    out = Path(out)

    def write_map(point, volume, apix_A, origin_A):
        write_mrc(out / f"{point.name}.mrc", volume.astype(np.float32), apix_A, origin_A=origin_A)

    c = compare_runs(atom_run, density_run, device, atom_z, model_transform, log, write_map)
    return write_report(out, c.pair, c.beads, c.results, c.thresholds, c.box, c.apix)


def compare_runs(atom_run, density_run, device="cpu", atom_z: np.ndarray | None = None,
                 model_transform: Callable | None = None, log=None,
                 map_sink: Callable | None = None) -> Comparison:
    """Models and maps at every latent point of the density run, compared (nothing written).

    Parameters
    ----------
    atom_run, density_run : run folders (checked by :func:`.runs.load_run_pair` first).
    device : where decoder and density generator run.
    atom_z : ``(N, zdim)`` latents to decode instead of the atom run's ``z.npy`` (tests).
    model_transform : ``f(coords (P, N, 3) Å box frame, beads) -> coords`` applied to the
        decoded models (tests).
    log : ``f(str)`` for progress lines, or None.
    map_sink : ``f(point, map (D, D, D), apix_A, origin_A)`` called with each point's map, its
        voxel size and user-frame header origin, before it is dropped (results keep no volumes).
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
    radius, edge = local_radius_for(apix), mask_edge_for(apix)
    amps, sigma = np.asarray(beads.amplitudes), residue_bead_sigma(atom_cfg)   # one per residue

    keep = len(coords) * box ** 3 * 4 <= KEEP_MAPS_BYTES       # else pass 2 renders them again
    kept = {}

    def maps_at(point, xyz):
        volume = kept.pop(point.name, None)
        if volume is None:
            volume = renderer.volume(point.z)
        return point_maps(point, xyz, volume, amps, sigma, apix, radius, edge)

    # pass 1: FSC of every point (the resolution sets the thresholds) and the mean maps; the
    # maps are kept for pass 2 only while they fit in KEEP_MAPS_BYTES
    mean_model, mean_map, fscs = np.zeros((box,) * 3), np.zeros((box,) * 3), []
    for point, xyz in zip(pair.points, coords):
        m = maps_at(point, xyz)
        mean_model += m.model_map / len(coords)
        mean_map += m.map / len(coords)
        fscs.append(m.resolution_A)
        if keep:
            kept[point.name] = m.map
    resolution = float(np.median(fscs))
    chain_ids = np.asarray([str(c) for c in beads.chain_ids])
    t = thresholds_for(resolution, apix, len(coords), len(dict.fromkeys(chain_ids.tolist())))
    say(f"median model–map FSC 0.5: {resolution:.2f} Å; minimum displacement "
        f"{t.min_displacement_A:.2f} Å; local-CC ball {t.local_radius_A:.1f} Å")
    reference = np.asarray(beads.coords_A, dtype=np.float64)
    reference_map = render_model(reference, amps, sigma, box, apix)
    mean_coords = coords.mean(0)
    # pass 2: each point's map (kept, or rendered again: the generator is deterministic),
    # compared, handed to map_sink, then dropped
    results = []
    for point, xyz in zip(pair.points, coords):
        m = maps_at(point, xyz)
        results.append(compare_point(m, reference, reference_map, mean_coords, mean_model,
                                     mean_map, chain_ids, t, apix))
        if map_sink is not None:
            map_sink(point, m.map, apix, pair.frame.volume_origin_A(box, apix))
        m.map = m.model_map = None
    return Comparison(pair, beads, results, t, box, apix)
