"""The validation folder: per-point models, FSC tables and figures, ``report.json``,
``validation.png``, ``validation.cxc`` and ``manifest.json`` (written last), all atomically;
the per-point maps are written as they are compared (:func:`.validate.validate_runs`).

Layout (schema ``cryostar-validation/1``)::

    state_00.pdb  state_00.mrc  state_00_fsc.txt  state_00.png   (one set per latent point;
    pc1_00.pdb …                                                  k-means states, PC points)
    report.json  validation.png  validation.cxc  manifest.json  run.json

Models (bead PDBs, B-factor column = the bead's local CC) and maps are in the user frame (the
input model's and map's): they overlay the input map and each other.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io.atomic import write_text_atomic
from ..io.pdb import write_beads_pdb
from ..train.manifest import write_manifest
from ..train.rundir import write_json
from .chimerax import write_validation_cxc
from .figures import overview_figure, point_figure
from .flags import MOVES, RIGID

__all__ = ["SCHEMA", "point_record", "chain_summary", "verdict_of", "write_report"]

SCHEMA = "cryostar-validation/1"
NOTES = [
    "Models: the atom run's decoder at each latent point; maps: the density run's generator at "
    "the same z (it never saw the atomic model).",
    "local CC: Pearson correlation of the model's bead density and the map in a ball of "
    "local_radius_A around each bead (residue).",
    f"{MOVES}: the bead moved ≥ min_displacement_A from the reference model, but the map agrees "
    "better with the reference model at the bead's reference position (the motion is not in "
    "the map: it may come from the prior).",
    f"{RIGID}: the bead stays within min_displacement_A of its mean position, but the map "
    "changes there (vs the mean map) more than the model does (a missing degree of freedom or a "
    "compositional change).",
    "verdict: 'flagged' when any chain is flagged at any point (chain thresholds keep the chance "
    "that a correct run is flagged ≤ family_alpha); 'supported' when none is and the models moved "
    "beyond min_displacement_A somewhere (the maps could contradict them); 'inconclusive' when "
    "none is but they never did (maps too coarse to test the motion).",
]


def _r(x, nd=4):
    return None if x is None or not np.isfinite(x) else round(float(x), nd)


def point_record(res, beads) -> dict:
    """The ``points[i]`` entry of the report (contract layout) for one :class:`PointResult`."""
    p = res.maps.point
    flagged = [{"chain": str(beads.chain_ids[i]), "resseq": int(beads.res_ids[i]),
                "cc": _r(res.cc[i], 3), "flag": str(res.flags[i]),
                "displacement_A": _r(res.displacement_A[i], 2)}
               for i in np.flatnonzero(res.flags != "")]
    return {"name": p.name, "series": p.series, "index": p.index, "star_row": p.star_row,
            "z": [_r(v, 5) for v in p.z], "model": f"{p.name}.pdb", "map": f"{p.name}.mrc",
            "figure": f"{p.name}.png", "fsc_0.5_A": _r(res.maps.resolution_A, 3),
            "fsc_file": f"{p.name}_fsc.txt", "mean_local_cc": _r(res.mean_local_cc),
            "max_displacement_A": _r(res.displacement_A.max(), 2),
            "chains": [{**c, "mean_cc": _r(c["mean_cc"]),
                        "z_moves_reference": _r(c["z_moves_reference"]),
                        "z_moves_fit": _r(c["z_moves_fit"]),
                        "mean_delta_rigid": _r(c["mean_delta_rigid"])} for c in res.chains],
            "flagged_residues": flagged}


def chain_summary(points: list[dict]) -> list[dict]:
    """Per chain over all points: mean CC, the points flagged for each kind, the chain's flag
    (the kind flagged at more points; null when none)."""
    out = []
    for i, c in enumerate(points[0]["chains"] if points else []):
        rows = [p["chains"][i] for p in points]
        hits = {kind: [p["name"] for p, r in zip(points, rows) if r["flag"] == kind]
                for kind in (MOVES, RIGID)}
        worst = max(hits, key=lambda k: len(hits[k]))
        out.append({"chain": c["chain"], "n": c["n"],
                    "mean_cc": _r(np.mean([r["mean_cc"] for r in rows])),
                    "min_cc": _r(min(r["mean_cc"] for r in rows)),
                    "points_flagged": hits, "flag": worst if hits[worst] else None})
    return out


def _fsc_table(res) -> str:
    lines = ["# model–map FSC inside the soft mask around the model",
             "# frequency_1/A  resolution_A  fsc"]
    for f, c in zip(res.maps.freq, res.maps.fsc):
        lines.append(f"{f:.5f} {1 / f if f > 0 else float('inf'):.3f} {c:.5f}")
    return "\n".join(lines) + "\n"


def verdict_of(points: list[dict], t) -> tuple[str, str]:
    """``("flagged" | "supported" | "inconclusive", one-line reason)``.

    *flagged*: a chain is flagged at some point.  *supported*: none is, and at some point a chain
    moved at least ``min_beads`` beads by ``d_min`` or more, so the maps were able to contradict
    the models' motion.  *inconclusive*: none is, but the models never move beyond what the maps
    resolve (``d_min`` = half their FSC 0.5 resolution), so the check had nothing to test: train
    stage 2 longer, or on more particles, for finer maps.
    """
    if any(c["flag"] for p in points for c in p["chains"]):
        return "flagged", "a chain is flagged at one or more points"
    if any(c.get("moved_beads", 0) >= t.min_beads for p in points for c in p["chains"]):
        return "supported", "no chain is flagged, and the models' motion was resolvable"
    return "inconclusive", (f"no model moves {t.min_beads}+ beads by {t.min_displacement_A:.1f} Å "
                            f"or more (half the maps' {t.resolution_A:.1f} Å resolution): the maps "
                            "cannot test the motion; train stage 2 longer for finer maps")


def write_report(out: Path, pair, beads, results, t, box: int, apix: float) -> dict:
    """Write every file of the validation folder ``out`` and return the report."""
    frame = pair.frame
    points = []
    for res in results:
        name = res.maps.point.name
        write_beads_pdb(out / f"{name}.pdb", beads, frame.to_user(res.maps.coords)[None],
                        bfactors=np.clip(res.cc, -1, 1)[None])
        write_text_atomic(out / f"{name}_fsc.txt", _fsc_table(res))
        point_figure(out / f"{name}.png", res, beads, t)
        points.append(point_record(res, beads))
    chains = chain_summary(points)
    verdict, reason = verdict_of(points, t)
    report = {"schema": SCHEMA, "atom_run": str(pair.atom_run.resolve()),
              "density_run": str(pair.density_run.resolve()), "box_px": int(box),
              "apix_A": float(apix), "frame": frame.to_json(), "thresholds": t.to_json(),
              "verdict": verdict, "verdict_reason": reason,
              "mean_local_cc": _r(np.mean([r.mean_local_cc for r in results])),
              "median_fsc_0.5_A": _r(t.resolution_A, 3),
              "points": points, "chains": chains, "notes": NOTES}
    write_json(out / "report.json", report)
    overview_figure(out / "validation.png", results, beads, t, report)
    write_validation_cxc(out / "validation.cxc", results, beads)
    write_manifest(out, "validation", "finished", box, apix, frame=frame,
                   series={"models": [p["model"] for p in points],
                           "maps": [p["map"] for p in points],
                           "figures": [p["figure"] for p in points]},
                   cxc={"validation": "validation.cxc"}, report="report.json",
                   figure="validation.png", verdict=report["verdict"],
                   atom_run=report["atom_run"], density_run=report["density_run"])
    return report
