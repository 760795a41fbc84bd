"""``check-inputs``: everything a training run needs, checked before any GPU time is spent.

:func:`check_inputs` reads the particles, the model and (optionally) the consensus map, raises
:class:`~cryostar_engine.errors.InputError` for anything that would make training meaningless,
and returns a report (also written as ``report.json`` and ``report.txt``) with the particle
count, box, pixel size, optics groups, defocus range, bead count, where the model sits in the
box, how well the model's bead density fits the map (with the low-pass it suggests), and a
quick CTF-corrected back-projection from the given poses (``backprojection.mrc``) with its
correlation to the map, or to the bead density when no map is given.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .data.particles import ParticleDataset
from .io.mrc import MapData, read_map, write_mrc
from .io.relion import ParticleMetadata, read_particles
from .metrics import correlation
from .physics.fourier import fourier_crop_volume, gaussian_lowpass_volume
from .recon.backproject import Backprojector
from .reference import Reference, load_reference
from .train.manifest import write_manifest
from .train.rundir import write_json
from .io.atomic import write_text_atomic
from .lowpass import model_density, suggest_low_pass

__all__ = ["CheckConfig", "check_inputs", "format_report"]


@dataclass(frozen=True)
class CheckConfig:
    particles: str
    model: str
    map: str | None = None
    datadir: str | None = None
    apix: float | None = None
    out: str | None = None
    max_particles: int = 5000     # back-projection subset
    max_box: int = 128            # check box (Fourier-cropped)
    seed: int = 0
    amplitude_contrast: float | None = None   # overrides the star file's (None: it, or 0.1)
    passthrough: str | None = None            # cryoSPARC passthrough .cs (poses/CTF)


def _particle_summary(meta: ParticleMetadata) -> dict:
    defocus = 0.5 * (meta.defocus_u_A + meta.defocus_v_A)
    groups = []
    for g in np.unique(meta.optics_group):
        sel = meta.optics_group == g
        groups.append({"group": int(g), "particles": int(sel.sum()),
                       "voltage_kv": float(meta.voltage_kv[sel][0]), "cs_mm": float(meta.cs_mm[sel][0]),
                       "amplitude_contrast": float(meta.amplitude_contrast[sel][0])})
    return {
        "star": str(meta.star_path), "count": len(meta), "box_px": meta.box, "apix_A": meta.apix,
        "stacks": len(set(meta.image_paths)), "optics_groups": groups,
        "defocus_A": {"min": float(defocus.min()), "max": float(defocus.max()),
                      "mean": float(defocus.mean())},
        "max_astigmatism_A": float(np.abs(meta.defocus_u_A - meta.defocus_v_A).max()),
        "phase_shift": bool(np.any(meta.phase_shift_deg != 0)),
        "notes": list(meta.notes),
    }


def _model_summary(ref: Reference, box: int, apix: float) -> dict:
    b = ref.beads
    radius = np.sqrt(((b.coords_A - ref.centre_A) ** 2).sum(1))
    return {
        "beads": len(b), "chains": sorted(set(map(str, b.chain_ids))),
        "nucleotide_beads": int(b.is_nucleotide.sum()),
        "dropped_residues": b.dropped, "renamed_residues": b.renamed,
        "shift_applied_A": (ref.shift_A.round(3) + 0.0).tolist(),
        "centre_A": ref.centre_A.round(2).tolist(),
        "centre_offset_fraction_of_box": float(np.abs(ref.centre_A).max() / (box * apix)),
        "max_radius_A": float(radius.max()), "box_half_width_A": box * apix / 2,
        "notes": list(b.notes),
    }


def _map_at(map_data: MapData, box: int) -> torch.Tensor | None:
    vol = torch.from_numpy(map_data.data)
    return fourier_crop_volume(vol, box) if vol.shape[-1] >= box else None


def _backproject(ds: ParticleDataset, rows: np.ndarray) -> torch.Tensor:
    bp = Backprojector(ds.box, ds.apix)
    for start in range(0, len(rows), 256):
        b = ds.batch(rows[start:start + 256])
        bp.add(b.images, b.rotations, b.shifts_px, b.ctf)
    return bp.volume()


def check_inputs(cfg: CheckConfig) -> dict:
    """Validate the inputs of a training run and return the report (see module docstring)."""
    meta = read_particles(cfg.particles, datadir=cfg.datadir, apix=cfg.apix,
                          amplitude_contrast=cfg.amplitude_contrast, passthrough=cfg.passthrough)
    map_data = read_map(cfg.map) if cfg.map else None
    ref = load_reference(cfg.model, meta.box, meta.apix, map_data, cfg.map)
    box = min(meta.box, cfg.max_box)
    ds = ParticleDataset(meta, box=box, max_cache_bytes=0)
    apix = ds.apix
    report = {"particles": _particle_summary(meta), "model": _model_summary(ref, meta.box, meta.apix),
              "check_box_px": box, "check_apix_A": apix, "warnings": []}
    density = model_density(ref.beads, box, apix)
    target = density
    if map_data is not None:
        vol = _map_at(map_data, box)
        report["map"] = {"path": str(cfg.map), "box_px": int(map_data.data.shape[-1]),
                         "apix_A": map_data.voxel_size_A, "origin_A": map_data.origin_A.tolist()}
        if vol is not None:
            report["map"]["model_map_correlation"] = correlation(
                gaussian_lowpass_volume(density, 1.5), gaussian_lowpass_volume(vol, 1.5))
            low_pass = suggest_low_pass(ref.beads, map_data, meta.box, meta.apix)
            report["map"]["model_map_fsc05_A"] = low_pass.fsc05_A
            report["suggested_low_pass_A"] = low_pass.suggested_A
            target = vol
    rng = np.random.default_rng(cfg.seed)
    rows = np.sort(rng.permutation(len(meta))[:cfg.max_particles])
    recon = _backproject(ds, rows)
    cc = correlation(gaussian_lowpass_volume(recon, 1.5), gaussian_lowpass_volume(target, 1.5))
    report["backprojection"] = {"particles_used": int(len(rows)),
                                "compared_with": "map" if target is not density else "model bead density",
                                "correlation_lowpass": cc}
    report["warnings"] += _warnings(report, cc)
    if cfg.out:
        _write_outputs(Path(cfg.out), report, recon, density, apix, ref.frame)
    return report


def _warnings(report: dict, cc: float) -> list[str]:
    out = []
    if cc < -0.2:
        out.append(f"the back-projection anti-correlates with the reference ({cc:.2f}): the particles "
                   "look dark; use --invert-contrast when training")
    elif cc < 0.3:
        out.append(f"the back-projection correlates only {cc:.2f} with the reference: check that the "
                   "poses belong to these particles and that the model is docked in their frame")
    m = report["model"]
    if m["max_radius_A"] > m["box_half_width_A"]:
        out.append(f"some beads lie {m['max_radius_A']:.0f} Å from the model centre, beyond the box "
                   f"half-width {m['box_half_width_A']:.0f} Å")
    if m["dropped_residues"]:
        dropped = ", ".join(f"{k}×{v}" for k, v in m["dropped_residues"].items())
        out.append(f"residues without a bead were ignored: {dropped}")
    return out


def _write_outputs(out: Path, report: dict, recon, density, apix: float, frame) -> None:
    """Report files and the two maps, in the frame of the input model and map (they overlay it)."""
    out.mkdir(parents=True, exist_ok=True)
    origin = frame.volume_origin_A(recon.shape[-1], apix)
    write_mrc(out / "backprojection.mrc", recon.numpy(), apix, origin_A=origin)
    write_mrc(out / "model_density.mrc", density.numpy(), apix, origin_A=origin)
    report["frame"] = frame.to_json()
    report["outputs"] = {"backprojection": str(out / "backprojection.mrc"),
                         "model_density": str(out / "model_density.mrc")}
    write_json(out / "report.json", report)
    write_text_atomic(out / "report.txt", format_report(report))
    write_manifest(out, "check", "finished", recon.shape[-1], apix, frame=frame,
                   report="report.json", text="report.txt", maps=["backprojection.mrc", "model_density.mrc"])


def format_report(r: dict) -> str:
    """The report as readable text."""
    p, m = r["particles"], r["model"]
    lines = [
        f"Particles   {p['count']} from {p['star']} ({p['stacks']} stack(s))",
        f"Box         {p['box_px']} px at {p['apix_A']:.4g} Å/px (checked at {r['check_box_px']} px, "
        f"{r['check_apix_A']:.4g} Å/px)",
        "Optics      " + "; ".join(f"group {g['group']}: {g['particles']} particles, {g['voltage_kv']:g} kV, "
                                   f"Cs {g['cs_mm']:g} mm, Q0 {g['amplitude_contrast']:g}"
                                   for g in p["optics_groups"]),
        f"Defocus     {p['defocus_A']['min']:.0f} – {p['defocus_A']['max']:.0f} Å "
        f"(mean {p['defocus_A']['mean']:.0f}); max astigmatism {p['max_astigmatism_A']:.0f} Å",
        f"Model       {m['beads']} beads in chain(s) {', '.join(m['chains'])}; centre "
        f"{tuple(m['centre_A'])} Å from the box centre; shift applied {tuple(m['shift_applied_A'])} Å",
    ]
    if "map" in r:
        mp = r["map"]
        lines.append(f"Map         {mp['box_px']} px at {mp['apix_A']:.4g} Å/px, origin "
                     f"{tuple(round(o, 2) for o in mp['origin_A'])} Å")
        if "model_map_correlation" in mp:
            lines.append(f"Model fit   correlation {mp['model_map_correlation']:.3f}; FSC(model, map) = 0.5 "
                         f"at {mp['model_map_fsc05_A']:.1f} Å; suggested low-pass "
                         f"{r['suggested_low_pass_A']:.1f} Å")
    bp = r["backprojection"]
    lines.append(f"Back-proj.  {bp['particles_used']} particles; correlation with the "
                 f"{bp['compared_with']} (low-passed) {bp['correlation_lowpass']:.3f}")
    lines += [f"Note        {n}" for n in p["notes"] + m.get("notes", [])]
    lines += [f"WARNING     {w}" for w in r["warnings"]]
    if "outputs" in r:
        lines.append(f"Wrote       {r['outputs']['backprojection']}")
    return "\n".join(lines) + "\n"
