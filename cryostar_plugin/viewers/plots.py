"""Latent-space figures of a CryoSTAR run, drawn from what the engine wrote (no engine import,
no PCA of our own).

* :func:`latentTable`: z of every particle from ``getZFlex()`` of the training's ``Particles``
  with its star row and the analysis' k-means state, matched by particle id;
* :func:`enginePca`: the engine's PC scores (``pc_scores.npy``, named by the analysis manifest's
  ``"pca": {"scores": …}``) in the order of a :class:`LatentTable`, and the explained variance;
* :func:`pcRangeParticleIds`: the particle ids whose score on a PC lies in a range, exactly as
  the viewer's scatter shows them (the selection "particles subset" exports by PC range);
* ``plot*``: matplotlib figures on pwem's :class:`EmPlotter` (a view the GUI shows), also saved
  as PNG so tests and scripts get files without a display.
"""
import csv
import os
from dataclasses import dataclass

import numpy as np

from ..outputs import readAnalysisManifest, readStarImageIds

__all__ = ["LatentTable", "latentTable", "enginePca", "pcaRmsDisplacement",
           "pcRangeParticleIds", "umapEmbedding",
           "plotLatentScatter", "plotLatentDensity", "plotTrainingCurves", "plotPng",
           "readLosses", "FONT"]

FONT = 10          # figure text size (pt); legends and ticks at FONT - 1


@dataclass(frozen=True)
class LatentTable:
    """ids ``(N,)`` particle ids (ascending); z ``(N, zdim)``; labels ``(N,)`` k-means states
    (-1 when the analysis does not cover a particle); rows ``(N,)`` star rows of the training
    (-1 for a particle the training did not see)."""

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


def enginePca(table, analysisDir):
    """The engine's PCA for the particles of ``table``: of the decoded structures (manifest
    ``pca.space`` = ``"structure"``, the default) or of z (``"latent"``).

    Returns
    -------
    scores : ``(N, C)`` the rows of the analysis' ``pc_scores.npy`` for ``table.rows`` (NaN for a
        particle the training did not see).
    ratio : ``(C,)`` explained-variance ratios.
    """
    man = readAnalysisManifest(analysisDir)
    pca = man["pca"]
    allScores = np.load(os.path.join(analysisDir, pca["scores"]))
    scores = np.full((len(table.rows), allScores.shape[1]), np.nan)
    ok = table.rows >= 0
    scores[ok] = allScores[table.rows[ok]]
    return scores, np.asarray(pca["explained_variance_ratio"], dtype=np.float64)


def pcaRmsDisplacement(analysisDir):
    """``(C,)`` RMS displacement per residue (Å) of one standard deviation along each PC of a
    PCA of the decoded structures (manifest ``pca.rms_displacement_A``); None for a PCA of z."""
    pca = readAnalysisManifest(analysisDir).get("pca") or {}
    rms = pca.get("rms_displacement_A") if pca.get("space") == "structure" else None
    return np.asarray(rms, dtype=np.float64) if rms else None


def pcRangeParticleIds(table, analysisDir, pc, low, high):
    """Particle ids whose engine score on ``pc`` (1-based) lies in ``[low, high]`` (inclusive),
    ascending: the points of the viewer's scatter inside that range."""
    scores, _ = enginePca(table, analysisDir)
    if not 1 <= pc <= scores.shape[1]:
        raise ValueError(f"PC{pc} does not exist: the analysis kept {scores.shape[1]} PCs")
    s = scores[:, pc - 1]
    inside = (s >= low) & (s <= high)          # NaN (unseen particle) is never inside
    return np.sort(table.ids[inside])


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


def _plotter(title, figsize=(7.2, 5.0)):
    from pwem.viewers.plotter import EmPlotter
    return EmPlotter(x=1, y=1, mainTitle="", windowTitle=title, figsize=figsize)


def _save(plotter, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    plotter.getFigure().tight_layout()
    plotter.getFigure().savefig(path, dpi=100)
    return plotter


def _style(ax, title, xlabel, ylabel):
    ax.set_title(title, fontsize=FONT + 1)
    ax.set_xlabel(xlabel, fontsize=FONT)
    ax.set_ylabel(ylabel, fontsize=FONT)
    ax.tick_params(labelsize=FONT - 1)


def plotLatentScatter(path, xy, labels, xlabel, ylabel, title, band=None, names=None,
                      legendTitle="k-means"):
    """Scatter of ``xy`` ``(N, 2)`` coloured by ``labels`` ``(N,)`` (k-means states), the legend
    outside the axes; PNG at ``path``; the plotter.

    ``band``: optional ``(low, high)`` range on the x axis, shaded (a PC range).
    ``names``: optional ``{label: legend text}`` (default "state s"; -1: "no state"); points
    labelled -1 are drawn grey, under the others.
    """
    import matplotlib.pyplot as plt

    plotter = _plotter(title)
    ax = plotter.createSubPlot(title, xlabel, ylabel)
    _style(ax, title, xlabel, ylabel)
    states = sorted(set(labels.tolist()))
    cmap = plt.get_cmap("tab10" if len(states) <= 10 else "tab20")
    size = float(np.clip(4000 / max(len(xy), 1), 2, 14))
    colours = iter(range(len(states)))
    for s in states:
        sel = labels == s
        text = (names or {}).get(s, f"state {s}" if s >= 0 else "no state")
        colour = "0.75" if s < 0 else cmap(next(colours) % cmap.N)
        ax.scatter(xy[sel, 0], xy[sel, 1], s=size, alpha=0.7, linewidths=0, color=colour,
                   label=f"{text} ({sel.sum()})", zorder=1 if s < 0 else 2)
    if band is not None:            # shaded where it meets the data (the axes keep their span)
        xlim = ax.get_xlim()
        lo, hi = max(band[0], xlim[0]), min(band[1], xlim[1])
        if lo < hi:
            ax.axvspan(lo, hi, color="0.5", alpha=0.15, zorder=0,
                       label=f"range {band[0]:g} … {band[1]:g}")
        ax.set_xlim(xlim)
    ax.legend(fontsize=FONT - 1, markerscale=max(1.0, 30 / size) ** 0.5, title=legendTitle,
              title_fontsize=FONT - 1, loc="upper left", bbox_to_anchor=(1.02, 1.0),
              borderaxespad=0.0, frameon=False)
    return _save(plotter, path)


def plotLatentDensity(path, xy, xlabel, ylabel, title, gridsize=40):
    """Hexbin density of ``xy`` ``(N, 2)``; PNG at ``path``; the plotter."""
    plotter = _plotter(title, figsize=(6.4, 5.0))
    ax = plotter.createSubPlot(title, xlabel, ylabel)
    _style(ax, title, xlabel, ylabel)
    hb = ax.hexbin(xy[:, 0], xy[:, 1], gridsize=gridsize, cmap="viridis", mincnt=1)
    bar = plotter.getFigure().colorbar(hb, ax=ax)
    bar.set_label("particles per hexagon", fontsize=FONT)
    bar.ax.tick_params(labelsize=FONT - 1)
    return _save(plotter, path)


def plotPng(pngPath, title):
    """A PNG the engine wrote, in a plotter window (axes hidden)."""
    import matplotlib.image as mpimg

    img = mpimg.imread(pngPath)
    h, w = img.shape[:2]
    longSide = 8.0      # inches
    plotter = _plotter(title, figsize=(max(3.0, longSide * w / max(w, h)),
                                      max(3.0, longSide * h / max(w, h)) + 0.3))
    ax = plotter.createSubPlot(title, "", "")
    ax.imshow(img)
    ax.set_axis_off()
    ax.set_title(os.path.basename(pngPath), fontsize=FONT - 1, color="0.4")
    plotter.getFigure().tight_layout()
    return plotter


def readLosses(csvPath):
    """Columns of the engine's ``losses.csv`` as float arrays (``step``, ``loss``, …)."""
    with open(csvPath) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return {}
    return {k: np.array([float(r[k]) if r[k] not in ("", None) else np.nan for r in rows])
            for k in rows[0]}


def plotTrainingCurves(path, csvPath, title="CryoSTAR training"):
    """One panel per loss column of ``losses.csv`` against the step: each step's value (grey)
    and its running mean over ~1 % of the run (blue), explained in a legend."""
    losses = readLosses(csvPath)
    if not losses or len(losses.get("step", [])) == 0:
        return None
    terms = [k for k in losses if k not in ("step", "images_seen")]
    from pwem.viewers.plotter import EmPlotter
    cols = min(2, len(terms))
    rows = (len(terms) + cols - 1) // cols
    plotter = EmPlotter(x=rows, y=cols, windowTitle=title, figsize=(9, 2.8 * rows + 0.4))
    step = losses["step"]
    width = max(1, len(step) // 100)
    for n, term in enumerate(terms):
        ax = plotter.createSubPlot(f"{term} loss", "training step", f"{term} (a.u.)")
        _style(ax, f"{term} loss" if term != "loss" else "total loss", "training step",
               f"{term} (a.u.)")
        y = losses[term]
        ax.plot(step, y, color="0.7", lw=0.8, label="each step")
        if width > 1:
            smooth = np.convolve(y, np.ones(width) / width, mode="valid")
            ax.plot(step[width - 1:], smooth, color="C0", lw=1.4,
                    label=f"mean of {width} steps")
        if n == 0:
            ax.legend(fontsize=FONT - 1, frameon=False)
    return _save(plotter, path)
