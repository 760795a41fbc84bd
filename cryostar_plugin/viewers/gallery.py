"""A slice gallery of density volumes drawn with matplotlib (no xmipp, no Java).

One column per volume of a series (k-means states, or the points along a PC), three rows: the
central XY, XZ and YZ sections.  Each volume has its own grey scale (0.1–99.9 percentiles), so
the shape reads the same whatever the volume's overall intensity.
"""
import os

import numpy as np

from .plots import FONT, _plotter, _save

__all__ = ["seriesVolumes", "seriesLabel", "centralSections", "plotVolumeGallery"]

SECTIONS = ("XY (central z)", "XZ (central y)", "YZ (central x)")


def seriesVolumes(manifest):
    """``{series name: [volume file, …]}`` of a density run manifest, in manifest order.

    A series is either a list of files or a dict with ``"volumes"``; non-MRC files are skipped.
    """
    out = {}
    for name, entry in (manifest.get("series") or {}).items():
        files = entry if isinstance(entry, list) else entry.get("volumes", [])
        files = [f for f in files if str(f).endswith(".mrc")]
        if files:
            out[name] = files
    return out


def seriesLabel(name):
    """``"kmeans"`` → ``"k-means states"``; ``"pca_2"`` → ``"PC2 trajectory"``; others as is."""
    if name == "kmeans":
        return "k-means states"
    if name.startswith("pca_") and name[4:].isdigit():
        return f"PC{name[4:]} trajectory"
    return name


def _volumeLabel(series, i):
    return f"state {i}" if series == "kmeans" else f"point {i + 1}"


def centralSections(data):
    """The central XY, XZ and YZ sections of ``data`` ``(Z, Y, X)`` (MRC order)."""
    z, y, x = (s // 2 for s in data.shape)
    return data[z, :, :], data[:, y, :], data[:, :, x]


def plotVolumeGallery(path, files, title, series="", labels=None):
    """Gallery of the volumes ``files`` (MRC paths); PNG at ``path``; the plotter.

    Parameters
    ----------
    files : MRC files, one column each.
    series : the series name (``"kmeans"``, ``"pca_1"``…) for the column titles.
    labels : column titles (default: from ``series``).
    """
    import mrcfile

    n = len(files)
    plotter = _plotter(title, figsize=(max(4.5, 1.75 * n + 1.2), 6.0))
    fig = plotter.getFigure()
    fig.clf()
    axes = fig.subplots(len(SECTIONS), n, squeeze=False)
    for col, f in enumerate(files):
        with mrcfile.open(f, permissive=True) as m:
            data = np.asarray(m.data, dtype=np.float32)
        lo, hi = np.percentile(data, [0.1, 99.9])
        for row, section in enumerate(centralSections(data)):
            ax = axes[row, col]
            ax.imshow(section, cmap="gray", vmin=lo, vmax=hi, origin="lower",
                      interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(labels[col] if labels else _volumeLabel(series, col),
                             fontsize=FONT)
            if col == 0:
                ax.set_ylabel(SECTIONS[row], fontsize=FONT - 1)
        axes[-1, col].set_xlabel(os.path.basename(f), fontsize=FONT - 3, color="0.35")
    fig.suptitle(title, fontsize=FONT + 1)
    return _save(plotter, path)
