"""Figures of a validation: one per latent point (per-residue local CC and displacement) and the
overview (local CC of every residue at every point, and the model–map FSC 0.5 per point).

Same conventions as :mod:`cryostar_engine.analysis.figures` (its Agg canvas and atomic 200-dpi
PNG writer): titles, axis labels with units, legends outside the data.
"""
from __future__ import annotations

import numpy as np
from matplotlib.lines import Line2D

from ..analysis.figures import LEGEND_FONT, _new, _save
from .flags import MOVES, RIGID

__all__ = ["point_figure", "overview_figure", "FLAG_COLOURS", "FLAG_LABELS"]

FLAG_COLOURS = {MOVES: "#d73027", RIGID: "#4575b4"}
FLAG_LABELS = {MOVES: "flagged: model moves, map does not",
               RIGID: "flagged: map changes, model rigid"}


def _chain_ticks(ax, beads) -> None:
    """Vertical lines between chains and the chain ids above the axis."""
    chains = np.asarray([str(c) for c in beads.chain_ids])
    starts = [0] + [i for i in range(1, len(chains)) if chains[i] != chains[i - 1]]
    for s in starts[1:]:
        ax.axvline(s - 0.5, color="0.5", lw=0.8)
    if len(starts) > 1:
        ends = starts[1:] + [len(chains)]
        for s, e in zip(starts, ends):
            ax.text((s + e - 1) / 2, 1.01, f"chain {chains[s]}", transform=ax.get_xaxis_transform(),
                    ha="center", va="bottom", fontsize=LEGEND_FONT)


def _residue_axis(ax, beads) -> None:
    """x ticks at bead indices, labelled with residue numbers (about 8 ticks)."""
    n = len(beads)
    ticks = np.unique(np.linspace(0, n - 1, min(n, 8)).round().astype(int))
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{beads.chain_ids[i]}{int(beads.res_ids[i])}" for i in ticks])
    ax.set_xlim(-0.5, n - 0.5)


def point_figure_obj(res, beads, t):
    """The :class:`~matplotlib.figure.Figure` of one point (see :func:`point_figure`)."""
    p = res.maps.point
    x = np.arange(len(beads))
    fig = _new((8.0, 5.6))
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    top.plot(x, res.cc, color="black", lw=1.2, label="model at this point vs map")
    top.plot(x, res.cc_reference, color="0.6", lw=1.0, ls="--",
             label="reference model vs map (at the reference position)")
    for kind, colour in FLAG_COLOURS.items():
        sel = res.flags == kind
        if sel.any():
            top.scatter(x[sel], res.cc[sel], color=colour, s=18, zorder=3, label=FLAG_LABELS[kind])
    top.set_ylim(min(-0.05, float(np.nanmin([res.cc.min(), res.cc_reference.min()])) - 0.05), 1.02)
    top.set_ylabel("local correlation")
    flagged = [f"chain {c['chain']} ({FLAG_LABELS[c['flag']].split(': ')[1]})"
               for c in res.chains if c["flag"]]
    top.set_title(f"{p.name} ({p.series} point {p.index}): model–map FSC 0.5 at "
                  f"{res.maps.resolution_A:.1f} Å, mean local CC {res.mean_local_cc:.2f}"
                  + ("\nflagged: " + "; ".join(flagged) if flagged else ""))
    _chain_ticks(top, beads)
    bottom.bar(x, res.displacement_A, width=1.0, color="0.55", label="displacement from reference")
    bottom.axhline(t.min_displacement_A, color="black", ls=":", lw=1.0,
                   label=f"resolvable displacement ({t.min_displacement_A:.1f} Å = FSC 0.5 / 2)")
    bottom.set_ylabel("displacement (Å)")
    bottom.set_xlabel("residue (chain and number)")
    _residue_axis(bottom, beads)
    handles = top.get_legend_handles_labels()
    more = bottom.get_legend_handles_labels()
    fig.legend(handles[0] + more[0], handles[1] + more[1], loc="outside lower center", ncols=2,
               fontsize=LEGEND_FONT, frameon=False)
    return fig


def point_figure(path, res, beads, t):
    """PNG: local CC per residue (model vs map, reference vs map, flags) over the displacement
    from the reference (Å) at one latent point."""
    return _save(point_figure_obj(res, beads, t), path)


def overview_figure_obj(results, beads, t, report):
    """The overview :class:`~matplotlib.figure.Figure` (see :func:`overview_figure`)."""
    names = [r.maps.point.name for r in results]
    cc = np.array([r.cc for r in results])
    fig = _new((10.0, 0.28 * len(results) + 2.6))
    heat, side = fig.subplots(1, 2, width_ratios=[5, 1], sharey=True)
    im = heat.imshow(cc, aspect="auto", cmap="RdYlGn", vmin=0.0, vmax=1.0,
                     interpolation="nearest")
    for kind, colour in FLAG_COLOURS.items():
        rows, cols = np.nonzero(np.array([r.flags == kind for r in results]))
        if len(rows):
            heat.scatter(cols, rows, marker="x", s=10, color=colour, lw=0.8)
    heat.set_yticks(np.arange(len(names)))
    heat.set_yticklabels(names)
    heat.set_ylabel("latent point")
    heat.set_xlabel("residue (chain and number)")
    _residue_axis(heat, beads)
    _chain_ticks(heat, beads)
    heat.set_title(f"local correlation of model and map per residue — verdict: "
                   f"{report['verdict']}")
    fsc = [r.maps.resolution_A for r in results]
    flagged = [any(c["flag"] for c in r.chains) for r in results]
    side.barh(np.arange(len(names)), fsc, color=["#d73027" if f else "0.55" for f in flagged])
    side.set_xlabel("FSC 0.5 (Å)")
    side.set_title("model–map FSC")
    fig.colorbar(im, ax=heat, location="bottom", shrink=0.5, label="local correlation")
    handles = [Line2D([], [], marker="x", ls="", color=c, label=FLAG_LABELS[k])
               for k, c in FLAG_COLOURS.items()]
    handles.append(Line2D([], [], marker="s", ls="", color="#d73027",
                          label="point with a flagged chain (FSC bar)"))
    fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=LEGEND_FONT,
               frameon=False)
    return fig


def overview_figure(path, results, beads, t, report):
    """PNG: residues × points heat map of the local CC with the flags, and FSC 0.5 per point."""
    return _save(overview_figure_obj(results, beads, t, report), path)
