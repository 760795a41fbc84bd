"""Particle images: non-finite pixels and empty (constant) images.

Checked on every chunk the dataset reads (cheap next to reading it) and, for stacks streamed
from disk, on an evenly spread sample when the dataset is built, so that a bad stack is refused
before a run folder exists.
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError

__all__ = ["check_finite_images", "empty_images", "MAX_EMPTY_FRACTION"]

#: more constant (e.g. all-zero) images than this fraction of those checked are refused
MAX_EMPTY_FRACTION = 0.05


def check_finite_images(images: np.ndarray, rows: np.ndarray, meta) -> None:
    """Refuse ``(B, ny, nx)`` ``images`` of star ``rows`` (0-based) holding NaN or Inf pixels."""
    finite = np.isfinite(images.reshape(len(images), -1)).all(1)
    if finite.all():
        return
    i = int(np.flatnonzero(~finite)[0])
    r = int(rows[i])
    raise InputError(f"{meta.image_paths[r]}: image {meta.image_indices[r] + 1} (star row {r + 1}) "
                     "holds NaN or Inf pixels; remove that particle from the star file or "
                     "re-extract the stack")


def empty_images(n_empty: int, n_seen: int, first_row: int, meta) -> str | None:
    """A note when ``n_empty`` of the ``n_seen`` images looked at are constant (no signal at all,
    e.g. all zero; ``first_row`` is the first one's 0-based star row); refuse when more than
    :data:`MAX_EMPTY_FRACTION` of them are."""
    if not n_empty:
        return None
    r = first_row
    what = (f"{n_empty} of the {n_seen} images" + (" checked" if n_seen < len(meta) else "")
            + f" are constant (no signal), e.g. star row {r + 1} ({meta.image_indices[r] + 1}@"
            f"{meta.image_paths[r].name})")
    if n_empty / n_seen > MAX_EMPTY_FRACTION:
        raise InputError(f"{meta.star_path}: {what}; more than {100 * MAX_EMPTY_FRACTION:g}% empty "
                         "images means a broken extraction: re-extract them or remove them from "
                         "the star file")
    return what + "; they are kept but carry no information"
