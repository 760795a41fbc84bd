"""Figures of a CryoSTAR run computed from Scipion objects (no engine import).

* :func:`latentTable`: z of every particle from ``getZFlex()`` of the training's ``Particles``
  with the k-means state of an analysis, matched by particle id;
* :func:`pcaScores`: PCA of z (NumPy SVD; the same axes as the engine's analysis up to sign);
* ``plot*``: matplotlib figures drawn on pwem's :class:`EmPlotter` (a view the GUI shows) and
  saved as PNG, so tests and scripts get files without a display.
"""
import csv
import os
from dataclasses import dataclass

import numpy as np

from ..outputs import readAnalysisManifest, readStarImageIds

__all__ = ["LatentTable", "latentTable", "pcaScores", "umapEmbedding", "plotLatentScatter",
           "plotLatentDensity", "plotTrainingCurves", "readLosses"]


@dataclass(frozen=True)
class LatentTable:
    """ids ``(N,)`` particle ids (ascending); z ``(N, zdim)``; labels ``(N,)`` k-means states
    (-1 when the analysis does not cover a particle); rows ``(N,)`` star rows of the training."""

    ids: np.ndarray
    z: np.ndarray
    labels: np.ndarray
    rows: np.ndarray


def latentTable(particlesFlex, starFile, analysisDir=None):
    """z from ``getZFlex()`` and the analysis' k-means state of each particle.

    Parameters
    ----------
    particlesFlex : the training's ``Particles`` (SetOfParticlesFlex).
    starFile : the star the training read (row i ↔ the engine's row i, ``rlnImageId``).
    analysisDir : an ``analyze`` folder (its ``labels.npy``); None gives labels -1.
    """
    ids, zs = [], []
    for p in particlesFlex.iterItems(orderBy="id"):
        ids.append(p.getObjId())
        zs.append(p.getZFlex())
    ids = np.asarray(ids, dtype=np.int64)
    starIds = readStarImageIds(starFile)
    rowOf = {int(i): r for r, i in enumerate(starIds)}
    rows = np.array([rowOf.get(int(i), -1) for i in ids], dtype=np.int64)
    labels = np.full(len(ids), -1, dtype=np.int64)
    if analysisDir is not None:
        man = readAnalysisManifest(analysisDir)
        allLabels = np.load(os.path.join(analysisDir, man["kmeans"]["labels"]))
        ok = rows >= 0
        labels[ok] = allLabels[rows[ok]]
    return LatentTable(ids, np.asarray(zs, dtype=np.float64), labels, rows)


def pcaScores(z):
    """PC scores ``(N, C)`` and explained-variance ratios ``(C,)`` of ``z`` ``(N, zdim)``."""
    zc = z - z.mean(0)
    _, s, vt = np.linalg.svd(zc, full_matrices=False)
    var = s ** 2
    return zc @ vt.T, var / max(var.sum(), 1e-300)


def umapEmbedding(table, analysisDir=None, seed=0):
    """2-D UMAP of z: the analysis' ``umap.npy`` when it has one, else computed with umap-learn.

    Returns None when neither is available.
    """
    if analysisDir is not None:
        man = readAnalysisManifest(analysisDir)
        if man.get("umap"):
            emb = np.load(os.path.join(analysisDir, man["umap"]["embedding"]))
            return emb[table.rows]
    try:
        import umap
    except ImportError:
        return None
    return umap.UMAP(random_state=seed).fit_transform(table.z)


def _plotter(title):
    from pwem.viewers.plotter import EmPlotter
    return EmPlotter(x=1, y=1, mainTitle="", windowTitle=title, figsize=(6, 5))


def _save(plotter, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    plotter.getFigure().tight_layout()
    plotter.getFigure().savefig(path, dpi=100)
    return plotter


def plotLatentScatter(path, xy, labels, xlabel, ylabel, title):
    """Scatter of ``xy`` ``(N, 2)`` coloured by k-means state; PNG at ``path``; the plotter."""
    import matplotlib.pyplot as plt

    plotter = _plotter(title)
    ax = plotter.createSubPlot(title, xlabel, ylabel)
    states = sorted(set(labels.tolist()))
    cmap = plt.get_cmap("tab10" if len(states) <= 10 else "tab20")
    for i, s in enumerate(states):
        sel = labels == s
        name = f"state {s} ({sel.sum()})" if s >= 0 else f"no state ({sel.sum()})"
        ax.scatter(xy[sel, 0], xy[sel, 1], s=8, alpha=0.7, color=cmap(i % cmap.N), label=name)
    ax.legend(fontsize=7, markerscale=2, loc="best")
    return _save(plotter, path)


def plotLatentDensity(path, xy, xlabel, ylabel, title, gridsize=40):
    """Hexbin density of ``xy`` ``(N, 2)``; PNG at ``path``; the plotter."""
    plotter = _plotter(title)
    ax = plotter.createSubPlot(title, xlabel, ylabel)
    hb = ax.hexbin(xy[:, 0], xy[:, 1], gridsize=gridsize, cmap="viridis", mincnt=1)
    plotter.getFigure().colorbar(hb, ax=ax, label="particles")
    return _save(plotter, path)


def readLosses(csvPath):
    """Columns of the engine's ``losses.csv`` as float arrays (``step``, ``loss``, …)."""
    with open(csvPath) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return {}
    return {k: np.array([float(r[k]) if r[k] not in ("", None) else np.nan for r in rows])
            for k in rows[0]}


def plotTrainingCurves(path, csvPath, title="CryoSTAR training"):
    """One panel per loss term against the step (running mean over ~1% of the run)."""
    losses = readLosses(csvPath)
    if not losses or len(losses.get("step", [])) == 0:
        return None
    terms = [k for k in losses if k not in ("step", "images_seen")]
    from pwem.viewers.plotter import EmPlotter
    cols = 2
    rows = (len(terms) + cols - 1) // cols
    plotter = EmPlotter(x=rows, y=cols, windowTitle=title, figsize=(8, 2.4 * rows))
    step = losses["step"]
    width = max(1, len(step) // 100)
    for term in terms:
        ax = plotter.createSubPlot(term, "step", term)
        y = losses[term]
        ax.plot(step, y, color="0.75", lw=0.8)
        if width > 1:
            smooth = np.convolve(y, np.ones(width) / width, mode="valid")
            ax.plot(step[width - 1:], smooth, color="C0", lw=1.2)
    return _save(plotter, path)
