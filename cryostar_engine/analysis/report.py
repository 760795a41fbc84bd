"""Latent-space analysis of one run: the orchestration and its JSON manifest.

:func:`run_analysis` takes the per-particle latents ``z`` ``(N, zdim)`` (row i ↔ star row i) and,
optionally, a :class:`StructureDecoder` (``z (M, zdim) → bead coordinates (M, N_beads, 3)`` Å, in
the engine's box-centred frame, plus the reference :class:`~cryostar_engine.io.Beads`), and writes
into one folder:

=============================== =============================================================
``pc_scores.npy``               ``(N, C)`` float32 PC scores (C ≤ zdim): of the decoded
                                structures (Å) by default, of z with ``pca_space="latent"``
``pc_components.npy``           structure PCA only: ``(C, N_beads, 3)`` unit axes
``labels.npy``                  ``(N,)`` int64 k-means state of every particle, ``0 … k-1``
``z_pca_K.txt``, ``_ind.txt``   trajectory K: snapped latents ``(P, zdim)`` / 0-based particle rows
``z_kmeans.txt``, ``_ind.txt``  the k snapped centres / their particle rows, in cluster order
``pca_K.pdb``, ``pca_K.cxc``    decoded trajectory (P models) and its ChimeraX movie script
``pca_K_points/point_PP.pdb``   one single-model PDB per trajectory point
``kmeans.pdb``, ``kmeans.cxc``  decoded centres (k models, cluster order) and script
``kmeans_centres/centre_CC.pdb`` one single-model PDB per centre
``*.png``                       figures (see :mod:`.figures`)
``umap.npy``, ``umap.png``      only when umap-learn is installed
``manifest.json``               every output (paths relative to this folder), PCA, counts, notes
=============================== =============================================================

Models are written in the frame of the input model and map (``frame``, a
:class:`~cryostar_engine.geometry.frames.Frame` from the run's manifest): user = box − shift_A, so
the map the model was docked into overlays them at its own header origin.  The manifest
(:mod:`cryostar_engine.train.manifest`, schema ``cryostar-analysis/2``) lists the single-model
PDBs of each series under ``"series"`` (``"kmeans"``: one per state in cluster order,
``"pca_K"``: one per trajectory point) and the scripts under ``"cxc"``.

The manifest is written last: its presence means the analysis finished.  Files that an earlier
manifest in the folder listed and this one does not are deleted, so the folder never mixes runs.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..geometry.frames import Frame
from ..io import Beads, read_map, write_beads_pdb
from ..io.atomic import atomic_path
from ..train.manifest import SCHEMAS, write_manifest
from . import figures
from .chimerax import write_trajectory_cxc
from .clustering import kmeans_states
from .pca import PcaResult, check_latent, fit_pca, fit_structure_pca, pc_trajectory

__all__ = ["AnalysisConfig", "StructureDecoder", "run_analysis", "read_manifest", "MANIFEST",
           "SCHEMA"]

MANIFEST = "manifest.json"
SCHEMA = SCHEMAS["analysis"]


@dataclass(frozen=True)
class AnalysisConfig:
    """What to compute.

    k : number of k-means states.
    n_pcs : trajectories along PCs 1 … n_pcs (clipped to the number of PCs, with a note).
    pca_space : "structure" (PCA of the decoded structures, Å; needs a decoder, else the latent
        PCA with a note) or "latent" (PCA of z).  See :mod:`.pca`.
    n_points : points per trajectory.
    percentiles : ``(lo, hi)`` percent of the PC scores spanned by a trajectory.
    random_state : k-means (and UMAP) seed.
    kmeans_n_init : k-means restarts.
    umap : compute a UMAP embedding when umap-learn is importable.
    """

    k: int = 10
    n_pcs: int = 3
    pca_space: str = "structure"
    n_points: int = 10
    percentiles: tuple = (5.0, 95.0)
    random_state: int = 0
    kmeans_n_init: int = 10
    umap: bool = True


@dataclass(frozen=True)
class StructureDecoder:
    """Turns latents into bead structures.

    decode : ``z (M, zdim) float → (M, N_beads, 3)`` Å, box-centred, numpy in and out.
    beads : the reference beads (chain ids, residue names/numbers for the PDB files).
    """

    decode: Callable[[np.ndarray], np.ndarray]
    beads: Beads

    def __call__(self, z: np.ndarray) -> np.ndarray:
        out = np.asarray(self.decode(np.asarray(z, np.float32)), np.float64)
        expected = (len(z), len(self.beads), 3)
        if out.shape != expected:
            raise RuntimeError(f"decoder returned shape {out.shape}, expected {expected}")
        return out


class _Writer:
    """Writes outputs into ``folder`` atomically and remembers their relative names."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.files: list[str] = []

    def path(self, name: str) -> Path:
        self.files.append(name)
        p = self.folder / name
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def npy(self, name: str, arr) -> str:
        with atomic_path(self.path(name)) as tmp, open(tmp, "wb") as f:
            np.save(f, arr)    # a file object: np.save would append ".npy" to a path
        return name

    def txt(self, name: str, arr, fmt: str, header: str) -> str:
        with atomic_path(self.path(name)) as tmp:
            np.savetxt(tmp, arr, fmt=fmt, header=header)
        return name


class _Notes(list):
    """A list of notes that also passes each one to ``log`` as it is added."""

    def __init__(self, log):
        super().__init__()
        self._log = log

    def append(self, note: str) -> None:
        super().append(note)
        self._log(note)


def read_manifest(folder) -> dict | None:
    """The analysis manifest in ``folder`` (or None when absent or unreadable)."""
    p = Path(folder) / MANIFEST
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def _z_points(w: _Writer, stem: str, z_pts, idx, what: str) -> dict:
    return {"z_file": w.txt(f"{stem}.txt", z_pts, "%.7g", f"{what}: latents (rows of z.npy)"),
            "ind_file": w.txt(f"{stem}_ind.txt", idx, "%d",
                              f"{what}: 0-based particle rows (z.npy / star order)")}


def _singles(w, folder: str, stem: str, beads, models) -> list[str]:
    """One single-model PDB per model, ``folder/stem_NN.pdb``; their names."""
    width = max(2, len(str(len(models) - 1)))
    names = []
    for i, xyz in enumerate(models):
        name = f"{folder}/{stem}_{i:0{width}d}.pdb"
        write_beads_pdb(w.path(name), beads, xyz[None])
        names.append(name)
    return names


def _trajectory_outputs(w, traj, decoder, frame, map_path) -> dict:
    k = traj.pc
    entry = {"pc": k, "percentiles": list(traj.percentiles),
             "target_scores": traj.target_scores.tolist(), "indices": traj.indices.tolist(),
             **_z_points(w, f"z_pca_{k}", traj.z, traj.indices, f"PC{k} trajectory")}
    if decoder is not None:
        models = frame.to_user(decoder(traj.z))
        write_beads_pdb(w.path(f"pca_{k}.pdb"), decoder.beads, models)
        title = (f"CryoSTAR: trajectory along PC{k}, {len(traj.z)} real particles from the "
                 f"{traj.percentiles[0]:g}th to the {traj.percentiles[1]:g}th percentile")
        write_trajectory_cxc(w.path(f"pca_{k}.cxc"), f"pca_{k}.pdb", len(traj.z), title, map_path)
        entry.update(pdb=f"pca_{k}.pdb", cxc=f"pca_{k}.cxc",
                     point_pdbs=_singles(w, f"pca_{k}_points", "point", decoder.beads, models))
    return entry


def _kmeans_outputs(w, states, decoder, frame, map_path) -> dict:
    entry = {"k": states.k, "labels": w.npy("labels.npy", states.labels),
             "centre_indices": states.centre_indices.tolist(), "counts": states.counts.tolist(),
             "order": "average-linkage Euclidean dendrogram leaf order of the snapped centres",
             **_z_points(w, "z_kmeans", states.centres, states.centre_indices,
                         "k-means centres in cluster order")}
    if decoder is not None:
        models = frame.to_user(decoder(states.centres))
        write_beads_pdb(w.path("kmeans.pdb"), decoder.beads, models)
        title = f"CryoSTAR: {states.k} k-means states (model i = cluster i-1)"
        write_trajectory_cxc(w.path("kmeans.cxc"), "kmeans.pdb", states.k, title, map_path)
        entry.update(pdb="kmeans.pdb", cxc="kmeans.cxc",
                     centre_pdbs=_singles(w, "kmeans_centres", "centre", decoder.beads, models))
    return entry


def _figures(w, pca, states, trajs, losses_csv, notes) -> dict:
    c_xy = pca.scores[states.centre_indices, :2]
    t_xy = [(t.pc, pca.scores[t.indices, :2]) for t in trajs]
    ratio = pca.explained_variance_ratio
    out = {
        "pc_scatter": figures.plot_pc_scatter(w.path("pca_scatter.png"), pca.scores, ratio,
                                              states.labels, c_xy, t_xy).name,
        "pc_density": figures.plot_pc_density(w.path("pca_density.png"), pca.scores, ratio,
                                              c_xy, t_xy).name,
        "explained_variance": figures.plot_explained_variance(
            w.path("explained_variance.png"), ratio).name,
        "cluster_populations": figures.plot_cluster_populations(
            w.path("cluster_populations.png"), states.counts).name,
    }
    if losses_csv is not None and Path(losses_csv).is_file():
        losses = figures.read_losses(losses_csv)
        if losses and len(losses["step"]) and figures.plot_training_curves(
                w.folder / "training_curves.png", losses) is not None:
            w.files.append("training_curves.png")
            out["training_curves"] = "training_curves.png"
    else:
        notes.append("no losses.csv: training curves skipped")
    return out


def _umap(w, z, states, config, notes) -> dict | None:
    if not config.umap:
        return None
    try:
        import umap  # optional dependency (pip install umap-learn)
    except ImportError:
        notes.append("umap-learn is not installed: UMAP skipped (pip install umap-learn)")
        return None
    xy = umap.UMAP(random_state=config.random_state).fit_transform(z).astype(np.float32)
    figures.plot_embedding(w.path("umap.png"), xy, states.labels, "UMAP")
    return {"embedding": w.npy("umap.npy", xy), "figure": "umap.png"}


def _fit_motion_pca(z, config: AnalysisConfig, decoder, notes) -> PcaResult:
    if config.pca_space not in ("structure", "latent"):
        raise ValueError(f"pca_space must be 'structure' or 'latent', got {config.pca_space!r}")
    if config.pca_space == "latent":
        return fit_pca(z)
    if decoder is None:
        notes.append("no decoder: PCA of the latent space instead of the decoded structures")
        return fit_pca(z)
    return fit_structure_pca(z, decoder)


def _pca_entry(w: _Writer, pca: PcaResult) -> dict:
    entry = {"space": pca.space, "scores": w.npy("pc_scores.npy", pca.scores.astype(np.float32)),
             "explained_variance": pca.explained_variance.tolist(),
             "explained_variance_ratio": pca.explained_variance_ratio.tolist()}
    if pca.space == "latent":
        entry.update(mean=pca.mean.tolist(), components=pca.components.tolist())
        return entry
    entry.update(units="Å", rms_displacement_A=pca.rms_displacement_A.tolist(),
                 fit_particles=int(len(pca.scores) if pca.fit_rows is None else len(pca.fit_rows)),
                 components=w.npy("pc_components.npy",
                                  pca.components.reshape(len(pca.components), -1, 3)
                                  .astype(np.float32)))
    return entry


def _remove_stale(folder: Path, old: dict | None, keep: list[str]) -> None:
    """Delete what the previous analysis wrote (its ``outputs``; ``files`` in schema 1) and this
    one did not, and the sub-folders that leaves empty; files it did not write (a user's notes,
    say) stay."""
    old = old or {}
    legacy = old.get("files", []) if old.get("schema") == "cryostar-analysis/1" else []
    root = folder.resolve()
    for name in set(old.get("outputs", legacy)) - set(keep):
        p = (folder / name).resolve()
        if root in p.parents and p.is_file():
            p.unlink()
            if p.parent != root and not any(p.parent.iterdir()):
                p.parent.rmdir()


def _map_entry(map_path, frame: Frame, notes) -> tuple[Path | None, dict | None]:
    """The map the scripts open: ``map_path``, else the run's own map (its frame's) when the file
    is still there; with its header origin for the manifest."""
    if map_path is None and frame.map:
        if Path(frame.map).is_file():
            map_path = frame.map
        else:
            notes.append(f"the run's map {frame.map} is gone: the .cxc scripts open no map")
    if map_path is None:
        return None, None
    m = read_map(map_path)
    path = Path(map_path).resolve()
    return path, {"path": str(path), "box": int(m.data.shape[-1]), "voxel_size_A": m.voxel_size_A,
                  "origin_A": [float(v) for v in m.origin_A]}


def _series(manifest: dict) -> tuple[dict, dict]:
    """``series`` (name → single-model PDBs) and ``cxc`` (name → script) of the manifest."""
    series, cxc = {}, {}
    km = manifest["kmeans"]
    if "centre_pdbs" in km:
        series["kmeans"], cxc["kmeans"] = km["centre_pdbs"], km["cxc"]
    for t in manifest["trajectories"]:
        if "point_pdbs" in t:
            series[f"pca_{t['pc']}"], cxc[f"pca_{t['pc']}"] = t["point_pdbs"], t["cxc"]
    return series, cxc


def run_analysis(z, out_dir, config: AnalysisConfig = AnalysisConfig(),
                 decoder: StructureDecoder | None = None, losses_csv=None, map_path=None,
                 z_source=None, log: Callable[[str], None] = lambda msg: None,
                 frame: Frame | None = None, box_px: int | None = None,
                 apix_A: float | None = None) -> dict:
    """Analyse ``z`` ``(N, zdim)`` into ``out_dir``; return the manifest (also written).

    Parameters
    ----------
    z : latents, row i ↔ star row i.
    out_dir : output folder (created).
    config : :class:`AnalysisConfig`.
    decoder : structures (box frame) for trajectories and centres; None writes no PDB/cxc (noted).
    losses_csv : the run's ``losses.csv`` for the training-curve figure (optional).
    map_path : map for the ``.cxc`` scripts, opened at its own origin (default: ``frame.map``).
    z_source : where z came from, recorded in the manifest.
    log : called with each note/warning as it arises.
    frame : the run's user frame (default: the identity); models are written in it.
    box_px, apix_A : the run's training box and pixel size, recorded in the manifest.

    Raises
    ------
    InputError : bad z, k, points or map.
    """
    z = check_latent(z, str(z_source or "z"))
    frame = frame or Frame()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    old = read_manifest(out)
    notes = _Notes(log)
    pca = _fit_motion_pca(z, config, decoder, notes)
    n_pcs = min(config.n_pcs, pca.n_components)
    if n_pcs < config.n_pcs:
        notes.append(f"only {pca.n_components} PCs exist: trajectories along PC1-{n_pcs}")
    trajs = [pc_trajectory(z, pca, pc, config.n_points, config.percentiles)
             for pc in range(1, n_pcs + 1)]
    states = kmeans_states(z, config.k, config.random_state, config.kmeans_n_init)
    map_used, map_info = _map_entry(map_path, frame, notes)
    if decoder is None:
        notes.append("no decoder: PDB models and ChimeraX scripts were not written")
    w = _Writer(out)
    manifest = {
        "z": {"source": str(Path(z_source).resolve()) if z_source else None,
              "n_particles": int(len(z)), "zdim": int(z.shape[1])},
        "config": asdict(config),
        "pca": _pca_entry(w, pca),
        "trajectories": [_trajectory_outputs(w, t, decoder, frame, map_used) for t in trajs],
        "kmeans": _kmeans_outputs(w, states, decoder, frame, map_used),
        "map": map_info, "structures": decoder is not None,
    }
    manifest["figures"] = _figures(w, pca, states, trajs, losses_csv, notes)
    manifest["umap"] = _umap(w, z, states, config, notes)
    manifest["notes"] = list(notes)
    manifest["outputs"] = sorted(set(w.files))
    _remove_stale(out, old, w.files + [MANIFEST])
    series, cxc = _series(manifest)
    written = write_manifest(out, "analysis", "finished", box_px, apix_A, frame=frame,
                             series=series, cxc=cxc, **manifest)
    return json.loads(json.dumps(written, default=str))
