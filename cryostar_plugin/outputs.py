"""Engine results → the numbers and files the protocols register (no Scipion objects here).

* :func:`readStarImageIds` / :func:`zRowsByObjId`: the engine's per-particle arrays are in star
  order; the star written by :func:`cryostar_plugin.convert.writeParticlesStar` carries each
  particle's Scipion id in ``rlnImageId``, which maps row i to its particle.
* :func:`readAnalysisManifest` / :func:`analysisPoints`: what ``cryostar-engine analyze`` wrote,
  read from its ``manifest.json`` (never by listing the folder): for every k-means centre and
  every trajectory point, its latent vector, the star row of the real particle it snaps to and
  its model in the decoded multi-model PDB.
* :func:`writeUserFrameModels`: the decoded models moved back from the engine's box-centred
  frame into the frame of the model the user gave (``user = engine - shift``, the inverse of the
  shift :func:`cryostar_plugin.model_frame.centre_model_for_engine` applied), as one multi-model
  PDB (for ChimeraX ``coordsets``) plus one single-model PDB per item.
* :func:`chimeraxScript`: a ``.cxc`` opening the consensus map at its Scipion origin and the
  models as coordinate sets (a slider plays them as a movie).

Everything here reads files with NumPy, json and emtable (a dependency of scipion-em-relion),
so it works when the engine lives in a separate environment.
"""
import json
import os
from dataclasses import dataclass

import numpy as np

from .model_frame import write_shifted_model

__all__ = ["readStarImageIds", "zRowsByObjId", "readJson", "writeJson", "readAnalysisManifest",
           "StructurePoint", "analysisPoints", "splitPdbModels", "writeUserFrameModels",
           "MapDisplay", "chimeraxScript", "writeChimeraxScript", "volumeSeriesScript",
           "MODEL_FRAME_FILE"]

#: Written by the protocols' conversion step next to the engine's inputs: how the reference
#: model was moved into the engine frame (``{"shift_A": [x, y, z], "frame": ...}``).
MODEL_FRAME_FILE = "model_frame.json"


# ------------------------------------------------------------------ particles ↔ star rows
def readStarImageIds(starFile):
    """Scipion particle ids of a star's particle rows, in star order.

    Returns
    -------
    ``(N,)`` int64 array of ``rlnImageId`` (row i = engine row i).
    """
    from emtable import Table

    table = Table(fileName=starFile, tableName="particles")
    if not table.hasColumn("rlnImageId"):
        raise ValueError(f"{starFile} has no rlnImageId column (was it written by the plugin?)")
    return np.asarray(table.getColumnValues("rlnImageId"), dtype=np.int64)


def zRowsByObjId(starFile, z):
    """Map the engine's z rows (star order) to Scipion particle ids via ``rlnImageId``.

    Parameters
    ----------
    starFile : the star written by :func:`cryostar_plugin.convert.writeParticlesStar`.
    z : ``(N, zdim)`` array, row i = star row i.

    Returns
    -------
    dict : particle objId → ``(zdim,)`` float64 row.
    """
    ids = readStarImageIds(starFile)
    z = np.asarray(z, dtype=np.float64)
    if len(ids) != len(z):
        raise ValueError(f"z.npy has {len(z)} rows but {starFile} has {len(ids)} particles")
    return dict(zip(ids.tolist(), z))


# ------------------------------------------------------------------ json
def readJson(path):
    with open(path) as f:
        return json.load(f)


def writeJson(path, obj):
    """Write ``obj`` as JSON atomically (temporary file, then rename)."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def readAnalysisManifest(folder):
    """The ``manifest.json`` of an ``analyze`` output folder; its presence means it finished."""
    path = os.path.join(folder, "manifest.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} is missing: the analysis did not finish")
    return readJson(path)


# ------------------------------------------------------------------ analysis points
@dataclass(frozen=True)
class StructurePoint:
    """One decoded structure of an analysis.

    kind : ``"kmeans"`` (a cluster centre) or ``"pca"`` (a point along a PC trajectory).
    model : 0-based model index in the multi-model PDB of its series.
    z : latent vector (zdim floats), a row of the run's z (the snapped particle's).
    particleRow : 0-based star row of that particle.
    pc, frame : 1-based PC and 0-based position along it (trajectories; None for centres).
    cluster, clusterSize : 0-based state and its particle count (centres; None otherwise).
    """

    kind: str
    model: int
    z: tuple
    particleRow: int
    pc: int = None
    frame: int = None
    cluster: int = None
    clusterSize: int = None


def _table(folder, name):
    return np.loadtxt(os.path.join(folder, name), ndmin=2)


def _indices(folder, name):
    return np.loadtxt(os.path.join(folder, name), dtype=np.int64, ndmin=1)


def analysisPoints(folder, manifest):
    """Cluster centres and trajectory points listed by an analysis manifest.

    Returns
    -------
    dict : ``{"kmeans": [StructurePoint, …] (cluster order), "pca": {pc: [StructurePoint, …]}}``;
    only the series whose decoded PDB exists (``manifest["structures"]``) carry a ``"pdb"`` in
    the manifest, the points are returned either way.
    """
    km = manifest["kmeans"]
    zs, rows = _table(folder, km["z_file"]), _indices(folder, km["ind_file"])
    centres = [StructurePoint("kmeans", c, tuple(map(float, zs[c])), int(rows[c]),
                              cluster=c, clusterSize=int(km["counts"][c]))
               for c in range(len(rows))]
    trajectories = {}
    for t in manifest["trajectories"]:
        zs, rows = _table(folder, t["z_file"]), _indices(folder, t["ind_file"])
        trajectories[int(t["pc"])] = [
            StructurePoint("pca", i, tuple(map(float, zs[i])), int(rows[i]), pc=int(t["pc"]),
                           frame=i) for i in range(len(rows))]
    return {"kmeans": centres, "pca": trajectories}


# ------------------------------------------------------------------ models in the user frame
def splitPdbModels(path):
    """The models of a multi-model PDB as PDB texts (each ends with ``END``), in file order.

    A file without ``MODEL`` records is one model.
    """
    models, current, inModel = [], [], False
    with open(path) as f:
        for line in f:
            rec = line[:6].strip()
            if rec == "MODEL":
                current, inModel = [], True
            elif rec == "ENDMDL":
                models.append("".join(current) + "END\n")
                inModel = False
            elif rec in ("ATOM", "HETATM", "TER") and (inModel or not models):
                current.append(line)
    if not models and current:
        models.append("".join(current) + "END\n")
    return models


def writeUserFrameModels(enginePdb, outDir, stem, engineShift_A):
    """Move decoded models back into the user's frame; write the series and one file per model.

    Parameters
    ----------
    enginePdb : multi-model PDB in the engine frame (Å, box-centred).
    outDir : output folder (created).
    stem : base name, e.g. ``"kmeans"`` or ``"pca_1"``.
    engineShift_A : (3,) shift the plugin applied to the user's model (engine = user + shift).

    Returns
    -------
    (str, list of str) : the multi-model PDB ``outDir/stem.pdb`` and the single-model files
    ``outDir/stem_NN.pdb`` (model order), all in the frame of the user's reference model.
    """
    os.makedirs(outDir, exist_ok=True)
    series = os.path.join(outDir, f"{stem}.pdb")
    write_shifted_model(enginePdb, series, -np.asarray(engineShift_A, dtype=np.float64))
    models = splitPdbModels(series)
    width = max(2, len(str(len(models) - 1)))
    singles = []
    for i, text in enumerate(models):
        single = os.path.join(outDir, f"{stem}_{i:0{width}d}.pdb")
        with open(single, "w") as f:
            f.write(text)
        singles.append(single)
    return series, singles


# ------------------------------------------------------------------ ChimeraX
@dataclass(frozen=True)
class MapDisplay:
    """A map for ChimeraX: file (MRC), voxel size (Å) and origin (Å, xyz; Scipion's)."""

    path: str
    voxelSize: float
    origin: tuple


def chimeraxScript(title, series, volume=None, showOnly=None):
    """Text of a ``.cxc`` that opens ``volume`` and each multi-model PDB as coordinate sets.

    Parameters
    ----------
    title : comment line.
    series : list of ``(label, pdbPath, nModels)``; each becomes model ``#2, #3, …`` (``#1`` is
        the map; without a map they start at ``#1``).
    volume : :class:`MapDisplay` or None.
    showOnly : index into ``series`` of the only series shown at start (others hidden); None
        shows all.
    """
    lines = [f"# {title}",
             "# Open with: chimerax this_file.cxc   (or `open this_file.cxc` inside ChimeraX)"]
    first = 1
    if volume is not None:
        ox, oy, oz = (float(v) + 0.0 for v in volume.origin)   # + 0.0: no "-0"
        lines += [f'open "{os.path.abspath(volume.path)}" format mrc',
                  f"volume #1 voxelSize {volume.voxelSize:g} origin {ox:g},{oy:g},{oz:g}",
                  "volume #1 style surface transparency 0.65 color silver"]
        first = 2
    for i, (label, pdb, n) in enumerate(series):
        m = first + i
        lines += [f"# #{m}: {label} ({n} models)",
                  f'open "{os.path.abspath(pdb)}" coordsets true',
                  f"style #{m} stick", f"cartoon #{m}"]
        if n > 1:
            lines += [f"coordset #{m} 1,{n} pauseFrames 10 loop 5 bounce true",
                      f"coordset slider #{m}"]
        if showOnly is not None and i != showOnly:
            lines.append(f"hide #{m} models")
    lines.append("view")
    return "\n".join(lines) + "\n"


def writeChimeraxScript(path, title, series, volume=None, showOnly=None):
    """Write :func:`chimeraxScript` to ``path``; return ``path``."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write(chimeraxScript(title, series, volume, showOnly))
    return path


def volumeSeriesScript(title, series, voxelSize, origin, consensus=None):
    """Text of a ``.cxc`` that opens each volume series (``vseries true``) at ``origin``.

    Parameters
    ----------
    title : comment line.
    series : list of ``(label, [mrc paths])``; each becomes one series model (after the
        consensus map, when given); only the first is shown at start.
    voxelSize, origin : Å and Å (xyz) of every volume (the Scipion frame of the user's model).
    consensus : :class:`MapDisplay` of the consensus map, shown as a transparent surface.
    """
    ox, oy, oz = (float(v) + 0.0 for v in origin)
    lines = [f"# {title}",
             "# Each series is one model: play it with its slider or 'vseries play #N'.",
             "# Open with: chimerax this_file.cxc   (or `open this_file.cxc` inside ChimeraX)"]
    first = 1
    if consensus is not None:
        cx, cy, cz = (float(v) + 0.0 for v in consensus.origin)
        lines += [f'open "{os.path.abspath(consensus.path)}" format mrc',
                  f"volume #1 voxelSize {consensus.voxelSize:g} origin {cx:g},{cy:g},{cz:g}",
                  "volume #1 style mesh color silver",
                  "hide #1 models"]
        first = 2
    for i, (label, paths) in enumerate(series):
        m = first + i
        files = " ".join(f'"{os.path.abspath(p)}"' for p in paths)
        lines += [f"# #{m}: {label} ({len(paths)} volumes)",
                  f"open {files} format mrc vseries true",
                  f"volume #{m} voxelSize {voxelSize:g} origin {ox:g},{oy:g},{oz:g}"]
        if i > 0:
            lines.append(f"hide #{m} models")
    lines.append("view")
    return "\n".join(lines) + "\n"
