"""Engine results → the numbers and file names the protocols register (no Scipion objects here).

* :func:`readStarImageIds` / :func:`zRowsByObjId`: the engine's per-particle arrays are in star
  order; the star written by :func:`cryostar_plugin.convert.writeParticlesStar` carries each
  particle's Scipion id in ``rlnImageId``, which maps row i to its particle.
* :func:`readAnalysisManifest` / :func:`analysisPoints`: what ``cryostar-engine analyze`` wrote,
  read from its ``manifest.json`` (never by listing the folder): for every k-means centre and
  every trajectory point, its latent vector, the star row of the real particle it snaps to and
  its model in the decoded multi-model PDB.
The engine writes every model, volume and ChimeraX script in the frame of the user's model and
map and lists them in its manifests; nothing here moves, splits or writes them.

Everything here reads files with NumPy, json and emtable (a dependency of scipion-em-relion),
so it works when the engine lives in a separate environment.
"""
import json
import os
from dataclasses import dataclass

import numpy as np

__all__ = ["readStarImageIds", "zRowsByObjId", "readJson", "writeJson", "readAnalysisManifest",
           "StructurePoint", "analysisPoints"]


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
