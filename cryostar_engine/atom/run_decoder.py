"""The decoder of the stage-1 run a latent file belongs to, when there is one.

Used wherever PC scores are computed without ``analyze``'s folder (stage 2's PC volumes,
``export-subset --pc`` before ``analyze`` ran), so that every PCA of a stage-1 run is the same
one: the PCA of its decoded structures (:func:`cryostar_engine.analysis.pca.fit_structure_pca`).
"""
from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from ..train.manifest import read_manifest
from .evaluate import load_decoder

__all__ = ["run_decoder"]


def run_decoder(folder):
    """``decode(z (M, zdim)) → (M, N_beads, 3)`` Å of the stage-1 run in ``folder`` (its
    ``manifest.json`` says ``kind: atom`` and it has a checkpoint), else None."""
    folder = Path(folder)
    man = read_manifest(folder)
    if not man or man.get("kind") != "atom":
        return None
    try:
        decode, _ = load_decoder(folder)
    except (InputError, OSError, KeyError, RuntimeError):
        return None
    return decode
