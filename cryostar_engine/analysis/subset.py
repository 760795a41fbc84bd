"""Particle subsets → RELION STAR files that go straight back into RELION or cryoSPARC.

A subset file is the input STAR with only the selected particle lines, copied verbatim and in
the original order: every column, the number formats, the optics table and the file's RELION
version (3.0 single table or 3.1+ optics + particles) are kept, so the particles re-refine at the
original box and pixel size.  Files are written atomically and only after every check passed.

Image paths (``rlnImageName``), ``image_paths=``:

* ``"auto"`` (default): unchanged when the new STAR sits in the input's folder; otherwise each
  stack path is resolved (as the engine's reader does: ``datadir``, the STAR's folder and its
  parents, the current folder) and written **absolute**, which works from any folder;
* ``"absolute"``: always absolute;  ``"relative"``: relative to the new STAR's folder;
  ``"keep"``: never changed.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io.atomic import write_text_atomic
from ..io.relion import find_stack
from ._star_rows import StarRows, read_star_rows

__all__ = ["SubsetResult", "parse_cluster_list", "load_labels", "load_indices",
           "select_clusters", "select_pc_range", "write_star_subsets", "IMAGE_PATH_MODES",
           "read_star_rows"]

IMAGE_PATH_MODES = ("auto", "absolute", "relative", "keep")


@dataclass(frozen=True)
class SubsetResult:
    """One written subset: ``path``, ``n_selected`` of ``n_total`` particles, path ``mode``."""

    path: Path
    n_selected: int
    n_total: int
    image_paths: str


def parse_cluster_list(text: str) -> list[int]:
    """``"2,5,7-9"`` → ``[2, 5, 7, 8, 9]`` (sorted, unique)."""
    out: set[int] = set()
    for part in str(text).replace(" ", "").split(","):
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise InputError(f"--keep: '{part}' is not a cluster number or range like 7-9")
        a, b = int(m.group(1)), int(m.group(2) or m.group(1))
        if b < a:
            raise InputError(f"--keep: range {part} runs backwards")
        out.update(range(a, b + 1))
    return sorted(out)


def _load_array(path, what: str) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: {what} file not found")
    try:
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False)
        words = [w for ln in path.read_text().splitlines() if not ln.lstrip().startswith("#")
                 for w in ln.replace(",", " ").split()]
        return np.array(words, dtype=np.float64)
    except (OSError, ValueError, EOFError) as err:     # EOFError: an empty .npy
        raise InputError(f"{path}: cannot read {what} ({err})") from None


def _as_integers(arr, path, what) -> np.ndarray:
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise InputError(f"{path}: {what} must be integers, got dtype {arr.dtype}")
    if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
        raise InputError(f"{path}: {what} must be whole numbers")
    return arr.astype(np.int64)


def load_labels(path, n_rows: int) -> np.ndarray:
    """Cluster labels ``(N,)`` int64 ≥ 0, one per star row (``labels.npy`` from ``analyze``)."""
    arr = _load_array(path, "labels")
    if arr.ndim != 1 or len(arr) != n_rows:
        raise InputError(f"{path}: expected one label per particle, shape ({n_rows},), "
                         f"got {arr.shape}; use the labels of a run on this star file")
    labels = _as_integers(arr, path, "labels")
    if labels.min() < 0:
        raise InputError(f"{path}: labels must be cluster numbers ≥ 0, found {labels.min()}")
    return labels


def load_indices(path, n_rows: int) -> np.ndarray:
    """Selection file → boolean mask ``(N,)``.

    Accepts a 1-D array of 0-based star rows (``.npy`` or text, one or more per line; duplicates
    are refused) or a boolean ``.npy`` mask of length N.
    """
    arr = _load_array(path, "selection")
    if arr.ndim != 1:
        raise InputError(f"{path}: a selection must be a 1-D list of 0-based particle rows "
                         f"or a boolean mask of length {n_rows}, got shape {arr.shape}")
    if arr.dtype == bool:
        if len(arr) != n_rows:
            raise InputError(f"{path}: boolean mask has {len(arr)} entries, the star file "
                             f"{n_rows} particles")
        return arr.copy()
    idx = _as_integers(arr, path, "particle rows")
    bad = idx[(idx < 0) | (idx >= n_rows)]
    if len(bad):
        raise InputError(f"{path}: row {bad[0]} is outside 0…{n_rows - 1} (0-based rows of the "
                         "star file)")
    if len(np.unique(idx)) != len(idx):
        raise InputError(f"{path}: {len(idx) - len(np.unique(idx))} particle rows are listed "
                         "twice")
    mask = np.zeros(n_rows, bool)
    mask[idx] = True
    return mask


def select_clusters(labels: np.ndarray, keep, n_clusters: int | None = None) -> np.ndarray:
    """Mask of the particles whose label is in ``keep``; every kept cluster must exist
    (``0 … n_clusters-1``, default ``labels.max()+1``)."""
    k = int(labels.max()) + 1 if n_clusters is None else int(n_clusters)
    if labels.max() >= k:
        raise InputError(f"labels go up to {labels.max()}, beyond the run's {k} clusters")
    bad = [c for c in keep if not 0 <= c < k]
    if bad:
        raise InputError(f"--keep: cluster {bad[0]} does not exist (clusters are 0…{k - 1})")
    return np.isin(labels, list(keep))


def select_pc_range(scores: np.ndarray, pc: int, lo: float, hi: float) -> np.ndarray:
    """Mask of particles with ``lo ≤ score_pc ≤ hi`` (1-based ``pc``; scores ``(N, C)``)."""
    if not 1 <= pc <= scores.shape[1]:
        raise InputError(f"--pc {pc} does not exist: the latent space has {scores.shape[1]} PCs")
    if hi < lo:
        raise InputError(f"--range {lo:g} {hi:g}: the low end is above the high end")
    s = scores[:, pc - 1]
    return (s >= lo) & (s <= hi)


def _image_rewriter(star: StarRows, out_dir: Path, mode: str, datadir):
    """A function ``row → new line`` for ``mode`` (None when lines stay verbatim)."""
    if mode not in IMAGE_PATH_MODES:
        raise InputError(f"--image-paths must be one of {', '.join(IMAGE_PATH_MODES)}")
    same = out_dir.resolve() == star.path.resolve().parent
    if mode == "keep" or (mode == "auto" and same):
        return None
    col = star.column_index("rlnImageName")
    cache: dict[str, str] = {}

    def new_path(text: str, row: int) -> str:
        if text not in cache:
            found = find_stack(text, star.path, datadir, row,
                               hint="its path cannot be rewritten; pass --datadir or "
                                    "--image-paths keep").resolve()
            cache[text] = str(found) if mode != "relative" else os.path.relpath(found, out_dir)
        return cache[text]

    def rewrite(row: int) -> str:
        tok = star.token(row, col)
        quote = tok[0] if tok[:1] in ("'", '"') else ""
        name = tok[1:-1] if quote else tok
        index, sep, path_text = name.partition("@")
        if not sep:
            index, path_text = "", name
        value = f"{index}{sep}{new_path(path_text, row)}"
        if quote or " " in value:
            value = f'"{value}"'
        return star.with_token(row, col, value)

    return rewrite


def _check_mask(mask, n: int, out: Path) -> np.ndarray:
    mask = np.asarray(mask, bool)
    if mask.shape != (n,):
        raise InputError(f"{out}: selection has shape {mask.shape}, the star file {n} particles")
    if not mask.any():
        raise InputError(f"{out}: the selection is empty (0 of {n} particles); nothing written")
    return mask


def write_star_subsets(star_path, subsets: dict, image_paths: str = "auto", datadir=None,
                       star: StarRows | None = None) -> list[SubsetResult]:
    """Write one STAR per ``{out_path: mask (N,) bool}``; all are checked before any is written.

    Raises
    ------
    InputError : an output would overwrite the input, a mask has the wrong length or selects
        nothing, or a stack path cannot be resolved for rewriting.
    """
    star = star or read_star_rows(star_path)
    n = len(star)
    plans = []
    for out, mask in subsets.items():
        out = Path(out)
        if out.resolve() == star.path.resolve():
            raise InputError(f"{out}: is the input star file; choose another --out")
        mask = _check_mask(mask, n, out)
        rewrite = _image_rewriter(star, out.parent, image_paths, datadir)
        rows = np.flatnonzero(mask)
        lines = [rewrite(r) if rewrite else star.rows[r] for r in rows]
        mode = ("absolute" if image_paths == "auto" else image_paths) if rewrite else "unchanged"
        plans.append((out, "".join(star.head + lines + star.tail), len(rows), mode))
    results = []
    for out, text, k, mode in plans:
        write_text_atomic(out, text)
        results.append(SubsetResult(path=out, n_selected=k, n_total=n, image_paths=mode))
    return results
