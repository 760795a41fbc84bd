"""Publication-style PNG figures of a latent-space analysis (matplotlib, Agg canvas).

No ``pyplot``: every figure is a :class:`matplotlib.figure.Figure` on its own Agg canvas, so the
library never changes a caller's global backend (the Scipion viewer uses Tk).  Every figure is
written atomically at 200 dpi.  Cluster colours are the same in every figure (:func:`cluster_colors`).
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..io.atomic import atomic_path

__all__ = ["cluster_colors", "plot_pc_scatter", "plot_pc_density", "plot_explained_variance",
           "plot_cluster_populations", "plot_training_curves", "plot_embedding", "read_losses",
           "LOSS_TERMS", "pc_scatter_figure", "pc_density_figure", "training_curves_figure"]

DPI = 200
LEGEND_FONT = 9
# trajectories in black, told apart by line style and marker, so they never clash with clusters
TRAJ_STYLES = (("-", "o"), ("--", "s"), (":", "^"), ("-.", "D"))


def cluster_colors(k: int) -> np.ndarray:
    """``(k, 4)`` RGBA colours, one per cluster (tab10 up to 10, tab20 up to 20, then turbo)."""
    if k <= 10:
        return colormaps["tab10"](np.arange(k))
    if k <= 20:
        return colormaps["tab20"](np.arange(k))
    return colormaps["turbo"](np.linspace(0.05, 0.95, k))


def _new(figsize=(5.0, 4.2)) -> Figure:
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    return path


def _axis_label(pca_ratio, i: int) -> str:
    return f"PC{i + 1} ({100 * pca_ratio[i]:.1f} % of variance)"


def _overlay(ax, centres_xy, trajectories_xy, two_d: bool) -> None:
    """Numbered cluster centres and snapped PC trajectories on a PC1/PC2 (or PC1-only) axis."""
    colors = cluster_colors(len(centres_xy))
    for c, xy in enumerate(centres_xy):
        y = xy[1] if two_d else 0.0
        ax.scatter([xy[0]], [y], s=110, color=colors[c], edgecolor="black", linewidth=0.8, zorder=5)
        ax.annotate(str(c), (xy[0], y), ha="center", va="center", fontsize=6.5, weight="bold",
                    zorder=6)
    for j, (pc, pts) in enumerate(trajectories_xy):
        ls, marker = TRAJ_STYLES[j % len(TRAJ_STYLES)]
        y = pts[:, 1] if two_d else np.zeros(len(pts))
        ax.plot(pts[:, 0], y, linestyle=ls, marker=marker, color="black", ms=3.5, lw=1.3,
                zorder=4, label=f"PC{pc} trajectory", markerfacecolor="white",
                markeredgewidth=0.9)
        ax.annotate("", xy=(pts[-1, 0], y[-1]), xytext=(pts[-2, 0], y[-2]), zorder=4,
                    arrowprops=dict(arrowstyle="-|>", color="black", lw=1.3))


def _centre_handle():
    return Line2D([], [], ls="none", marker="o", ms=9, color="0.8", markeredgecolor="black",
                  label="k-means centres (numbered)")


def _legend_below(fig, ax, extra=()) -> None:
    """The axes' legend entries (trajectories) plus ``extra`` handles, below the axes (outside
    them, so no point or contour is hidden), font ≥ 9 pt."""
    handles, labels = ax.get_legend_handles_labels()
    handles += [h for h in extra]
    labels += [h.get_label() for h in extra]
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=min(2, len(handles)),
                   fontsize=LEGEND_FONT, frameon=False)


def pc_scatter_figure(scores, ratio, labels, centres_xy, trajectories_xy) -> Figure:
    """PC1 vs PC2 scatter coloured by cluster, with centres (numbered) and trajectories (legend
    below the axes).

    Parameters
    ----------
    scores : ``(N, C)`` PC scores; with ``C == 1`` a PC1 histogram per cluster is drawn instead.
    ratio : ``(C,)`` explained variance ratios (axis labels).
    labels : ``(N,)`` cluster numbers ``0 … k-1``.
    centres_xy : ``(k, ≥1)`` centre scores.
    trajectories_xy : list of ``(pc, (P, ≥1) scores)`` for each trajectory.
    """
    fig = _new((5.0, 4.6))
    ax = fig.add_subplot()
    k = len(centres_xy)
    colors = cluster_colors(k)
    two_d = scores.shape[1] >= 2
    if two_d:
        size = float(np.clip(3000 / max(len(scores), 1), 0.3, 8))
        ax.scatter(scores[:, 0], scores[:, 1], s=size, c=colors[labels], alpha=0.6, linewidths=0,
                   rasterized=True)
        ax.set_ylabel(_axis_label(ratio, 1))
    else:
        bins = np.histogram_bin_edges(scores[:, 0], bins=60)
        for c in range(k):
            ax.hist(scores[labels == c, 0], bins=bins, color=colors[c], alpha=0.7, stacked=False)
        ax.set_ylabel("particles")
    _overlay(ax, centres_xy, trajectories_xy, two_d)
    ax.set_xlabel(_axis_label(ratio, 0))
    ax.set_title(f"Latent space: {len(scores):,} particles, {k} k-means states", fontsize=10)
    _legend_below(fig, ax, [_centre_handle()])
    return fig


def plot_pc_scatter(path, scores, ratio, labels, centres_xy, trajectories_xy) -> Path:
    """:func:`pc_scatter_figure` saved as a PNG at ``path`` (returned)."""
    return _save(pc_scatter_figure(scores, ratio, labels, centres_xy, trajectories_xy), path)


def _smoothed_density(x, y, bins: int = 200):
    """Particle density on a ``bins²`` grid: a 2-D histogram smoothed by a Gaussian whose width
    follows Scott's rule (σ·N^(-1/6) per axis).  Returns ``(density, extent)``."""
    from scipy.ndimage import gaussian_filter

    lo = np.percentile([x, y], 0.5, axis=1)
    hi = np.percentile([x, y], 99.5, axis=1)
    pad = 0.15 * (hi - lo) + 1e-9
    lo, hi = lo - pad, hi + pad
    h, xe, ye = np.histogram2d(x, y, bins=bins, range=[[lo[0], hi[0]], [lo[1], hi[1]]])
    width = (hi - lo) / bins
    sigma = np.array([np.std(x), np.std(y)]) * len(x) ** (-1 / 6) / width
    dens = gaussian_filter(h, sigma=np.maximum(sigma, 1.0))
    return dens.T / (dens.sum() * width.prod()), (xe[0], xe[-1], ye[0], ye[-1])


def _enclosing_levels(dens: np.ndarray, fractions) -> np.ndarray:
    """Density thresholds whose super-level sets hold the given fractions of the mass
    (increasing, unique)."""
    d = np.sort(dens.ravel())[::-1]
    cum = np.cumsum(d) / d.sum()
    levels = [d[min(np.searchsorted(cum, f), len(d) - 1)] for f in fractions]
    return np.unique(np.asarray(levels))


def pc_density_figure(scores, ratio, centres_xy, trajectories_xy) -> Figure:
    """Smoothed particle density of PC1/PC2 (Gaussian-smoothed 2-D histogram, contours) with
    centres and trajectories; a 1-D histogram when there is only one PC."""
    fig = _new((5.4, 4.6))
    ax = fig.add_subplot()
    two_d = scores.shape[1] >= 2
    extra = []
    if two_d:
        dens, extent = _smoothed_density(scores[:, 0], scores[:, 1])
        im = ax.imshow(dens, origin="lower", extent=extent, aspect="auto", cmap="magma_r",
                       interpolation="bilinear")
        levels = _enclosing_levels(dens, (0.95, 0.75, 0.5, 0.25))
        if len(levels) > 1:
            ax.contour(dens, levels=levels, extent=extent, colors="0.25", linewidths=0.5,
                       origin="lower")
        fig.colorbar(im, ax=ax, label="particle density (per unit PC area)")
        if len(levels) > 1:
            extra.append(Line2D([], [], color="0.25", lw=0.8,
                                label="contours enclose 95, 75, 50, 25 % of particles"))
        ax.set_ylabel(_axis_label(ratio, 1))
    else:
        ax.hist(scores[:, 0], bins=60, color="0.4")
        ax.set_ylabel("particles")
    _overlay(ax, centres_xy, trajectories_xy, two_d)
    ax.set_xlabel(_axis_label(ratio, 0))
    ax.set_title("Particle density in latent space", fontsize=10)
    _legend_below(fig, ax, [_centre_handle()] + extra)
    return fig


def plot_pc_density(path, scores, ratio, centres_xy, trajectories_xy) -> Path:
    """:func:`pc_density_figure` saved as a PNG at ``path`` (returned)."""
    return _save(pc_density_figure(scores, ratio, centres_xy, trajectories_xy), path)


def plot_explained_variance(path, ratio) -> Path:
    """Bar chart of the explained variance ratio per PC with the cumulative curve."""
    ratio = np.asarray(ratio)
    fig = _new((4.6, 3.4))
    ax = fig.add_subplot()
    x = np.arange(1, len(ratio) + 1)
    ax.bar(x, 100 * ratio, color="#4c72b0", label="per PC")
    ax.plot(x, 100 * np.cumsum(ratio), "-o", color="#dd8452", ms=4, label="cumulative")
    for xi, r in zip(x, ratio):
        ax.text(xi, 100 * r + 1, f"{100 * r:.0f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x)
    ax.set_xlabel("principal component")
    ax.set_ylabel("explained variance (%)")
    ax.set_ylim(0, 105)
    ax.legend(frameon=False, fontsize=8, loc="center right")
    return _save(fig, path)


def plot_cluster_populations(path, counts) -> Path:
    """Bar chart of particles per cluster (counts and percentages), in cluster colours."""
    counts = np.asarray(counts)
    k = len(counts)
    fig = _new((max(3.6, 0.45 * k + 1.5), 3.4))
    ax = fig.add_subplot()
    x = np.arange(k)
    ax.bar(x, counts, color=cluster_colors(k), edgecolor="black", linewidth=0.5)
    total = max(int(counts.sum()), 1)
    for xi, n in zip(x, counts):
        ax.text(xi, n, f"{100 * n / total:.0f}%", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x)
    ax.set_xlabel("cluster (k-means state, dendrogram order)")
    ax.set_ylabel("particles")
    ax.set_ylim(0, counts.max() * 1.12 + 1)
    return _save(fig, path)


def read_losses(path) -> dict:
    """``losses.csv`` → ``{column: (T,) float array}`` sorted by step, the last row per step kept
    (a resumed or rolled-back run may repeat steps).  Non-numeric cells become NaN."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "step" not in rows[0]:
        return {}

    def num(v):
        try:
            return float(v)
        except (TypeError, ValueError):
            return np.nan

    cols = {c: np.array([num(r.get(c)) for r in rows]) for c in rows[0]}
    step = cols["step"]
    keep = np.isfinite(step)
    _, last = np.unique(step[keep][::-1], return_index=True)
    order = np.flatnonzero(keep)[::-1][last]
    order = order[np.argsort(step[order], kind="stable")]
    return {c: v[order] for c, v in cols.items()}


#: Title and y-axis label (with its unit) of each ``losses.csv`` column; see atom/losses.py and
#: density/step.py for the definitions.  A column not listed is shown under its own name.
LOSS_TERMS = {
    "loss": ("Total loss (weighted sum of the terms)", "loss (dimensionless)"),
    "image": ("Image term: −correlation with the particles", "−normalised cross-correlation"),
    "continuity": ("Chain continuity (consecutive beads)", "mean squared deviation (Å²)"),
    "elastic": ("Elastic network (flat-bottom)", "mean squared deviation (Å²)"),
    "clash": ("Clashes (beads closer than the minimum)", "mean squared overlap (Å²)"),
    "kl": ("KL divergence of q(z|x) from N(0, I)", "nats per dimension (≥ free bits)"),
}
#: The density generator writes one column, ``loss``: its Fourier-space error.
DENSITY_LOSS = ("Fourier-space error of the predicted images", "mean squared error (normalised)")


def _term_labels(name: str, terms: list) -> tuple:
    if name == "loss" and terms == ["loss"]:
        return DENSITY_LOSS
    return LOSS_TERMS.get(name, (name.replace("_", " "), "value"))


def training_curves_figure(losses: dict) -> Figure | None:
    """One panel per loss term against the training step: each step's value (light) and its
    running mean (dark), explained in a legend below the panels; titles and y-axis units from
    :data:`LOSS_TERMS` (the density generator's single ``loss`` column: :data:`DENSITY_LOSS`).

    ``losses`` as returned by :func:`read_losses`; returns None when there is nothing to plot.
    """
    terms = [c for c in losses if c not in ("step", "images_seen", "epoch", "lr", "time_s")
             and np.isfinite(losses[c]).any()]
    if not terms or len(losses["step"]) == 0:
        return None
    ncol = min(3, len(terms))
    nrow = -(-len(terms) // ncol)
    fig = _new((3.6 * ncol, 2.7 * nrow + 0.7))
    step = losses["step"]
    win = max(1, len(step) // 50)
    handles = []
    for i, name in enumerate(terms):
        ax = fig.add_subplot(nrow, ncol, i + 1)
        y = losses[name]
        ok = np.isfinite(y)
        smoothed = win > 1 and ok.sum() > win
        raw, = ax.plot(step, y, color="#4c72b0", alpha=0.3 if smoothed else 1.0, lw=0.8,
                       label="value at each step")
        handles = handles or [raw]
        if smoothed:
            smooth = np.convolve(y[ok], np.ones(win) / win, mode="valid")
            mean, = ax.plot(step[ok][win - 1:], smooth, color="#4c72b0", lw=1.5,
                            label=f"running mean over {win} steps")
            handles = [raw, mean]
        pos = y[ok & (y > 0)]
        if len(pos) == ok.sum() and len(pos) > 1 and pos.max() / pos.min() > 100:
            ax.set_yscale("log")
        title, unit = _term_labels(name, terms)
        ax.set_title(title, fontsize=9)
        ax.set_ylabel(unit, fontsize=8)
        ax.set_xlabel("training step", fontsize=8)
        ax.tick_params(labelsize=7.5)
    fig.suptitle(f"Training curves ({int(step[-1]):,} steps)", fontsize=10)
    fig.legend(handles, [h.get_label() for h in handles], loc="outside lower center",
               ncol=len(handles), fontsize=LEGEND_FONT, frameon=False)
    return fig


def plot_training_curves(path, losses: dict) -> Path | None:
    """:func:`training_curves_figure` saved as a PNG at ``path`` (returned, or None)."""
    fig = training_curves_figure(losses)
    return None if fig is None else _save(fig, path)


def plot_embedding(path, xy, labels, method: str = "UMAP") -> Path:
    """2-D embedding (e.g. UMAP) of z coloured by cluster."""
    fig = _new()
    ax = fig.add_subplot()
    colors = cluster_colors(int(labels.max()) + 1)
    size = float(np.clip(3000 / max(len(xy), 1), 0.3, 8))
    ax.scatter(xy[:, 0], xy[:, 1], s=size, c=colors[labels], alpha=0.6, linewidths=0,
               rasterized=True)
    ax.set_xlabel(f"{method} 1")
    ax.set_ylabel(f"{method} 2")
    ax.set_title(f"{method} of z, coloured by k-means state", fontsize=9)
    return _save(fig, path)
