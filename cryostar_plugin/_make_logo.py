"""Regenerate ``cryostar_logo.png`` (run by hand: ``python -m cryostar_plugin._make_logo``).

A white five-pointed star made of beads on a blue disc: coarse-grained beads are what the atom
generator moves.  Pure matplotlib, no external artwork.
"""
from pathlib import Path

import numpy as np


def star_outline(n_points=5, r_outer=1.0, r_inner=0.42, beads_per_edge=4):
    """(M, 2) bead centres along the outline of a star, first tip pointing up."""
    angles = np.pi / 2 + np.arange(2 * n_points) * np.pi / n_points
    radii = np.where(np.arange(2 * n_points) % 2 == 0, r_outer, r_inner)
    corners = np.stack([radii * np.cos(angles), radii * np.sin(angles)], 1)
    edges = [corners[i] + t * (corners[(i + 1) % len(corners)] - corners[i])
             for i in range(len(corners)) for t in np.linspace(0, 1, beads_per_edge, endpoint=False)]
    return np.array(edges)


def make_logo(path, size_px=128):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(1, 1), dpi=size_px)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_xlim(-1.25, 1.25)
    ax.set_ylim(-1.25, 1.25)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.add_patch(plt.Circle((0, 0), 1.2, color="#1f4e79"))
    beads = star_outline() * 0.95
    ax.plot(*np.vstack([beads, beads[:1]]).T, color="#9fc5e8", lw=1.2, zorder=1)
    ax.scatter(beads[:, 0], beads[:, 1], s=18, color="white", edgecolor="#9fc5e8", lw=0.6, zorder=2)
    fig.savefig(path, dpi=size_px, transparent=True)
    plt.close(fig)


if __name__ == "__main__":
    make_logo(Path(__file__).with_name("cryostar_logo.png"))
